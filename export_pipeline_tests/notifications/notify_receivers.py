"""Real servers for notification tests: an SMTP server (aiosmtpd), an HTTP server that
verifies webhook signatures the way the README tells receivers to, and the API.

Each listens on a loopback port of its own; the receivers record all they receive.
"""

from __future__ import annotations

import hashlib
import hmac
import socket
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

SIGNATURE_TOLERANCE_SECONDS = 300
"""A receiver rejects a timestamp further than this from its own clock."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# Mail


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    recipients: list[str]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.raw, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed

    @property
    def text(self) -> str:
        body = self.message.get_body(preferencelist=("plain",))
        assert body is not None
        return body.get_content()


class MailBox:
    """The aiosmtpd handler: keeps every message it accepts."""

    def __init__(self) -> None:
        self.mails: list[ReceivedMail] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.mails.append(
            ReceivedMail(
                mail_from=envelope.mail_from,
                recipients=list(envelope.rcpt_tos),
                raw=envelope.original_content or envelope.content,
            )
        )
        return "250 Message accepted for delivery"


class MailServer:
    """aiosmtpd on a free loopback port. With `login`, it insists on that user name and
    password; with a `tls_context`, it offers STARTTLS (and allows login only after)."""

    def __init__(self, *, login: tuple[str, str] | None = None, tls_context: Any = None) -> None:
        self.box = MailBox()
        self.port = free_port()
        options: dict[str, Any] = {}
        if login is not None:
            options |= {
                "authenticator": _Authenticator(*login),
                "auth_required": True,
                "auth_require_tls": tls_context is not None,
            }
        if tls_context is not None:
            options |= {"tls_context": tls_context, "require_starttls": True}
        self._controller = Controller(self.box, hostname="127.0.0.1", port=self.port, **options)

    @property
    def mails(self) -> list[ReceivedMail]:
        return self.box.mails

    def __enter__(self) -> MailServer:
        self._controller.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._controller.stop()


class _Authenticator:
    def __init__(self, user: str, password: str) -> None:
        self._user, self._password = user.encode(), password.encode()

    def __call__(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if isinstance(auth_data, LoginPassword) and (
            auth_data.login == self._user and auth_data.password == self._password
        ):
            return AuthResult(success=True)
        return AuthResult(success=False, handled=False)


# Webhooks


@dataclass(frozen=True)
class ReceivedHook:
    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool
    """Whether the signature checked out with the path's secret and a fresh timestamp."""


@dataclass
class WebhookReceiver:
    """An HTTP server that checks `X-Export-Signature` against the secret set for each
    path and answers each POST with the next scripted status (204 once the script for
    that path runs out), or 401 when the signature does not check out. A scripted `0`
    drops the connection without answering; a 3xx redirects to `/elsewhere`."""

    secrets: dict[str, str] = field(default_factory=dict)
    received: list[ReceivedHook] = field(default_factory=list)
    _scripts: defaultdict[str, deque[int]] = field(default_factory=lambda: defaultdict(deque))

    def __post_init__(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        host, port = self._server.server_address[:2]
        self.base_url = f"http://{host}:{port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return self.base_url + path

    def answer(self, path: str, *statuses: int) -> None:
        self._scripts[path].extend(statuses)

    def at(self, path: str) -> list[ReceivedHook]:
        return [hook for hook in self.received if hook.path == path]

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def verify(self, path: str, headers: dict[str, str], body: bytes) -> bool:
        """The receiver's side, as documented: recompute the HMAC over
        `<timestamp>.<raw body>`, compare in constant time, reject stale timestamps."""
        secret = self.secrets.get(path)
        timestamp = headers.get("x-export-timestamp", "")
        signature = headers.get("x-export-signature", "")
        if secret is None or not timestamp.isdigit():
            return False
        if abs(time.time() - int(timestamp)) > SIGNATURE_TOLERANCE_SECONDS:
            return False
        signed = timestamp.encode() + b"." + body
        expected = "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, signature)

    def _next_status(self, path: str) -> int:
        script = self._scripts[path]
        return script.popleft() if script else 204


def _handler_for(receiver: WebhookReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            headers = {name.lower(): value for name, value in self.headers.items()}
            receiver.received.append(
                ReceivedHook(
                    path=self.path,
                    headers=headers,
                    body=body,
                    verified=receiver.verify(self.path, headers, body),
                )
            )
            status = receiver._next_status(self.path) if receiver.received[-1].verified else 401
            if status == 0:
                self.close_connection = True
                return
            self.send_response(status)
            if 300 <= status < 400:
                self.send_header("Location", "/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
