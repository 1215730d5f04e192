"""Download links: issuing them, streaming files through them, and refusing them."""

from __future__ import annotations

import gc
import gzip
import hashlib
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from export_pipeline.engine.options import ExportOptions
from export_pipeline.status.exports import mark_completed
from export_pipeline.status.links import find_link
from export_pipeline.status.models import AuditEvent, DownloadLink, Export, Role


@pytest.fixture
def exporter(harness):
    return harness.person({harness.acme_id: Role.EXPORTER})


@pytest.fixture
def completed(harness, exporter):
    return harness.completed_export(exporter, harness.acme_id)


def issue(client, person, export_id, **body):
    return client.post(f"/api/v1/exports/{export_id}/links", json=body or None, headers=person.auth)


def download_path(link: dict) -> str:
    return f"/api/v1/downloads/{link['token']}"


def test_a_link_to_a_pending_export_is_409_naming_its_status(client, harness, exporter):
    export_id = harness.pending_export(exporter, harness.acme_id)

    response = issue(client, exporter, export_id)

    assert response.status_code == 409
    assert "pending" in response.json()["detail"]
    assert response.headers["Retry-After"] == "5"


def test_a_link_downloads_the_exact_file_with_its_headers(client, harness, exporter, completed):
    export_id, content = completed

    issued = issue(client, exporter, export_id)
    download = client.get(download_path(issued.json()), headers=exporter.auth)

    assert issued.status_code == 201
    link = issued.json()
    assert str(uuid.UUID(link["token"])) == link["token"]
    assert link["url"] == f"https://exports.example.test/api/v1/downloads/{link['token']}"
    expires_at = datetime.fromisoformat(link["expires_at"])
    expected_expiry = datetime.now(UTC) + timedelta(seconds=harness.settings.link_ttl_seconds)
    assert abs(expires_at - expected_expiry) < timedelta(minutes=1)

    assert download.status_code == 200
    assert download.content == content
    assert b"ada.lovelace@example.com" in content
    export = client.get(f"/api/v1/exports/{export_id}", headers=exporter.auth).json()
    assert export["download_available"] is True
    assert export["lead_count"] == 3
    file_name = export["file_name"]
    assert download.headers["Content-Disposition"] == (
        f"attachment; filename=\"{file_name}\"; filename*=UTF-8''{file_name}"
    )
    assert download.headers["Content-Length"] == str(len(content)) == str(export["file_size"])
    assert download.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert download.headers["ETag"] == f'"{hashlib.sha256(content).hexdigest()}"'
    assert download.headers["ETag"] == f'"{export["sha256"]}"'
    assert download.headers["Accept-Ranges"] == "bytes"
    actions = [event.action for event in harness.audit_events(export_id)]
    assert actions == ["requested", "completed", "link_issued", "downloaded"]


def test_a_gzip_export_downloads_as_application_gzip(client, harness, exporter):
    export_id, content = harness.completed_export(
        exporter, harness.acme_id, ExportOptions(compression="gzip")
    )

    link = issue(client, exporter, export_id).json()
    download = client.get(download_path(link), headers=exporter.auth)

    assert download.status_code == 200
    assert download.headers["Content-Type"] == "application/gzip"
    assert '.csv.gz"' in download.headers["Content-Disposition"]
    assert download.content == content
    assert gzip.decompress(download.content).startswith(b'"lead_id","first_name"')


def test_another_exporter_of_the_source_may_use_the_link(client, harness, exporter, completed):
    export_id, content = completed
    colleague = harness.person({harness.acme_id: Role.ADMIN})

    link = issue(client, exporter, export_id).json()
    download = client.get(download_path(link), headers=colleague.auth)

    assert download.status_code == 200
    assert download.content == content


@pytest.mark.parametrize("expires_in", [0, -5, 7 * 24 * 3600 + 1, "60", 1.5])
def test_an_expiry_out_of_range_is_422(client, exporter, completed, expires_in):
    response = issue(client, exporter, completed[0], expires_in=expires_in)

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "expires_in"]


def test_an_expiry_in_range_is_honoured(client, exporter, completed):
    before = datetime.now(UTC)

    response = issue(client, exporter, completed[0], expires_in=90)

    expires_at = datetime.fromisoformat(response.json()["expires_at"])
    assert response.status_code == 201
    assert before + timedelta(seconds=89) < expires_at < before + timedelta(seconds=95)


def _change_link(harness, token: str, **values) -> None:
    with harness.sessions() as session:
        link = find_link(session, token)
        assert link is not None
        session.execute(update(DownloadLink).where(DownloadLink.id == link.id).values(**values))
        session.commit()


def test_an_expired_link_is_410(client, harness, exporter, completed):
    link = issue(client, exporter, completed[0]).json()
    _change_link(harness, link["token"], expires_at=datetime.now(UTC) - timedelta(seconds=1))

    response = client.get(download_path(link), headers=exporter.auth)

    assert response.status_code == 410
    assert "expired" in response.json()["detail"]
    denied = harness.audit_events(completed[0])[-1]
    assert denied.action == "denied"
    assert denied.details["reason"] == "link expired"


def test_a_link_expires_by_itself(client, harness, exporter, completed):
    link = issue(client, exporter, completed[0], expires_in=1).json()
    first = client.get(download_path(link), headers=exporter.auth)
    expires_at = datetime.fromisoformat(link["expires_at"])
    time.sleep(max(0.0, (expires_at - datetime.now(UTC)).total_seconds()) + 0.05)

    second = client.get(download_path(link), headers=exporter.auth)

    assert first.status_code == 200
    assert second.status_code == 410


def test_a_revoked_link_is_410(client, harness, exporter, completed):
    link = issue(client, exporter, completed[0]).json()
    _change_link(harness, link["token"], revoked_at=datetime.now(UTC))

    response = client.get(download_path(link), headers=exporter.auth)

    assert response.status_code == 410
    assert "revoked" in response.json()["detail"]


@pytest.mark.parametrize("token", [str(uuid.uuid4()), "not-a-token", "1"])
def test_an_unknown_or_malformed_token_is_404_and_the_attempt_is_audited(
    client, harness, exporter, token
):
    response = client.get(f"/api/v1/downloads/{token}", headers=exporter.auth)

    assert response.status_code == 404
    assert response.json() == {"detail": "download link not found"}
    with harness.sessions() as session:
        denied = session.scalars(
            select(AuditEvent).where(AuditEvent.actor_id == exporter.user_id)
        ).all()
    assert [(e.action, e.source_id, e.details) for e in denied] == [
        ("denied", None, {"reason": "unknown download link"})
    ]
    assert token not in str(denied[0].details)


@pytest.mark.parametrize("now", [Role.VIEWER, None], ids=["downgraded", "revoked-role"])
def test_a_link_stops_working_when_the_permission_is_withdrawn(
    client, harness, exporter, completed, now
):
    export_id, _ = completed
    link = issue(client, exporter, export_id).json()
    if now is None:
        harness.revoke_roles(exporter)
    else:
        harness.grant(exporter, harness.acme_id, now)

    response = client.get(download_path(link), headers=exporter.auth)

    assert response.status_code == 404
    assert response.json() == {"detail": "download link not found"}
    denied = harness.audit_events(export_id)[-1]
    assert denied.action == "denied"
    assert denied.actor_id == exporter.user_id
    assert denied.details["reason"]
    assert link["token"] not in str(denied.details)


def test_a_link_to_an_export_that_is_not_ready_is_409_with_retry_after(client, harness, exporter):
    # The API never issues such a link; a link made directly in the table stands for
    # one whose export was re-queued.
    export_id = harness.pending_export(exporter, harness.acme_id)
    token = harness.link_to(exporter, export_id)

    response = client.get(f"/api/v1/downloads/{token}", headers=exporter.auth)

    assert response.status_code == 409
    assert response.headers["Retry-After"] == "5"
    assert "pending" in response.json()["detail"]
    denied = harness.audit_events(export_id)[-1]
    assert (denied.action, denied.details["reason"]) == ("denied", "export pending")


def test_a_download_needs_an_api_key_too(client, exporter, completed):
    link = issue(client, exporter, completed[0]).json()

    response = client.get(download_path(link))

    assert response.status_code == 401


ROWS_HEADER = b"lead_id,first_name,email,zip_code,status\r\n"
ROWS_PER_BLOCK = 20_000


def rows_export(harness, person, *, at_least: int) -> str:
    """A completed export whose file holds numbered CSV rows, at least `at_least` bytes,
    written block by block as a run writes it; returns the export id."""
    export_id = harness.pending_export(person, harness.acme_id)

    def write_rows(out) -> int:
        out.write(ROWS_HEADER)
        written, rows = len(ROWS_HEADER), 0
        while written < at_least:
            block = "".join(
                f"{n},Row {n},row{n}@rows.example,{n % 99991:05d},new\r\n"
                for n in range(rows, rows + ROWS_PER_BLOCK)
            ).encode()
            out.write(block)
            written += len(block)
            rows += ROWS_PER_BLOCK
        return rows

    with harness.sessions() as session:
        export = session.get_one(Export, export_id)
        rows, facts = harness.storage.write_atomically(
            export.file_name, write_rows, partial_key=export.id
        )
        assert mark_completed(session, export, lead_count=rows, facts=facts, at=datetime.now(UTC))
        session.commit()
    return export_id


def file_of(harness, export_id: str) -> tuple[str, int, str]:
    """The export's file URI, size and SHA-256, as the status table holds them."""
    with harness.sessions() as session:
        export = session.get_one(Export, export_id)
        assert export.file_uri is not None
        assert export.file_size is not None
        assert export.sha256 is not None
        return export.file_uri, export.file_size, export.sha256


@pytest.fixture
def sizeable(harness, exporter):
    """A 3.5 MiB export, so ranges cross the server's 1 MiB read chunks; returns the
    export id and the file's bytes."""
    export_id = rows_export(harness, exporter, at_least=3 * 1024 * 1024 + 512 * 1024)
    uri, _, _ = file_of(harness, export_id)
    with harness.storage.open_read(uri) as stored:
        content = stored.read()
    yield export_id, content
    harness.storage.delete(uri)


def ranged(client, person, link, value: str, **headers):
    return client.get(download_path(link), headers={**person.auth, "Range": value, **headers})


def test_an_interrupted_download_resumes_from_where_it_stopped(client, harness, exporter, sizeable):
    export_id, content = sizeable
    size = len(content)
    last_of_first = 1024 * 1024 + 12_345
    link = issue(client, exporter, export_id).json()

    first = ranged(client, exporter, link, f"bytes=0-{last_of_first}")
    rest = ranged(client, exporter, link, f"bytes={last_of_first + 1}-")

    assert (first.status_code, rest.status_code) == (206, 206)
    assert first.headers["Content-Range"] == f"bytes 0-{last_of_first}/{size}"
    assert first.headers["Content-Length"] == str(last_of_first + 1) == str(len(first.content))
    assert rest.headers["Content-Range"] == f"bytes {last_of_first + 1}-{size - 1}/{size}"
    assert rest.headers["Content-Length"] == str(size - last_of_first - 1)
    assert first.headers["ETag"] == rest.headers["ETag"]
    whole = first.content + rest.content
    assert whole == content
    export = client.get(f"/api/v1/exports/{export_id}", headers=exporter.auth).json()
    assert hashlib.sha256(whole).hexdigest() == export["sha256"]
    downloads = [e.details for e in harness.audit_events(export_id) if e.action == "downloaded"]
    assert [d["range"] for d in downloads] == [
        f"0-{last_of_first}",
        f"{last_of_first + 1}-{size - 1}",
    ]
    admin = harness.person({harness.acme_id: Role.ADMIN})
    stats = client.get(
        f"/api/v1/sources/{harness.acme_id}/exports/stats",
        params={"period": "day"},
        headers=admin.auth,
    ).json()["items"]
    assert [item["downloads"] for item in stats if item["user"] == exporter.name] == [1]


def test_a_range_inside_the_file_is_exactly_those_bytes(client, exporter, sizeable):
    export_id, content = sizeable
    link = issue(client, exporter, export_id).json()
    start, end = 1024 * 1024 - 3, 2 * 1024 * 1024 + 3

    response = ranged(client, exporter, link, f"bytes={start}-{end}")

    assert response.status_code == 206
    assert response.content == content[start : end + 1]
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in response.headers["Content-Disposition"]


def test_a_suffix_range_gives_the_last_bytes(client, exporter, completed):
    export_id, content = completed
    link = issue(client, exporter, export_id).json()

    response = ranged(client, exporter, link, "bytes=-100")

    assert response.status_code == 206
    assert response.content == content[-100:]
    size = len(content)
    assert response.headers["Content-Range"] == f"bytes {size - 100}-{size - 1}/{size}"
    assert response.headers["Content-Length"] == "100"


@pytest.mark.parametrize(
    "value",
    ["bytes=-999999999", "bytes=0-999999999999999999", "BYTES=0-"],
    ids=["suffix-longer-than-file", "end-beyond-file", "unit-in-capitals"],
)
def test_a_range_reaching_past_the_end_stops_at_the_last_byte(client, exporter, completed, value):
    export_id, content = completed
    link = issue(client, exporter, export_id).json()

    response = ranged(client, exporter, link, value)

    assert response.status_code == 206
    assert response.content == content
    assert response.headers["Content-Range"] == f"bytes 0-{len(content) - 1}/{len(content)}"


@pytest.mark.parametrize("first", ["size", "size+10"])
def test_a_range_starting_at_or_past_the_end_is_416_with_the_size(
    client, harness, exporter, completed, first
):
    export_id, content = completed
    size = len(content)
    start = size if first == "size" else size + 10
    link = issue(client, exporter, export_id).json()

    response = ranged(client, exporter, link, f"bytes={start}-")

    assert response.status_code == 416
    assert response.headers["Content-Range"] == f"bytes */{size}"
    assert str(size) in response.json()["detail"]
    assert "downloaded" not in [e.action for e in harness.audit_events(export_id)]


def test_an_empty_suffix_range_is_416(client, exporter, completed):
    export_id, content = completed
    link = issue(client, exporter, export_id).json()

    response = ranged(client, exporter, link, "bytes=-0")

    assert response.status_code == 416
    assert response.headers["Content-Range"] == f"bytes */{len(content)}"


@pytest.mark.parametrize(
    "value",
    [
        "bytes=0-9,20-29",
        "bytes=0-9, 500000-",
        "bytes=9-0",
        "bytes=abc",
        "bytes=",
        "bytes=--5",
        "bytes=1-2-3",
        "bytes=\u0661-\u0662",
        "items=0-9",
        "0-9",
        "bytes=" + "9" * 5000 + "-",
    ],
    ids=[
        "two-ranges",
        "two-ranges-one-unsatisfiable",
        "last-before-first",
        "letters",
        "empty",
        "double-dash",
        "three-numbers",
        "arabic-digits",
        "other-unit",
        "no-unit",
        "huge-number",
    ],
)
def test_several_ranges_or_a_malformed_range_get_the_whole_file(client, exporter, completed, value):
    export_id, content = completed
    link = issue(client, exporter, export_id).json()

    response = client.get(
        download_path(link), headers=[*exporter.auth.items(), ("Range", value.encode())]
    )

    assert response.status_code == 200
    assert response.content == content
    assert "Content-Range" not in response.headers
    assert response.headers["Accept-Ranges"] == "bytes"


def test_if_range_with_the_current_etag_honours_the_range(client, exporter, completed):
    export_id, content = completed
    link = issue(client, exporter, export_id).json()
    etag = f'"{hashlib.sha256(content).hexdigest()}"'

    response = ranged(client, exporter, link, "bytes=10-19", **{"If-Range": etag})

    assert response.status_code == 206
    assert response.content == content[10:20]


@pytest.mark.parametrize(
    "if_range",
    ["stale", "weak", "date"],
)
def test_if_range_with_anything_but_the_current_etag_gets_the_whole_file(
    client, exporter, completed, if_range
):
    export_id, content = completed
    link = issue(client, exporter, export_id).json()
    digest = hashlib.sha256(content).hexdigest()
    value = {
        "stale": f'"{hashlib.sha256(b"an older file").hexdigest()}"',
        "weak": f'W/"{digest}"',
        "date": "Wed, 21 Oct 2015 07:28:00 GMT",
    }[if_range]

    response = ranged(client, exporter, link, "bytes=10-19", **{"If-Range": value})

    assert response.status_code == 200
    assert response.content == content
    assert "Content-Range" not in response.headers


def test_a_range_request_is_checked_like_any_download(client, harness, exporter, completed):
    export_id, content = completed
    link = issue(client, exporter, export_id).json()
    revoked = issue(client, exporter, export_id).json()
    _change_link(harness, revoked["token"], revoked_at=datetime.now(UTC))
    viewer = harness.person({harness.acme_id: Role.VIEWER})

    refused = ranged(client, viewer, link, "bytes=0-9")
    gone = ranged(client, exporter, revoked, f"bytes={len(content) + 5}-")

    assert refused.status_code == 404
    assert refused.json() == {"detail": "download link not found"}
    # The link is checked before the range: a dead link is 410, not 416.
    assert gone.status_code == 410


def test_head_gives_the_download_headers_without_the_file(client, harness, exporter, completed):
    export_id, content = completed
    link = issue(client, exporter, export_id).json()
    download = client.get(download_path(link), headers=exporter.auth)

    head = client.head(download_path(link), headers=exporter.auth)
    ranged_head = client.head(download_path(link), headers={**exporter.auth, "Range": "bytes=0-9"})

    assert head.status_code == 200
    assert head.content == b""
    for name in (
        "Content-Length",
        "Content-Type",
        "Content-Disposition",
        "ETag",
        "Accept-Ranges",
        "Cache-Control",
    ):
        assert head.headers[name] == download.headers[name], name
    assert head.headers["Content-Length"] == str(len(content))
    assert head.headers["Accept-Ranges"] == "bytes"
    # RFC 9110 defines Range for GET only.
    assert ranged_head.status_code == 200
    assert ranged_head.headers["Content-Length"] == str(len(content))
    actions = [e.action for e in harness.audit_events(export_id)]
    assert actions.count("downloaded") == 1


def test_head_is_refused_like_a_download(client, harness, exporter, completed):
    export_id, _ = completed
    link = issue(client, exporter, export_id).json()
    revoked = issue(client, exporter, export_id).json()
    _change_link(harness, revoked["token"], revoked_at=datetime.now(UTC))
    stranger = harness.person({harness.other_id: Role.EXPORTER})

    assert client.head(download_path(link)).status_code == 401
    assert client.head(download_path(link), headers=stranger.auth).status_code == 404
    assert client.head(download_path(revoked), headers=exporter.auth).status_code == 410
    denied = [e.details["reason"] for e in harness.audit_events(export_id) if e.action == "denied"]
    assert denied == ["no role on the source", "link revoked"]


def rss_bytes() -> int:
    status_lines = Path("/proc/self/status").read_text().splitlines()
    (line,) = [entry for entry in status_lines if entry.startswith("VmRSS:")]
    return int(line.split()[1]) * 1024


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmRSS from /proc")
def test_a_large_file_streams_in_constant_memory(client, harness, exporter):
    # The server runs in this process, so this process's RSS includes its memory.
    export_id = rows_export(harness, exporter, at_least=100 * 1024 * 1024)
    uri, size, sha256 = file_of(harness, export_id)
    try:
        link = issue(client, exporter, export_id).json()
        gc.collect()
        baseline = peak = rss_bytes()
        digest, received = hashlib.sha256(), 0
        with client.stream("GET", download_path(link), headers=exporter.auth) as response:
            assert response.status_code == 200
            for chunk in response.iter_bytes():
                digest.update(chunk)
                received += len(chunk)
                peak = max(peak, rss_bytes())
    finally:
        harness.storage.delete(uri)

    assert size >= 100 * 1024 * 1024
    assert (received, digest.hexdigest()) == (size, sha256)
    assert peak - baseline < 64 * 1024 * 1024, f"RSS grew by {(peak - baseline) >> 20} MiB"


def test_a_link_whose_file_was_lost_is_410_and_the_attempt_is_audited(client, harness, exporter):
    export_id, _ = harness.completed_export(exporter, harness.acme_id)
    link = issue(client, exporter, export_id).json()
    with harness.sessions() as session:
        uri = session.get_one(Export, export_id).file_uri
    harness.storage.delete(uri)

    response = client.get(download_path(link), headers=exporter.auth)

    assert response.status_code == 410
    assert "no longer available" in response.json()["detail"]
    denied = harness.audit_events(export_id)[-1]
    assert (denied.action, denied.details["reason"]) == ("denied", "file missing from storage")
