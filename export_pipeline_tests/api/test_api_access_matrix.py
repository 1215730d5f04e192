"""Every caller against every endpoint, export and link state, on two sources.

Callers: a viewer, an exporter and an admin of each source, a user whose only key was
revoked, a caller without a key, and a former exporter whose role was withdrawn after
a link was issued to them. Each cell of the matrix is one request and one asserted
status; refusals must carry nothing of the other source.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import update

from export_pipeline.status.models import ApiKey, DownloadLink, Role
from export_pipeline.status.users import hash_secret

OTHER_SOURCE_VALUES = ("Otto", "otto.other@example.com")
ACME_VALUES = ("Lovelace", "ada.lovelace@example.com", "zelda.quixote@example.net")


@dataclass(frozen=True)
class Caller:
    name: str
    headers: dict[str, str]
    roles: dict[str, Role]
    """Role per source label ("a" or "b")."""


@dataclass(frozen=True)
class SourceWorld:
    label: str
    source_id: int
    completed: str
    pending: str
    tokens: dict[str, str]
    """Download tokens of the completed export by link state."""


@pytest.fixture(scope="module")
def world(harness):
    sources = {"a": harness.acme_id, "b": harness.other_id}
    people = {
        (label, role): harness.person({source_id: role})
        for label, source_id in sources.items()
        for role in (Role.VIEWER, Role.EXPORTER, Role.ADMIN)
    }
    callers = [
        Caller(f"{role.value}-{label}", person.auth, {label: role})
        for (label, role), person in people.items()
    ]
    revoked = harness.person({harness.acme_id: Role.ADMIN})
    with harness.sessions() as session:
        session.execute(
            update(ApiKey)
            .where(ApiKey.key_hash == hash_secret(revoked.key))
            .values(revoked_at=datetime.now(UTC))
        )
        session.commit()
    callers.append(Caller("revoked-key", revoked.auth, {"a": Role.ADMIN}))
    callers.append(Caller("no-key", {}, {}))

    worlds = {}
    leavers = {}
    for label, source_id in sources.items():
        exporter = people[(label, Role.EXPORTER)]
        completed, _ = harness.completed_export(exporter, source_id)
        pending = harness.pending_export(exporter, source_id)
        leaver = harness.person({source_id: Role.EXPORTER})
        tokens = {
            "fresh": harness.link_to(exporter, completed),
            "expired": harness.link_to(exporter, completed),
            "revoked": harness.link_to(exporter, completed),
            "withdrawn": harness.link_to(leaver, completed),
        }
        with harness.sessions() as session:
            for state, change in (
                ("expired", {"expires_at": datetime.now(UTC) - timedelta(seconds=1)}),
                ("revoked", {"revoked_at": datetime.now(UTC)}),
            ):
                session.execute(
                    update(DownloadLink)
                    .where(DownloadLink.token_hash == hash_secret(tokens[state]))
                    .values(**change)
                )
            session.commit()
        harness.revoke_roles(leaver)
        leavers[label] = Caller(f"leaver-{label}", leaver.auth, {})
        worlds[label] = SourceWorld(label, source_id, completed, pending, tokens)
    return callers, worlds, leavers


REQUESTS = {
    "list-history": ("GET", "/sources/{source}/exports", Role.VIEWER, 200),
    "request-export": ("POST", "/sources/{source}/exports", Role.EXPORTER, 202),
    "read-export": ("GET", "/exports/{completed}", Role.VIEWER, 200),
    "issue-link": ("POST", "/exports/{completed}/links", Role.EXPORTER, 201),
    "issue-link-pending": ("POST", "/exports/{pending}/links", Role.EXPORTER, 409),
    "list-links": ("GET", "/exports/{completed}/links", Role.EXPORTER, 200),
    "members": ("GET", "/sources/{source}/members", Role.ADMIN, 200),
    "audit": ("GET", "/sources/{source}/audit", Role.ADMIN, 200),
    "stats": ("GET", "/sources/{source}/exports/stats", Role.ADMIN, 200),
    "download-fresh": ("GET", "/downloads/{fresh}", Role.EXPORTER, 200),
    "download-expired": ("GET", "/downloads/{expired}", Role.EXPORTER, 410),
    "download-revoked": ("GET", "/downloads/{revoked}", Role.EXPORTER, 410),
    "download-withdrawn": ("GET", "/downloads/{withdrawn}", Role.EXPORTER, 200),
    "head-fresh": ("HEAD", "/downloads/{fresh}", Role.EXPORTER, 200),
}


def expected_status(caller: Caller, target: str, request: str) -> int:
    """The matrix's rule: 401 without a valid key, 404 without a role on the target
    source, 403 for a role too low (except downloads, which hide the link with 404),
    otherwise the request's own answer."""
    _, _, needed, allowed = REQUESTS[request]
    if caller.name in ("no-key", "revoked-key"):
        return 401
    role = caller.roles.get(target)
    if role is None:
        return 404
    if role.allows(needed):
        return allowed
    is_download = request.startswith(("download", "head"))
    return 404 if is_download else 403


def send(client: httpx.Client, world: SourceWorld, caller: Caller, request: str):
    method, template, _, _ = REQUESTS[request]
    path = template.format(
        source=world.source_id, completed=world.completed, pending=world.pending, **world.tokens
    )
    kwargs = {"json": {}} if method == "POST" else {}
    return client.request(method, "/api/v1" + path, headers=caller.headers, **kwargs)


@pytest.mark.parametrize("request_name", list(REQUESTS))
@pytest.mark.parametrize("target", ["a", "b"])
def test_every_caller_gets_exactly_its_answer(client, world, target, request_name):
    callers, worlds, _ = world
    target_world = worlds[target]
    foreign_values = OTHER_SOURCE_VALUES if target == "b" else ACME_VALUES

    answers = {caller.name: send(client, target_world, caller, request_name) for caller in callers}

    assert {name: response.status_code for name, response in answers.items()} == {
        caller.name: expected_status(caller, target, request_name) for caller in callers
    }
    for caller in callers:
        response = answers[caller.name]
        if response.status_code >= 400 and caller.roles.get(target) is None:
            assert not any(value in response.text for value in foreign_values), caller.name
            assert target_world.completed not in response.text


@pytest.mark.parametrize("target", ["a", "b"])
def test_a_link_stops_for_its_holder_once_their_role_is_withdrawn(client, world, target):
    _, worlds, leavers = world

    response = send(client, worlds[target], leavers[target], "download-withdrawn")

    assert response.status_code == 404
    assert not any(value in response.text for value in ACME_VALUES + OTHER_SOURCE_VALUES)


@pytest.mark.parametrize(
    ("revoker", "issued_to_self", "answer"),
    [
        (Role.VIEWER, False, 403),
        (Role.EXPORTER, False, 403),
        (Role.EXPORTER, True, 204),
        (Role.ADMIN, False, 204),
        (None, False, 404),
    ],
)
def test_revoking_a_link_follows_the_roles(client, harness, revoker, issued_to_self, answer):
    owner = harness.person({harness.acme_id: Role.EXPORTER})
    export_id, _ = harness.completed_export(owner, harness.acme_id)
    caller = harness.person({harness.acme_id: revoker} if revoker else {})
    holder = caller if issued_to_self else owner
    link = client.post(f"/api/v1/exports/{export_id}/links", headers=holder.auth).json()

    response = client.delete(f"/api/v1/links/{link['id']}", headers=caller.auth)

    assert response.status_code == answer
    download = client.get(f"/api/v1/downloads/{link['token']}", headers=owner.auth)
    assert download.status_code == (410 if answer == 204 else 200)
