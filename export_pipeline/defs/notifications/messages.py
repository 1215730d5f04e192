"""What a notification says, per channel: the webhook's JSON body and the email.

Pure functions of the queued event (see `status.notifications.export_event`), the
history URL and, for mail, the addresses; the resource in `resources.py` sends them.
"""

from __future__ import annotations

import json
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

from export_pipeline.status.notifications import EXPORT_COMPLETED


def webhook_body(event: dict[str, Any], history_url: str) -> bytes:
    """The compact UTF-8 JSON that is posted and signed: the event and `history_url`."""
    document = {"event": event["event"], "export": event["export"], "history_url": history_url}
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def email_message(
    event: dict[str, Any], *, to: str, mail_from: str, history_url: str, now: datetime
) -> EmailMessage:
    """A plain-text mail telling the requester how their export ended, linking to its
    entry in the export history (never to the file)."""
    export = event["export"]
    completed = event["event"] == EXPORT_COMPLETED
    message = EmailMessage()
    message["Subject"] = (
        f"Your export {export['file_name']} is ready"
        if completed
        else f"Your export {export['file_name']} failed"
    )
    message["From"] = mail_from
    message["To"] = to
    message["Date"] = format_datetime(now)
    message["Message-ID"] = make_msgid(domain=mail_from.rpartition("@")[2] or "localhost")
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(
        _completed_text(export, history_url) if completed else _failed_text(export, history_url)
    )
    return message


def _completed_text(export: dict[str, Any], history_url: str) -> str:
    return "\n".join(
        [
            f"The export you requested at {_when(export['requested_at'])} is ready.",
            "",
            f"File:      {export['file_name']}",
            f"Source:    {export['source_id']}",
            f"Leads:     {export['lead_count']}",
            f"Size:      {export['file_size']} bytes",
            f"SHA-256:   {export['sha256']}",
            f"Finished:  {_when(export['completed_at'])}",
            "",
            "Open it in the export history, where you can get a download link:",
            history_url,
            "",
        ]
    )


def _failed_text(export: dict[str, Any], history_url: str) -> str:
    return "\n".join(
        [
            f"The export you requested at {_when(export['requested_at'])} failed.",
            "",
            f"File:      {export['file_name']}",
            f"Source:    {export['source_id']}",
            f"Reason:    {export['error'] or 'none was recorded'}",
            f"Failed at: {_when(export['completed_at'])}",
            "",
            "Open it in the export history, where you can retry it:",
            history_url,
            "",
        ]
    )


def _when(iso: str | None) -> str:
    """`2026-03-01T07:00:00.123456Z` as `2026-03-01 07:00:00 UTC`."""
    if not iso:
        return "an unknown time"
    return iso[:19].replace("T", " ") + " UTC"
