"""The caller's own API keys over HTTP: shown once, stored hashed, revoked at once."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import select, text

from export_pipeline.status.audit import AuditAction
from export_pipeline.status.models import AuditEvent, Role
from export_pipeline.status.users import revoke_all_api_keys

ME_ENDPOINTS = [
    ("GET", "/api/v1/me"),
    ("GET", "/api/v1/me/keys"),
    ("POST", "/api/v1/me/keys"),
    ("DELETE", "/api/v1/me/keys/1"),
]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def revoked_key(harness) -> str:
    person = harness.person({harness.acme_id: Role.ADMIN})
    with harness.sessions() as session:
        revoke_all_api_keys(session, person.user_id, at=datetime.now(UTC))
        session.commit()
    return person.key


def key_events(harness, user_id: int) -> list[AuditEvent]:
    with harness.sessions() as session:
        return list(
            session.scalars(
                select(AuditEvent)
                .where(
                    AuditEvent.actor_id == user_id,
                    AuditEvent.action.in_([AuditAction.KEY_ISSUED, AuditAction.KEY_REVOKED]),
                )
                .order_by(AuditEvent.id)
            )
        )


def current_key_id(client, person) -> int:
    keys = client.get("/api/v1/me/keys", headers=person.auth).json()["items"]
    return next(key["id"] for key in keys if key["current"])


@pytest.mark.parametrize(("method", "path"), ME_ENDPOINTS)
def test_every_me_endpoint_needs_a_valid_unrevoked_key(client, harness, method, path):
    answers = {
        "none": client.request(method, path),
        "unknown": client.request(method, path, headers=bearer("ep_not-a-key")),
        "revoked": client.request(method, path, headers=bearer(revoked_key(harness))),
    }

    assert {name: r.status_code for name, r in answers.items()} == dict.fromkeys(answers, 401)
    assert "missing API key" in answers["none"].json()["detail"]
    assert "unknown or revoked" in answers["revoked"].json()["detail"]


def test_me_names_the_caller_and_the_role_on_each_source(client, harness):
    person = harness.person({harness.other_id: Role.ADMIN, harness.acme_id: Role.VIEWER})
    newcomer = harness.person()

    response = client.get("/api/v1/me", headers=person.auth)
    empty = client.get("/api/v1/me", headers=newcomer.auth)

    assert response.status_code == 200
    roles = sorted([(harness.acme_id, "viewer"), (harness.other_id, "admin")])
    assert response.json() == {
        "name": person.name,
        "roles": [{"source_id": source_id, "role": role} for source_id, role in roles],
    }
    assert empty.json() == {"name": newcomer.name, "roles": []}


def test_a_created_key_is_shown_once_and_only_its_hash_is_stored(client, harness):
    person = harness.person()

    created = client.post("/api/v1/me/keys", headers=person.auth)
    listed = client.get("/api/v1/me/keys", headers=person.auth)

    assert created.status_code == 201
    body = created.json()
    assert set(body) == {"id", "key", "prefix", "created_at"}
    key = body["key"]
    assert key.startswith("ep_")
    assert body["prefix"] == key[:9]
    assert datetime.fromisoformat(body["created_at"]).utcoffset() is not None
    assert client.get("/api/v1/me", headers=bearer(key)).json()["name"] == person.name
    digest = hashlib.sha256(key.encode()).hexdigest()
    assert key not in listed.text
    assert digest not in listed.text
    with harness.sessions() as session:
        row = session.execute(
            text("SELECT * FROM api_keys WHERE id = :id"), {"id": body["id"]}
        ).one()
    cells = [str(cell) for cell in row]
    assert digest in cells
    assert not any(key in cell for cell in cells)


def test_the_key_list_has_ids_prefixes_and_dates_and_marks_the_key_in_use(client, harness):
    person = harness.person()
    first_id = current_key_id(client, person)
    second = client.post("/api/v1/me/keys", headers=person.auth).json()
    client.delete(f"/api/v1/me/keys/{first_id}", headers=bearer(second["key"]))

    listed = client.get("/api/v1/me/keys", headers=bearer(second["key"]))

    assert listed.status_code == 200
    items = listed.json()["items"]
    assert [item["id"] for item in items] == [first_id, second["id"]]
    assert all(
        set(item) == {"id", "prefix", "created_at", "revoked_at", "current"} for item in items
    )
    assert items[0]["prefix"] == person.key[:9]
    assert items[0]["revoked_at"] is not None
    assert items[0]["current"] is False
    assert items[1] == {
        "id": second["id"],
        "prefix": second["prefix"],
        "created_at": second["created_at"],
        "revoked_at": None,
        "current": True,
    }


def test_a_revoked_key_gets_401_at_once_and_the_other_keys_keep_working(client, harness):
    person = harness.person({harness.acme_id: Role.EXPORTER})
    other = client.post("/api/v1/me/keys", headers=person.auth).json()
    first_id = current_key_id(client, person)
    assert client.get("/api/v1/sources", headers=person.auth).status_code == 200

    revoked = client.delete(f"/api/v1/me/keys/{first_id}", headers=bearer(other["key"]))

    assert revoked.status_code == 204
    assert revoked.content == b""
    assert client.get("/api/v1/sources", headers=person.auth).status_code == 401
    assert client.get("/api/v1/me", headers=person.auth).status_code == 401
    assert client.get("/api/v1/sources", headers=bearer(other["key"])).status_code == 200


def test_revoking_the_key_of_the_request_itself_works_and_the_next_request_is_401(client, harness):
    person = harness.person()
    key_id = current_key_id(client, person)

    revoked = client.delete(f"/api/v1/me/keys/{key_id}", headers=person.auth)
    after = client.get("/api/v1/me", headers=person.auth)

    assert revoked.status_code == 204
    assert after.status_code == 401
    assert "unknown or revoked" in after.json()["detail"]


def test_revoking_a_revoked_key_changes_nothing(client, harness):
    person = harness.person()
    spare = client.post("/api/v1/me/keys", headers=person.auth).json()
    first_id = current_key_id(client, person)

    once = client.delete(f"/api/v1/me/keys/{first_id}", headers=bearer(spare["key"]))
    revoked_at = client.get("/api/v1/me/keys", headers=bearer(spare["key"])).json()["items"][0]
    twice = client.delete(f"/api/v1/me/keys/{first_id}", headers=bearer(spare["key"]))
    again = client.get("/api/v1/me/keys", headers=bearer(spare["key"])).json()["items"][0]

    assert (once.status_code, twice.status_code) == (204, 204)
    assert again == revoked_at
    revocations = [e for e in key_events(harness, person.user_id) if e.action == "key_revoked"]
    assert len(revocations) == 1


@pytest.mark.parametrize("key_id", ["999999999", "0", "-1", str(2**40)])
def test_an_unknown_key_id_is_404(client, harness, key_id):
    person = harness.person()

    response = client.delete(f"/api/v1/me/keys/{key_id}", headers=person.auth)

    assert response.status_code == 404
    assert response.json() == {"detail": "API key not found"}


def test_another_users_key_is_404_like_an_unknown_one_and_stays_active(client, harness):
    owner, intruder = harness.person(), harness.person({harness.acme_id: Role.ADMIN})
    owner_key_id = current_key_id(client, owner)

    response = client.delete(f"/api/v1/me/keys/{owner_key_id}", headers=intruder.auth)

    assert response.status_code == 404
    assert response.json() == {"detail": "API key not found"}
    assert client.get("/api/v1/me", headers=owner.auth).status_code == 200


def test_a_malformed_key_id_is_422(client, harness):
    person = harness.person()

    response = client.delete("/api/v1/me/keys/first", headers=person.auth)

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["path", "key_id"]


def test_issuing_and_revoking_keys_is_audited_by_id_and_prefix_never_the_key(client, harness):
    person = harness.person()
    created = client.post("/api/v1/me/keys", headers=person.auth).json()
    client.delete(f"/api/v1/me/keys/{created['id']}", headers=person.auth)

    events = key_events(harness, person.user_id)

    expected_details = {
        "user": person.name,
        "user_id": person.user_id,
        "key_id": created["id"],
        "prefix": created["prefix"],
    }
    assert [(e.action, e.source_id, e.details) for e in events] == [
        ("key_issued", None, expected_details),
        ("key_revoked", None, expected_details),
    ]
    recorded = json.dumps([e.details for e in events])
    assert created["key"] not in recorded
    assert hashlib.sha256(created["key"].encode()).hexdigest() not in recorded
