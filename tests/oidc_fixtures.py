"""A certified OpenID provider (the npm package oidc-provider, tests/oidc_provider/) on loopback
for the single sign-on tests, and a scripted person who signs in at it.

The provider needs Node.js and the package's node_modules: `make setup` installs them
(`npm ci`, when npm exists), else the fixture does on first use (the registry is reachable at
setup time only). Tests skip when node is missing, and fail instead when
LIANXI_REQUIRE_SERVICES=1 (CI). Its clients: "lianxi" (the platform), "lianxi-short" (ID tokens
that live SHORT_TTL_S seconds) and "other-app" (another relying party, so another audience);
each has the secret "<client_id>-test-secret" and must use PKCE (S256).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import os
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit

import httpx
import pytest

from tests.conftest import REQUIRE_SERVICES
from tests.kafka_fixtures import free_port

PROVIDER_DIR = Path(__file__).resolve().parent / "oidc_provider"
SHORT_TTL_S = 2
# Subjects the provider knows (no real people): one the tests map to an account, one they do not.
MAPPED = "demo-fire-liaison"
UNMAPPED = "demo-not-opened"


def _unavailable(why: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"the OpenID provider is required (LIANXI_REQUIRE_SERVICES=1): {why}")
    pytest.skip(why)


def ensure_node_modules() -> None:
    """npm ci once (under a lock: xdist workers start together) when `make setup` did not."""
    if (PROVIDER_DIR / "node_modules" / "oidc-provider" / "package.json").exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        _unavailable("npm is missing, so oidc-provider cannot be installed (run `make setup`)")
    with open(PROVIDER_DIR / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (PROVIDER_DIR / "node_modules" / "oidc-provider" / "package.json").exists():
            done = subprocess.run([str(npm), "ci", "--no-audit", "--no-fund"], cwd=PROVIDER_DIR,
                                  capture_output=True, text=True, timeout=300)
            if done.returncode != 0:
                _unavailable(f"npm ci failed in {PROVIDER_DIR}: {done.stderr[-500:]}")


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


@dataclass
class OidcProvider:
    issuer: str
    port: int
    app_port: int  # a free port for a platform served over real HTTP (the browser test)

    @property
    def redirect_url(self) -> str:
        """The platform's callback as registered with every client (TestClient never dials it)."""
        return f"http://127.0.0.1:{self.app_port}/sso/callback"

    def sign_in(self, authorization_url: str, subject: str) -> dict[str, str]:
        """A person at the provider: follows the authorisation URL, signs in as ``subject`` and
        consents on the devInteractions forms; returns the query the provider sends back to the
        redirect URL (code, state, iss) or its error."""
        with httpx.Client(follow_redirects=False, timeout=10) as browser:
            url = authorization_url
            for _ in range(12):
                if url.startswith(self.redirect_url):
                    return dict(parse_qsl(urlsplit(url).query))
                r = browser.get(url)
                if r.status_code in (302, 303):
                    url = urljoin(url, r.headers["location"])
                    continue
                assert r.status_code == 200, f"{url}: {r.status_code} {r.text[:300]}"
                form = re.search(r'<form[^>]*action="([^"]+)"', r.text)
                prompt = re.search(r'name="prompt" value="(\w+)"', r.text)
                assert form and prompt, f"no interaction form at {url}: {r.text[:300]}"
                data = {"prompt": prompt.group(1)}
                if prompt.group(1) == "login":
                    data |= {"login": subject, "password": "demo"}
                r = browser.post(urljoin(url, form.group(1)), data=data)
                assert r.status_code in (302, 303), f"{form.group(1)}: {r.status_code} {r.text[:300]}"
                url = urljoin(url, r.headers["location"])
            raise AssertionError("the provider never sent the browser back")

    def id_token(self, client_id: str, subject: str, nonce: str) -> str:
        """A real ID token from the provider, as relying party ``client_id`` receives it."""
        verifier, challenge = _pkce()
        state = secrets.token_urlsafe(16)
        query = urlencode({"client_id": client_id, "response_type": "code", "scope": "openid",
                           "redirect_uri": self.redirect_url, "state": state, "nonce": nonce,
                           "code_challenge": challenge, "code_challenge_method": "S256"})
        back = self.sign_in(f"{self.issuer}/auth?{query}", subject)
        assert back.get("state") == state and "code" in back, back
        r = httpx.post(f"{self.issuer}/token", auth=(client_id, f"{client_id}-test-secret"), timeout=10, data={
            "grant_type": "authorization_code", "code": back["code"], "redirect_uri": self.redirect_url,
            "code_verifier": verifier})
        assert r.status_code == 200, r.text
        return str(r.json()["id_token"])

    def settings(self, client_id: str = "lianxi", **more: object) -> dict[str, object]:
        """Platform settings for this provider as relying party ``client_id``."""
        return {"oidc_issuer": self.issuer, "oidc_client_id": client_id,
                "oidc_client_secret": f"{client_id}-test-secret", "oidc_redirect_url": self.redirect_url,
                "outbound_allow_hosts": f"127.0.0.1:{self.port}", **more}


@pytest.fixture(scope="session")
def oidc_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    node = shutil.which("node")
    if node is None:
        _unavailable("node is missing: the OpenID provider (oidc-provider) runs on Node.js")
    ensure_node_modules()
    port, app_port = free_port(), free_port()
    log = tmp_path_factory.mktemp("oidc") / "provider.log"
    env = {**os.environ, "OIDC_PORT": str(port), "OIDC_REDIRECT_URIS": f"http://127.0.0.1:{app_port}/sso/callback",
           "OIDC_SHORT_TTL": str(SHORT_TTL_S)}
    with open(log, "w") as out:
        proc = subprocess.Popen([str(node), "provider.mjs"], cwd=PROVIDER_DIR, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    provider = OidcProvider(issuer=f"http://127.0.0.1:{port}", port=port, app_port=app_port)
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{provider.issuer}/.well-known/openid-configuration", timeout=2).status_code == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                _unavailable(f"the OpenID provider did not start: {log.read_text()[-800:]}")
            time.sleep(0.1)
        yield provider
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
