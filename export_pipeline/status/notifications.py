"""Telling requesters that an export completed or failed: webhooks, email and the outbox.

A notification is written to the `notifications` table in the same transaction that
moves its export to `completed` or `failed`, so it exists exactly when the export is
settled (a completed export's file is in place by then), and is lost with it when that
transaction rolls back. The notification sensor in `defs/notifications` delivers it
later, retrying with exponential backoff. Delivery is at least once: a receiver may
see the same event twice, for instance when the sensor stopped between sending and
recording, and can tell by the delivery id.

What a notification carries is the export's facts (file name, counts, size, SHA-256,
the readable error): never lead values, download links, tokens or keys. Where it goes
must be a public address unless the settings allow private ones: the API checks a
webhook URL's host when the URL is given, and the sensor again before each delivery.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import socket
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from export_pipeline.status.models import (
    Export,
    ExportStatus,
    ExportWebhook,
    Notification,
    NotificationChannel,
    SourceWebhook,
    User,
    WebhookScope,
)

EXPORT_COMPLETED = "export.completed"
EXPORT_FAILED = "export.failed"
HISTORY_PATH = "/api/v1/exports/{export_id}"
"""Where an export's history entry is, under the API's public URL."""
MAX_WEBHOOK_URL_LENGTH = 2000
MAX_ATTEMPTS = 8
FIRST_RETRY_DELAY = timedelta(seconds=10)
"""The wait after a first failed attempt; it doubles after each further one."""
WEBHOOK_SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, no secret
MAX_ERROR_LENGTH = 1000
UNIQUE_LOCAL_NETWORK = ipaddress.IPv6Network("fc00::/7")
NAT64_PREFIX = ipaddress.IPv6Network("64:ff9b::/96")
"""IPv6 addresses that a NAT64 gateway turns into the IPv4 address in their last 32 bits."""
IETF_PROTOCOL_ASSIGNMENTS = ipaddress.IPv4Network("192.0.0.0/24")
GLOBAL_PROTOCOL_ASSIGNMENTS = (
    ipaddress.IPv4Address("192.0.0.9"),
    ipaddress.IPv4Address("192.0.0.10"),
)
"""RFC 6890's special-purpose block is not publicly routable but for these two anycast
addresses; older Pythons' `is_global` take all of it as global."""

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class WebhookAddressRefused(ValueError):
    """A webhook URL's host is, or resolves to, an address webhooks may not be sent to."""


class WebhookHostUnresolvable(ValueError):
    """A webhook URL's host name has no address, or could not be looked up."""


# Pure logic: checking addresses, signing, backoff and the event's content.


def check_webhook_url(url: str) -> str:
    """`url` if it is an absolute http(s) URL of at most 2000 characters with a host
    and without credentials; `ValueError` saying what is wrong otherwise."""
    if len(url) > MAX_WEBHOOK_URL_LENGTH:
        msg = f"a webhook URL must be at most {MAX_WEBHOOK_URL_LENGTH} characters"
        raise ValueError(msg)
    if any(character.isspace() or not character.isprintable() for character in url):
        msg = "a webhook URL must not contain spaces or control characters"
        raise ValueError(msg)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        msg = f"not a valid URL ({error}); give one such as https://hooks.example.com/exports"
        raise ValueError(msg) from None
    if parts.scheme.lower() not in ("http", "https"):
        msg = "a webhook URL must start with https:// (or http://)"
        raise ValueError(msg)
    if not parts.hostname:
        msg = "a webhook URL must name a host, as in https://hooks.example.com/exports"
        raise ValueError(msg)
    if port == 0:
        msg = "a webhook URL's port must be between 1 and 65535"
        raise ValueError(msg)
    if parts.username is not None or parts.password is not None:
        msg = "a webhook URL must not hold a user name or password; verify the signature instead"
        raise ValueError(msg)
    return url


def refused_address_kind(address: IPAddress) -> str | None:
    """What kind of address webhooks may not be sent to `address` is (`"a loopback
    address"`, `"a private address"`, ...), or None when it is publicly routable. An
    IPv6 address that carries an IPv4 one (mapped, 6to4 or NAT64) is judged by the latter."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        elif address.sixtofour is not None:
            address = address.sixtofour
        elif address in NAT64_PREFIX:
            address = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address in UNIQUE_LOCAL_NETWORK:
        return "a unique-local address"
    if address.is_private:
        return "a private address"
    if address.is_reserved:
        return "a reserved address"
    special = address in IETF_PROTOCOL_ASSIGNMENTS and address not in GLOBAL_PROTOCOL_ASSIGNMENTS
    if special or not address.is_global:
        return "an address that is not publicly routable"
    return None


def normalize_email(address: str) -> str:
    """The address in its normal form (domain lower-cased); `ValueError` saying what is
    wrong when it is not a deliverable-looking ASCII address. No DNS lookup is made."""
    try:
        checked = validate_email(address, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as error:
        msg = f"not a valid email address: {error}"
        raise ValueError(msg) from None
    return checked.normalized


def new_webhook_secret() -> str:
    """`whsec_` and 43 URL-safe characters (256 random bits)."""
    return WEBHOOK_SECRET_PREFIX + secrets.token_urlsafe(32)


def sign_webhook(secret: str, timestamp: int, body: bytes) -> str:
    """The `X-Export-Signature` value: `sha256=` and the hex HMAC-SHA256, keyed with the
    secret's UTF-8 bytes, of `<timestamp>.` followed by the raw body."""
    signed = str(timestamp).encode() + b"." + body
    return "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def retry_delay(attempt: int) -> timedelta:
    """How long to wait after failed attempt number `attempt` (from 1): 10 s, 20 s, ..."""
    return FIRST_RETRY_DELAY * 2 ** (attempt - 1)


def history_url(public_url: str, export_id: str) -> str:
    return public_url.rstrip("/") + HISTORY_PATH.format(export_id=export_id)


def export_event(export: Export) -> dict[str, Any]:
    """The event of a settled export as notifications carry it: its facts only."""
    completed = export.status == ExportStatus.COMPLETED
    return {
        "event": EXPORT_COMPLETED if completed else EXPORT_FAILED,
        "export": {
            "id": export.id,
            "source_id": export.source_id,
            "status": export.status,
            "file_name": export.file_name,
            "lead_count": export.lead_count,
            "file_size": export.file_size,
            "sha256": export.sha256,
            "error": export.error,
            "requested_at": _iso(export.requested_at),
            "completed_at": _iso(export.completed_at),
        },
    }


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


# Where a webhook URL points now: the only network lookups (DNS) of this module.


def resolve_webhook_host(url: str) -> list[IPAddress]:
    """Every address the host of `url` (an already checked webhook URL) stands for: the
    address itself when the host is an IP literal, else whatever the system resolver
    answers now. Raises `WebhookHostUnresolvable` when it answers nothing."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if _is_ip_literal(host):
        return [ipaddress.ip_address(host)]
    port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    try:
        answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except UnicodeError:
        msg = f"the webhook URL's host {host} cannot be resolved: it is not a valid host name"
        raise WebhookHostUnresolvable(msg) from None
    except OSError as error:
        reason = error.strerror or str(error)
        msg = f"the webhook URL's host {host} cannot be resolved ({reason}); check its spelling"
        raise WebhookHostUnresolvable(msg) from None
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in answers:
        # A scoped IPv6 answer ("fe80::1%eth0") keeps its scope out of the address.
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        msg = f"the webhook URL's host {host} cannot be resolved (no address); check its spelling"
        raise WebhookHostUnresolvable(msg)
    return addresses


def check_webhook_destination(url: str) -> list[IPAddress]:
    """The addresses `url`'s host resolves to now, when every one of them is publicly
    routable. Raises `WebhookAddressRefused` naming the first that is not (so that a
    URL cannot reach the server's own network, such as a cloud metadata endpoint at
    169.254.169.254), or `WebhookHostUnresolvable`."""
    host = urlsplit(url).hostname or ""
    addresses = resolve_webhook_host(url)
    for address in addresses:
        kind = refused_address_kind(address)
        if kind is None:
            continue
        where = host if _is_ip_literal(host) else f"{host}, which resolves to {address},"
        msg = (
            f"a webhook URL must point to a public address, and {where} is {kind}; "
            "use a host reachable from the internet"
        )
        raise WebhookAddressRefused(msg)
    return addresses


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


# Who is notified: the source's webhook, a request's webhook, the requester's email.


def set_source_webhook(
    session: Session, source_id: int, url: str, *, set_by: int | None, at: datetime
) -> str:
    """Point the source's webhook at `url` with a new secret, replacing any webhook and
    secret it had; returns the secret, which the caller shows once. Notifications not
    delivered yet go out signed with the new secret."""
    url = check_webhook_url(url)
    secret = new_webhook_secret()
    webhook = session.get(SourceWebhook, source_id)
    if webhook is None:
        session.add(
            SourceWebhook(source_id=source_id, url=url, secret=secret, set_by=set_by, set_at=at)
        )
    else:
        webhook.url, webhook.secret, webhook.set_by, webhook.set_at = url, secret, set_by, at
    session.flush()
    return secret


def get_source_webhook(session: Session, source_id: int) -> SourceWebhook | None:
    return session.get(SourceWebhook, source_id)


def remove_source_webhook(session: Session, source_id: int) -> bool:
    """Remove the source's webhook; notifications to it not delivered yet are dropped
    when their turn comes. False when the source had none."""
    webhook = session.get(SourceWebhook, source_id)
    if webhook is None:
        return False
    session.delete(webhook)
    session.flush()
    return True


def subscribe_export_webhook(session: Session, export_id: str, url: str, *, at: datetime) -> str:
    """Have the export's outcome posted to `url` too; returns the request's own secret."""
    secret = new_webhook_secret()
    session.add(
        ExportWebhook(export_id=export_id, url=check_webhook_url(url), secret=secret, created_at=at)
    )
    session.flush()
    return secret


def get_export_webhook(session: Session, export_id: str) -> ExportWebhook | None:
    return session.get(ExportWebhook, export_id)


def carry_export_webhook(
    session: Session, original_id: str, retry_id: str, *, at: datetime
) -> ExportWebhook | None:
    """Give a retry the webhook its original request named, with the same secret, so
    that the receiver that waits for the original's outcome hears the retry's with
    the secret it already holds. None when the original named no webhook."""
    original = session.get(ExportWebhook, original_id)
    if original is None:
        return None
    carried = ExportWebhook(
        export_id=retry_id, url=original.url, secret=original.secret, created_at=at
    )
    session.add(carried)
    session.flush()
    return carried


def set_user_email(session: Session, user: User, address: str | None) -> str | None:
    """Set (normalized) or clear the address mail about the user's exports goes to."""
    user.email = normalize_email(address) if address is not None else None
    session.flush()
    return user.email


# The outbox.


def enqueue_export_notifications(
    session: Session, export: Export, *, at: datetime
) -> list[Notification]:
    """Queue one notification per recipient of a just-settled export, due at once; the
    caller commits them together with the export's status."""
    recipients: list[tuple[NotificationChannel, str, WebhookScope | None]] = []
    source_webhook = session.get(SourceWebhook, export.source_id)
    if source_webhook is not None:
        recipients.append((NotificationChannel.WEBHOOK, source_webhook.url, WebhookScope.SOURCE))
    request_webhook = session.get(ExportWebhook, export.id)
    if request_webhook is not None:
        recipients.append((NotificationChannel.WEBHOOK, request_webhook.url, WebhookScope.REQUEST))
    email = session.scalar(select(User.email).where(User.id == export.requested_by))
    if email:
        recipients.append((NotificationChannel.EMAIL, email, None))

    payload = export_event(export)
    notifications = [
        Notification(
            export_id=export.id,
            channel=channel.value,
            target=target,
            webhook_scope=scope.value if scope else None,
            payload=payload,
            created_at=at,
            attempts=0,
            next_attempt_at=at,
        )
        for channel, target, scope in recipients
    ]
    session.add_all(notifications)
    return notifications


def due_notifications(session: Session, *, now: datetime, limit: int = 50) -> Sequence[int]:
    """Ids of the notifications whose next attempt is due, the longest waiting first."""
    return session.scalars(
        select(Notification.id)
        .where(Notification.next_attempt_at <= now)
        .order_by(Notification.next_attempt_at, Notification.id)
        .limit(limit)
    ).all()


def notifications_of_export(session: Session, export_id: str) -> Sequence[Notification]:
    return session.scalars(
        select(Notification).where(Notification.export_id == export_id).order_by(Notification.id)
    ).all()


def claim_attempt(session: Session, notification_id: int, *, now: datetime) -> Notification | None:
    """Count one more attempt at a due notification and move its next attempt to after
    the backoff, before anything is sent; None when it is not due or someone else
    claimed it first. Committed before sending, an attempt cut short by a crash is
    retried after its backoff like any failed one."""
    notification = session.get(Notification, notification_id)
    if notification is None or notification.next_attempt_at is None:
        return None
    if notification.next_attempt_at > now:
        return None
    attempt = notification.attempts + 1
    claimed = session.execute(
        update(Notification)
        .where(
            Notification.id == notification_id,
            Notification.attempts == notification.attempts,
            Notification.next_attempt_at.is_not(None),
        )
        .values(attempts=attempt, next_attempt_at=now + retry_delay(attempt))
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:
        return None
    session.refresh(notification)
    return notification


def record_delivered(session: Session, notification_id: int, *, at: datetime) -> None:
    session.execute(
        update(Notification)
        .where(Notification.id == notification_id)
        .values(delivered_at=at, next_attempt_at=None)
        .execution_options(synchronize_session=False)
    )


def record_failure(
    session: Session, notification_id: int, *, error: str, at: datetime, give_up: bool = False
) -> bool:
    """Record a failed attempt; the notification is given up after `MAX_ATTEMPTS`
    attempts, or at once with `give_up`. Returns whether it was given up."""
    attempts = session.scalar(
        select(Notification.attempts).where(Notification.id == notification_id)
    )
    final = give_up or (attempts or 0) >= MAX_ATTEMPTS
    values: dict[str, object] = {"last_error": error[:MAX_ERROR_LENGTH]}
    if final:
        values |= {"given_up_at": at, "next_attempt_at": None}
    session.execute(
        update(Notification)
        .where(Notification.id == notification_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return final


def webhook_secret(session: Session, notification: Notification) -> str | None:
    """The secret to sign a webhook notification with: the current one of its webhook.
    None when that webhook was removed or now points elsewhere, and so wants no more."""
    if notification.webhook_scope == WebhookScope.REQUEST:
        webhook: SourceWebhook | ExportWebhook | None = session.get(
            ExportWebhook, notification.export_id
        )
    else:
        source_id = session.scalar(
            select(Export.source_id).where(Export.id == notification.export_id)
        )
        webhook = session.get(SourceWebhook, source_id) if source_id is not None else None
    if webhook is None or webhook.url != notification.target:
        return None
    return webhook.secret
