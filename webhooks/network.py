"""Where a webhook may send: no server-side request forgery.

A URL is checked when a webhook is saved and again before every attempt, after DNS resolution:
http or https only (https only in production), no credentials in it, and every address the host
resolves to must be public — loopback, private, link-local (cloud metadata included), multicast,
reserved and unspecified addresses are refused — unless the operator allows the host name or a
network holding the address (``STOWAGE_WEBHOOK_ALLOWED_HOSTS``). The attempt then connects to
the address that was checked (``pinned_request``), with the URL's host in the Host header and as
the TLS server name, so a second DNS answer cannot send it elsewhere.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from django.conf import settings

from core.errors import InvalidInput

MAX_URL_LENGTH = 2048
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UrlRefused(InvalidInput):
    code = "WEBHOOK_URL_REFUSED"


@dataclass(frozen=True)
class Target:
    """A checked URL and the address to connect to."""

    url: str
    scheme: str
    host: str
    port: int
    address: str
    path: str

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"

    @property
    def pinned_url(self) -> str:
        address = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.scheme}://{address}:{self.port}{self.path}"


def resolve(host: str, port: int) -> list[str]:
    """Every address of the host; tests replace this to play DNS."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(info[4][0] for info in infos))


def _allowed_entries() -> tuple[set[str], list[ipaddress.IPv4Network | ipaddress.IPv6Network]]:
    names: set[str] = set()
    networks = []
    for entry in settings.STOWAGE_WEBHOOK_ALLOWED_HOSTS:
        entry = entry.strip().lower()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            names.add(entry.rstrip("."))
    return names, networks


def _forbidden_reason(address: IPAddress) -> str | None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return _forbidden_reason(address.ipv4_mapped)
    checks = (
        ("loopback", address.is_loopback),
        ("link-local (cloud metadata)", address.is_link_local),
        ("private", address.is_private),
        ("multicast", address.is_multicast),
        ("unspecified", address.is_unspecified),
        ("reserved", address.is_reserved or not address.is_global),
    )
    for name, hit in checks:
        if hit:
            return name
    return None


def parse_url(url: str) -> SplitResult:
    """The URL's parts if its form can be sent to; no DNS yet."""
    if not isinstance(url, str) or not url.strip():
        raise UrlRefused("url is required: an http or https URL", details={"field": "url"})
    if len(url) > MAX_URL_LENGTH or any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in url):
        raise UrlRefused(
            f"url must be at most {MAX_URL_LENGTH} characters with no spaces or control characters",
            details={"field": "url"},
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UrlRefused("url is not a valid URL", details={"field": "url"}) from None
    if parts.scheme not in ("http", "https"):
        raise UrlRefused("url must use http or https", details={"field": "url", "scheme": parts.scheme[:20]})
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise UrlRefused("url must not hold a user name or password", details={"field": "url"})
    if not parts.hostname:
        raise UrlRefused("url has no host", details={"field": "url"})
    if port == 0:
        raise UrlRefused("url has no usable port", details={"field": "url"})
    if parts.fragment:
        raise UrlRefused("url must not have a #fragment", details={"field": "url"})
    return parts


def check_url(url: str) -> Target:
    """The URL checked as it is sent: form, scheme, then every address its host resolves to."""
    parts = parse_url(url)
    host = parts.hostname.rstrip(".").lower()
    names, networks = _allowed_entries()
    host_allowed = host in names
    if settings.PRODUCTION and parts.scheme != "https" and not host_allowed:
        raise UrlRefused("url must use https", details={"field": "url"})
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in resolve(host, port)]
        except (OSError, UnicodeError, ValueError):
            raise UrlRefused(f"the host {host[:200]} does not resolve", details={"field": "url"}) from None
    if not addresses:
        raise UrlRefused(f"the host {host[:200]} does not resolve", details={"field": "url"})
    for address in addresses:
        if host_allowed or any(address in network for network in networks):
            continue
        reason = _forbidden_reason(address)
        if reason:
            raise UrlRefused(
                f"url resolves to a {reason} address ({address}), which webhooks may not reach",
                details={"field": "url", "address": str(address)},
            )
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(url=url, scheme=parts.scheme, host=host, port=port, address=str(addresses[0]), path=path)
