"""An export's links: listing them with their states, and revoking them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from export_pipeline.status.models import DownloadLink, Role


@pytest.fixture
def exporter(harness):
    return harness.person({harness.acme_id: Role.EXPORTER})


@pytest.fixture
def export_id(harness, exporter):
    return harness.completed_export(exporter, harness.acme_id)[0]


def issue(client, person, export_id) -> dict:
    response = client.post(f"/api/v1/exports/{export_id}/links", headers=person.auth)
    assert response.status_code == 201
    return response.json()


def list_links(client, person, export_id):
    return client.get(f"/api/v1/exports/{export_id}/links", headers=person.auth)


def revoke(client, person, link_id):
    return client.delete(f"/api/v1/links/{link_id}", headers=person.auth)


def download(client, person, link):
    return client.get(f"/api/v1/downloads/{link['token']}", headers=person.auth)


def expire(harness, link_id: int) -> None:
    with harness.sessions() as session:
        session.execute(
            update(DownloadLink)
            .where(DownloadLink.id == link_id)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        session.commit()


def test_the_list_shows_every_link_newest_first_with_its_state_and_no_token(
    client, harness, exporter, export_id
):
    admin = harness.person({harness.acme_id: Role.ADMIN})
    expired = issue(client, exporter, export_id)
    revoked = issue(client, exporter, export_id)
    fresh = issue(client, admin, export_id)
    expire(harness, expired["id"])
    assert revoke(client, exporter, revoked["id"]).status_code == 204

    response = list_links(client, exporter, export_id)

    assert response.status_code == 200
    items = response.json()["items"]
    assert [item["id"] for item in items] == [fresh["id"], revoked["id"], expired["id"]]
    assert [item["state"] for item in items] == ["active", "revoked", "expired"]
    assert [item["issued_to"] for item in items] == [admin.name, exporter.name, exporter.name]
    assert items[0]["expires_at"] == fresh["expires_at"]
    assert items[0]["revoked_at"] is None
    assert items[2]["revoked_at"] is None
    revoked_at = datetime.fromisoformat(items[1]["revoked_at"])
    assert revoked_at.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - revoked_at) < timedelta(minutes=1)
    issued_at = datetime.fromisoformat(items[0]["issued_at"])
    assert issued_at < datetime.fromisoformat(items[0]["expires_at"])
    for link in (expired, revoked, fresh):
        assert link["token"] not in response.text
        assert link["token"].replace("-", "") not in response.text
    assert all("token" not in item and "url" not in item for item in items)


def test_the_list_holds_only_that_exports_links(client, harness, exporter, export_id):
    other_export = harness.completed_export(exporter, harness.acme_id)[0]
    issue(client, exporter, other_export)

    response = list_links(client, exporter, export_id)

    assert response.status_code == 200
    assert response.json() == {"items": []}


def test_a_viewer_may_not_list_links(client, harness, exporter, export_id):
    issue(client, exporter, export_id)
    viewer = harness.person({harness.acme_id: Role.VIEWER})

    response = list_links(client, viewer, export_id)

    assert response.status_code == 403
    assert "exporter" in response.json()["detail"]


def test_without_a_role_on_the_source_the_list_is_404_like_an_unknown_export(
    client, harness, exporter, export_id
):
    issue(client, exporter, export_id)
    stranger = harness.person({harness.other_id: Role.ADMIN})

    response = list_links(client, stranger, export_id)
    unknown = list_links(client, stranger, "3f0c1a2b-0000-4000-8000-000000000000")

    assert response.status_code == unknown.status_code == 404
    assert response.json() == unknown.json() == {"detail": "export not found"}


def test_the_holder_revokes_a_link_and_it_stops_downloading_at_once(
    client, harness, exporter, export_id
):
    link = issue(client, exporter, export_id)
    assert download(client, exporter, link).status_code == 200

    response = revoke(client, exporter, link["id"])
    after = download(client, exporter, link)

    assert response.status_code == 204
    assert response.content == b""
    assert after.status_code == 410
    assert "revoked" in after.json()["detail"]
    revoked = next(e for e in harness.audit_events(export_id) if e.action == "link_revoked")
    assert (revoked.actor_id, revoked.source_id) == (exporter.user_id, harness.acme_id)
    assert revoked.details == {"link_id": link["id"]}


def test_an_admin_of_the_source_revokes_anyones_link(client, harness, exporter, export_id):
    admin = harness.person({harness.acme_id: Role.ADMIN})
    link = issue(client, exporter, export_id)

    response = revoke(client, admin, link["id"])

    assert response.status_code == 204
    assert download(client, exporter, link).status_code == 410
    (revoked,) = [e for e in harness.audit_events(export_id) if e.action == "link_revoked"]
    assert revoked.actor_id == admin.user_id


@pytest.mark.parametrize("role", [Role.EXPORTER, Role.VIEWER])
def test_another_user_with_a_role_may_not_revoke_the_link(
    client, harness, exporter, export_id, role
):
    colleague = harness.person({harness.acme_id: role})
    link = issue(client, exporter, export_id)

    response = revoke(client, colleague, link["id"])

    assert response.status_code == 403
    assert "admin" in response.json()["detail"]
    assert download(client, exporter, link).status_code == 200
    assert "link_revoked" not in [e.action for e in harness.audit_events(export_id)]


def test_a_holder_who_lost_the_exporter_role_may_not_revoke(client, harness, exporter, export_id):
    link = issue(client, exporter, export_id)
    harness.grant(exporter, harness.acme_id, Role.VIEWER)

    response = revoke(client, exporter, link["id"])

    assert response.status_code == 403


def test_without_a_role_on_the_source_revoking_is_404_like_an_unknown_link(
    client, harness, exporter, export_id
):
    stranger = harness.person({harness.other_id: Role.ADMIN})
    link = issue(client, exporter, export_id)

    response = revoke(client, stranger, link["id"])
    unknown = revoke(client, stranger, link["id"] + 1_000_000)

    assert response.status_code == unknown.status_code == 404
    assert response.json() == unknown.json() == {"detail": "download link not found"}
    assert download(client, exporter, link).status_code == 200


@pytest.mark.parametrize("link_id", [0, -1, 2**31, 2**63])
def test_ids_no_link_can_have_are_404(client, exporter, link_id):
    response = revoke(client, exporter, link_id)

    assert response.status_code == 404


def test_revoking_twice_answers_204_and_keeps_the_first_revocation(
    client, harness, exporter, export_id
):
    admin = harness.person({harness.acme_id: Role.ADMIN})
    link = issue(client, exporter, export_id)
    first = revoke(client, exporter, link["id"])
    revoked_at = list_links(client, exporter, export_id).json()["items"][0]["revoked_at"]

    second = revoke(client, admin, link["id"])

    assert first.status_code == second.status_code == 204
    item = list_links(client, exporter, export_id).json()["items"][0]
    assert item["revoked_at"] == revoked_at
    actions = [e.action for e in harness.audit_events(export_id)]
    assert actions.count("link_revoked") == 1


def test_revoking_needs_an_api_key(client, exporter, export_id):
    link = issue(client, exporter, export_id)

    response = client.delete(f"/api/v1/links/{link['id']}")

    assert response.status_code == 401
