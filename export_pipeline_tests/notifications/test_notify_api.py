"""The notification parts of the HTTP API, against a real server: a source's webhook
(admins only), a request's own webhook in `notify`, and the caller's email address.
The last test follows both webhooks from the API through a Dagster run to a receiver
that checks the signatures with the secrets the API handed out."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy import select

from export_pipeline.definitions import build_definitions
from export_pipeline.defs.exports.sensors import export_request_sensor, export_status_sensor
from export_pipeline.defs.exports.tags import export_run_tags
from export_pipeline.defs.notifications.sensors import notification_sensor
from export_pipeline.status.models import ExportWebhook, Role, User
from export_pipeline_tests.notifications.conftest import PUBLIC_URL, Api, served_api
from export_pipeline_tests.notifications.notify_receivers import WebhookReceiver


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    with served_api(Path(tmp_path_factory.mktemp("notify_api"))) as served:
        yield served


def test_admins_set_read_rotate_and_remove_the_source_webhook(api: Api) -> None:
    admin = api.person("webhook-admin", Role.ADMIN)
    path = f"/sources/{api.source_id}/webhook"

    first = api.client.put(path, json={"url": "https://hooks.example.com/a"}, headers=admin)
    read = api.client.get(path, headers=admin)
    second = api.client.put(path, json={"url": "https://hooks.example.com/b"}, headers=admin)
    read_again = api.client.get(path, headers=admin)
    removed = api.client.delete(path, headers=admin)
    gone = api.client.get(path, headers=admin)
    removed_again = api.client.delete(path, headers=admin)

    assert first.status_code == 200
    assert first.json()["url"] == "https://hooks.example.com/a"
    assert first.json()["secret"].startswith("whsec_")
    assert len(first.json()["secret"]) == len("whsec_") + 43
    assert read.json() == {"url": "https://hooks.example.com/a"}
    assert second.json()["secret"] != first.json()["secret"]
    assert read_again.json() == {"url": "https://hooks.example.com/b"}
    assert first.json()["secret"] not in read.text
    assert (removed.status_code, removed.content) == (204, b"")
    assert gone.status_code == 404
    assert gone.json() == {"detail": "this source has no webhook; set one with PUT"}
    assert removed_again.status_code == 204


def test_only_admins_of_the_source_manage_its_webhook(api: Api) -> None:
    exporter = api.person("webhook-exporter", Role.EXPORTER)
    stranger = api.person("webhook-stranger", None)
    path = f"/sources/{api.source_id}/webhook"
    body = {"url": "https://hooks.example.com/x"}

    answers = {
        (who, method): api.client.request(method, path, json=body, headers=headers).status_code
        for who, headers in (("exporter", exporter), ("stranger", stranger), ("nobody", {}))
        for method in ("PUT", "GET", "DELETE")
    }

    assert answers == {
        **{("exporter", method): 403 for method in ("PUT", "GET", "DELETE")},
        **{("stranger", method): 404 for method in ("PUT", "GET", "DELETE")},
        **{("nobody", method): 401 for method in ("PUT", "GET", "DELETE")},
    }


@pytest.mark.parametrize(
    "url",
    [
        "ftp://hooks.example.com/x",
        "hooks.example.com/x",
        "https://",
        "https://user:password@hooks.example.com/x",
        "https://hooks.example.com/with space",
        "https://hooks.example.com:99999/x",
        "https://hooks.example.com/" + "x" * 1975,
        "",
    ],
    ids=["ftp", "no-scheme", "no-host", "credentials", "space", "port", "2001-chars", "empty"],
)
def test_a_webhook_url_must_be_http_or_https_and_short(api: Api, url: str) -> None:
    admin = api.person(f"checker-{abs(hash(url))}", Role.ADMIN)

    answer = api.client.put(f"/sources/{api.source_id}/webhook", json={"url": url}, headers=admin)

    assert answer.status_code == 422
    (problem,) = answer.json()["detail"]
    assert problem["loc"] == ["body", "url"]


def test_a_webhook_url_of_2000_characters_is_accepted(api: Api) -> None:
    admin = api.person("long-url-admin", Role.ADMIN)
    url = "http://hooks.example.com/" + "x" * (2000 - len("http://hooks.example.com/"))

    answer = api.client.put(f"/sources/{api.source_id}/webhook", json={"url": url}, headers=admin)

    assert answer.status_code == 200
    assert answer.json()["url"] == url


def test_an_export_request_names_its_own_webhook_and_gets_its_secret_once(api: Api) -> None:
    exporter = api.person("notify-requester", Role.EXPORTER)
    path = f"/sources/{api.source_id}/exports"
    body = {"notify": {"webhook_url": "https://hooks.example.com/mine"}}
    replayable = {**exporter, "Idempotency-Key": "notify-once"}

    created = api.client.post(path, json=body, headers=replayable)
    replayed = api.client.post(path, json=body, headers=replayable)
    plain = api.client.post(path, json={}, headers=exporter)
    read = api.client.get(f"/exports/{created.json()['id']}", headers=exporter)
    plain_read = api.client.get(f"/exports/{plain.json()['id']}", headers=exporter)
    listed = api.client.get(path, headers=exporter)

    assert created.status_code == 202
    notify = created.json()["notify"]
    assert notify["webhook_url"] == "https://hooks.example.com/mine"
    assert notify["secret"].startswith("whsec_")
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert replayed.json()["notify"] == notify
    assert plain.json() == plain_read.json()
    assert "notify" not in plain.json()
    assert "notify" not in read.json()
    assert notify["secret"] not in read.text
    assert notify["secret"] not in listed.text
    with api.sessions() as session:
        stored = session.get_one(ExportWebhook, created.json()["id"])
        assert (stored.url, stored.secret) == (notify["webhook_url"], notify["secret"])


def test_a_retry_tells_the_original_request_s_webhook_with_the_same_secret(api: Api) -> None:
    exporter = api.person("notify-retrier", Role.EXPORTER)
    body = {"notify": {"webhook_url": "https://hooks.example.com/retried"}}
    created = api.client.post(f"/sources/{api.source_id}/exports", json=body, headers=exporter)
    export_id = created.json()["id"]
    api.client.post(f"/exports/{export_id}/cancel", headers=exporter)
    plain = api.client.post(f"/sources/{api.source_id}/exports", json={}, headers=exporter)
    api.client.post(f"/exports/{plain.json()['id']}/cancel", headers=exporter)

    retried = api.client.post(f"/exports/{export_id}/retry", headers=exporter)
    plain_retried = api.client.post(f"/exports/{plain.json()['id']}/retry", headers=exporter)

    assert retried.status_code == 202
    assert "notify" not in retried.json()
    notify = created.json()["notify"]
    assert notify["secret"] not in retried.text
    with api.sessions() as session:
        carried = session.get_one(ExportWebhook, retried.json()["id"])
        assert (carried.url, carried.secret) == (notify["webhook_url"], notify["secret"])
        assert session.get(ExportWebhook, plain_retried.json()["id"]) is None


@pytest.mark.parametrize(
    ("notify", "loc"),
    [
        ({"webhook_url": "javascript:alert(1)"}, ["body", "notify", "webhook_url"]),
        ({"webhook_url": "https://x.example/" + "y" * 2000}, ["body", "notify", "webhook_url"]),
        ({}, ["body", "notify", "webhook_url"]),
        ({"webhook_url": "https://x.example/", "email": True}, ["body", "notify", "email"]),
        ("https://x.example/", ["body", "notify"]),
    ],
    ids=["scheme", "too-long", "missing", "unknown-member", "not-an-object"],
)
def test_a_bad_notify_member_is_refused_before_anything_is_queued(
    api: Api, notify: object, loc: list[str]
) -> None:
    exporter = api.person(f"bad-notify-{abs(hash(str(notify)))}", Role.EXPORTER)

    answer = api.client.post(
        f"/sources/{api.source_id}/exports", json={"notify": notify}, headers=exporter
    )

    assert answer.status_code == 422
    assert [problem["loc"] for problem in answer.json()["detail"]] == [loc]


def test_users_set_change_and_clear_their_email_address(api: Api) -> None:
    user = api.person("mail-reader", Role.VIEWER)

    set_answer = api.client.patch("/me", json={"email": "Ada.Reader@Example.COM"}, headers=user)
    untouched = api.client.patch("/me", json={}, headers=user)
    stored_set = _email_of(api, "mail-reader")
    cleared = api.client.patch("/me", json={"email": None}, headers=user)
    invalid = api.client.patch("/me", json={"email": "not an address"}, headers=user)
    unknown = api.client.patch("/me", json={"name": "someone else"}, headers=user)
    anonymous = api.client.patch("/me", json={"email": "x@example.com"})

    assert set_answer.status_code == 200
    assert set_answer.json() == {
        "name": "mail-reader",
        "roles": [{"source_id": api.source_id, "role": "viewer"}],
        "email": "Ada.Reader@example.com",
    }
    assert untouched.json()["email"] == "Ada.Reader@example.com"
    assert stored_set == "Ada.Reader@example.com"
    assert cleared.json()["email"] is None
    assert _email_of(api, "mail-reader") is None
    assert invalid.status_code == 422
    assert invalid.json()["detail"][0]["loc"] == ["body", "email"]
    assert "not a valid email address" in invalid.json()["detail"][0]["msg"]
    assert unknown.status_code == 422
    assert anonymous.status_code == 401


def _email_of(api: Api, name: str) -> str | None:
    with api.sessions() as session:
        return session.scalar(select(User.email).where(User.name == name))


def test_both_webhooks_set_through_the_api_receive_signed_notices(api: Api, tmp_path: Path) -> None:
    admin = api.person("e2e-admin", Role.ADMIN)
    with WebhookReceiver() as receiver, dg.instance_for_test() as instance:
        source_hook = api.client.put(
            f"/sources/{api.source_id}/webhook",
            json={"url": receiver.url("/source")},
            headers=admin,
        ).json()
        created = api.client.post(
            f"/sources/{api.source_id}/exports",
            json={"notify": {"webhook_url": receiver.url("/request")}},
            headers=admin,
        ).json()
        receiver.secrets |= {
            "/source": source_hook["secret"],
            "/request": created["notify"]["secret"],
        }
        definitions = build_definitions(api.settings)
        context = dg.build_sensor_context(instance=instance, resources=definitions.resources)
        requested = export_request_sensor(context)
        assert isinstance(requested, dg.SensorResult)
        instance.add_dynamic_partitions("exports", [created["id"]])
        definitions.resolve_job_def("lead_export_job").execute_in_process(
            partition_key=created["id"],
            instance=instance,
            tags=export_run_tags(created["id"], api.source_id, "e2e-admin"),
        )
        export_status_sensor(context)
        notification_sensor(context)
        api.client.delete(f"/sources/{api.source_id}/webhook", headers=admin)

    assert [hook.path for hook in receiver.received] == ["/source", "/request"]
    assert all(hook.verified for hook in receiver.received)
    for hook in receiver.received:
        body = json.loads(hook.body)
        assert body["event"] == "export.completed"
        assert body["export"]["id"] == created["id"]
        assert body["history_url"] == f"{PUBLIC_URL}/api/v1/exports/{created['id']}"
