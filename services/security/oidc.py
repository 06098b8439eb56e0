"""Single sign-on through the province's unified identity platform (统一身份认证), as an OpenID
Connect relying party: authorisation code flow with PKCE (S256), state and nonce.

Authlib's OAuth 2 protocol helpers build the authorisation request (PKCE challenge included) and
the token request, sent with httpx (Authlib's own httpx client is moving to httpx2, which the
project does not use). joserfc checks the ID token: signature against the provider's JWKS
(fetched again once when an unknown key id appears, for key rotation), issuer, audience (and
``azp`` when there are several), nonce, and exp/iat with a small leeway, all against the
platform's clock. Signing in creates no account: the caller maps (issuer, subject) to one the
lead created, or refuses.

The server's own calls (discovery, token, JWKS) go only to URLs the outbound policy accepts:
https, or an operator-allow-listed host (LIANXI_OUTBOUND_ALLOW_HOSTS, e.g. an intranet provider);
redirects are never followed and every call has a time limit.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.errors import BadSignatureError, ClaimError, ExpiredTokenError, InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

from services.security.outbound import OutboundRefused, policy_from
from services.settings import Settings

# Asymmetric signatures only: a symmetric one would be keyed by the client secret.
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
MAX_TOKEN_CHARS = 16_384


class OidcRefused(Exception):
    """A sign-in that must not go through; ``reason`` says which check failed (logs and tests)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class OidcUnavailable(Exception):
    """The provider could not be reached or answered nonsense (not the user's fault)."""


@dataclass(frozen=True)
class Pending:
    """What the callback checks against, kept by the browser between start and callback."""

    state: str
    nonce: str
    verifier: str  # the PKCE code verifier
    next: str = ""


@dataclass(frozen=True)
class Identity:
    issuer: str
    subject: str


def _reason_of(e: JoseError) -> str:
    if isinstance(e, ExpiredTokenError):
        return "expired"
    if isinstance(e, ClaimError):
        return {"iss": "issuer", "aud": "audience", "nonce": "nonce"}.get(e.claim, f"claim:{e.claim}")
    if isinstance(e, BadSignatureError | InvalidKeyIdError):  # no key of the provider's signed it
        return "signature"
    return "malformed"


class OidcClient:
    """One configured provider. Discovery and keys are fetched on first use, not at start-up."""

    def __init__(self, settings: Settings, *, transport: httpx.BaseTransport | None = None) -> None:
        self.issuer = settings.oidc_issuer.rstrip("/")
        self.client_id = settings.oidc_client_id
        self.client_secret = settings.oidc_client_secret or None
        self.redirect_url = settings.oidc_redirect_url
        self.leeway = settings.oidc_leeway_s
        self.timeout = settings.oidc_timeout_s
        self.transport = transport
        self.policy = policy_from(settings)
        self._metadata: dict[str, Any] | None = None
        self._keys: KeySet | None = None
        self._lock = threading.Lock()

    # -- the provider's documents ------------------------------------------------------------

    def _http(self, auth: httpx.Auth | None = None) -> httpx.Client:
        return httpx.Client(transport=self.transport, timeout=self.timeout, follow_redirects=False, auth=auth)

    def _get_json(self, url: str) -> dict[str, Any]:
        try:
            self.policy.check_url(url)
            with self._http() as http:
                r = http.get(url, headers={"Accept": "application/json"})
            r.raise_for_status()
            doc = r.json()
        except (OutboundRefused, httpx.HTTPError, ValueError) as e:
            raise OidcUnavailable(f"{url}: {type(e).__name__}") from None
        if not isinstance(doc, dict):
            raise OidcUnavailable(f"{url}: not a JSON object")
        return doc

    def metadata(self) -> dict[str, Any]:
        with self._lock:
            if self._metadata is None:
                doc = self._get_json(f"{self.issuer}/.well-known/openid-configuration")
                if doc.get("issuer") != self.issuer:  # OIDC Discovery 4.3: must match exactly
                    raise OidcUnavailable("discovery names another issuer")
                for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                    if not isinstance(doc.get(key), str):
                        raise OidcUnavailable(f"discovery lacks {key}")
                if "S256" not in doc.get("code_challenge_methods_supported", ["S256"]):
                    raise OidcUnavailable("the provider does not offer PKCE S256")
                self._metadata = doc
            return self._metadata

    def _keyset(self, *, refresh: bool = False) -> KeySet:
        with self._lock:
            keys = self._keys
        if keys is None or refresh:
            keys = KeySet.import_key_set(self._get_json(self.metadata()["jwks_uri"]))  # type: ignore[arg-type]
            with self._lock:
                self._keys = keys
        return keys

    # -- the flow ----------------------------------------------------------------------------

    def begin(self, next_url: str = "") -> tuple[str, Pending]:
        """The URL to send the browser to, and what its callback must match."""
        pending = Pending(state=secrets.token_urlsafe(32), nonce=secrets.token_urlsafe(32),
                          verifier=secrets.token_urlsafe(64), next=next_url)
        url = prepare_grant_uri(self.metadata()["authorization_endpoint"], self.client_id, "code",
                                redirect_uri=self.redirect_url, scope="openid", state=pending.state,
                                nonce=pending.nonce, code_challenge=create_s256_code_challenge(pending.verifier),
                                code_challenge_method="S256")
        return url, pending

    def finish(self, pending: Pending, params: dict[str, str], now: datetime) -> Identity:
        """The callback: the state must be this browser's, then the code is exchanged (with the
        PKCE verifier) and the ID token validated. Raises OidcRefused or OidcUnavailable."""
        state = params.get("state") or ""
        if not secrets.compare_digest(state.encode(), pending.state.encode()):
            raise OidcRefused("state")
        if "iss" in params and params["iss"] != self.issuer:  # RFC 9207: a response from another provider
            raise OidcRefused("issuer")
        if params.get("error") or not params.get("code"):
            raise OidcRefused("provider:" + (params.get("error") or "no code")[:40])
        token = self._exchange(params["code"], pending.verifier)
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise OidcRefused("no id_token")
        return self.validate_id_token(id_token, nonce=pending.nonce, now=now)

    def _exchange(self, code: str, verifier: str) -> dict[str, Any]:
        """The token request (RFC 6749 4.1.3 with the PKCE verifier); client_secret_basic with
        the id and secret form-encoded first (2.3.1), or a public client naming itself."""
        endpoint = self.metadata()["token_endpoint"]
        body = prepare_token_request("authorization_code", code=code, redirect_uri=self.redirect_url,
                                     code_verifier=verifier, client_id=None if self.client_secret else self.client_id)
        auth = httpx.BasicAuth(quote(self.client_id, safe=""), quote(self.client_secret, safe="")) \
            if self.client_secret else None
        try:
            self.policy.check_url(endpoint)
            with self._http(auth) as http:
                r = http.post(endpoint, content=body, headers={
                    "Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"})
            answer = r.json()
        except OutboundRefused:
            raise OidcUnavailable("token endpoint refused by the outbound policy") from None
        except (httpx.HTTPError, ValueError) as e:
            raise OidcUnavailable(f"token endpoint: {type(e).__name__}") from None
        if r.status_code == 400 and isinstance(answer, dict):  # the code, verifier or client was refused
            raise OidcRefused(f"exchange:{str(answer.get('error'))[:40]}")
        if r.status_code != 200 or not isinstance(answer, dict):
            raise OidcUnavailable(f"token endpoint: HTTP {r.status_code}")
        return answer

    def validate_id_token(self, id_token: str, *, nonce: str, now: datetime) -> Identity:
        """OIDC Core 3.1.3.7 for a token received from the token endpoint."""
        if len(id_token) > MAX_TOKEN_CHARS:
            raise OidcRefused("malformed")
        try:
            try:
                decoded = jwt.decode(id_token, self._keyset(), algorithms=list(ALGORITHMS))
            except InvalidKeyIdError:  # the provider may have rotated its keys since they were fetched
                decoded = jwt.decode(id_token, self._keyset(refresh=True), algorithms=list(ALGORITHMS))
            jwt.JWTClaimsRegistry(
                now=int(now.timestamp()), leeway=self.leeway,
                iss={"essential": True, "value": self.issuer}, aud={"essential": True, "value": self.client_id},
                sub={"essential": True}, exp={"essential": True}, iat={"essential": True},
                nonce={"essential": True, "value": nonce},
            ).validate(decoded.claims)
        except JoseError as e:
            raise OidcRefused(_reason_of(e)) from None
        except (ValueError, KeyError):
            raise OidcRefused("malformed") from None
        claims = decoded.claims
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if (len(audiences) > 1 or "azp" in claims) and claims.get("azp") != self.client_id:
            raise OidcRefused("audience")
        if not isinstance(claims["sub"], str) or len(claims["sub"]) > 255:
            raise OidcRefused("claim:sub")
        return Identity(issuer=self.issuer, subject=claims["sub"])

