"""Writing export files so that a final path only ever holds a complete file."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path
from typing import BinaryIO

import pytest

from export_pipeline.storage import ExportStorage

CONTENT = b"lead_id,first_name\r\n1,Ann\r\n2,Bob\r\n" * 1000


class WriterCrashed(RuntimeError):
    pass


def files_under(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file())


def test_written_file_appears_at_its_final_path_with_true_size_and_sha256(
    tmp_path: Path,
) -> None:
    storage = ExportStorage(str(tmp_path))

    def write(out: BinaryIO) -> int:
        out.write(CONTENT[:10])
        out.write(CONTENT[10:])
        return 42

    result, facts = storage.write_atomically(
        "leads/leads_20240601T120000Z_abcdef12.csv", write, partial_key="export-1"
    )

    final = tmp_path / "leads" / "leads_20240601T120000Z_abcdef12.csv"
    assert result == 42
    assert final.read_bytes() == CONTENT
    assert facts.size == len(CONTENT) == final.stat().st_size
    assert facts.sha256 == hashlib.sha256(final.read_bytes()).hexdigest()
    assert Path(facts.uri.removeprefix("file://")) == final
    assert files_under(tmp_path) == [final]


def test_gzip_stream_through_the_writer_is_hashed_as_written(tmp_path: Path) -> None:
    storage = ExportStorage(str(tmp_path))

    def write(out: BinaryIO) -> None:
        with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as compressed:
            compressed.write(CONTENT)

    _, facts = storage.write_atomically("a.csv.gz", write, partial_key="export-2")

    stored = (tmp_path / "a.csv.gz").read_bytes()
    assert gzip.decompress(stored) == CONTENT
    assert (facts.size, facts.sha256) == (len(stored), hashlib.sha256(stored).hexdigest())


def test_writer_failing_midway_leaves_nothing_at_the_final_path_or_in_partial(
    tmp_path: Path,
) -> None:
    storage = ExportStorage(str(tmp_path))
    partial_seen: list[Path] = []

    def write(out: BinaryIO) -> None:
        out.write(CONTENT)
        out.flush()
        partial_seen.extend(files_under(tmp_path / ".partial"))
        raise WriterCrashed("the lead store went away")

    with pytest.raises(WriterCrashed):
        storage.write_atomically("leads/broken.csv", write, partial_key="export-3")

    assert partial_seen, "the bytes went to a partial file while writing"
    assert not (tmp_path / "leads" / "broken.csv").exists()
    assert files_under(tmp_path) == []
    assert not (tmp_path / ".partial" / "export-3").exists()


def test_failed_rewrite_keeps_the_previous_complete_file(tmp_path: Path) -> None:
    storage = ExportStorage(str(tmp_path))
    storage.write_atomically("a.csv", lambda out: out.write(CONTENT), partial_key="first")

    def write(out: BinaryIO) -> None:
        out.write(b"half a file")
        raise WriterCrashed("killed")

    with pytest.raises(WriterCrashed):
        storage.write_atomically("a.csv", write, partial_key="second")

    assert (tmp_path / "a.csv").read_bytes() == CONTENT
    assert files_under(tmp_path) == [tmp_path / "a.csv"]


def test_discard_partial_removes_what_a_killed_writer_left(tmp_path: Path) -> None:
    storage = ExportStorage(str(tmp_path))
    leftover = tmp_path / ".partial" / "export-4" / "a.csv"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"half")

    storage.discard_partial("export-4")

    assert not leftover.parent.exists()


def test_finished_file_can_be_streamed_back_and_deleted(tmp_path: Path) -> None:
    storage = ExportStorage(str(tmp_path))
    _, facts = storage.write_atomically(
        "a.csv", lambda out: out.write(CONTENT), partial_key="export-5"
    )

    with storage.open_read(facts.uri) as stream:
        assert stream.read() == CONTENT
    storage.delete(facts.uri)

    assert not (tmp_path / "a.csv").exists()
    assert tmp_path.is_dir()  # a file right under the root leaves the root alone


def test_deleting_an_export_file_removes_its_emptied_folder_only(tmp_path: Path) -> None:
    root = tmp_path / "exports"
    storage = ExportStorage(str(root))
    _, gone = storage.write_atomically(
        "7/export-6/a.csv", lambda out: out.write(CONTENT), partial_key="export-6"
    )
    _, kept = storage.write_atomically(
        "7/export-7/a.csv", lambda out: out.write(CONTENT), partial_key="export-7"
    )
    (root / "7" / "export-7" / "notes.txt").write_text("not the export's file")

    storage.delete(gone.uri)
    storage.delete(kept.uri)
    storage.delete(gone.uri)  # a file already gone, and its folder too

    assert not (root / "7" / "export-6").exists()
    assert files_under(root) == [root / "7" / "export-7" / "notes.txt"]
    assert (root / "7").is_dir()
    assert root.is_dir()


def test_deleting_a_file_outside_the_root_leaves_its_folder(tmp_path: Path) -> None:
    storage = ExportStorage(str(tmp_path / "exports"))
    elsewhere = tmp_path / "elsewhere" / "export-8" / "a.csv"
    elsewhere.parent.mkdir(parents=True)
    elsewhere.write_bytes(CONTENT)

    storage.delete(elsewhere.as_uri())

    assert not elsewhere.exists()
    assert elsewhere.parent.is_dir()
