"""How an export file goes over HTTP: its headers, the byte range a request asks for,
and its bytes in fixed-size chunks.

The bytes are read chunk by chunk from an open file, so memory stays constant
whatever the file's size; a byte range is a seek plus a shorter length.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import quote

CHUNK_SIZE = 1024 * 1024
CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
GZIP_MEDIA_TYPE = "application/gzip"

_UNSAFE_IN_QUOTED_NAME = re.compile(r'[^\x20-\x7e]|["\\]')
# Positions of up to 18 digits: far beyond any file, and never too long for int().
# Positions of any length are read (a 40-digit one is past any file's end, not
# malformed); beyond 100 digits the header is ignored as garbage.
_RANGE_SPEC = re.compile(
    r"(?P<first>[0-9]{1,100})-(?P<last>[0-9]{0,100})|-(?P<suffix>[0-9]{1,100})"
)


@dataclass(frozen=True)
class ByteRange:
    """Bytes `start` to `end` of a file, both included (RFC 9110's first-pos, last-pos)."""

    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.end}/{size}"


class RangeNotSatisfiableError(ValueError):
    """The request's range lies wholly beyond the end of the file (answer 416)."""


def media_type_for(file_name: str) -> str:
    return GZIP_MEDIA_TYPE if file_name.endswith(".gz") else CSV_MEDIA_TYPE


def etag_for(sha256: str) -> str:
    return f'"{sha256}"'


def requested_range(
    range_header: str | None, *, if_range: str | None, size: int, sha256: str
) -> ByteRange | None:
    """The one byte range a GET asks for, or None to send the whole file.

    A malformed Range, or one in a unit other than bytes, is ignored, and so is any
    Range when `if_range` is given and is not the file's current strong ETag (the only
    validator sent, so a date never matches). Raises `RangeNotSatisfiableError` when
    the range starts at or beyond `size`, or is an empty suffix (`bytes=-0`).
    """
    if range_header is None:
        return None
    if if_range is not None and (not sha256 or if_range.strip() != etag_for(sha256)):
        return None
    unit, separator, range_set = range_header.partition("=")
    if not separator or unit.strip().lower() != "bytes":
        return None
    # Several ranges get the whole file, as RFC 9110 (section 14.2) allows a server to
    # ignore Range: a client resuming a download asks for one range, and a
    # multipart/byteranges answer is not worth its cost.
    if "," in range_set:
        return None
    spec = _RANGE_SPEC.fullmatch(range_set.strip())
    if spec is None:
        return None

    if spec["suffix"] is not None:
        suffix = int(spec["suffix"])
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiableError
        return ByteRange(start=max(0, size - suffix), end=size - 1)
    start = int(spec["first"])
    last = int(spec["last"]) if spec["last"] else None
    if last is not None and last < start:
        return None
    if start >= size:
        raise RangeNotSatisfiableError
    return ByteRange(start=start, end=size - 1 if last is None else min(last, size - 1))


def attachment_headers(
    file_name: str, *, size: int, sha256: str, byte_range: ByteRange | None = None
) -> dict[str, str]:
    """Headers of a download of the whole file, or of `byte_range` of it, except its
    media type.

    `filename` is an ASCII fallback for old clients; `filename*` (RFC 5987) carries
    the exact UTF-8 name.
    """
    fallback = _UNSAFE_IN_QUOTED_NAME.sub("_", file_name)
    headers = {
        "Content-Disposition": (
            f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(file_name, safe='')}"
        ),
        "Content-Length": str(size),
        "ETag": etag_for(sha256),
        "Accept-Ranges": "bytes",
        # The URL holds a token: neither browsers nor proxies should keep the answer.
        "Cache-Control": "private, no-store",
        "X-Content-Type-Options": "nosniff",
    }
    if byte_range is not None:
        headers["Content-Length"] = str(byte_range.length)
        headers["Content-Range"] = byte_range.content_range(size)
    return headers


def unsatisfiable_range_headers(size: int) -> dict[str, str]:
    return {"Content-Range": f"bytes */{size}", "Accept-Ranges": "bytes"}


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
