"""What a user sees of retention through the real HTTP API: an old export turns
`expired`, its file is gone, its links answer 410 and the audit log says why; a
younger export downloads as before."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import update

from export_pipeline.defs.exports.resources import StatusTableResource
from export_pipeline.defs.retention.jobs import apply_retention
from export_pipeline.status.models import Export, Role


def link_to(api, person, export_id: str) -> str:
    response = api.post(f"/exports/{export_id}/links", headers=person.auth)
    assert response.status_code == 201, response.text
    return response.json()["token"]


def backdate(harness, export_id: str, days: int) -> Path:
    """Make the export look completed `days` ago; returns its file's path."""
    with harness.sessions() as session, session.begin():
        session.execute(
            update(Export)
            .where(Export.id == export_id)
            .values(completed_at=datetime.now(UTC) - timedelta(days=days))
        )
        uri = session.get_one(Export, export_id).file_uri
    return Path(uri.removeprefix("file://"))


def test_an_expired_export_answers_410_and_a_younger_one_still_downloads(api, schedule_harness):
    acme = schedule_harness.acme_id
    owner = schedule_harness.person({acme: Role.EXPORTER})
    admin = schedule_harness.person({acme: Role.ADMIN})
    old, _ = schedule_harness.completed_export(owner, acme)
    young, young_bytes = schedule_harness.completed_export(owner, acme)
    old_token = link_to(api, owner, old)
    young_token = link_to(api, owner, young)
    old_file = backdate(schedule_harness, old, days=31)
    backdate(schedule_harness, young, days=29)
    assert api.get(f"/downloads/{old_token}", headers=owner.auth).status_code == 200
    status_table = StatusTableResource(database_url=schedule_harness.settings.status_database_url)

    report = apply_retention(
        status_table, schedule_harness.storage, as_of=datetime.now(UTC), retention_days=30
    )

    assert old in report.expired
    assert young not in report.expired
    assert not old_file.exists()
    gone = api.get(f"/downloads/{old_token}", headers=owner.auth)
    assert gone.status_code == 410
    assert "revoked" in gone.json()["detail"]
    expired = api.get(f"/exports/{old}", headers=owner.auth).json()
    assert expired["status"] == "expired"
    assert expired["download_available"] is False
    assert api.post(f"/exports/{old}/links", headers=owner.auth).status_code == 409
    kept = api.get(f"/downloads/{young_token}", headers=owner.auth)
    assert kept.status_code == 200
    assert kept.content == young_bytes

    audit = api.get(
        f"/sources/{acme}/audit",
        params={"action": ["expired", "link_revoked"]},
        headers=admin.auth,
    ).json()["items"]
    about_old = {(event["action"], event["actor"]) for event in audit if event["export_id"] == old}
    assert about_old == {("expired", None), ("link_revoked", None)}
    assert not [event for event in audit if event["export_id"] == young]
