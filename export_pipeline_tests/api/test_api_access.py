"""Who may do what: API keys, roles, and 404 rather than 403 for foreign sources."""

from __future__ import annotations

import uuid

import pytest

from export_pipeline.status.models import Role


def test_health_answers_without_an_api_key(client):
    response = client.get("/api/v1/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "missing API key"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "missing API key"),
        ({"Authorization": "Bearer ep_not-a-key"}, "unknown or revoked"),
    ],
    ids=["no-header", "basic-scheme", "unknown-key"],
)
def test_requests_without_a_valid_key_get_401_with_a_bearer_challenge(
    client, harness, headers, message
):
    for method, path in [
        ("GET", "/api/v1/sources"),
        ("POST", f"/api/v1/sources/{harness.acme_id}/exports"),
        ("GET", f"/api/v1/exports/{uuid.uuid4()}"),
        ("GET", f"/api/v1/downloads/{uuid.uuid4()}"),
    ]:
        response = client.request(method, path, headers=headers)

        assert response.status_code == 401, path
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert message in response.json()["detail"]


def test_sources_lists_only_those_the_user_has_a_role_on(client, harness):
    person = harness.person({harness.acme_id: Role.VIEWER})

    response = client.get("/api/v1/sources", headers=person.auth)

    assert response.status_code == 200
    assert response.json() == {
        "items": [
            {"id": harness.acme_id, "name": "Acme Leads", "slug": "acme-leads", "role": "viewer"}
        ]
    }


def test_a_user_without_a_role_gets_404_for_the_source_its_exports_and_links(client, harness):
    owner = harness.person({harness.acme_id: Role.EXPORTER})
    export_id, _ = harness.completed_export(owner, harness.acme_id)
    link = client.post(f"/api/v1/exports/{export_id}/links", headers=owner.auth).json()
    outsider = harness.person({harness.other_id: Role.ADMIN})
    before = harness.export_count()

    answers = {
        "list": client.get(f"/api/v1/sources/{harness.acme_id}/exports", headers=outsider.auth),
        "create": client.post(f"/api/v1/sources/{harness.acme_id}/exports", headers=outsider.auth),
        "get": client.get(f"/api/v1/exports/{export_id}", headers=outsider.auth),
        "link": client.post(f"/api/v1/exports/{export_id}/links", headers=outsider.auth),
        "download": client.get(f"/api/v1/downloads/{link['token']}", headers=outsider.auth),
    }

    assert {name: r.status_code for name, r in answers.items()} == dict.fromkeys(answers, 404)
    assert answers["list"].json() == {"detail": "source not found"}
    assert answers["create"].json() == {"detail": "source not found"}
    assert answers["get"].json() == {"detail": "export not found"}
    assert answers["link"].json() == {"detail": "export not found"}
    assert answers["download"].json() == {"detail": "download link not found"}
    assert harness.export_count() == before


def test_a_source_that_does_not_exist_is_404_like_a_forbidden_one(client, harness):
    person = harness.person({harness.acme_id: Role.ADMIN})

    response = client.get("/api/v1/sources/999999/exports", headers=person.auth)

    assert response.status_code == 404
    assert response.json() == {"detail": "source not found"}


def test_a_viewer_can_read_but_gets_403_naming_the_role_for_exporter_actions(client, harness):
    exporter = harness.person({harness.acme_id: Role.EXPORTER})
    export_id, _ = harness.completed_export(exporter, harness.acme_id)
    viewer = harness.person({harness.acme_id: Role.VIEWER})
    before = harness.export_count()

    listed = client.get(f"/api/v1/sources/{harness.acme_id}/exports", headers=viewer.auth)
    read = client.get(f"/api/v1/exports/{export_id}", headers=viewer.auth)
    create = client.post(f"/api/v1/sources/{harness.acme_id}/exports", headers=viewer.auth)
    link = client.post(f"/api/v1/exports/{export_id}/links", headers=viewer.auth)

    assert listed.status_code == 200
    assert read.status_code == 200
    for refused in (create, link):
        assert refused.status_code == 403
        assert "exporter role" in refused.json()["detail"]
        assert "viewer" in refused.json()["detail"]
    assert harness.export_count() == before


def test_an_admin_may_do_what_an_exporter_may(client, harness):
    admin = harness.person({harness.acme_id: Role.ADMIN})

    response = client.post(f"/api/v1/sources/{harness.acme_id}/exports", headers=admin.auth)

    assert response.status_code == 202


def test_refused_attempts_are_audited_with_their_reason(client, harness):
    owner = harness.person({harness.acme_id: Role.EXPORTER})
    viewer = harness.person({harness.acme_id: Role.VIEWER})
    stranger = harness.person()
    export_id, _ = harness.completed_export(owner, harness.acme_id)

    assert client.get(f"/api/v1/exports/{export_id}", headers=stranger.auth).status_code == 404
    refused = client.post(f"/api/v1/exports/{export_id}/links", headers=viewer.auth)
    assert refused.status_code == 403

    denials = [
        (event.actor_id, event.details["reason"])
        for event in harness.audit_events(export_id)
        if event.action == "denied"
    ]
    assert (stranger.user_id, "no role on the source") in denials
    assert (viewer.user_id, "role viewer lacks exporter") in denials


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", "/api/v1/sources/{acme}/members/a%00b"),
        ("GET", "/api/v1/sources/{acme}/exports?requested_by=a%00b"),
        ("GET", "/api/v1/sources/{acme}/audit?actor=a%00b"),
    ],
)
def test_a_nul_byte_in_the_url_is_422(client, harness, method, path):
    admin = harness.person({harness.acme_id: Role.ADMIN})

    response = client.request(method, path.format(acme=harness.acme_id), headers=admin.auth)

    assert response.status_code == 422
    assert "NUL" in response.json()["detail"][0]["msg"]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/v1/sources/{acme}/exports", {"filters": {"search": "a\x00b"}}),
        ("POST", "/api/v1/sources/{acme}/exports/preview", {"filters": {"search": "\x00"}}),
        (
            "POST",
            "/api/v1/sources/{acme}/export-schedules",
            {"name": "\x00", "cron": "0 6 * * *", "time_zone": "UTC"},
        ),
        ("PUT", "/api/v1/sources/{acme}/webhook", {"url": "https://example.com/\x00"}),
        ("PATCH", "/api/v1/me", {"email": "a\x00@example.com"}),
        ("POST", "/api/v1/sources/{acme}/members", {"name": "x\\\x00", "role": "viewer"}),
    ],
)
def test_a_nul_character_in_a_json_body_is_422_and_changes_nothing(
    client, harness, method, path, body
):
    admin = harness.person({harness.acme_id: Role.ADMIN})
    exports_before = harness.export_count()
    members_path = f"/api/v1/sources/{harness.acme_id}/members"
    members_before = client.get(members_path, headers=admin.auth).json()

    response = client.request(
        method, path.format(acme=harness.acme_id), json=body, headers=admin.auth
    )

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body"]
    assert "NUL" in response.json()["detail"][0]["msg"]
    assert harness.export_count() == exports_before
    assert client.get(members_path, headers=admin.auth).json() == members_before


def test_an_escaped_backslash_before_u0000_is_not_a_nul(client, harness):
    exporter = harness.person({harness.acme_id: Role.EXPORTER})

    response = client.post(
        f"/api/v1/sources/{harness.acme_id}/exports/preview",
        json={"filters": {"search": "\\u0000"}},
        headers=exporter.auth,
    )

    assert response.status_code == 200
    assert response.json() == {"lead_count": 0}


@pytest.mark.parametrize("name", ["new\nline", "tab\there", "bell\x07", "rtl\u202eevil"])
def test_member_names_with_control_or_invisible_characters_are_422(client, harness, name):
    admin = harness.person({harness.acme_id: Role.ADMIN})

    response = client.post(
        f"/api/v1/sources/{harness.acme_id}/members",
        json={"name": name, "role": "viewer"},
        headers=admin.auth,
    )

    assert response.status_code == 422
    assert "control or invisible" in response.text


def test_refused_link_revocations_are_audited(client, harness):
    owner = harness.person({harness.acme_id: Role.EXPORTER})
    viewer = harness.person({harness.acme_id: Role.VIEWER})
    stranger = harness.person()
    export_id, _ = harness.completed_export(owner, harness.acme_id)
    link = client.post(f"/api/v1/exports/{export_id}/links", headers=owner.auth).json()

    assert client.delete(f"/api/v1/links/{link['id']}", headers=viewer.auth).status_code == 403
    assert client.delete(f"/api/v1/links/{link['id']}", headers=stranger.auth).status_code == 404

    reasons = {
        (event.actor_id, event.details["reason"])
        for event in harness.audit_events(export_id)
        if event.action == "denied"
    }
    assert (viewer.user_id, "revoke by role viewer") in reasons
    assert (stranger.user_id, "revoke without a role on the source") in reasons
