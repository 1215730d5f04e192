"""Retention in the status table, on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from export_pipeline.status.exports import mark_expired
from export_pipeline.status.links import LinkState, issue_link, link_state, revoke_link
from export_pipeline.status.models import DownloadLink, Export
from export_pipeline.status.retention import (
    expire_export,
    exports_past_retention,
    retention_cutoff,
    settled_partials,
)
from export_pipeline_tests.schedules.conftest import completed_export, pending_export

AS_OF = datetime(2026, 5, 1, 3, 30, tzinfo=UTC)


def test_only_completed_exports_expire(product):
    completed, _ = completed_export(product, completed_at=AS_OF - timedelta(days=40))
    pending = pending_export(product, requested_at=AS_OF - timedelta(days=40))

    with product.sessions() as session, session.begin():
        assert mark_expired(session, session.get_one(Export, completed), at=AS_OF)
        assert not mark_expired(session, session.get_one(Export, completed), at=AS_OF)
        assert not mark_expired(session, session.get_one(Export, pending), at=AS_OF)

    with product.sessions() as session:
        expired = session.get_one(Export, completed)
        assert expired.status == "expired"
        assert expired.updated_at == AS_OF
        assert expired.sha256 is not None  # the file's facts stay for the history
        assert session.get_one(Export, pending).status == "pending"
    assert [event.export_id for event in product.events("expired")] == [completed]


def test_expiring_revokes_every_link_once_and_audits_it(product):
    export_id, _ = completed_export(product, completed_at=AS_OF - timedelta(days=40), links=2)

    with product.sessions() as session, session.begin():
        assert expire_export(session, export_id, at=AS_OF, retention_days=30) == 2
    with product.sessions() as session, session.begin():
        assert expire_export(session, export_id, at=AS_OF, retention_days=30) is None
        assert expire_export(session, "no-such-export", at=AS_OF, retention_days=30) is None

    with product.sessions() as session:
        links = session.scalars(select(DownloadLink)).all()
    assert [link.revoked_at for link in links] == [AS_OF, AS_OF]
    (expired,) = product.events("expired")
    assert expired.actor_id is None
    assert expired.details == {
        "retention_days": 30,
        "completed_at": (AS_OF - timedelta(days=40)).isoformat(),
    }
    revoked = product.events("link_revoked")
    assert sorted(event.details["link_id"] for event in revoked) == sorted(
        link.id for link in links
    )
    assert {event.actor_id for event in revoked} == {None}


def test_expiring_leaves_links_already_expired_or_revoked_as_they_were(product):
    export_id, _ = completed_export(product, completed_at=AS_OF - timedelta(days=40))
    revoked_at = AS_OF - timedelta(days=2)
    with product.sessions() as session, session.begin():
        export = session.get_one(Export, export_id)
        ttl = timedelta(days=1)
        _, active = issue_link(session, export, product.owner_id, ttl=ttl, now=AS_OF)
        _, lapsed = issue_link(session, export, product.owner_id, ttl=ttl, now=AS_OF - ttl)
        _, revoked = issue_link(session, export, product.owner_id, ttl=ttl, now=revoked_at)
        revoke_link(session, revoked, actor_id=product.owner_id, at=revoked_at)
        link_ids = (active.id, lapsed.id, revoked.id)

    with product.sessions() as session, session.begin():
        assert expire_export(session, export_id, at=AS_OF, retention_days=30) == 1

    with product.sessions() as session:
        active, lapsed, revoked = (session.get_one(DownloadLink, i) for i in link_ids)
    assert active.revoked_at == AS_OF
    assert (lapsed.revoked_at, link_state(lapsed, AS_OF)) == (None, LinkState.EXPIRED)
    assert revoked.revoked_at == revoked_at
    by_retention = [e for e in product.events("link_revoked") if e.actor_id is None]
    assert [event.details["link_id"] for event in by_retention] == [link_ids[0]]
    assert {event.occurred_at for event in by_retention} == {AS_OF}


def test_exports_past_retention_come_oldest_first_in_batches(product):
    cutoff = retention_cutoff(AS_OF, 30)
    old = [
        completed_export(product, completed_at=cutoff - timedelta(days=days))[0]
        for days in (5, 1, 3)
    ]
    completed_export(product, completed_at=cutoff)  # exactly 30 days: not older
    completed_export(product, completed_at=cutoff + timedelta(days=1))

    with product.sessions() as session:
        first = exports_past_retention(session, completed_before=cutoff, limit=2)
        second = exports_past_retention(session, completed_before=cutoff, after=first[-1], limit=2)
        rest = exports_past_retention(session, completed_before=cutoff, after=second[-1], limit=2)

    assert [item.export_id for item in first + second] == [old[0], old[2], old[1]]
    assert rest == []
    assert all(item.file_uri for item in first + second)


def test_partials_of_exports_that_no_run_writes_are_settled(product):
    completed, _ = completed_export(product, completed_at=AS_OF)
    pending = pending_export(product, requested_at=AS_OF)

    with product.sessions() as session:
        settled = settled_partials(session, [completed, pending, "unknown-key", completed])

    assert settled == sorted([completed, "unknown-key"])
