"""Which addresses webhooks may reach: public ones, loopback and private ones only when allowed,
link-local never."""

from __future__ import annotations

import ipaddress

import pytest

from app.errors import InvalidWebhookProblem, WebhookUrlNotAllowedProblem
from app.settings import Settings
from app.webhooks.addresses import (
    AddressPolicy,
    AddressRefused,
    check_webhook_url,
    refusal,
    resolve_allowed,
)

STRICT = AddressPolicy(allow_loopback=False, allow_private=False)
OPEN = AddressPolicy(allow_loopback=True, allow_private=True)


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "::1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "fd00::1", "100.64.0.1",
     "169.254.169.254", "fe80::1", "0.0.0.0", "::ffff:127.0.0.1", "224.0.0.1"],
)  # fmt: skip
def test_strict_policy_refuses_non_public_addresses(address: str) -> None:
    assert refusal(ipaddress.ip_address(address), STRICT) is not None


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:2800:220:1::1", "8.8.8.8"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert refusal(ipaddress.ip_address(address), STRICT) is None


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "10.1.2.3", "192.168.1.1"])
def test_allowances_open_loopback_and_private(address: str) -> None:
    assert refusal(ipaddress.ip_address(address), OPEN) is None


@pytest.mark.parametrize("address", ["169.254.169.254", "fe80::1", "::ffff:169.254.169.254"])
def test_link_local_is_refused_whatever_the_allowances(address: str) -> None:
    assert "link-local" in (refusal(ipaddress.ip_address(address), OPEN) or "")


def test_loopback_allowance_alone_keeps_private_refused() -> None:
    policy = AddressPolicy(allow_loopback=True, allow_private=False)

    assert refusal(ipaddress.ip_address("127.0.0.1"), policy) is None
    assert refusal(ipaddress.ip_address("10.0.0.1"), policy) is not None


def test_resolution_checks_every_address_of_a_name() -> None:
    with pytest.raises(AddressRefused, match="loopback"):
        resolve_allowed("localhost", 80, STRICT)
    with pytest.raises(AddressRefused, match="loopback"):
        resolve_allowed("127.0.0.1", 80, STRICT)
    assert [str(a) for a in resolve_allowed("127.0.0.1", 80, OPEN)] == ["127.0.0.1"]


def test_creation_checks_literal_addresses_and_localhost() -> None:
    production = Settings(database_url="postgresql+psycopg://x@h/db")
    embedded = Settings(database_url="sqlite:///x.db")

    for url in ("http://127.0.0.1:9/h", "http://localhost/h", "http://[::1]/h", "http://10.0.0.2/"):
        with pytest.raises(WebhookUrlNotAllowedProblem):
            check_webhook_url(url, production)
    with pytest.raises(WebhookUrlNotAllowedProblem):
        check_webhook_url("http://169.254.169.254/latest/meta-data", embedded)
    # Loopback is on for the embedded default; a name is only resolved at delivery.
    assert check_webhook_url("http://127.0.0.1:8080/h", embedded) == "http://127.0.0.1:8080/h"
    assert check_webhook_url("https://hooks.example.com/x", production)


@pytest.mark.parametrize(
    "url", ["ftp://example.com/x", "example.com/hook", "http://", "javascript:alert(1)",
            "http://example.com:99999/"],
)  # fmt: skip
def test_only_absolute_http_urls_are_webhooks(url: str) -> None:
    with pytest.raises(InvalidWebhookProblem):
        check_webhook_url(url, Settings())
