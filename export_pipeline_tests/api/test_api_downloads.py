"""Download links: issuing them, streaming files through them, and refusing them."""

from __future__ import annotations

import gzip
import hashlib
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from export_pipeline.engine.options import ExportOptions
from export_pipeline.status.links import find_link
from export_pipeline.status.models import DownloadLink, Role


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
def test_an_unknown_or_malformed_token_is_404(client, exporter, token):
    response = client.get(f"/api/v1/downloads/{token}", headers=exporter.auth)

    assert response.status_code == 404
    assert response.json() == {"detail": "download link not found"}


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


def test_a_download_needs_an_api_key_too(client, exporter, completed):
    link = issue(client, exporter, completed[0]).json()

    response = client.get(download_path(link))

    assert response.status_code == 401
