"""The sensor that delivers queued notifications, and retries the ones that failed.

On each tick it takes the due notifications, the longest waiting first, and for each
one: claims an attempt (committed before anything is sent, with the next attempt moved
past the backoff), sends it, and records the outcome. A receiver that refuses, hangs or
breaks fails only its own notification: the sensor never raises because of one.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import dagster as dg
from sqlalchemy.orm import Session

from export_pipeline.defs.exports.resources import StatusTableResource
from export_pipeline.defs.notifications.messages import email_message, webhook_body
from export_pipeline.defs.notifications.resources import (
    DeliveryError,
    DeliveryRefused,
    NotifierResource,
)
from export_pipeline.status import notifications as outbox
from export_pipeline.status.models import Notification, NotificationChannel

SENSOR_INTERVAL_SECONDS = 2
NOTIFICATIONS_PER_TICK = 50
TICK_BUDGET_SECONDS = 30.0
"""No new delivery starts after this long in one tick, which keeps the tick (one slow
delivery included) well inside Dagster's 60 s limit for a sensor evaluation."""


@dataclass(frozen=True)
class _Attempt:
    notification_id: int
    export_id: str
    channel: str
    number: int
    send: Callable[[], None] | None
    """None when there is nothing to send any more; `refusal` says why."""
    refusal: str | None = None


@dg.sensor(
    minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Delivers export notifications (webhooks and email) and retries failed ones.",
)
def notification_sensor(
    context: dg.SensorEvaluationContext,
    status_table: StatusTableResource,
    notifier: NotifierResource,
) -> dg.SkipReason:
    started = time.monotonic()
    with status_table.session() as session:
        due = outbox.due_notifications(session, now=datetime.now(UTC), limit=NOTIFICATIONS_PER_TICK)

    outcomes: Counter[str] = Counter()
    for notification_id in due:
        if time.monotonic() - started > TICK_BUDGET_SECONDS:
            outcomes["left for the next tick"] += 1
            continue
        outcomes[_deliver(context, status_table, notifier, notification_id)] += 1

    summary = ", ".join(f"{count} {outcome}" for outcome, count in sorted(outcomes.items()))
    return dg.SkipReason(f"{len(due)} notifications due" + (f": {summary}" if summary else ""))


def _deliver(
    context: dg.SensorEvaluationContext,
    status_table: StatusTableResource,
    notifier: NotifierResource,
    notification_id: int,
) -> str:
    """One attempt at one notification; returns what became of it."""
    now = datetime.now(UTC)
    with status_table.session() as session:
        notification = outbox.claim_attempt(session, notification_id, now=now)
        if notification is None:
            return "claimed elsewhere"
        try:
            attempt = _prepare(session, notifier, notification, now)
        except Exception as error:  # a malformed message must not stop the others
            attempt = _Attempt(
                notification_id=notification.id,
                export_id=notification.export_id,
                channel=notification.channel,
                number=notification.attempts,
                send=None,
                refusal=f"the message could not be built: {type(error).__name__}: {error}",
            )

    failure, give_up = attempt.refusal, attempt.send is None
    if attempt.send is not None:
        try:
            attempt.send()
        except DeliveryRefused as error:
            failure, give_up = str(error), True
        except DeliveryError as error:
            failure = str(error)
        except Exception as error:  # a receiver must never break the sensor
            failure = f"unexpected {type(error).__name__} while delivering: {error}"

    label = (
        f"notification {attempt.notification_id} ({attempt.channel}) of export "
        f"{attempt.export_id}, attempt {attempt.number}"
    )
    with status_table.session() as session:
        if failure is None:
            outbox.record_delivered(session, attempt.notification_id, at=datetime.now(UTC))
            context.log.info(f"{label}: delivered")
            return "delivered"
        gave_up = outbox.record_failure(
            session,
            attempt.notification_id,
            error=failure,
            at=datetime.now(UTC),
            give_up=give_up,
        )
    if gave_up:
        context.log.error(f"{label}: given up: {failure}")
        return "given up"
    when = now + outbox.retry_delay(attempt.number)
    context.log.warning(f"{label}: failed, next attempt at {when:%H:%M:%S} UTC: {failure}")
    return "failed, to retry"


def _prepare(
    session: Session, notifier: NotifierResource, notification: Notification, now: datetime
) -> _Attempt:
    """The message of a claimed notification, ready to send, or why it cannot go."""
    link = notifier.history_url(notification.export_id)
    common = {
        "notification_id": notification.id,
        "export_id": notification.export_id,
        "channel": notification.channel,
        "number": notification.attempts,
    }
    if notification.channel == NotificationChannel.WEBHOOK:
        secret = outbox.webhook_secret(session, notification)
        if secret is None:
            refusal = "the webhook was removed or changed to another URL before delivery"
            return _Attempt(**common, send=None, refusal=refusal)
        body = webhook_body(notification.payload, link)
        url, delivery_id = notification.target, notification.id

        def post() -> None:
            notifier.post_webhook(
                url, body, secret=secret, delivery_id=delivery_id, now=datetime.now(UTC)
            )

        return _Attempt(**common, send=post)

    if not notifier.mail_enabled:
        refusal = "no mail server is configured (EXPORT_PIPELINE_SMTP_HOST is unset)"
        return _Attempt(**common, send=None, refusal=refusal)
    message = email_message(
        notification.payload,
        to=notification.target,
        mail_from=notifier.mail_from,
        history_url=link,
        now=now,
    )
    return _Attempt(**common, send=lambda: notifier.send_mail(message))
