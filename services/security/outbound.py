"""The one policy for requests the server makes to addresses a user supplied (webhooks, the
DingTalk and WeCom group robots, SMS gateways' adapters). Server-side request forgery is refused here, not per feature.

- https only, unless the operator allows plain http (``LIANXI_WEBHOOK_ALLOW_HTTP``) or names the
  host in ``LIANXI_OUTBOUND_ALLOW_HOSTS``;
- no credentials in the URL;
- the host is resolved once; every address it resolves to must be globally routable (no
  loopback, private, link-local, multicast, unspecified, reserved or shared addresses, of
  either family, IPv4-mapped IPv6 included) unless the operator allow-listed the host;
- the connection goes to the address that was checked (no second lookup an attacker's DNS
  could answer differently), TLS still verifies the certificate for the host name;
- redirects are not followed; time and response size are bounded;
- a failure reaches the user as a category (``超时``, ``拒绝连接``, ``证书无效``, ``非2xx``,
  ``地址不允许``, ``无法解析``, ``连接失败``), never as socket text that would map the network.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from events.errors import InvariantViolated
from services.settings import Settings

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]

TIMEOUT = "超时"
REFUSED = "拒绝连接"
BAD_CERTIFICATE = "证书无效"
NOT_2XX = "非2xx"
FORBIDDEN_ADDRESS = "地址不允许"
UNRESOLVED = "无法解析"
CONNECT_FAILED = "连接失败"
MAX_RESPONSE_BYTES = 64 * 1024


class OutboundRefused(InvariantViolated):
    """The target is not one the server may call."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str  # path and query, as sent

    @property
    def default_port(self) -> int:
        return 443 if self.scheme == "https" else 80


@dataclass(frozen=True)
class OutboundResult:
    ok: bool
    status_code: int | None = None
    error: str | None = None  # a category (above), with the status for 非2xx
    body: bytes = b""  # the response body, at most max_response_bytes (a robot's errcode is in it)


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def is_public(address: Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return is_public(address.ipv4_mapped)
    if isinstance(address, ipaddress.IPv6Address) and address.sixtofour is not None:
        return is_public(address.sixtofour)
    return bool(address.is_global) and not (address.is_multicast or address.is_reserved or address.is_loopback
                                            or address.is_link_local or address.is_private
                                            or address.is_unspecified)


def _literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:  # legacy IPv4 spellings a resolver accepts: 2130706433, 0x7f.1, 017700000001
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


class OutboundPolicy:
    def __init__(self, *, allow_http: bool = False, allowed_hosts: Iterable[str] = (),
                 resolver: Resolver = system_resolver, max_response_bytes: int = MAX_RESPONSE_BYTES) -> None:
        self.allow_http = allow_http
        self.allowed_hosts = frozenset(h.strip().lower().strip("[]") for h in allowed_hosts if h.strip())
        self.resolver = resolver
        self.max_response_bytes = max_response_bytes

    def allowed(self, host: str, port: int) -> bool:
        return host in self.allowed_hosts or f"{host}:{port}" in self.allowed_hosts

    def check_url(self, url: str) -> Target:
        """What can be known without the network: refuses a bad scheme, credentials, and a host
        that names an internal address. Raises OutboundRefused (a 422 on the API)."""
        text = url.strip()
        if any(ord(c) < 0x21 or ord(c) == 0x7F for c in text):
            raise OutboundRefused("a URL must not contain spaces or control characters")
        try:
            parts = urlsplit(text)
            port = parts.port
        except ValueError as e:
            raise OutboundRefused(f"not a valid URL: {e}") from None
        host = (parts.hostname or "").lower().rstrip(".")
        if parts.scheme not in ("http", "https") or not host:
            raise OutboundRefused("a webhook URL is https://host/path")
        if parts.username is not None or parts.password is not None:
            raise OutboundRefused("a webhook URL must not carry credentials; the signature authenticates us")
        target = Target(parts.scheme, host, port or (443 if parts.scheme == "https" else 80),
                        (parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
        allowed = self.allowed(host, target.port)
        if parts.scheme == "http" and not (self.allow_http or allowed):
            raise OutboundRefused("a webhook URL must use https")
        if not allowed:
            literal = _literal(host)
            if literal is not None and not is_public(literal):
                raise OutboundRefused(f"{host} is not a public address; the server does not call internal hosts")
            if literal is None and (host == "localhost" or host.endswith((".localhost", ".local", ".internal"))
                                    or "." not in host):
                raise OutboundRefused(f"{host} is an internal host name; the server does not call internal hosts")
        return target

    def resolve(self, target: Target) -> str:
        """The one address to connect to, checked. Raises OutboundRefused."""
        literal = _literal(target.host)
        if literal is not None:
            candidates = [str(literal)]
        else:
            try:
                candidates = self.resolver(target.host, target.port)
            except (OSError, UnicodeError):
                raise OutboundRefused(UNRESOLVED) from None
        if not candidates:
            raise OutboundRefused(UNRESOLVED)
        # every address must be public: a name that also resolves inside is refused whole
        addresses = [ipaddress.ip_address(a.split("%")[0]) for a in candidates]
        if not self.allowed(target.host, target.port) and not all(is_public(a) for a in addresses):
            raise OutboundRefused(FORBIDDEN_ADDRESS)
        return candidates[0]

    def post(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> OutboundResult:
        """POSTs ``body``; never follows a redirect (a 3xx is 非2xx)."""
        try:
            target = self.check_url(url)
            address = self.resolve(target)
        except OutboundRefused as e:
            return OutboundResult(False, None, UNRESOLVED if str(e) == UNRESOLVED else FORBIDDEN_ADDRESS)
        conn = _pinned_connection(target, address, timeout)
        try:
            host_header = target.host if target.port == target.default_port else f"{target.host}:{target.port}"
            if ":" in target.host:
                host_header = f"[{target.host}]" if target.port == target.default_port \
                    else f"[{target.host}]:{target.port}"
            conn.request("POST", target.path, body=body, headers={**headers, "Host": host_header})
            resp = conn.getresponse()
            reply = resp.read(self.max_response_bytes)  # bounded: the rest is never read
            code = int(resp.status)
        except TimeoutError:
            return OutboundResult(False, None, TIMEOUT)
        except ConnectionRefusedError:
            return OutboundResult(False, None, REFUSED)
        except ssl.SSLError:
            return OutboundResult(False, None, BAD_CERTIFICATE)
        except (OSError, http.client.HTTPException):
            return OutboundResult(False, None, CONNECT_FAILED)
        finally:
            conn.close()
        if 200 <= code < 300:
            return OutboundResult(True, code, body=reply)
        return OutboundResult(False, code, f"{NOT_2XX}(HTTP {code})")


def _pinned_connection(target: Target, address: str, timeout: float) -> http.client.HTTPConnection:
    """A connection to ``address`` that speaks to ``target.host`` (Host header, SNI and the
    certificate check all use the name)."""
    if target.scheme == "https":
        context = ssl.create_default_context()

        class PinnedHTTPS(http.client.HTTPSConnection):
            def connect(self) -> None:
                sock = socket.create_connection((address, target.port), timeout)
                self.sock = context.wrap_socket(sock, server_hostname=target.host)

        return PinnedHTTPS(target.host, target.port, timeout=timeout, context=context)

    class PinnedHTTP(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socket.create_connection((address, target.port), timeout)

    return PinnedHTTP(target.host, target.port, timeout=timeout)


def policy_from(settings: Settings) -> OutboundPolicy:
    return OutboundPolicy(allow_http=settings.webhook_allow_http,
                          allowed_hosts=settings.outbound_allow_hosts.split(","))
