"""The DuckDB lead store shared between processes: one writer or many readers.

Another real Python process holds the store while the test opens it.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from export_pipeline.leads.store import LeadStore, LeadStoreBusy

HOLD_SECONDS = 2.0

HOLDER = """
import sys, time
from datetime import UTC, datetime
from pathlib import Path
from export_pipeline.leads.store import LeadStore

store = LeadStore(Path(sys.argv[1]))
mode, hold = sys.argv[2], float(sys.argv[3])
if mode == "writing":
    with store.writing() as connection:
        connection.execute(
            "INSERT INTO sources VALUES (99, 'held', 'held', ?)", [datetime.now(UTC)]
        )
        print("ready", flush=True)
        time.sleep(hold)
else:
    with store.reading() as connection:
        connection.execute("SELECT count(*) FROM leads").fetchall()
        print("ready", flush=True)
        time.sleep(hold)
"""


@contextmanager
def held_by_another_process(store: LeadStore, mode: str) -> Iterator[subprocess.Popen[str]]:
    """A child process that holds the store in `mode` for HOLD_SECONDS once it is ready."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(store.path), mode, str(HOLD_SECONDS)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline() if process.stdout else ""
        if line.strip() != "ready":
            _, errors = process.communicate(timeout=30)
            pytest.fail(f"the process holding the store failed to start: {errors}")
        yield process
        _, errors = process.communicate(timeout=30)
        assert process.returncode == 0, errors
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


@pytest.fixture
def existing_store(lead_store: LeadStore) -> LeadStore:
    with lead_store.writing():
        pass
    return lead_store


def test_reader_waits_for_a_writer_in_another_process_and_then_sees_its_work(
    existing_store: LeadStore,
) -> None:
    with held_by_another_process(existing_store, "writing"):
        started = time.monotonic()
        with existing_store.reading() as connection:
            waited = time.monotonic() - started
            names = connection.execute("SELECT name FROM sources").fetchall()

    assert names == [("held",)]
    assert waited > 0.5, "the reader must have waited for the writer"


def test_reader_gives_up_after_wait_seconds_naming_the_store(existing_store: LeadStore) -> None:
    impatient = LeadStore(existing_store.path, wait_seconds=0.5)

    with held_by_another_process(existing_store, "writing"):
        started = time.monotonic()
        with pytest.raises(LeadStoreBusy) as raised, impatient.reading():
            pass
        waited = time.monotonic() - started

    assert str(existing_store.path) in str(raised.value)
    assert waited < HOLD_SECONDS, "it gave up instead of waiting for the writer"


def test_two_processes_read_at_once(existing_store: LeadStore) -> None:
    impatient = LeadStore(existing_store.path, wait_seconds=0.5)

    with held_by_another_process(existing_store, "reading") as other_reader:
        started = time.monotonic()
        with impatient.reading() as connection:
            count = connection.execute("SELECT count(*) FROM leads").fetchone()
            other_still_reading = other_reader.poll() is None
        waited = time.monotonic() - started

    assert count == (0,)
    assert other_still_reading
    assert waited < HOLD_SECONDS


def test_writer_waits_for_a_reader_in_another_process(existing_store: LeadStore) -> None:
    with held_by_another_process(existing_store, "reading"):
        started = time.monotonic()
        with existing_store.writing() as connection:
            waited = time.monotonic() - started
            connection.execute(
                "INSERT INTO sources VALUES (1, 'mine', 'mine', ?)", [datetime.now(UTC)]
            )

    assert waited > 0.5, "the writer must have waited for the reader"
    with existing_store.reading() as connection:
        assert connection.execute("SELECT name FROM sources").fetchall() == [("mine",)]


def test_a_store_that_does_not_exist_yet_reads_as_empty_and_is_not_created(
    tmp_path: Path,
) -> None:
    store = LeadStore(tmp_path / "new" / "leads.duckdb", wait_seconds=0.5)

    with store.reading() as connection:
        counts = [
            connection.execute(f"SELECT count(*) FROM {table}").fetchone()  # noqa: S608
            for table in ("sources", "leads", "field_definitions", "lead_attributes")
        ]

    assert counts == [(0,)] * 4
    assert not store.path.exists()
