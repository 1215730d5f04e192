"""The API's access log, without download tokens.

Uvicorn's own access log prints every request path, and a download path holds the
link token, which is as good as the file to anyone who also has an API key. So the
server must run uvicorn with `access_log=False` (`--no-access-log`) and let this
middleware log each request instead: method, path with any token replaced by
`<token>`, status and duration. Query strings are never logged, and a path's control
characters, spaces and non-ASCII letters are logged percent-encoded, so that a request
cannot forge or hide log lines with a newline or a terminal escape in its path.

In case uvicorn's access log runs anyway (a logging config that gives it handlers
turns it back on), `redact_uvicorn_access_log` makes it redact tokens too.
"""

from __future__ import annotations

import logging
import re
import time
from urllib.parse import quote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("export_pipeline.api.access")

UVICORN_ACCESS_LOGGER = "uvicorn.access"

REDACTION = "<token>"
_DOWNLOAD_PATH = re.compile(r"(/downloads/)[^?#]*")


_LOGGED_AS_IS = "/-._~!$&'()*+,;=:@%"
"""Besides letters and digits: the characters RFC 3986 allows in a path, and `%`."""


def redact_path(path: str) -> str:
    """`path` fit for a log line: everything after a `/downloads/` segment replaced by
    `<token>`, and any character outside a plain URL path percent-encoded."""
    return _DOWNLOAD_PATH.sub(r"\g<1>" + REDACTION, quote(path, safe=_LOGGED_AS_IS))


class RedactDownloadTokens(logging.Filter):
    """Redacts download tokens in the string arguments of records of a logger that
    logs request paths, such as uvicorn's access log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                redact_path(arg) if isinstance(arg, str) else arg for arg in record.args
            )
        return True


def redact_uvicorn_access_log() -> None:
    """Add `RedactDownloadTokens` to uvicorn's access logger, once per process."""
    logger = logging.getLogger(UVICORN_ACCESS_LOGGER)
    if not any(isinstance(existing, RedactDownloadTokens) for existing in logger.filters):
        logger.addFilter(RedactDownloadTokens())


class AccessLogMiddleware:
    """Logs one line per HTTP request once its response is finished (or failed).

    A plain ASGI middleware rather than an `@app.middleware("http")` function, so a
    streamed download is timed to its last byte and never buffered.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status_code = 500

        async def send_and_note_status(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            client = scope.get("client")
            log.info(
                '%s "%s %s" %d %.1f ms',
                client[0] if client else "-",
                scope["method"],
                redact_path(scope["path"]),
                status_code,
                (time.perf_counter() - started) * 1000,
            )
