"""The pure rules of notifications: which addresses are accepted, how a webhook is
signed, how long a retry waits, and what the messages say."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import pytest

from export_pipeline.defs.notifications.messages import email_message, webhook_body
from export_pipeline.status import notifications as outbox

EVENT = {
    "event": "export.completed",
    "export": {
        "id": "0b7f6a86-3f0e-4f51-9d36-5d8f9a0c1e22",
        "source_id": 3,
        "status": "completed",
        "file_name": "trade-fair_20260301T093000Z_0b7f6a86.csv",
        "lead_count": 1200,
        "file_size": 98765,
        "sha256": "cd" * 32,
        "error": None,
        "requested_at": "2026-03-01T09:30:00.250000Z",
        "completed_at": "2026-03-01T09:31:10Z",
    },
}
HISTORY = "https://exports.example.test/api/v1/exports/0b7f6a86-3f0e-4f51-9d36-5d8f9a0c1e22"


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/exports",
        "http://127.0.0.1:8080/hook?team=sales",
        "HTTPS://Hooks.Example.com:8443/a/b#frag",
        "https://[::1]:9000/",
        "https://hooks.example.com/" + "x" * (2000 - len("https://hooks.example.com/")),
    ],
)
def test_http_and_https_urls_with_a_host_are_webhook_urls(url: str) -> None:
    assert outbox.check_webhook_url(url) == url


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("ftp://hooks.example.com/", "must start with https://"),
        ("mailto:ops@example.com", "must start with https://"),
        ("//hooks.example.com/x", "must start with https://"),
        ("https:///path-only", "must name a host"),
        ("https://hooks.example.com:0/", "port must be between 1 and 65535"),
        ("https://hooks.example.com:http/", "not a valid URL"),
        ("https://[::1/", "not a valid URL"),
        ("https://me:pw@hooks.example.com/", "must not hold a user name or password"),
        ("https://hooks.example.com/a b", "must not contain spaces"),
        ("https://hooks.example.com/\r\nX-Injected: 1", "must not contain spaces"),
        ("https://h.example.com/" + "x" * 1979, "at most 2000 characters"),
    ],
)
def test_other_webhook_urls_are_refused_with_the_reason(url: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        outbox.check_webhook_url(url)


@pytest.mark.parametrize(
    ("address", "normal"),
    [
        ("ada@example.com", "ada@example.com"),
        ("Ada.Lovelace+exports@Example.COM", "Ada.Lovelace+exports@example.com"),
    ],
)
def test_email_addresses_are_normalized(address: str, normal: str) -> None:
    assert outbox.normalize_email(address) == normal


@pytest.mark.parametrize(
    "address",
    [
        "",
        "ada",
        "ada@",
        "@example.com",
        "ada@@example.com",
        "ada lovelace@example.com",
        "ada@example.com\r\nBcc: everyone@example.com",
        "jösé@example.com",
        "ada@localhost",
        "ada@example",
        "ada@" + "x" * 64 + ".com",
    ],
)
def test_unusable_email_addresses_are_refused(address: str) -> None:
    with pytest.raises(ValueError, match="not a valid email address"):
        outbox.normalize_email(address)


def test_the_signature_is_an_hmac_sha256_of_timestamp_dot_body() -> None:
    secret, body = "whsec_test-secret", b'{"event":"export.completed"}'

    signature = outbox.sign_webhook(secret, 1767225600, body)

    expected = hmac.new(secret.encode(), b"1767225600." + body, hashlib.sha256).hexdigest()
    assert signature == f"sha256={expected}"
    assert outbox.sign_webhook(secret, 1767225601, body) != signature
    assert outbox.sign_webhook(secret, 1767225600, body + b" ") != signature
    assert outbox.sign_webhook("whsec_other", 1767225600, body) != signature


def test_secrets_are_long_random_and_distinct() -> None:
    secrets = {outbox.new_webhook_secret() for _ in range(100)}

    assert len(secrets) == 100
    assert all(secret.startswith("whsec_") and len(secret) == 49 for secret in secrets)


def test_retries_wait_ten_seconds_doubling() -> None:
    delays = [outbox.retry_delay(attempt) for attempt in range(1, 8)]

    assert delays == [timedelta(seconds=10 * 2**n) for n in range(7)]
    assert sum(delays, timedelta()) == timedelta(seconds=1270)


def test_the_webhook_body_is_the_event_with_its_history_url_as_compact_json() -> None:
    body = webhook_body(EVENT, HISTORY)

    assert json.loads(body) == {**EVENT, "history_url": HISTORY}
    assert b" " not in body
    assert list(json.loads(body)) == ["event", "export", "history_url"]


def test_the_completion_mail_links_to_the_history_entry() -> None:
    now = datetime(2026, 3, 1, 9, 31, 12, tzinfo=UTC)

    message = email_message(
        EVENT, to="ann@example.com", mail_from="exports@example.test", history_url=HISTORY, now=now
    )

    text = message.get_content()
    assert message["Subject"] == "Your export trade-fair_20260301T093000Z_0b7f6a86.csv is ready"
    assert message["To"] == "ann@example.com"
    assert message["From"] == "exports@example.test"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Message-ID"].endswith("@example.test>")
    assert message["Date"] == "Sun, 01 Mar 2026 09:31:12 +0000"
    assert "requested at 2026-03-01 09:30:00 UTC is ready" in text
    assert "Leads:     1200" in text
    assert "Size:      98765 bytes" in text
    assert HISTORY in text
    assert "download link" in text


def test_the_failure_mail_gives_the_reason() -> None:
    failed = {
        "event": "export.failed",
        "export": {**EVENT["export"], "status": "failed", "error": "the lead store was busy"},
    }

    message = email_message(
        failed,
        to="ann@example.com",
        mail_from="exports@example.test",
        history_url=HISTORY,
        now=datetime(2026, 3, 1, tzinfo=UTC),
    )

    text = message.get_content()
    assert message["Subject"].endswith(" failed")
    assert "Reason:    the lead store was busy" in text
    assert "retry" in text
    assert HISTORY in text
