"""Notifications end to end with Dagster: a real export run settles the export, which
queues its notifications; the notification sensor delivers them to a real webhook
receiver (checking signatures) and a real SMTP server, and retries failures."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from export_pipeline.leads.store import LeadStore
from export_pipeline.status import notifications as outbox
from export_pipeline.status.exports import mark_cancelled, mark_processing
from export_pipeline.status.links import issue_link
from export_pipeline.status.models import Export, Notification
from export_pipeline_tests.notifications.conftest import (
    LEAD_VALUES,
    PUBLIC_URL,
    REQUESTER_EMAIL,
    NotifyProduct,
)
from export_pipeline_tests.notifications.notify_receivers import (
    MailServer,
    WebhookReceiver,
    free_port,
)


def history_url(export_id: str) -> str:
    return f"{PUBLIC_URL}/api/v1/exports/{export_id}"


def test_a_completed_export_is_announced_by_signed_webhooks_and_a_mail(
    product: NotifyProduct, webhooks: WebhookReceiver, mail_server: MailServer
) -> None:
    webhooks.secrets["/source"] = product.set_source_webhook(webhooks.url("/source"))
    export_id, request_secret = product.request(webhook_url=webhooks.url("/request"))
    assert request_secret is not None
    webhooks.secrets["/request"] = request_secret

    result = product.run(export_id)
    export = product.export(export_id)
    queued = product.notifications(export_id)
    sent_before_the_sensor = (len(webhooks.received), len(mail_server.mails))
    summary = product.deliver()

    assert result.success
    assert export.status == "completed"
    assert Path(export.file_uri.removeprefix("file://")).is_file()
    assert sent_before_the_sensor == (0, 0)
    assert [(n.channel, n.target, n.webhook_scope) for n in queued] == [
        ("webhook", webhooks.url("/source"), "source"),
        ("webhook", webhooks.url("/request"), "request"),
        ("email", REQUESTER_EMAIL, None),
    ]
    assert all(n.created_at == export.completed_at for n in queued)
    assert "3 delivered" in (summary.skip_message or "")

    expected = {
        "event": "export.completed",
        "export": {
            "id": export_id,
            "source_id": product.source_id,
            "status": "completed",
            "file_name": export.file_name,
            "lead_count": 2,
            "file_size": export.file_size,
            "sha256": export.sha256,
            "error": None,
            "requested_at": export.requested_at.isoformat().replace("+00:00", "Z"),
            "completed_at": export.completed_at.isoformat().replace("+00:00", "Z"),
        },
        "history_url": history_url(export_id),
    }
    for path in ("/source", "/request"):
        (hook,) = webhooks.at(path)
        assert hook.verified, path
        assert json.loads(hook.body) == expected
        assert hook.headers["content-type"] == "application/json"
        assert hook.headers["x-export-signature"].startswith("sha256=")
        assert hook.headers["user-agent"].startswith("export-pipeline/")

    (mail,) = mail_server.mails
    assert mail.recipients == [REQUESTER_EMAIL]
    assert mail.message["To"] == REQUESTER_EMAIL
    assert mail.message["From"] == "exports@example.test"
    assert mail.message["Subject"] == f"Your export {export.file_name} is ready"
    assert history_url(export_id) in mail.text
    assert "Leads:     2" in mail.text
    assert export.sha256 in mail.text

    delivered = product.notifications(export_id)
    assert all(n.delivered_at is not None and n.attempts == 1 for n in delivered)
    assert all(n.next_attempt_at is None and n.given_up_at is None for n in delivered)
    product.deliver()
    assert (len(webhooks.received), len(mail_server.mails)) == (2, 1)


def test_a_receiver_failing_twice_is_retried_with_backoff_until_it_answers(
    product: NotifyProduct, webhooks: WebhookReceiver
) -> None:
    product.set_email(None)
    webhooks.secrets["/flaky"] = product.set_source_webhook(webhooks.url("/flaky"))
    webhooks.answer("/flaky", 500, 503)
    export_id, _ = product.request()
    product.run(export_id)

    waits = []
    for _ in range(3):
        before = datetime.now(UTC)
        product.deliver()
        (notification,) = product.notifications(export_id)
        if notification.next_attempt_at is not None:
            waits.append(notification.next_attempt_at - before)
            product.deliver()  # not due yet: nothing is sent
            product.make_due(export_id)

    (notification,) = product.notifications(export_id)
    hooks = webhooks.at("/flaky")
    assert len(hooks) == 3
    assert all(hook.verified for hook in hooks)
    assert len({hook.body for hook in hooks}) == 1
    assert len({hook.headers["x-export-delivery"] for hook in hooks}) == 1
    assert len(waits) == 2
    assert timedelta(seconds=10) <= waits[0] < timedelta(seconds=15)
    assert timedelta(seconds=20) <= waits[1] < timedelta(seconds=25)
    assert notification.attempts == 3
    assert notification.delivered_at is not None
    assert notification.given_up_at is None
    assert notification.last_error == "the webhook receiver answered HTTP 503 instead of 2xx"


def test_a_receiver_that_always_fails_is_given_up_after_eight_attempts(
    product: NotifyProduct, webhooks: WebhookReceiver, mail_server: MailServer
) -> None:
    webhooks.secrets["/down"] = product.set_source_webhook(webhooks.url("/down"))
    webhooks.answer("/down", *[500] * 20)
    export_id, _ = product.request()
    product.run(export_id)

    waits = []
    for _ in range(10):
        before = datetime.now(UTC)
        product.deliver()
        webhook = product.notifications(export_id)[0]
        if webhook.next_attempt_at is not None:
            waits.append((webhook.next_attempt_at - before).total_seconds())
        product.make_due(export_id)

    webhook, email = product.notifications(export_id)
    assert len(webhooks.at("/down")) == 8
    assert webhook.attempts == 8
    assert webhook.delivered_at is None
    assert webhook.given_up_at is not None
    assert webhook.next_attempt_at is None
    assert webhook.last_error == "the webhook receiver answered HTTP 500 instead of 2xx"
    assert [round(wait / 10) * 10 for wait in waits] == [10, 20, 40, 80, 160, 320, 640]
    assert email.delivered_at is not None
    assert len(mail_server.mails) == 1


def test_unreachable_and_misbehaving_receivers_never_break_the_sensor(
    product: NotifyProduct, webhooks: WebhookReceiver, mail_server: MailServer
) -> None:
    dead_url = f"http://127.0.0.1:{free_port()}/nobody-listens"
    product.set_source_webhook(dead_url)
    first, drop_secret = product.request(webhook_url=webhooks.url("/drop"))
    second, redirect_secret = product.request(webhook_url=webhooks.url("/redirect"))
    webhooks.secrets |= {"/drop": drop_secret, "/redirect": redirect_secret}
    webhooks.answer("/drop", 0)
    webhooks.answer("/redirect", 302)
    product.run(first)
    product.run(second)

    summary = product.deliver()

    errors = {
        n.target: n.last_error
        for export_id in (first, second)
        for n in product.notifications(export_id)
        if n.channel == "webhook"
    }
    assert errors[webhooks.url("/drop")].startswith(
        "the webhook receiver could not be reached: RemoteProtocolError"
    )
    assert errors[webhooks.url("/redirect")] == (
        "the webhook receiver answered HTTP 302 instead of 2xx"
    )
    assert errors[dead_url].startswith("the webhook receiver could not be reached: ConnectError")
    assert len(webhooks.at("/elsewhere")) == 0
    assert len(mail_server.mails) == 2
    assert "4 failed, to retry" in (summary.skip_message or "")


def test_a_failed_export_sends_a_failure_notice_with_the_readable_reason(
    product: NotifyProduct, webhooks: WebhookReceiver, mail_server: MailServer
) -> None:
    webhooks.secrets["/source"] = product.set_source_webhook(webhooks.url("/source"))
    export_id, _ = product.request()
    with LeadStore(product.settings.lead_store_path).writing() as connection:
        connection.execute("DELETE FROM sources")

    result = product.run(export_id)
    product.deliver()

    reason = f"source {product.source_id} no longer exists"
    export = product.export(export_id)
    assert not result.success
    assert (export.status, export.error, export.file_uri) == ("failed", reason, None)
    (hook,) = webhooks.at("/source")
    body = json.loads(hook.body)
    assert hook.verified
    assert body["event"] == "export.failed"
    assert body["export"]["status"] == "failed"
    assert body["export"]["error"] == reason
    assert body["export"]["lead_count"] is None
    assert body["history_url"] == history_url(export_id)
    (mail,) = mail_server.mails
    assert mail.message["Subject"] == f"Your export {export.file_name} failed"
    assert f"Reason:    {reason}" in mail.text
    assert history_url(export_id) in mail.text
    assert "is ready" not in mail.text


def test_nothing_is_sent_while_the_file_is_not_in_place(
    product: NotifyProduct, webhooks: WebhookReceiver, mail_server: MailServer
) -> None:
    webhooks.secrets["/source"] = product.set_source_webhook(webhooks.url("/source"))
    pending, _ = product.request(webhook_url=webhooks.url("/request"))
    processing, _ = product.request()
    cancelled, _ = product.request()
    with product.sessions.begin() as session:
        mark_processing(session, session.get_one(Export, processing), at=datetime.now(UTC))
        mark_cancelled(session, session.get_one(Export, cancelled), at=datetime.now(UTC))

    product.sync_statuses()
    product.deliver()

    assert product.export(pending).status == "pending"
    assert product.export(processing).status == "processing"
    for export_id in (pending, processing, cancelled):
        assert product.notifications(export_id) == []
    assert webhooks.received == []
    assert mail_server.mails == []


def test_notifications_carry_no_lead_values_tokens_or_keys(
    product: NotifyProduct, webhooks: WebhookReceiver, mail_server: MailServer
) -> None:
    source_secret = product.set_source_webhook(webhooks.url("/source"))
    webhooks.secrets["/source"] = source_secret
    export_id, request_secret = product.request(webhook_url=webhooks.url("/request"))
    assert request_secret is not None
    webhooks.secrets["/request"] = request_secret
    webhooks.answer("/source", 500)
    product.run(export_id)
    with product.sessions.begin() as session:
        token, _ = issue_link(
            session,
            session.get_one(Export, export_id),
            product.user_id,
            ttl=timedelta(hours=1),
            now=datetime.now(UTC),
        )

    product.deliver()
    product.make_due(export_id)
    product.deliver()

    sent = [hook.body.decode() + json.dumps(hook.headers) for hook in webhooks.received]
    sent += [mail.raw.decode() for mail in mail_server.mails]
    stored = [json.dumps(n.payload) for n in product.notifications(export_id)]
    assert len(sent) == 4
    assert all(hook.verified for hook in webhooks.received)
    forbidden = (*LEAD_VALUES, token, product.api_key, source_secret, request_secret)
    for text in sent + stored:
        for value in forbidden:
            assert value not in text
        assert "/downloads/" not in text
        assert "sapphire" not in text.lower()


def test_mail_is_given_up_at_once_without_a_mail_server(
    make_product, webhooks: WebhookReceiver
) -> None:
    product = make_product()
    webhooks.secrets["/source"] = product.set_source_webhook(webhooks.url("/source"))
    export_id, _ = product.request()
    product.run(export_id)

    product.deliver()

    webhook, email = product.notifications(export_id)
    assert webhook.delivered_at is not None
    assert email.delivered_at is None
    assert email.given_up_at is not None
    assert email.attempts == 1
    assert email.last_error == "no mail server is configured (EXPORT_PIPELINE_SMTP_HOST is unset)"


def test_a_retry_after_the_secret_was_rotated_is_signed_with_the_new_secret(
    product: NotifyProduct, webhooks: WebhookReceiver
) -> None:
    product.set_email(None)
    url = webhooks.url("/source")
    webhooks.secrets["/source"] = old_secret = product.set_source_webhook(url)
    webhooks.answer("/source", 500)
    export_id, _ = product.request()
    product.run(export_id)
    product.deliver()

    webhooks.secrets["/source"] = new_secret = product.set_source_webhook(url)
    product.make_due(export_id)
    product.deliver()

    (notification,) = product.notifications(export_id)
    assert new_secret != old_secret
    assert [hook.verified for hook in webhooks.at("/source")] == [True, True]
    assert notification.delivered_at is not None
    assert notification.attempts == 2


def test_a_removed_or_moved_webhook_gets_no_retry(
    product: NotifyProduct, webhooks: WebhookReceiver
) -> None:
    product.set_email(None)
    webhooks.secrets["/source"] = product.set_source_webhook(webhooks.url("/source"))
    webhooks.answer("/source", 500, 500)
    removed, _ = product.request()
    moved, _ = product.request()
    product.run(removed)
    product.run(moved)
    product.deliver()

    with product.sessions.begin() as session:
        assert outbox.remove_source_webhook(session, product.source_id)
    product.make_due(removed)
    product.deliver()
    product.set_source_webhook(webhooks.url("/new-home"))
    product.make_due(moved)
    product.deliver()

    assert len(webhooks.at("/source")) == 2
    assert webhooks.at("/new-home") == []
    for export_id in (removed, moved):
        (notification,) = product.notifications(export_id)
        assert notification.attempts == 2
        assert notification.given_up_at is not None
        assert notification.last_error == (
            "the webhook was removed or changed to another URL before delivery"
        )


def test_a_notification_that_cannot_be_built_is_given_up_and_the_others_still_go(
    product: NotifyProduct, mail_server: MailServer
) -> None:
    export_id, _ = product.request()
    product.run(export_id)
    with product.sessions.begin() as session:
        session.add(
            Notification(
                export_id=export_id,
                channel="email",
                target=REQUESTER_EMAIL,
                payload={"event": "export.completed"},
                created_at=datetime.now(UTC),
                next_attempt_at=datetime.now(UTC),
            )
        )

    product.deliver()

    good, broken = product.notifications(export_id)
    assert good.delivered_at is not None
    assert broken.given_up_at is not None
    assert broken.last_error == "the message could not be built: KeyError: 'export'"
    assert len(mail_server.mails) == 1
