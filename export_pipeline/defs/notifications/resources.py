"""The resource that sends notifications: signed webhook POSTs (httpx) and mail (smtplib).

Each method either hands the message over or raises `DeliveryError` with a reason a
person can act on; whether and when to try again is the sensor's business.

Unless private addresses are allowed, a webhook's host is resolved again right before
each POST, every address it resolves to must be public, and the POST connects to the
first of those very addresses: a name that resolved to a public address when the URL
was set, and resolves to an internal one now, reaches nothing.
"""

from __future__ import annotations

import smtplib
import ssl
from datetime import datetime
from email.message import EmailMessage
from importlib.metadata import version
from typing import Any

import dagster as dg
import httpx

from export_pipeline.status.notifications import (
    IPAddress,
    WebhookAddressRefused,
    WebhookHostUnresolvable,
    check_webhook_destination,
    history_url,
    sign_webhook,
)

USER_AGENT = f"export-pipeline/{version('export-pipeline')} (webhook)"


class DeliveryError(Exception):
    """A receiver or mail server did not take a notification; the message says why and
    never quotes the message itself."""


class DeliveryRefused(DeliveryError):
    """The notification was not sent, and trying again would not change that: its
    webhook points to an address webhooks may not be sent to."""


class NotifierResource(dg.ConfigurableResource):
    """Where notifications go out: the API's public URL (for history links), the mail
    server (no mail while `smtp_host` is unset) and how long one delivery may take."""

    public_url: str
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    mail_from: str = "exports@localhost"
    timeout_seconds: float = 10.0
    """Per network step (connect, each read or write) of one delivery."""
    allow_private_addresses: bool = False
    """Post to webhooks on loopback, private, link-local and other non-public addresses."""

    @property
    def mail_enabled(self) -> bool:
        return bool(self.smtp_host)

    def history_url(self, export_id: str) -> str:
        return history_url(self.public_url, export_id)

    def post_webhook(
        self, url: str, body: bytes, *, secret: str, delivery_id: int, now: datetime
    ) -> None:
        """POST `body`, signed for `now`; done when the receiver answers 2xx.

        Redirects are not followed (a 3xx is a failure), and the answer's body is not
        read, so a receiver cannot make the sensor download anything. Raises
        `DeliveryRefused` when the URL's host is, or now resolves to, an address that
        is not public and such addresses are not allowed.
        """
        timestamp = int(now.timestamp())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Export-Delivery": str(delivery_id),
            "X-Export-Timestamp": str(timestamp),
            "X-Export-Signature": sign_webhook(secret, timestamp, body),
        }
        target, extensions = url, {}
        if not self.allow_private_addresses:
            try:
                address = check_webhook_destination(url)[0]
            except WebhookAddressRefused as error:
                raise DeliveryRefused(str(error)) from None
            except WebhookHostUnresolvable as error:
                raise DeliveryError(str(error)) from None
            target, host_header, extensions = pin_to_address(url, address)
            headers["Host"] = host_header
        try:
            with (
                httpx.Client(timeout=self.timeout_seconds, follow_redirects=False) as client,
                client.stream(
                    "POST", target, content=body, headers=headers, extensions=extensions
                ) as response,
            ):
                status = response.status_code
        except (httpx.HTTPError, httpx.InvalidURL) as error:
            msg = f"the webhook receiver could not be reached: {type(error).__name__}: {error}"
            raise DeliveryError(msg) from None
        if not 200 <= status < 300:
            msg = f"the webhook receiver answered HTTP {status} instead of 2xx"
            raise DeliveryError(msg)

    def send_mail(self, message: EmailMessage) -> None:
        """Hand `message` to the mail server, after STARTTLS and login when configured."""
        if not self.smtp_host:
            msg = "no mail server is configured (EXPORT_PIPELINE_SMTP_HOST is unset)"
            raise DeliveryError(msg)
        try:
            with smtplib.SMTP(self.smtp_host, self.smtp_port, timeout=self.timeout_seconds) as smtp:
                if self.smtp_starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.smtp_username:
                    smtp.login(self.smtp_username, self.smtp_password or "")
                smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as error:
            code, text = next(iter(error.recipients.values()))
            msg = f"the mail server refused the recipient: {code} {_decoded(text)}"
            raise DeliveryError(msg) from None
        except smtplib.SMTPResponseException as error:
            msg = f"the mail server answered {error.smtp_code} {_decoded(error.smtp_error)}"
            raise DeliveryError(msg) from None
        except (smtplib.SMTPException, OSError) as error:
            msg = f"the mail server could not be reached: {type(error).__name__}: {error}"
            raise DeliveryError(msg) from None


def pin_to_address(url: str, address: IPAddress) -> tuple[str, str, dict[str, Any]]:
    """`url` with its host replaced by `address`, the `Host` header that names the
    original host (and port, when not the scheme's default), and the request extensions
    that keep TLS on the original name: it is sent as SNI and the certificate must
    match it, not the address."""
    original = httpx.URL(url)
    pinned = original.copy_with(host=str(address))
    host_header = original.netloc.decode("ascii")
    extensions: dict[str, Any] = {}
    if original.scheme == "https":
        extensions["sni_hostname"] = original.raw_host.decode("ascii")
    return str(pinned), host_header, extensions


def _decoded(text: bytes | str) -> str:
    return text.decode(errors="replace") if isinstance(text, bytes) else text
