"""Single sign-on against a real OpenID provider (oidc-provider on loopback, tests/oidc_fixtures.py):
a mapped subject signs in and its session works; an unmapped one is refused with a Chinese page;
a state mismatch, a wrong audience, a wrong nonce, an expired token and tampered signatures are
all refused at the callback. The tampered tokens are real ones from the provider, swapped into
the token endpoint's answer on its way back to the platform (as a compromised or confused path
would deliver them)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from contracts.catalogue import default_catalogue
from services.api.main import create_app
from services.platform import Platform
from services.security.audit import audit_log
from services.security.oidc import OidcClient, OidcRefused, Pending
from services.web.pages.sso import NOT_OPENED, SSO_COOKIE, pending_cookie, pending_from
from services.web.session import SESSION_COOKIE
from tests.conftest import Clock, make_platform
from tests.oidc_fixtures import MAPPED, SHORT_TTL_S, UNMAPPED, OidcProvider

pytest_plugins = ["tests.oidc_fixtures"]

UNIT = "fire-rescue"


def real_clock() -> Clock:
    return Clock(datetime.now(UTC))  # ID tokens carry the provider's real iat and exp


def make_sso_platform(url: str, provider: OidcProvider, **settings: Any) -> Platform:
    settings = {**provider.settings(), **settings}
    p = make_platform(url, clock=real_clock(), **settings)
    p.app.register_catalogue(default_catalogue(), now=datetime(2024, 1, 1, tzinfo=UTC))
    p.runner.catch_up()
    # The lead opened an account for MAPPED's subject only (UNMAPPED has none).
    account, _ = p.accounts.create("test", account_name="fire.sso", display_name="演示·消防联络员", unit=UNIT,
                                   role="liaison", phone=None, known_units=p.known_agencies(), now=p.clock())
    p.accounts.set_oidc("test", account.account_id, provider.issuer, MAPPED, p.clock())
    return p


@pytest.fixture
def sso(sqlite_url: str, oidc_provider: OidcProvider) -> Iterator[Platform]:
    p = make_sso_platform(sqlite_url, oidc_provider)
    yield p
    p.close()


def start(client: TestClient) -> dict[str, str]:
    """/sso/start, as the browser follows it: the authorisation request's parameters."""
    r = client.get("/sso/start", follow_redirects=False)
    assert r.status_code == 303, r.text
    return {"url": r.headers["location"], **dict(parse_qsl(urlsplit(r.headers["location"]).query))}


def callback(client: TestClient, back: dict[str, str]) -> httpx.Response:
    return client.get("/sso/callback", params=back, follow_redirects=False)


def sign_in_through(client: TestClient, provider: OidcProvider, subject: str) -> httpx.Response:
    request = start(client)
    return callback(client, provider.sign_in(request["url"], subject))


def test_the_authorisation_request_uses_pkce_state_and_nonce(sso: Platform, oidc_provider: OidcProvider) -> None:
    client = TestClient(create_app(sso))
    a = start(client)
    assert a["url"].startswith(f"{oidc_provider.issuer}/auth?")
    assert a["client_id"] == "lianxi" and a["response_type"] == "code" and "openid" in a["scope"].split()
    assert a["code_challenge_method"] == "S256" and len(a["code_challenge"]) == 43
    assert len(a["state"]) >= 32 and len(a["nonce"]) >= 32 and a["state"] != a["nonce"]
    assert a["redirect_uri"] == oidc_provider.settings()["oidc_redirect_url"]
    assert start(client)["state"] != a["state"], "every start draws a fresh state"


def test_a_mapped_subject_signs_in_and_the_session_works(sso: Platform, oidc_provider: OidcProvider) -> None:
    client = TestClient(create_app(sso))
    assert client.get(f"/units/{UNIT}", follow_redirects=False).headers["location"].startswith("/signin")
    r = sign_in_through(client, oidc_provider, MAPPED)
    assert r.status_code == 303 and r.headers["location"] == f"/units/{UNIT}", r.text
    assert SESSION_COOKIE in r.cookies
    page = client.get(f"/units/{UNIT}", follow_redirects=False)
    assert page.status_code == 200 and "退出登录" in page.text
    assert client.get("/units/education", follow_redirects=False).status_code == 403  # still only its unit


def test_sign_ins_and_refusals_are_audited_without_the_code(sso: Platform, oidc_provider: OidcProvider) -> None:
    client = TestClient(create_app(sso))
    assert sign_in_through(client, oidc_provider, MAPPED).status_code == 303
    assert sign_in_through(TestClient(create_app(sso)), oidc_provider, UNMAPPED).status_code == 403
    with sso.write_engine.connect() as conn:
        rows = conn.execute(sa.select(audit_log).where(audit_log.c.action == "GET /sso/callback")
                            .order_by(audit_log.c.id)).mappings().all()
    assert [(r["status"], r["unit"]) for r in rows] == [(303, UNIT), (403, None)]
    assert all(r["target"] == "/sso/callback?(omitted)" for r in rows)


def test_sign_in_returns_to_the_page_asked_for(sso: Platform, oidc_provider: OidcProvider) -> None:
    client = TestClient(create_app(sso))
    r = client.get(f"/sso/start?next=/units/{UNIT}/log", follow_redirects=False)
    back = oidc_provider.sign_in(r.headers["location"], MAPPED)
    assert callback(client, back).headers["location"] == f"/units/{UNIT}/log"


def test_an_unmapped_subject_is_refused_in_chinese(sso: Platform, oidc_provider: OidcProvider) -> None:
    client = TestClient(create_app(sso))
    r = sign_in_through(client, oidc_provider, UNMAPPED)
    assert r.status_code == 403 and NOT_OPENED in r.text and "text/html" in r.headers["content-type"]
    assert SESSION_COOKIE not in r.cookies
    assert client.get(f"/units/{UNIT}", follow_redirects=False).headers["location"].startswith("/signin")


def test_a_state_mismatch_is_refused(sso: Platform, oidc_provider: OidcProvider) -> None:
    client = TestClient(create_app(sso))
    back = oidc_provider.sign_in(start(client)["url"], MAPPED)
    r = callback(client, {**back, "state": back["state"][:-2] + "xx"})
    assert r.status_code == 403 and "统一身份认证登录未完成" in r.text and SESSION_COOKIE not in r.cookies


def test_a_callback_in_another_browser_is_refused(sso: Platform, oidc_provider: OidcProvider) -> None:
    """Login CSRF: a victim's browser handed an attacker's code and state has no matching start."""
    attacker, victim = TestClient(create_app(sso)), TestClient(create_app(sso))
    back = oidc_provider.sign_in(start(attacker)["url"], MAPPED)
    r = callback(victim, back)
    assert r.status_code == 403 and SESSION_COOKIE not in r.cookies


def test_a_callback_is_good_once(sso: Platform, oidc_provider: OidcProvider) -> None:
    client = TestClient(create_app(sso))
    back = oidc_provider.sign_in(start(client)["url"], MAPPED)
    jar = client.cookies.get(SSO_COOKIE)
    assert callback(client, back).status_code == 303
    client.cookies.set(SSO_COOKIE, jar or "", path="/sso")  # even with the start cookie put back
    assert callback(client, back).status_code == 403  # the provider redeems a code once


def test_the_code_is_bound_to_this_flows_pkce_verifier(sso: Platform, oidc_provider: OidcProvider,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    """State and nonce right, verifier wrong: the provider refuses the exchange (PKCE enforced)."""
    client = TestClient(create_app(sso))
    back = oidc_provider.sign_in(start(client)["url"], MAPPED)
    pending = pending_from(client.cookies.get(SSO_COOKIE))
    assert pending is not None
    forged = Pending(state=pending.state, nonce=pending.nonce, verifier=pending.verifier[::-1])
    client.cookies.set(SSO_COOKIE, pending_cookie(forged), path="/sso")
    r = callback(client, back)
    assert r.status_code == 403 and SESSION_COOKIE not in r.cookies
    assert "single sign-on refused: exchange:invalid_grant" in caplog.text


def test_an_answer_naming_another_issuer_is_refused(sso: Platform, oidc_provider: OidcProvider) -> None:
    """RFC 9207 mix-up defence: the provider names itself in ``iss``; another name is refused."""
    client = TestClient(create_app(sso))
    back = oidc_provider.sign_in(start(client)["url"], MAPPED)
    assert back["iss"] == oidc_provider.issuer
    r = callback(client, {**back, "iss": "https://idp.example.org"})
    assert r.status_code == 403 and SESSION_COOKIE not in r.cookies


def test_the_provider_denying_is_refused(sso: Platform) -> None:
    client = TestClient(create_app(sso))
    a = start(client)
    r = callback(client, {"state": a["state"], "error": "access_denied"})
    assert r.status_code == 403 and SESSION_COOKIE not in r.cookies


# -- tokens that must not sign anyone in, delivered through the real exchange ------------------


class SwapIdToken(httpx.BaseTransport):
    """The platform's HTTP to the provider, passed through, except that the token endpoint's
    ``id_token`` is replaced by ``swap(real_token, nonce)``."""

    def __init__(self, token_endpoint: str, swap: Callable[[str], str]) -> None:
        self.real = httpx.HTTPTransport()
        self.token_endpoint = token_endpoint
        self.swap = swap

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.real.handle_request(request)
        if str(request.url) != self.token_endpoint or response.status_code != 200:
            return response
        body = json.loads(response.read())
        body["id_token"] = self.swap(body["id_token"])
        return httpx.Response(200, json=body)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def flip_signature(token: str) -> str:
    head, payload, sig = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)))
    raw[len(raw) // 2] ^= 0x01
    return f"{head}.{payload}.{_b64(bytes(raw))}"


def other_subject(token: str) -> str:
    """The payload rewritten to the mapped subject of an unmapped person's token; signature kept."""
    head, payload, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return f"{head}.{_b64(json.dumps({**claims, 'sub': MAPPED}).encode())}.{sig}"


def own_key(token: str) -> str:
    """The same claims signed by a key the provider never published."""
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    key = RSAKey.generate_key(2048, {"kid": "not-the-providers"})
    return jwt.encode({"alg": "RS256", "kid": "not-the-providers"}, claims, key)


def unsigned(token: str) -> str:
    _, payload, _ = token.split(".")
    return f"{_b64(json.dumps({'alg': 'none', 'typ': 'JWT'}).encode())}.{payload}."


Swap = Callable[[OidcProvider, str, str], str]  # (provider, the real token, the flow's nonce) -> token

SWAPS: dict[str, tuple[Swap, str]] = {
    "wrong audience": (lambda p, real, nonce: p.id_token("other-app", MAPPED, nonce), "audience"),
    "wrong nonce": (lambda p, real, nonce: p.id_token("lianxi", MAPPED, "not-this-flows-nonce"), "nonce"),
    "tampered signature": (lambda p, real, nonce: flip_signature(real), "signature"),
    "tampered subject": (lambda p, real, nonce: other_subject(real), "signature"),
    "unsigned (alg none)": (lambda p, real, nonce: unsigned(real), "malformed"),
    "signed by another key": (lambda p, real, nonce: own_key(real), "signature"),
}


@pytest.mark.parametrize("case", sorted(SWAPS))
def test_a_bad_id_token_is_refused(sso: Platform, oidc_provider: OidcProvider, case: str,
                                   caplog: pytest.LogCaptureFixture) -> None:
    swap, reason = SWAPS[case]
    client = TestClient(create_app(sso))
    a = start(client)
    token_endpoint = f"{oidc_provider.issuer}/token"
    sso.oidc = OidcClient(sso.settings, transport=SwapIdToken(
        token_endpoint, lambda real: swap(oidc_provider, real, a["nonce"])))
    subject = UNMAPPED if case == "tampered subject" else MAPPED
    r = callback(client, oidc_provider.sign_in(a["url"], subject))
    assert r.status_code == 403 and "统一身份认证登录未完成" in r.text, r.text
    assert SESSION_COOKIE not in r.cookies
    assert f"single sign-on refused: {reason}" in caplog.text


def test_the_swap_itself_lets_a_good_token_through(sso: Platform, oidc_provider: OidcProvider) -> None:
    """The control for the cases above: the same path with the token untouched signs in."""
    client = TestClient(create_app(sso))
    a = start(client)
    sso.oidc = OidcClient(sso.settings, transport=SwapIdToken(f"{oidc_provider.issuer}/token", lambda real: real))
    assert callback(client, oidc_provider.sign_in(a["url"], MAPPED)).status_code == 303


def test_an_expired_id_token_is_refused(sqlite_url: str, oidc_provider: OidcProvider,
                                        caplog: pytest.LogCaptureFixture) -> None:
    """The provider's short-lived client: its ID token is valid when it arrives on time and
    refused once past exp and the leeway."""
    p = make_sso_platform(sqlite_url, oidc_provider, **oidc_provider.settings("lianxi-short"))
    try:
        assert p.settings.oidc_leeway_s > SHORT_TTL_S
        on_time = TestClient(create_app(p))
        assert sign_in_through(on_time, oidc_provider, MAPPED).status_code == 303
        late = TestClient(create_app(p))
        a = start(late)
        back = oidc_provider.sign_in(a["url"], MAPPED)
        p.clock = Clock(datetime.now(UTC) + timedelta(seconds=SHORT_TTL_S + p.settings.oidc_leeway_s + 1))
        r = callback(late, back)
        assert r.status_code == 403 and SESSION_COOKIE not in r.cookies
        assert "single sign-on refused: expired" in caplog.text
    finally:
        p.close()


def test_the_id_token_checks_directly(sso: Platform, oidc_provider: OidcProvider) -> None:
    """Each check on its own, with real tokens: the audience, the nonce, exp, and a token
    issued in the future of our clock."""
    assert sso.oidc is not None
    now = datetime.now(UTC)
    good = oidc_provider.id_token("lianxi", MAPPED, "n-1")
    assert sso.oidc.validate_id_token(good, nonce="n-1", now=now).subject == MAPPED
    cases = {
        "audience": (oidc_provider.id_token("other-app", MAPPED, "n-1"), "n-1", now),
        "nonce": (good, "n-2", now),
        "expired": (good, "n-1", now + timedelta(seconds=600 + sso.settings.oidc_leeway_s + 1)),
        "claim:iat": (good, "n-1", now - timedelta(seconds=sso.settings.oidc_leeway_s + 60)),
    }
    for reason, (token, nonce, at) in cases.items():
        with pytest.raises(OidcRefused) as refused:
            sso.oidc.validate_id_token(token, nonce=nonce, now=at)
        assert refused.value.reason == reason


def test_keys_are_fetched_again_when_the_provider_has_rotated(sso: Platform, oidc_provider: OidcProvider) -> None:
    """The client holds the keys of an earlier fetch; a token under a key id it does not know
    sends it back to the JWKS once, where the current key is."""
    assert sso.oidc is not None
    sso.oidc._keys = KeySet([RSAKey.generate_key(2048, {"kid": "retired"})])
    token = oidc_provider.id_token("lianxi", MAPPED, "n-1")
    assert sso.oidc.validate_id_token(token, nonce="n-1", now=datetime.now(UTC)).subject == MAPPED


# -- configuration ------------------------------------------------------------------------------


def test_the_button_shows_only_when_single_sign_on_is_configured(sso: Platform, sqlite_platform: Platform) -> None:
    page = TestClient(create_app(sso)).get("/signin?next=/dashboard").text
    assert "统一身份认证登录" in page and 'href="/sso/start?next=/dashboard"' in page
    plain = TestClient(create_app(sqlite_platform))
    assert "统一身份认证" not in plain.get("/signin").text
    r = plain.get("/sso/start", follow_redirects=False)
    assert r.status_code == 404 and "未启用统一身份认证" in r.text


def test_a_provider_off_the_outbound_policy_is_not_called(sqlite_url: str, oidc_provider: OidcProvider) -> None:
    """A loopback issuer the operator did not allow-list is refused before any request."""
    p = make_sso_platform(sqlite_url, oidc_provider, outbound_allow_hosts="")
    try:
        r = TestClient(create_app(p)).get("/sso/start", follow_redirects=False)
        assert r.status_code == 503 and "统一身份认证暂时无法访问" in r.text
    finally:
        p.close()


def test_an_unreachable_provider_is_a_503_page(sqlite_url: str, oidc_provider: OidcProvider) -> None:
    from tests.kafka_fixtures import free_port

    port = free_port()
    p = make_sso_platform(sqlite_url, oidc_provider, oidc_issuer=f"http://127.0.0.1:{port}",
                          outbound_allow_hosts=f"127.0.0.1:{port}")
    try:
        r = TestClient(create_app(p)).get("/sso/start", follow_redirects=False)
        assert r.status_code == 503 and "请稍后重试" in r.text
    finally:
        p.close()


def test_no_subject_is_anyone_until_the_lead_maps_it(sqlite_url: str, oidc_provider: OidcProvider) -> None:
    """Signing in never creates an account, and a disabled account's mapping signs nobody in."""
    p = make_sso_platform(sqlite_url, oidc_provider)
    try:
        assert isinstance(p.oidc, OidcClient)
        assert p.accounts.for_oidc_subject(oidc_provider.issuer, UNMAPPED) is None
        account = p.accounts.for_oidc_subject(oidc_provider.issuer, MAPPED)
        assert account is not None and account.unit == UNIT
        p.accounts.set_enabled("test", account.account_id, False, p.clock())
        assert p.accounts.for_oidc_subject(oidc_provider.issuer, MAPPED) is None
        client = TestClient(create_app(p))
        assert sign_in_through(client, oidc_provider, MAPPED).status_code == 403
    finally:
        p.close()

