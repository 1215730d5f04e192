"""`Idempotency-Key` of export requests: a client that retries a request it is unsure
about gets the first export back instead of a second one."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from export_pipeline.status.models import IdempotencyKey

MAX_KEY_LENGTH = 255


def request_fingerprint(source_id: int, body: dict[str, Any]) -> str:
    """SHA-256 of the request as validated, so that equal requests compare equal
    whatever the order or spelling of their JSON."""
    canonical = json.dumps({"source_id": source_id, "body": body}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def find_key(session: Session, user_id: int, key: str) -> IdempotencyKey | None:
    return session.get(IdempotencyKey, (user_id, key))


def remember_key(
    session: Session, user_id: int, key: str, fingerprint: str, export_id: str, at: datetime
) -> None:
    """Add the key to the session; a concurrent request with the same key makes the
    commit fail with an integrity error, after which `find_key` finds the winner."""
    session.add(
        IdempotencyKey(
            user_id=user_id,
            key=key,
            request_hash=fingerprint,
            export_id=export_id,
            created_at=at,
        )
    )
