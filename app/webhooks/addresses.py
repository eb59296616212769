"""Where webhooks may go: http(s) URLs whose every address is public, unless the deployment
allows loopback or private ones. Link-local addresses (cloud metadata) are never allowed.

Checked twice: when a job is created (literal IPs and `localhost`, without a DNS lookup) and
before every attempt (every address the name resolves to; the attempt then connects to a
checked address, so a name that resolves elsewhere a moment later cannot redirect it).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from app.errors import InvalidWebhookProblem, WebhookUrlNotAllowedProblem
from app.settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Carrier-grade NAT: not "private" to every Python version, never public either.
_SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")


class AddressRefused(Exception):
    """The webhook's host is, or resolves to, an address this deployment does not deliver to."""


@dataclass(frozen=True)
class AddressPolicy:
    allow_loopback: bool
    allow_private: bool

    @classmethod
    def from_settings(cls, settings: Settings) -> AddressPolicy:
        return cls(settings.webhook_loopback_allowed, settings.webhook_allow_private)


def refusal(address: IPAddress, policy: AddressPolicy) -> str | None:
    """Why `address` may not receive webhooks, or None when it may."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_link_local:
        return f"{address} is link-local (e.g. a cloud metadata service)"
    if address.is_unspecified or address.is_multicast:
        return f"{address} is not a host address"
    if address.is_loopback:
        return None if policy.allow_loopback else f"{address} is a loopback address"
    if address.is_private or address in _SHARED_ADDRESS_SPACE or address.is_reserved:
        return None if policy.allow_private else f"{address} is a private address"
    return None


def _is_localhost(host: str) -> bool:
    host = host.lower().rstrip(".")
    return host == "localhost" or host.endswith(".localhost")


def _literal_ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def parse(url: str) -> SplitResult:
    """The URL split, or InvalidWebhookProblem when it is not an absolute http(s) URL."""
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - raises ValueError on a port out of range
    except ValueError as exc:
        raise InvalidWebhookProblem(f"webhook: {exc}", field="webhook") from exc
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise InvalidWebhookProblem(
            "webhook: must be an absolute http:// or https:// URL", field="webhook"
        )
    return parts


def check_webhook_url(url: str, settings: Settings) -> str:
    """The URL to store, after the checks that need no DNS lookup (422 problems otherwise)."""
    parts = parse(url)
    host = parts.hostname or ""
    policy = AddressPolicy.from_settings(settings)
    address = _literal_ip(host)
    if address is None and _is_localhost(host):
        address = ipaddress.ip_address("127.0.0.1")
    reason = refusal(address, policy) if address is not None else None
    if reason is not None:
        raise WebhookUrlNotAllowedProblem(
            f"webhook: {reason}; this deployment does not deliver there", field="webhook"
        )
    return url.strip()


def resolve_allowed(host: str, port: int, policy: AddressPolicy) -> list[IPAddress]:
    """Every address `host` resolves to, all allowed; AddressRefused if any is not, OSError if
    the name does not resolve."""
    if _is_localhost(host) and not policy.allow_loopback:
        raise AddressRefused(f"{host} is a loopback name")
    literal = _literal_ip(host)
    if literal is not None:
        addresses = [literal]
    else:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))
    for address in addresses:
        if (reason := refusal(address, policy)) is not None:
            raise AddressRefused(f"{host} resolves to {address}: {reason}")
    return addresses
