"""How an export file goes over HTTP: its headers and its bytes in fixed-size chunks.

The bytes are read chunk by chunk from an open file, so memory stays constant
whatever the file's size. Byte ranges are not served yet: when they are, a range
becomes a seek plus a shorter `length`, and `Content-Range` joins the headers.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import BinaryIO
from urllib.parse import quote

CHUNK_SIZE = 1024 * 1024
CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
GZIP_MEDIA_TYPE = "application/gzip"

_UNSAFE_IN_QUOTED_NAME = re.compile(r'[^\x20-\x7e]|["\\]')


def media_type_for(file_name: str) -> str:
    return GZIP_MEDIA_TYPE if file_name.endswith(".gz") else CSV_MEDIA_TYPE


def attachment_headers(file_name: str, *, size: int, sha256: str) -> dict[str, str]:
    """Headers of a whole-file download, except its media type.

    `filename` is an ASCII fallback for old clients; `filename*` (RFC 5987) carries
    the exact UTF-8 name.
    """
    fallback = _UNSAFE_IN_QUOTED_NAME.sub("_", file_name)
    return {
        "Content-Disposition": (
            f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(file_name, safe='')}"
        ),
        "Content-Length": str(size),
        "ETag": f'"{sha256}"',
        "Accept-Ranges": "none",
        # The URL holds a token: neither browsers nor proxies should keep the answer.
        "Cache-Control": "private, no-store",
        "X-Content-Type-Options": "nosniff",
    }


def iter_file_chunks(
    handle: BinaryIO, *, length: int, chunk_size: int = CHUNK_SIZE
) -> Iterator[bytes]:
    """Up to `length` bytes from `handle`'s position, in chunks; closes `handle` when
    done, when the file ends early, or when the consumer stops iterating."""
    try:
        remaining = length
        while remaining > 0:
            chunk = handle.read(min(chunk_size, remaining))
            if not chunk:
                return
            remaining -= len(chunk)
            yield chunk
    finally:
        handle.close()
