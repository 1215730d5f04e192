"""Controlling exports over HTTP: preview, idempotent requests, cancel, retry, progress."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import httpx
from sqlalchemy import update

from export_pipeline.status.models import Export, Role


def exports_url(harness) -> str:
    return f"/api/v1/sources/{harness.acme_id}/exports"


def test_preview_counts_what_an_export_would_hold_and_queues_nothing(client, harness):
    exporter = harness.person({harness.acme_id: Role.EXPORTER})
    before = harness.export_count()

    everything = client.post(exports_url(harness) + "/preview", headers=exporter.auth)
    won = client.post(
        exports_url(harness) + "/preview",
        json={"filters": {"statuses": ["won"]}},
        headers=exporter.auth,
    )
    bad = client.post(
        exports_url(harness) + "/preview",
        json={"filters": {"statuses": ["nope"]}},
        headers=exporter.auth,
    )

    assert everything.json() == {"lead_count": 3}
    assert won.json() == {"lead_count": 1}
    assert bad.status_code == 422
    assert harness.export_count() == before


def test_the_same_idempotency_key_and_body_give_back_the_first_export(client, harness):
    exporter = harness.person({harness.acme_id: Role.EXPORTER})
    headers = {**exporter.auth, "Idempotency-Key": "retry-me-1"}
    body = {"filters": {"statuses": ["new", "won"]}}
    before = harness.export_count()

    first = client.post(exports_url(harness), json=body, headers=headers)
    again = client.post(exports_url(harness), json=body, headers=headers)
    other = client.post(
        exports_url(harness), json={"filters": {"statuses": ["won"]}}, headers=headers
    )

    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert other.status_code == 409
    assert "Idempotency-Key" in other.json()["detail"]
    assert harness.export_count() == before + 1


def test_an_empty_idempotency_key_is_422_and_queues_nothing(client, harness):
    exporter = harness.person({harness.acme_id: Role.EXPORTER})
    before = harness.export_count()

    response = client.post(exports_url(harness), headers={**exporter.auth, "Idempotency-Key": ""})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["header", "idempotency-key"]
    assert harness.export_count() == before


def test_idempotency_keys_belong_to_their_user(client, harness):
    one = harness.person({harness.acme_id: Role.EXPORTER})
    two = harness.person({harness.acme_id: Role.EXPORTER})

    a = client.post(exports_url(harness), headers={**one.auth, "Idempotency-Key": "shared"})
    b = client.post(exports_url(harness), headers={**two.auth, "Idempotency-Key": "shared"})

    assert a.status_code == b.status_code == 202
    assert a.json()["id"] != b.json()["id"]


def test_a_pending_export_is_cancelled_by_its_requester_and_audited(client, harness):
    exporter = harness.person({harness.acme_id: Role.EXPORTER})
    export_id = harness.pending_export(exporter, harness.acme_id)

    cancelled = client.post(f"/api/v1/exports/{export_id}/cancel", headers=exporter.auth)
    again = client.post(f"/api/v1/exports/{export_id}/cancel", headers=exporter.auth)

    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert again.status_code == 200
    events = [(e.action, e.actor_id) for e in harness.audit_events(export_id)]
    assert ("cancelled", exporter.user_id) in events
    assert [action for action, _ in events].count("cancelled") == 1


def test_cancels_at_the_same_moment_all_answer_the_cancelled_export(client, harness):
    exporter = harness.person({harness.acme_id: Role.EXPORTER})
    export_ids = [harness.pending_export(exporter, harness.acme_id) for _ in range(3)]

    def cancel(export_id: str) -> httpx.Response:
        return client.post(f"/api/v1/exports/{export_id}/cancel", headers=exporter.auth)

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(cancel, [i for i in export_ids for _ in range(8)]))

    assert [(a.status_code, a.json()["status"]) for a in answers] == [(200, "cancelled")] * 24
    for export_id in export_ids:
        actions = [e.action for e in harness.audit_events(export_id)]
        assert actions.count("cancelled") == 1


def test_only_the_requester_or_an_admin_cancels(client, harness):
    requester = harness.person({harness.acme_id: Role.EXPORTER})
    colleague = harness.person({harness.acme_id: Role.EXPORTER})
    admin = harness.person({harness.acme_id: Role.ADMIN})
    export_id = harness.pending_export(requester, harness.acme_id)

    refused = client.post(f"/api/v1/exports/{export_id}/cancel", headers=colleague.auth)
    allowed = client.post(f"/api/v1/exports/{export_id}/cancel", headers=admin.auth)

    assert refused.status_code == 403
    assert allowed.status_code == 200
    assert allowed.json()["status"] == "cancelled"


def test_a_completed_export_cannot_be_cancelled(client, harness):
    exporter = harness.person({harness.acme_id: Role.EXPORTER})
    export_id, _ = harness.completed_export(exporter, harness.acme_id)

    response = client.post(f"/api/v1/exports/{export_id}/cancel", headers=exporter.auth)

    assert response.status_code == 409
    assert "completed" in response.json()["detail"]


def test_a_failed_export_is_retried_with_its_frozen_filters(client, harness):
    exporter = harness.person({harness.acme_id: Role.EXPORTER})
    first = client.post(
        exports_url(harness), json={"filters": {"statuses": ["won"]}}, headers=exporter.auth
    ).json()
    with harness.sessions() as session:
        session.execute(
            update(Export)
            .where(Export.id == first["id"])
            .values(status="failed", error="boom", completed_at=datetime.now(UTC))
        )
        session.commit()

    retried = client.post(f"/api/v1/exports/{first['id']}/retry", headers=exporter.auth)
    not_failed = client.post(f"/api/v1/exports/{retried.json()['id']}/retry", headers=exporter.auth)

    assert retried.status_code == 202
    again = retried.json()
    assert again["id"] != first["id"]
    assert again["status"] == "pending"
    assert again["applied_filters"] == first["applied_filters"]
    assert again["filters"] == first["filters"]
    assert not_failed.status_code == 409


def test_progress_follows_the_runs_figures(client, harness):
    exporter = harness.person({harness.acme_id: Role.EXPORTER})
    export_id = harness.pending_export(exporter, harness.acme_id)
    url = f"/api/v1/exports/{export_id}"
    assert client.get(url, headers=exporter.auth).json()["progress"] is None

    with harness.sessions() as session:
        session.execute(
            update(Export).where(Export.id == export_id).values(lead_total=8, leads_written=2)
        )
        session.commit()
    running = client.get(url, headers=exporter.auth).json()

    assert (running["progress"], running["lead_total"], running["leads_written"]) == (25, 8, 2)
