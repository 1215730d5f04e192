"""Retrying a failed or cancelled export over HTTP, on SQLite and PostgreSQL: a retry
under way refuses a second one, and an `Idempotency-Key` gives back the first, however
many identical requests arrive at once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import func, select, update

from export_pipeline.api.main import create_app
from export_pipeline.status.database import make_engine, make_session_factory, migrate
from export_pipeline.status.models import Export, Role
from export_pipeline_tests.api.conftest import ApiServer, Harness, Person, api_settings

PARALLEL = 8


@dataclass(frozen=True)
class RetryApi:
    harness: Harness
    base_url: str

    def settle(self, export_id: str, status: str) -> None:
        """Move an export to `status` as its run or a cancel would."""
        with self.harness.sessions() as session:
            session.execute(
                update(Export)
                .where(Export.id == export_id)
                .values(status=status, completed_at=datetime.now(UTC))
            )
            session.commit()

    def failed_export(self, person: Person, status: str = "failed") -> str:
        export_id = self.harness.pending_export(person, self.harness.acme_id)
        self.settle(export_id, status)
        return export_id

    def retries_of(self, export_id: str) -> list[str]:
        with self.harness.sessions() as session:
            return list(session.scalars(select(Export.id).where(Export.retry_of == export_id)))

    def export_count(self) -> int:
        with self.harness.sessions() as session:
            return session.scalar(select(func.count()).select_from(Export)) or 0

    def retry(self, export_id: str, headers: dict[str, str]) -> httpx.Response:
        with httpx.Client(base_url=self.base_url, timeout=30) as http:
            return http.post(f"/api/v1/exports/{export_id}/retry", headers=headers)

    def retry_at_once(self, export_id: str, headers: list[dict[str, str]]) -> list[httpx.Response]:
        """The retries, each from its own thread and connection, released together."""
        start = threading.Barrier(len(headers))

        def send(one: dict[str, str]) -> httpx.Response:
            start.wait()
            return self.retry(export_id, one)

        with ThreadPoolExecutor(len(headers)) as pool:
            return list(pool.map(send, headers))


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def retry_api(request: pytest.FixtureRequest, harness: Harness) -> Iterator[RetryApi]:
    """The API over the session's stores, its status table on SQLite or PostgreSQL."""
    if request.param == "sqlite":
        server: ApiServer = request.getfixturevalue("server")
        yield RetryApi(harness, server.base_url)
        return
    settings = api_settings(
        harness.settings.home, database_url=request.getfixturevalue("postgres_url")
    )
    engine = make_engine(settings.status_database_url)
    migrate(engine)
    on_postgres = replace(harness, settings=settings, sessions=make_session_factory(engine))
    try:
        with ApiServer(create_app(settings)) as server:
            yield RetryApi(on_postgres, server.base_url)
    finally:
        engine.dispose()


def test_a_second_retry_while_the_first_is_under_way_is_409_naming_it(retry_api):
    exporter = retry_api.harness.person({retry_api.harness.acme_id: Role.EXPORTER})
    original = retry_api.failed_export(exporter, status="cancelled")

    first = retry_api.retry(original, exporter.auth)
    second = retry_api.retry(original, exporter.auth)
    with_a_key = retry_api.retry(original, {**exporter.auth, "Idempotency-Key": "later"})
    retry_api.settle(first.json()["id"], "processing")
    while_running = retry_api.retry(original, exporter.auth)
    retry_api.settle(first.json()["id"], "failed")
    after_it_failed = retry_api.retry(original, exporter.auth)

    assert first.status_code == 202
    for refused in (second, with_a_key, while_running):
        assert refused.status_code == 409
        assert "already under way" in refused.json()["detail"]
        assert first.json()["id"] in refused.json()["detail"]
    assert after_it_failed.status_code == 202
    assert sorted(retry_api.retries_of(original)) == sorted(
        [first.json()["id"], after_it_failed.json()["id"]]
    )


def test_the_same_idempotency_key_gives_back_the_first_retry(retry_api):
    harness = retry_api.harness
    exporter = harness.person({harness.acme_id: Role.EXPORTER})
    original = retry_api.failed_export(exporter)
    other = retry_api.failed_export(exporter)
    headers = {**exporter.auth, "Idempotency-Key": "retry-once"}

    first = retry_api.retry(original, headers)
    retry_api.settle(first.json()["id"], "failed")
    again = retry_api.retry(original, headers)
    for_another_export = retry_api.retry(other, headers)
    with httpx.Client(base_url=retry_api.base_url, timeout=10) as http:
        for_an_export_request = http.post(
            f"/api/v1/sources/{harness.acme_id}/exports", headers=headers
        )

    assert first.status_code == again.status_code == 202
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["Location"] == first.headers["Location"]
    for refused in (for_another_export, for_an_export_request):
        assert refused.status_code == 409
        assert "Idempotency-Key" in refused.json()["detail"]
    assert retry_api.retries_of(original) == [first.json()["id"]]
    assert retry_api.retries_of(other) == []


def test_parallel_retries_without_a_key_make_one_export(retry_api):
    exporter = retry_api.harness.person({retry_api.harness.acme_id: Role.EXPORTER})
    original = retry_api.failed_export(exporter)
    before = retry_api.export_count()

    responses = retry_api.retry_at_once(original, [exporter.auth] * PARALLEL)

    (made,) = retry_api.retries_of(original)
    assert sorted(response.status_code for response in responses) == [202] + [409] * (PARALLEL - 1)
    for response in responses:
        if response.status_code == 202:
            assert response.json()["id"] == made
        else:
            assert made in response.json()["detail"]
    assert retry_api.export_count() == before + 1


@pytest.mark.parametrize("same_key", [True, False], ids=["same key", "a key each"])
def test_parallel_retries_with_keys_make_one_export(retry_api, same_key):
    exporter = retry_api.harness.person({retry_api.harness.acme_id: Role.EXPORTER})
    original = retry_api.failed_export(exporter)
    headers = [
        {**exporter.auth, "Idempotency-Key": "double-click" if same_key else f"click-{i}"}
        for i in range(PARALLEL)
    ]

    responses = retry_api.retry_at_once(original, headers)

    (made,) = retry_api.retries_of(original)
    accepted = [response for response in responses if response.status_code == 202]
    refused = [response for response in responses if response.status_code == 409]
    if same_key:
        assert len(accepted) == PARALLEL
        assert {response.json()["id"] for response in accepted} == {made}
        replayed = [response for response in accepted if "Idempotent-Replayed" in response.headers]
        assert len(replayed) == PARALLEL - 1
    else:
        assert [response.json()["id"] for response in accepted] == [made]
        assert len(refused) == PARALLEL - 1
        assert all(made in response.json()["detail"] for response in refused)
