"""Tables of people's accounts and web sessions. Personal data (a person's name, phone, password
hash, TOTP secret) lives here and only here: no event and no Kafka message carries it; the
log and the audit trail name an account by its opaque id."""

from __future__ import annotations

import sqlalchemy as sa

accounts_metadata = sa.MetaData()

accounts = sa.Table(
    "accounts",
    accounts_metadata,
    sa.Column("account_id", sa.String(36), primary_key=True),  # opaque (uuid4)
    sa.Column("account_name", sa.String(40), nullable=False, unique=True),  # what a person types to sign in
    sa.Column("display_name", sa.String(40), nullable=False),
    sa.Column("unit", sa.String(64), nullable=False),  # a member unit's code, or principal.REVIEW_GROUP
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("phone", sa.String(20), nullable=True),  # for notifications only
    sa.Column("password_hash", sa.String(200), nullable=True),  # Argon2id, NULL for an SSO-only account
    sa.Column("must_change_password", sa.Boolean, nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("failed_signins", sa.Integer, nullable=False),  # consecutive
    sa.Column("locked_until", sa.String(32), nullable=True),
    sa.Column("totp_secret", sa.String(64), nullable=True),  # set once enrolment is confirmed
    sa.Column("totp_pending", sa.String(64), nullable=True),  # shown on the enrolment page until confirmed
    sa.Column("totp_last_step", sa.BigInteger, nullable=True),  # a code is accepted once
    sa.Column("oidc_issuer", sa.String(300), nullable=True),
    sa.Column("oidc_subject", sa.String(255), nullable=True),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("last_signin_at", sa.String(32), nullable=True),
    sa.UniqueConstraint("oidc_issuer", "oidc_subject", name="uq_accounts_oidc"),
    sa.Index("ix_accounts_unit", "unit"),
)

# A session stands for either a unit's bearer token (token_id; account_id NULL) or a person's
# account (account_id, with token_id holding the same id). The browser holds a random id; the
# table keeps its SHA-256.
web_sessions = sa.Table(
    "web_sessions",
    accounts_metadata,
    sa.Column("session_hash", sa.String(64), primary_key=True),
    sa.Column("token_id", sa.String(36), nullable=False),
    sa.Column("agency", sa.String(64), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("label", sa.String(100), nullable=False),
    sa.Column("csrf", sa.String(64), nullable=False),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("expires_at", sa.String(32), nullable=False),  # the absolute timeout
    sa.Column("ended_at", sa.String(32), nullable=True),
    sa.Column("account_id", sa.String(36), nullable=True),
    sa.Column("last_seen_at", sa.String(32), nullable=True),  # the idle timeout counts from here
    sa.Column("method", sa.String(16), nullable=True),  # password | sso | token (NULL: token, before accounts)
    sa.Index("ix_web_sessions_token", "token_id"),
    sa.Index("ix_web_sessions_account", "account_id"),
)


def add_missing_columns(engine: sa.Engine, table: sa.Table) -> None:
    """Columns added after a table was first created (nullable ones only): ``create_all`` leaves
    an existing table as it is. Under the caller's DDL lock."""
    with engine.begin() as conn:
        have = {c["name"] for c in sa.inspect(conn).get_columns(table.name)}
        for column in table.columns:
            if column.name not in have and column.nullable:
                kind = column.type.compile(dialect=conn.dialect)
                conn.exec_driver_sql(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {kind}')


def setup_account_tables(engine: sa.Engine) -> None:
    """Under the caller's DDL lock."""
    accounts_metadata.create_all(engine, checkfirst=True)
    add_missing_columns(engine, web_sessions)
    with engine.begin() as conn:  # indexes of columns an older table lacked
        for index in web_sessions.indexes:
            index.create(conn, checkfirst=True)
