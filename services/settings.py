"""Configuration, read from the environment only (LIANXI_*)."""

from __future__ import annotations

from functools import cache

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LIANXI_", extra="ignore")

    # sqlite:///path/to/file.db (default) or postgresql://user:pass@host:port/dbname[?schema=name]
    database_url: str = "sqlite:///./var/lianxi.db"
    # Append concurrent API writes in one transaction (see services/store/group_commit.py).
    group_commit: bool = True
    group_commit_max_batch: int = 500
    # The embedded default runs projections inside `lianxi serve`; turn off when
    # separate `lianxi project` workers run.
    inprocess_projections: bool = True
    projection_batch_size: int = 1000
    # /readyz fails when a projection is further behind the log than this.
    readiness_max_lag: int = 10_000
    # Kafka (scale-out only): `lianxi relay` publishes the log, `lianxi ingest` reads agency feeds.
    kafka_bootstrap: str | None = None  # host:port[,host:port]
    kafka_client_id: str = "lianxi"
    kafka_events_topic: str = "lianxi.events.v1"
    kafka_inbound_topic: str = "lianxi.inbound.v1"
    kafka_dlq_topic: str = "lianxi.inbound.dlq.v1"
    # Topics the relay/ingest create when absent (a broker's own defaults otherwise apply).
    kafka_partitions: int = 6
    kafka_replication: int = 1
    kafka_ingest_group: str = "lianxi-ingest"
    kafka_session_timeout_ms: int = 10_000
    relay_batch_size: int = 500
    # Resource limits (OWASP API4); 0 turns one off. See services/api/limits.py.
    max_body_bytes: int = 1_048_576  # larger request bodies get 413
    max_page_size: int = 500  # `limit` above this gets 422 (read once, at import of the API)
    rate_limit_per_minute: int = 1200  # per credential (per client address without one), per process
    rate_limit_burst: int = 0  # bucket size; 0 means the per-minute figure
    request_timeout_s: float = 30.0  # no response started by then: 503 (the work may still finish)
    log_level: str = "INFO"
    # The county's time zone: every time a person reads (pages, briefs, messages) is shown in it.
    county_tz: str = "Asia/Shanghai"
    # The Ed25519 key that signs review checkpoints (generated on first use, mode 0600).
    checkpoint_key: str = "var/checkpoint.key"
    # The platform's checkpoint public key that `lianxi verify --checkpoint` trusts (64 hex
    # digits, or a file holding them or a PEM public key, as `lianxi checkpoint
    # --public-key-out` writes it); `verify --public-key` overrides it.
    checkpoint_trusted_key: str = ""

    # -- accounts and sessions (services/accounts/) --
    # A page session ends after this long without a request, and this long after sign-in at most.
    session_idle_minutes: int = 30
    session_absolute_hours: float = 12.0
    # After this many wrong passwords in a row an account is locked for signin_lock_base_s seconds,
    # each further failure doubling the lock up to signin_lock_max_s.
    signin_lock_after: int = 5
    signin_lock_base_s: float = 60.0
    signin_lock_max_s: float = 3600.0
    # The issuer name TOTP apps show beside the account.
    totp_issuer: str = "联席平台"

    # -- scheduled jobs (services/<context>/jobs.py) --
    # The scheduler drafts a meeting's agenda this many days before it.
    agenda_draft_days: int = 7
    # Campaign phase reminders start this many days before a phase deadline.
    campaign_reminder_days: int = 7

    # -- briefs (services/meetings/briefs.py) --
    # A brief request waits this long for its render, then is answered 正在生成 (keep it
    # below request_timeout_s); renders run in a pool of this many threads.
    brief_wait_s: float = 10.0
    brief_render_workers: int = 2

    # -- notifications (services/notify/) --
    # Email is off unless LIANXI_SMTP_HOST is set.
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_from: str = "lianxi@localhost"
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    smtp_timeout_s: float = 10.0
    webhook_timeout_s: float = 10.0
    # Plain http:// webhooks are refused unless this is set (internal addresses stay refused).
    webhook_allow_http: bool = False
    # Outbound requests (services/security/outbound.py) never reach internal addresses, except
    # these operator-named hosts (comma-separated, ``host`` or ``host:port``), which may also
    # use plain http.
    outbound_allow_hosts: str = ""
    # Text messages go through this gateway (services/notify/sms.py says how to add a
    # provider's adapter); ``log`` only writes them to the server log, numbers masked.
    sms_gateway: str = "log"
    delivery_max_attempts: int = 6
    delivery_backoff_s: float = 30.0
    delivery_backoff_max_s: float = 3600.0
    # A notification older than this when its turn comes is not sent (e.g. after an outage).
    delivery_max_age_h: float = 72.0
    delivery_batch: int = 100

    # -- single sign-on (services/security/oidc.py): the province's unified identity platform --
    # On when issuer, client id and redirect URL are set. The issuer is the provider's exact
    # issuer URL (discovery at <issuer>/.well-known/openid-configuration); the redirect URL is
    # this site's /sso/callback as registered with the provider. A provider on an intranet
    # address must also be named in LIANXI_OUTBOUND_ALLOW_HOSTS.
    oidc_issuer: str = ""
    oidc_client_id: str = ""
    oidc_client_secret: str = ""  # empty: a public client (PKCE only)
    oidc_redirect_url: str = ""
    oidc_display_name: str = "统一身份认证"  # the sign-in button reads 「<name>登录」
    oidc_leeway_s: int = 30  # clock skew tolerated on the ID token's exp and iat
    oidc_timeout_s: float = 10.0

    @property
    def oidc_enabled(self) -> bool:
        return bool(self.oidc_issuer and self.oidc_client_id and self.oidc_redirect_url)
    # -- evidence uploads (services/evidence/): photos and documents, stored under their SHA-256 --
    # Files under this directory (the embedded default), unless an S3 bucket is named below.
    evidence_dir: str = "var/evidence"
    # S3-compatible object storage shared by several API processes (MinIO, a cloud bucket).
    # Keys unset: boto3's own chain (AWS_* variables, instance role) applies.
    evidence_s3_bucket: str = ""
    evidence_s3_endpoint: str = ""  # e.g. http://minio.internal:9000; empty for AWS itself
    evidence_s3_region: str = "us-east-1"
    evidence_s3_access_key: str = ""
    evidence_s3_secret_key: str = ""
    evidence_s3_prefix: str = "evidence/"
    # Larger files get 413; a request (one or more files) larger than the second figure too.
    evidence_max_file_bytes: int = 10 * 1024 * 1024
    evidence_max_request_bytes: int = 40 * 1024 * 1024
    # The orphan sweep lists stored blobs no record references once they are this old.
    evidence_orphan_age_h: float = 24.0

    @property
    def email_enabled(self) -> bool:
        return bool(self.smtp_host)

    # -- documents (the brief and the review): the font map, LIANXI_BRIEF_* --------------------
    # Family names go to CSS (PDF, via fontconfig) and to Word (DOCX); defaults are Debian's
    # fonts-noto-cjk, so a bureau with the official 公文 fonts (方正小标宋简体, 黑体, 仿宋_GB2312) can
    # name them. The chart font is a font file Pillow draws the DOCX charts with (the index
    # picks a face in a .ttc); unset, fontconfig finds the heading family's file.
    brief_font_title: str = "Noto Serif CJK SC"
    brief_font_heading: str = "Noto Sans CJK SC"
    brief_font_body: str = "Noto Serif CJK SC"
    brief_chart_font_file: str | None = None
    brief_chart_font_index: int = 0
    # Name the official 公文 faces first (documents/fonts.py), the families above as fallbacks.
    brief_official_faces: bool = True
    # The site's address as people reach it (https://lianxi.example.gov.cn): the PDF brief's
    # links to the event log are absolute with it; unset, the PDF names the log positions only.
    public_url: str = ""
    # The county (区/旗) named in spreadsheet title rows.
    county_name: str = "苏尼特左旗"


@cache
def get_settings() -> Settings:
    return Settings()
