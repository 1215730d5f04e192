"""Every caller against every operation of the API, on two sources.

A row is one operation of the OpenAPI document on the objects of one source ("a" is
Acme Leads, "b" is Other Co), in one state: a download row per link state, a row for
an export, link or schedule of the caller's own and one for someone else's. A cell is
a row and one caller: a viewer, an exporter and an admin of each source, an admin
whose only key was revoked, a caller without a key, and, per source, a former
exporter whose role was withdrawn after a link was issued to them.

Each cell sends one request and asserts its exact status; a request that changes
something must have changed it exactly when it succeeded; and no answer, whatever its
status, may hold anything of a source the caller has no role on: its name, its leads,
its exports' ids, file names and checksums, its schedules, its webhook, or the names,
keys and link tokens of its users. Cells that change state build their own objects,
so they pass in any order.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select, update

from export_pipeline.status.exports import mark_cancelled
from export_pipeline.status.links import issue_link
from export_pipeline.status.models import (
    ApiKey,
    DownloadLink,
    Export,
    ExportSchedule,
    ExportStatus,
    Role,
    SourceWebhook,
    User,
)
from export_pipeline.status.notifications import set_source_webhook
from export_pipeline.status.users import create_api_key, hash_secret, role_on_source
from export_pipeline_tests.api.conftest import LEAD_VALUES, Harness, Person

LABELS = ("a", "b")
OTHER_CO_LEADS = ("Otto", "otto.other@example.com")
SOURCE_MARKERS = {
    "a": ("Acme Leads", "acme-leads", *(v for v in LEAD_VALUES if v not in OTHER_CO_LEADS)),
    "b": ("Other Co", "other-co", *OTHER_CO_LEADS),
}
"""Each source's name, slug and lead values."""
WEBHOOK_HOST = "https://93.184.215.14"
"""A public address, so that setting a webhook needs no name lookup."""
LINK_STATES = ("fresh", "expired", "revoked", "withdrawn", "pending")
CALLERS = (
    "viewer-a",
    "exporter-a",
    "admin-a",
    "viewer-b",
    "exporter-b",
    "admin-b",
    "revoked-key",
    "no-key",
    "leaver-a",
    "leaver-b",
)


@dataclass(frozen=True)
class Caller:
    name: str
    person: Person | None
    roles: dict[str, Role]
    """The role the caller's key opens per source label; none for a key that fails."""
    key_works: bool

    @property
    def headers(self) -> dict[str, str]:
        return self.person.auth if self.person else {}


@dataclass
class World:
    """The two sources' users and the objects that cells only read, plus shortcuts to
    make and inspect the objects that cells change."""

    harness: Harness
    source_ids: dict[str, int]
    known: dict[str, set[str]] = field(default_factory=lambda: {label: set() for label in LABELS})
    """Names and keys of each source's users and its link tokens, for the leak check."""
    staff: dict[tuple[str, Role], Person] = field(default_factory=dict)
    completed: dict[str, str] = field(default_factory=dict)
    pending: dict[str, str] = field(default_factory=dict)
    tokens: dict[tuple[str, str], str] = field(default_factory=dict)
    """Download tokens by source label and link state."""
    callers: dict[str, Caller] = field(default_factory=dict)

    def member(self, label: str, role: Role) -> Person:
        person = self.harness.person({self.source_ids[label]: role})
        self.known[label] |= {person.name, person.key}
        return person

    def owner(self, label: str) -> Person:
        return self.staff[(label, Role.EXPORTER)]

    def link(self, person: Person, export_id: str) -> int:
        with self.harness.sessions() as session:
            export = session.get_one(Export, export_id)
            _, link = issue_link(
                session, export, person.user_id, ttl=timedelta(hours=1), now=datetime.now(UTC)
            )
            session.commit()
            return link.id

    def cancelled_export(self, label: str) -> str:
        export_id = self.harness.pending_export(self.owner(label), self.source_ids[label])
        with self.harness.sessions() as session:
            assert mark_cancelled(session, session.get_one(Export, export_id), at=datetime.now(UTC))
            session.commit()
        return export_id

    def extra_key(self, person: Person) -> int:
        with self.harness.sessions() as session:
            _, row = create_api_key(session, session.get_one(User, person.user_id))
            session.commit()
            return row.id

    def webhook(self, label: str) -> str:
        """Set the source's webhook to a new URL; returns the URL."""
        url = f"{WEBHOOK_HOST}/hooks/{label}-{uuid.uuid4().hex[:10]}"
        with self.harness.sessions() as session:
            set_source_webhook(
                session, self.source_ids[label], url, set_by=None, at=datetime.now(UTC)
            )
            session.commit()
        return url

    def read(self, column, *where) -> object:
        """One value of the status table, or None."""
        with self.harness.sessions() as session:
            return session.scalar(select(column).where(*where))

    def count(self, model, *where) -> int:
        with self.harness.sessions() as session:
            return session.scalar(select(func.count()).select_from(model).where(*where)) or 0

    def role(self, person: Person, label: str) -> Role | None:
        with self.harness.sessions() as session:
            return role_on_source(session, person.user_id, self.source_ids[label])

    def markers(self, label: str) -> set[str]:
        """Everything of the source that must not reach a caller without a role on it,
        read from the stores now so that objects made by any cell count."""
        source_id = self.source_ids[label]
        with self.harness.sessions() as session:
            exports = session.execute(
                select(Export.id, Export.file_name, Export.sha256).where(
                    Export.source_id == source_id
                )
            ).all()
            schedules = session.scalars(
                select(ExportSchedule.id).where(ExportSchedule.source_id == source_id)
            ).all()
            webhook = session.get(SourceWebhook, source_id)
        found = {value for row in exports for value in row if value}
        found |= set(schedules) | self.known[label] | set(SOURCE_MARKERS[label])
        if webhook is not None:
            found |= {webhook.url, webhook.secret}
        return found


def revoke_key(harness: Harness, person: Person) -> None:
    with harness.sessions() as session:
        session.execute(
            update(ApiKey)
            .where(ApiKey.key_hash == hash_secret(person.key))
            .values(revoked_at=datetime.now(UTC))
        )
        session.commit()


def change_link(harness: Harness, token: str, **values: object) -> None:
    with harness.sessions() as session:
        session.execute(
            update(DownloadLink)
            .where(DownloadLink.token_hash == hash_secret(token))
            .values(**values)
        )
        session.commit()


@pytest.fixture(scope="module")
def world(harness: Harness) -> World:
    world = World(harness, {"a": harness.acme_id, "b": harness.other_id})
    for label in LABELS:
        for role in Role:
            person = world.member(label, role)
            world.staff[(label, role)] = person
            world.callers[f"{role.value}-{label}"] = Caller(
                f"{role.value}-{label}", person, {label: role}, key_works=True
            )
    revoked = world.member("a", Role.ADMIN)
    revoke_key(harness, revoked)
    world.callers["revoked-key"] = Caller("revoked-key", revoked, {}, key_works=False)
    world.callers["no-key"] = Caller("no-key", None, {}, key_works=False)

    for label in LABELS:
        source_id, owner = world.source_ids[label], world.owner(label)
        world.completed[label], _ = harness.completed_export(owner, source_id)
        world.pending[label] = harness.pending_export(owner, source_id)
        leaver = world.member(label, Role.EXPORTER)
        for state in LINK_STATES:
            holder = leaver if state == "withdrawn" else owner
            export_id = world.pending[label] if state == "pending" else world.completed[label]
            world.tokens[(label, state)] = harness.link_to(holder, export_id)
        world.known[label] |= {world.tokens[(label, state)] for state in LINK_STATES}
        change_link(
            harness,
            world.tokens[(label, "expired")],
            expires_at=datetime.now(UTC) - timedelta(seconds=1),
        )
        change_link(harness, world.tokens[(label, "revoked")], revoked_at=datetime.now(UTC))
        harness.revoke_roles(leaver)
        world.callers[f"leaver-{label}"] = Caller(f"leaver-{label}", leaver, {}, key_works=True)
    return world


@dataclass(frozen=True)
class Cell:
    world: World
    client: httpx.Client
    caller: Caller
    label: str | None
    """The source whose objects the request names; None for the caller's own account."""

    @property
    def source_id(self) -> int:
        assert self.label is not None
        return self.world.source_ids[self.label]

    @property
    def other_label(self) -> str:
        return "b" if self.label == "a" else "a"

    def schedule(self, owner: Person) -> str:
        """A schedule on the cell's source made through the API by `owner`; its id."""
        response = self.client.post(
            f"/api/v1/sources/{self.source_id}/export-schedules",
            json=schedule_body(),
            headers=owner.auth,
        )
        assert response.status_code == 201, response.text
        return response.json()["id"]


@dataclass(frozen=True)
class Call:
    params: dict[str, object]
    body: object = None
    changed: Callable[[], bool] | None = None
    """Whether the request's change is in the stores now; None for a request that
    changes nothing."""


def schedule_body() -> dict[str, object]:
    return {"name": f"matrix {uuid.uuid4().hex[:10]}", "cron": "0 6 * * *", "time_zone": "UTC"}


def on_source(cell: Cell) -> Call:
    return Call({"source_id": cell.source_id})


def on_completed(cell: Cell) -> Call:
    return Call({"export_id": cell.world.completed[cell.label]})


def request_export(cell: Cell) -> Call:
    world, source_id = cell.world, cell.source_id
    before = world.count(Export, Export.source_id == source_id)
    return Call(
        {"source_id": source_id},
        {},
        lambda: world.count(Export, Export.source_id == source_id) > before,
    )


def preview(cell: Cell) -> Call:
    return Call({"source_id": cell.source_id}, {})


def cancel(requester: Callable[[Cell], Person]) -> Callable[[Cell], Call]:
    def call(cell: Cell) -> Call:
        export_id = cell.world.harness.pending_export(requester(cell), cell.source_id)
        return Call(
            {"export_id": export_id},
            changed=lambda: (
                cell.world.read(Export.status, Export.id == export_id) == ExportStatus.CANCELLED
            ),
        )

    return call


def retry(cell: Cell) -> Call:
    export_id = cell.world.cancelled_export(cell.label)
    return Call(
        {"export_id": export_id},
        changed=lambda: cell.world.count(Export, Export.retry_of == export_id) > 0,
    )


def issue_link_to(export: Callable[[Cell], str]) -> Callable[[Cell], Call]:
    def call(cell: Cell) -> Call:
        export_id = export(cell)
        before = cell.world.count(DownloadLink, DownloadLink.export_id == export_id)
        return Call(
            {"export_id": export_id},
            {},
            lambda: cell.world.count(DownloadLink, DownloadLink.export_id == export_id) > before,
        )

    return call


def revoke_link(holder: Callable[[Cell], Person]) -> Callable[[Cell], Call]:
    def call(cell: Cell) -> Call:
        link_id = cell.world.link(holder(cell), cell.world.completed[cell.label])
        return Call(
            {"link_id": link_id},
            changed=lambda: (
                cell.world.read(DownloadLink.revoked_at, DownloadLink.id == link_id) is not None
            ),
        )

    return call


def download(state: str) -> Callable[[Cell], Call]:
    return lambda cell: Call({"token": cell.world.tokens[(cell.label, state)]})


def create_member(cell: Cell) -> Call:
    name = f"new-{uuid.uuid4().hex[:10]}"
    cell.world.known[cell.label].add(name)
    return Call(
        {"source_id": cell.source_id},
        {"name": name, "role": "viewer"},
        lambda: cell.world.count(User, User.name == name) == 1,
    )


def change_member(cell: Cell) -> Call:
    member = cell.world.member(cell.label, Role.VIEWER)
    return Call(
        {"source_id": cell.source_id, "name": member.name},
        {"role": "exporter"},
        lambda: cell.world.role(member, cell.label) is Role.EXPORTER,
    )


def remove_member(cell: Cell) -> Call:
    member = cell.world.member(cell.label, Role.VIEWER)
    return Call(
        {"source_id": cell.source_id, "name": member.name},
        changed=lambda: cell.world.role(member, cell.label) is None,
    )


def member_keys(cell: Cell) -> Call:
    member = cell.world.member(cell.label, Role.VIEWER)
    return Call({"source_id": cell.source_id, "name": member.name})


def add_member_key(cell: Cell) -> Call:
    member = cell.world.member(cell.label, Role.VIEWER)
    return Call(
        {"source_id": cell.source_id, "name": member.name},
        changed=lambda: cell.world.count(ApiKey, ApiKey.user_id == member.user_id) > 1,
    )


def revoke_member_key(cell: Cell) -> Call:
    member = cell.world.member(cell.label, Role.VIEWER)
    key_id = cell.world.extra_key(member)
    return Call(
        {"source_id": cell.source_id, "name": member.name, "key_id": key_id},
        changed=lambda: cell.world.read(ApiKey.revoked_at, ApiKey.id == key_id) is not None,
    )


def audit(cell: Cell) -> Call:
    """The audit log, after a user of the other source was refused one of this
    source's exports, as any user may be."""
    prober = cell.world.member(cell.other_label, Role.ADMIN)
    refused = cell.client.get(
        f"/api/v1/exports/{cell.world.completed[cell.label]}", headers=prober.auth
    )
    assert refused.status_code == 404
    return Call({"source_id": cell.source_id})


def set_webhook(cell: Cell) -> Call:
    url = f"{WEBHOOK_HOST}/hooks/{cell.label}-{uuid.uuid4().hex[:10]}"
    return Call(
        {"source_id": cell.source_id},
        {"url": url},
        lambda: (
            cell.world.read(SourceWebhook.url, SourceWebhook.source_id == cell.source_id) == url
        ),
    )


def read_webhook(cell: Cell) -> Call:
    cell.world.webhook(cell.label)
    return Call({"source_id": cell.source_id})


def delete_webhook(cell: Cell) -> Call:
    cell.world.webhook(cell.label)
    return Call(
        {"source_id": cell.source_id},
        changed=lambda: (
            cell.world.count(SourceWebhook, SourceWebhook.source_id == cell.source_id) == 0
        ),
    )


def create_schedule(cell: Cell) -> Call:
    body = schedule_body()
    return Call(
        {"source_id": cell.source_id},
        body,
        lambda: cell.world.count(ExportSchedule, ExportSchedule.name == body["name"]) == 1,
    )


def list_schedules(cell: Cell) -> Call:
    cell.schedule(cell.world.owner(cell.label))
    return on_source(cell)


def read_schedule(cell: Cell) -> Call:
    return Call({"schedule_id": cell.schedule(cell.world.owner(cell.label))})


def pause_schedule(owner: Callable[[Cell], Person]) -> Callable[[Cell], Call]:
    def call(cell: Cell) -> Call:
        schedule_id = cell.schedule(owner(cell))
        return Call(
            {"schedule_id": schedule_id},
            {"enabled": False},
            lambda: (
                cell.world.read(ExportSchedule.enabled, ExportSchedule.id == schedule_id) is False
            ),
        )

    return call


def delete_schedule(owner: Callable[[Cell], Person]) -> Callable[[Cell], Call]:
    def call(cell: Cell) -> Call:
        schedule_id = cell.schedule(owner(cell))
        return Call(
            {"schedule_id": schedule_id},
            changed=lambda: cell.world.count(ExportSchedule, ExportSchedule.id == schedule_id) == 0,
        )

    return call


def revoke_key_of_a_member(cell: Cell) -> Call:
    """`DELETE /me/keys/{id}` naming the key of another user, one of this source."""
    key_id = cell.world.extra_key(cell.world.member(cell.label, Role.VIEWER))
    return Call(
        {"key_id": key_id},
        changed=lambda: cell.world.read(ApiKey.revoked_at, ApiKey.id == key_id) is not None,
    )


def nothing(cell: Cell) -> Call:
    return Call({})


def update_me(cell: Cell) -> Call:
    email = f"matrix-{uuid.uuid4().hex[:10]}@example.com"
    person = cell.caller.person
    if person is None:
        return Call({}, {"email": email})
    return Call(
        {},
        {"email": email},
        lambda: cell.world.read(User.email, User.id == person.user_id) == email,
    )


def create_my_key(cell: Cell) -> Call:
    person = cell.caller.person
    if person is None:
        return Call({})
    before = cell.world.count(ApiKey, ApiKey.user_id == person.user_id)
    return Call(
        {}, changed=lambda: cell.world.count(ApiKey, ApiKey.user_id == person.user_id) > before
    )


def revoke_my_key(cell: Cell) -> Call:
    """A second key of the caller's; of a user of no source when the caller's key fails."""
    holder = cell.caller.person if cell.caller.key_works else None
    key_id = cell.world.extra_key(holder or cell.world.harness.person())
    return Call(
        {"key_id": key_id},
        changed=lambda: cell.world.read(ApiKey.revoked_at, ApiKey.id == key_id) is not None,
    )


Answers = dict[Role | None, int]


def needs(role: Role, answer: int) -> Answers:
    """`answer` from `role` up, 403 below it, 404 without a role on the source."""
    return {None: 404, **{held: answer if held.allows(role) else 403 for held in Role}}


def downloads(answer: int) -> Answers:
    """As `needs(Role.EXPORTER, answer)`, but a viewer gets 404, as for an unknown link."""
    return {**needs(Role.EXPORTER, answer), Role.VIEWER: 404}


def owner_of(cell: Cell) -> Person:
    return cell.world.owner(cell.label)


def another_exporter(cell: Cell) -> Person:
    return cell.world.member(cell.label, Role.EXPORTER)


@dataclass(frozen=True)
class Row:
    name: str
    method: str
    path: str
    """The operation's path as the OpenAPI document has it."""
    answers: Answers | int
    """By the caller's role on the row's source, or one answer for every valid key."""
    call: Callable[[Cell], Call]
    label: str | None = None
    public: bool = False

    def expected(self, caller: Caller) -> int:
        if self.public:
            assert isinstance(self.answers, int)
            return self.answers
        if not caller.key_works:
            return 401
        if isinstance(self.answers, int):
            return self.answers
        return self.answers[caller.roles.get(self.label or "")]


SOURCE = "/api/v1/sources/{source_id}"
EXPORT = "/api/v1/exports/{export_id}"
MEMBER = SOURCE + "/members/{name}"
SCHEDULE = "/api/v1/export-schedules/{schedule_id}"
DOWNLOAD = "/api/v1/downloads/{token}"

ACCOUNT_ROWS = [
    Row("health", "GET", "/api/v1/health", 200, nothing, public=True),
    Row("sources", "GET", "/api/v1/sources", 200, nothing),
    Row("me", "GET", "/api/v1/me", 200, nothing),
    Row("update-me", "PATCH", "/api/v1/me", 200, update_me),
    Row("my-keys", "GET", "/api/v1/me/keys", 200, nothing),
    Row("create-my-key", "POST", "/api/v1/me/keys", 201, create_my_key),
    Row("revoke-my-key", "DELETE", "/api/v1/me/keys/{key_id}", 204, revoke_my_key),
]
SOURCE_ROWS = [
    Row("history", "GET", SOURCE + "/exports", needs(Role.VIEWER, 200), on_source),
    Row("request-export", "POST", SOURCE + "/exports", needs(Role.EXPORTER, 202), request_export),
    Row("preview", "POST", SOURCE + "/exports/preview", needs(Role.EXPORTER, 200), preview),
    Row("read-export", "GET", EXPORT, needs(Role.VIEWER, 200), on_completed),
    Row("cancel-own", "POST", EXPORT + "/cancel", needs(Role.EXPORTER, 200), cancel(owner_of)),
    Row(
        "cancel-another",
        "POST",
        EXPORT + "/cancel",
        needs(Role.ADMIN, 200),
        cancel(another_exporter),
    ),
    Row("retry", "POST", EXPORT + "/retry", needs(Role.EXPORTER, 202), retry),
    Row(
        "issue-link",
        "POST",
        EXPORT + "/links",
        needs(Role.EXPORTER, 201),
        issue_link_to(lambda cell: cell.world.completed[cell.label]),
    ),
    Row(
        "issue-link-pending",
        "POST",
        EXPORT + "/links",
        needs(Role.EXPORTER, 409),
        issue_link_to(lambda cell: cell.world.pending[cell.label]),
    ),
    Row("list-links", "GET", EXPORT + "/links", needs(Role.EXPORTER, 200), on_completed),
    Row(
        "revoke-own-link",
        "DELETE",
        "/api/v1/links/{link_id}",
        needs(Role.EXPORTER, 204),
        revoke_link(owner_of),
    ),
    Row(
        "revoke-another-link",
        "DELETE",
        "/api/v1/links/{link_id}",
        needs(Role.ADMIN, 204),
        revoke_link(another_exporter),
    ),
    *(
        Row(f"{method.lower()}-{state}", method, DOWNLOAD, downloads(answer), download(state))
        for method in ("GET", "HEAD")
        for state, answer in (
            ("fresh", 200),
            ("expired", 410),
            ("revoked", 410),
            ("withdrawn", 200),
            ("pending", 409),
        )
    ),
    Row("members", "GET", SOURCE + "/members", needs(Role.ADMIN, 200), on_source),
    Row("create-member", "POST", SOURCE + "/members", needs(Role.ADMIN, 201), create_member),
    Row("change-member", "PUT", MEMBER, needs(Role.ADMIN, 200), change_member),
    Row("remove-member", "DELETE", MEMBER, needs(Role.ADMIN, 204), remove_member),
    Row("member-keys", "GET", MEMBER + "/keys", needs(Role.ADMIN, 200), member_keys),
    Row("add-member-key", "POST", MEMBER + "/keys", needs(Role.ADMIN, 201), add_member_key),
    Row(
        "revoke-member-key",
        "DELETE",
        MEMBER + "/keys/{key_id}",
        needs(Role.ADMIN, 204),
        revoke_member_key,
    ),
    Row("audit", "GET", SOURCE + "/audit", needs(Role.ADMIN, 200), audit),
    Row("stats", "GET", SOURCE + "/exports/stats", needs(Role.ADMIN, 200), on_source),
    Row("set-webhook", "PUT", SOURCE + "/webhook", needs(Role.ADMIN, 200), set_webhook),
    Row("read-webhook", "GET", SOURCE + "/webhook", needs(Role.ADMIN, 200), read_webhook),
    Row("delete-webhook", "DELETE", SOURCE + "/webhook", needs(Role.ADMIN, 204), delete_webhook),
    Row(
        "create-schedule",
        "POST",
        SOURCE + "/export-schedules",
        needs(Role.EXPORTER, 201),
        create_schedule,
    ),
    Row(
        "list-schedules",
        "GET",
        SOURCE + "/export-schedules",
        needs(Role.VIEWER, 200),
        list_schedules,
    ),
    Row("read-schedule", "GET", SCHEDULE, needs(Role.VIEWER, 200), read_schedule),
    Row(
        "pause-own-schedule",
        "PATCH",
        SCHEDULE,
        needs(Role.EXPORTER, 200),
        pause_schedule(owner_of),
    ),
    Row(
        "pause-another-schedule",
        "PATCH",
        SCHEDULE,
        needs(Role.ADMIN, 200),
        pause_schedule(another_exporter),
    ),
    Row(
        "delete-own-schedule",
        "DELETE",
        SCHEDULE,
        needs(Role.EXPORTER, 204),
        delete_schedule(owner_of),
    ),
    Row(
        "delete-another-schedule",
        "DELETE",
        SCHEDULE,
        needs(Role.ADMIN, 204),
        delete_schedule(another_exporter),
    ),
    Row(
        "revoke-key-of-a-member",
        "DELETE",
        "/api/v1/me/keys/{key_id}",
        404,
        revoke_key_of_a_member,
    ),
]
ROWS = [
    *ACCOUNT_ROWS,
    *(
        Row(f"{row.name}-{label}", row.method, row.path, row.answers, row.call, label)
        for label in LABELS
        for row in SOURCE_ROWS
    ),
]

DEVIATIONS: dict[tuple[str, str], str] = {}
"""Cells where the product answers otherwise than it should, by row and caller."""


def cells() -> list[pytest.ParameterSet]:
    """Every row with every caller, the known deviations marked as strict xfails."""
    return [
        pytest.param(
            row,
            caller,
            id=f"{row.name}-by-{caller}",
            marks=[pytest.mark.xfail(strict=True, reason=reason)] if reason else [],
        )
        for row in ROWS
        for caller in CALLERS
        for reason in [DEVIATIONS.get((row.name, caller))]
    ]


def foreign_markers(world: World, caller: Caller) -> set[str]:
    """What belongs to the sources the caller has no role on and not also to one it
    has a role on (two sources may well hold the same file), nor to the caller."""
    foreign, own = set(), {caller.person.name} if caller.person else set()
    for label in LABELS:
        (own if label in caller.roles else foreign).update(world.markers(label))
    return foreign - own


def test_the_matrix_has_a_row_for_every_operation_and_none_for_an_unknown_one(client):
    response = client.get("/openapi.json")

    assert response.status_code == 200
    operations = {
        (method.upper(), path)
        for path, methods in response.json()["paths"].items()
        for method in methods
    }
    rows = {(row.method, row.path) for row in ROWS}
    assert sorted(operations - rows) == [], "operations without a row in the matrix"
    assert sorted(rows - operations) == [], "rows naming an operation the API does not have"


@pytest.mark.parametrize(("row", "caller_name"), cells())
def test_every_caller_gets_exactly_its_answer_and_nothing_of_a_source_it_has_no_role_on(
    client, world, row, caller_name
):
    caller = world.callers[caller_name]
    call = row.call(Cell(world, client, caller, row.label))

    response = client.request(
        row.method, row.path.format(**call.params), json=call.body, headers=caller.headers
    )

    assert response.status_code == row.expected(caller), response.text
    if call.changed is not None:
        assert call.changed() is response.is_success
    answer = response.text + "".join(f"\n{k}: {v}" for k, v in response.headers.items())
    leaked = sorted(marker for marker in foreign_markers(world, caller) if marker in answer)
    assert leaked == [], f"{caller.name} got these of a source it has no role on: {answer!r}"
