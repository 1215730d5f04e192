"""Where webhooks may point: unless `webhook_allow_private_addresses` is on, a URL whose
host is, or resolves to, a loopback, private, link-local or otherwise non-public address
is refused by the API, and again by the notification sensor right before it connects.

No test needs DNS beyond the local resolver: hosts are IP literals or `localhost`."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import func, select

from export_pipeline.defs.notifications.resources import pin_to_address
from export_pipeline.status import notifications as outbox
from export_pipeline.status.models import Export, Role, SourceWebhook
from export_pipeline_tests.notifications.conftest import Api, served_api
from export_pipeline_tests.notifications.notify_receivers import WebhookReceiver

REFUSED_URLS = {
    "loopback": ("http://127.0.0.1:8080/hook", "127.0.0.1 is a loopback address"),
    "private": ("https://10.0.0.1/hook", "10.0.0.1 is a private address"),
    "metadata": ("http://169.254.169.254/", "169.254.169.254 is a link-local address"),
    "ipv6-loopback": ("http://[::1]:9000/hook", "::1 is a loopback address"),
    "localhost": ("http://localhost:8080/hook", "is a loopback address"),
}
PUBLIC_IPV4_URL = "https://93.184.215.14/hooks/exports"
PUBLIC_IPV6_URL = "https://[2606:4700:4700::1111]:8443/hooks/exports"


# The rule itself.


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "a loopback address"),
        ("127.8.9.10", "a loopback address"),
        ("::1", "a loopback address"),
        ("10.0.0.1", "a private address"),
        ("172.16.5.4", "a private address"),
        ("192.168.1.1", "a private address"),
        ("169.254.169.254", "a link-local address"),
        ("fe80::1", "a link-local address"),
        ("fd00:ec2::254", "a unique-local address"),
        ("224.0.0.251", "a multicast address"),
        ("ff02::1", "a multicast address"),
        ("0.0.0.0", "an unspecified address"),  # noqa: S104 - judged, never bound
        ("::", "an unspecified address"),
        ("100.64.0.1", "an address that is not publicly routable"),
        ("::ffff:127.0.0.1", "a loopback address"),
        ("::ffff:169.254.169.254", "a link-local address"),
        ("64:ff9b::a9fe:a9fe", "a link-local address"),
        ("2002:7f00:1::", "a loopback address"),
        ("2002:a00:1::", "a private address"),
        ("192.0.0.8", "an address that is not publicly routable"),
        ("192.0.0.170", "a private address"),
    ],
)
def test_non_public_addresses_are_refused_with_their_kind(address: str, kind: str) -> None:
    assert outbox.refused_address_kind(ipaddress.ip_address(address)) == kind


@pytest.mark.parametrize(
    "address", ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111", "192.0.0.9", "2002:808:808::"]
)
def test_public_addresses_are_allowed(address: str) -> None:
    assert outbox.refused_address_kind(ipaddress.ip_address(address)) is None


def test_a_host_name_is_judged_by_every_address_it_resolves_to() -> None:
    with pytest.raises(outbox.WebhookAddressRefused, match="localhost, which resolves to"):
        outbox.check_webhook_destination("https://localhost/hook")

    assert outbox.check_webhook_destination(PUBLIC_IPV4_URL) == [
        ipaddress.ip_address("93.184.215.14")
    ]


def test_a_host_that_is_not_a_valid_name_cannot_be_resolved() -> None:
    with pytest.raises(outbox.WebhookHostUnresolvable, match="cannot be resolved"):
        outbox.check_webhook_destination("https://hooks..example.com/hook")


# The API, with private addresses not allowed.


class StrictApi(Api):
    def export_count(self) -> int:
        with self.sessions() as session:
            return session.scalar(select(func.count()).select_from(Export)) or 0


@pytest.fixture(scope="module")
def strict_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StrictApi]:
    home = Path(tmp_path_factory.mktemp("notify_addresses"))
    with served_api(home, webhook_allow_private_addresses=False) as served:
        yield StrictApi(served.settings, served.sessions, served.client, served.source_id)


@pytest.mark.parametrize(("url", "reason"), REFUSED_URLS.values(), ids=REFUSED_URLS.keys())
def test_a_source_webhook_to_a_non_public_address_is_refused(
    strict_api: StrictApi, url: str, reason: str
) -> None:
    admin = strict_api.person(f"strict-admin-{abs(hash(url))}", Role.ADMIN)
    path = f"/sources/{strict_api.source_id}/webhook"

    answer = strict_api.client.put(path, json={"url": url}, headers=admin)

    assert answer.status_code == 422
    (problem,) = answer.json()["detail"]
    assert problem["loc"] == ["body", "url"]
    assert problem["type"] == "webhook_address_refused"
    assert reason in problem["msg"]
    assert problem["msg"].startswith("a webhook URL must point to a public address")
    with strict_api.sessions() as session:
        assert session.get(SourceWebhook, strict_api.source_id) is None


@pytest.mark.parametrize(("url", "reason"), REFUSED_URLS.values(), ids=REFUSED_URLS.keys())
def test_a_request_s_webhook_to_a_non_public_address_is_refused_before_queueing(
    strict_api: StrictApi, url: str, reason: str
) -> None:
    exporter = strict_api.person(f"strict-exporter-{abs(hash(url))}", Role.EXPORTER)
    before = strict_api.export_count()

    answer = strict_api.client.post(
        f"/sources/{strict_api.source_id}/exports",
        json={"filters": {}, "notify": {"webhook_url": url}},
        headers=exporter,
    )

    assert answer.status_code == 422
    (problem,) = answer.json()["detail"]
    assert problem["loc"] == ["body", "notify", "webhook_url"]
    assert problem["type"] == "webhook_address_refused"
    assert reason in problem["msg"]
    assert strict_api.export_count() == before


def test_a_webhook_host_that_cannot_be_resolved_is_refused(strict_api: StrictApi) -> None:
    admin = strict_api.person("strict-admin-unresolvable", Role.ADMIN)

    answer = strict_api.client.put(
        f"/sources/{strict_api.source_id}/webhook",
        json={"url": "https://hooks..example.com/x"},
        headers=admin,
    )

    assert answer.status_code == 422
    (problem,) = answer.json()["detail"]
    assert problem["loc"] == ["body", "url"]
    assert problem["type"] == "webhook_host_unresolvable"
    assert "cannot be resolved" in problem["msg"]


def test_webhooks_at_public_ip_addresses_are_accepted(strict_api: StrictApi) -> None:
    admin = strict_api.person("strict-admin-public", Role.ADMIN)
    exporter = strict_api.person("strict-exporter-public", Role.EXPORTER)

    source = strict_api.client.put(
        f"/sources/{strict_api.source_id}/webhook", json={"url": PUBLIC_IPV4_URL}, headers=admin
    )
    requested = strict_api.client.post(
        f"/sources/{strict_api.source_id}/exports",
        json={"notify": {"webhook_url": PUBLIC_IPV6_URL}},
        headers=exporter,
    )

    assert source.status_code == 200
    assert source.json()["url"] == PUBLIC_IPV4_URL
    assert requested.status_code == 202
    assert requested.json()["notify"]["webhook_url"] == PUBLIC_IPV6_URL


# Delivery, with private addresses not allowed (any more).


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_stored_webhook_to_a_non_public_address_is_given_up_without_connecting(
    make_product, webhooks: WebhookReceiver, host: str
) -> None:
    # The URLs are stored directly, as when they were set while private addresses were
    # allowed, or while their host name still resolved to a public address.
    product = make_product(webhook_allow_private_addresses=False)
    product.set_email(None)
    port = urlsplit(webhooks.base_url).port
    source_url = f"http://{host}:{port}/source"
    webhooks.secrets["/source"] = product.set_source_webhook(source_url)
    export_id, request_secret = product.request(webhook_url=f"http://{host}:{port}/request")
    webhooks.secrets["/request"] = request_secret or ""

    product.run(export_id)
    summary = product.deliver()
    product.make_due(export_id)
    product.deliver()

    assert webhooks.received == []
    assert "2 given up" in (summary.skip_message or "")
    notifications = product.notifications(export_id)
    assert len(notifications) == 2
    for notification in notifications:
        assert notification.attempts == 1
        assert notification.given_up_at is not None
        assert notification.delivered_at is None
        assert notification.last_error is not None
        assert notification.last_error.startswith("a webhook URL must point to a public address")
        assert "is a loopback address" in notification.last_error


def test_a_pinned_request_goes_to_the_checked_address_under_the_original_name(
    webhooks: WebhookReceiver,
) -> None:
    port = urlsplit(webhooks.base_url).port
    url = f"http://hooks.example.test:{port}/pinned?team=sales"

    target, host_header, extensions = pin_to_address(url, ipaddress.ip_address("127.0.0.1"))
    with httpx.Client() as client:
        answer = client.post(
            target, content=b"{}", headers={"Host": host_header}, extensions=extensions
        )

    assert target == f"http://127.0.0.1:{port}/pinned?team=sales"
    assert answer.status_code == 401  # unsigned, but received
    (hook,) = webhooks.received
    assert hook.path == "/pinned?team=sales"
    assert hook.headers["host"] == f"hooks.example.test:{port}"


def test_a_pinned_https_request_keeps_the_name_for_tls() -> None:
    pinned = pin_to_address(
        "https://Hooks.Example.com/exports", ipaddress.ip_address("2606:4700:4700::1111")
    )

    assert pinned == (
        "https://[2606:4700:4700::1111]/exports",
        "hooks.example.com",
        {"sni_hostname": "hooks.example.com"},
    )
