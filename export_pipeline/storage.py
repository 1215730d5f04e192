"""Export files on any fsspec file system: a local folder by default, S3 in production.

A file is written under a temporary name next to the exports and moved into place
only once complete, so readers never see a partial file at a final location.
"""

from __future__ import annotations

import hashlib
import logging
import posixpath
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO, TypeVar

from fsspec.core import url_to_fs

log = logging.getLogger(__name__)

PARTIAL_DIR = ".partial"

T = TypeVar("T")


@dataclass(frozen=True)
class FileFacts:
    """What a finished export file is: where, how many bytes, and their SHA-256."""

    uri: str
    size: int
    sha256: str


class HashingWriter:
    """Passes bytes through to a file while counting them and hashing them."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._digest.update(data)
        self.size += len(data)
        return self._raw.write(data)

    def flush(self) -> None:
        self._raw.flush()

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()

    # Polars and gzip probe these before writing to a file object.
    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readable(self) -> bool:
        return False

    @property
    def closed(self) -> bool:
        return False


class ExportStorage:
    """Export files under one root URL (`/srv/exports`, `s3://bucket/exports`, ...)."""

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        self._options = dict(storage_options or {})
        self.fs, root = url_to_fs(url, **self._options)
        self.root = root.rstrip("/")

    def write_atomically(
        self, name: str, write: Callable[[BinaryIO], T], *, partial_key: str
    ) -> tuple[T, FileFacts]:
        """Call `write` with a file for `name` (relative to the root), then move it into place.

        Until `write` returns, the bytes go to `.partial/<partial_key>/`; if it raises,
        that partial file is removed and nothing appears at the final location.
        Returns what `write` returned and the facts of the finished file.
        """
        final = posixpath.join(self.root, name)
        partial = posixpath.join(self.root, PARTIAL_DIR, partial_key, posixpath.basename(name))
        self.fs.makedirs(posixpath.dirname(partial), exist_ok=True)
        try:
            with self.fs.open(partial, "wb") as raw:
                writer = HashingWriter(raw)
                result = write(writer)  # type: ignore[arg-type]
            self.fs.makedirs(posixpath.dirname(final), exist_ok=True)
            self.fs.mv(partial, final)
        finally:
            self.discard_partial(partial_key)
        facts = FileFacts(
            uri=self.fs.unstrip_protocol(final), size=writer.size, sha256=writer.sha256
        )
        return result, facts

    def discard_partial(self, partial_key: str) -> None:
        """Remove whatever a failed or killed writer left under `partial_key`."""
        path = posixpath.join(self.root, PARTIAL_DIR, partial_key)
        if self.fs.exists(path):
            self.fs.rm(path, recursive=True)

    def open_read(self, uri: str) -> BinaryIO:
        """Open a finished file, given the URI its facts named, for streaming."""
        fs, path = url_to_fs(uri, **self._options)
        return fs.open(path, "rb")

    def delete(self, uri: str) -> None:
        """Delete a finished file, then its folder if that is left empty and lies below
        the root (the export's own folder on a local disk; object stores have none).
        A file already gone is no error."""
        fs, path = url_to_fs(uri, **self._options)
        if fs.exists(path):
            fs.rm(path)
        self._remove_empty_folder(fs, posixpath.dirname(path))

    def _remove_empty_folder(self, fs: Any, folder: str) -> None:
        below_root = folder.startswith(self.root + "/") and folder.rstrip("/") != self.root
        if not below_root or not fs.isdir(folder):
            return
        if fs.ls(folder, detail=False):
            return
        try:
            # Refuses a folder that is not empty, should a file land in it meanwhile.
            fs.rmdir(folder)
        except OSError as error:
            log.warning("kept the export folder %s: %s", folder, error)
