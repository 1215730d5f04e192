"""Export files on S3, through a real S3 API (moto's server on loopback): a final key
only ever holds a complete file, and a failed write leaves no object behind."""

from __future__ import annotations

import hashlib
from typing import Any, BinaryIO

import pytest

from export_pipeline.storage import ExportStorage

CONTENT = b"lead_id,first_name\r\n1,Ann\r\n2,Bob\r\n" * 200_000  # 6.6 MB: a multipart upload


class WriterCrashed(RuntimeError):
    pass


def objects_under(storage: ExportStorage) -> list[str]:
    return sorted(storage.fs.find(storage.root))


@pytest.fixture
def storage(s3_storage: tuple[str, dict[str, Any]]) -> ExportStorage:
    url, options = s3_storage
    return ExportStorage(url, options)


def test_a_written_file_appears_at_its_key_with_its_true_size_and_sha256(storage):
    _, facts = storage.write_atomically(
        "1/export-1/leads.csv", lambda out: out.write(CONTENT), partial_key="export-1"
    )

    final = f"{storage.root}/1/export-1/leads.csv"
    assert facts.uri == f"s3://{final}"
    assert (facts.size, facts.sha256) == (len(CONTENT), hashlib.sha256(CONTENT).hexdigest())
    assert objects_under(storage) == [final]
    with storage.open_read(facts.uri) as stream:
        assert stream.read() == CONTENT


def test_a_writer_failing_midway_leaves_no_object_at_the_key_or_among_partials(storage):
    seen_while_writing: list[str] = []

    def write(out: BinaryIO) -> None:
        out.write(CONTENT)
        out.flush()
        seen_while_writing.extend(objects_under(storage))
        raise WriterCrashed("the lead store went away")

    with pytest.raises(WriterCrashed):
        storage.write_atomically("1/export-2/leads.csv", write, partial_key="export-2")

    assert all(".partial/" in key for key in seen_while_writing)
    assert objects_under(storage) == []


def test_a_finished_file_is_deleted_and_a_file_already_gone_is_no_error(storage):
    _, facts = storage.write_atomically(
        "1/export-3/leads.csv", lambda out: out.write(b"a,b\r\n"), partial_key="export-3"
    )

    storage.delete(facts.uri)
    storage.delete(facts.uri)

    assert objects_under(storage) == []
