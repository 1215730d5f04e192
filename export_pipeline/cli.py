"""The `export-pipeline` command: import leads, manage users, seed a demo and serve.

Mistakes a user can make (a bad file, an unknown source, a taken name, a lead store
held by another process) end with `error: <what was wrong>` on stderr and exit code 2,
never with a traceback. Commands that print an API key print the key alone on stdout
and everything else on stderr, so a script can capture it with `$(...)`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, BinaryIO

import click
import pydantic
from pydantic_settings import SettingsError
from sqlalchemy.orm import Session, sessionmaker
from tqdm import tqdm

from export_pipeline.leads.catalog import Source, get_source, list_sources
from export_pipeline.leads.demo import DEMO_SOURCE_NAME, DEMO_USER_NAME, seed_demo_leads
from export_pipeline.leads.importer import ColumnMapping, LeadImportError, import_leads
from export_pipeline.leads.store import LeadStore, LeadStoreBusy
from export_pipeline.leads.writer import AppendResult
from export_pipeline.serve import ServeError, run_services
from export_pipeline.settings import Settings
from export_pipeline.status import users
from export_pipeline.status.audit import AuditAction
from export_pipeline.status.database import make_engine, make_session_factory, migrate
from export_pipeline.status.models import ApiKey, Role, User
from export_pipeline.status.notifications import normalize_email, set_user_email


class UserError(click.ClickException):
    """A mistake of the user's, reported as `error: ...` with exit code 2."""

    exit_code = 2

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"error: {self.format_message()}", file=file or sys.stderr)


@contextmanager
def reported_as_user_errors() -> Iterator[None]:
    """Turn the errors a user's input or a busy lead store cause into `UserError`.

    The error is raised outside the `except` block so that it does not keep the failed
    call's frames alive as its context: those may hold Arrow tables, and Arrow objects
    left for the interpreter's final teardown can abort the process at exit.
    """
    try:
        yield
    except (LeadImportError, LeadStoreBusy, ValueError) as error:
        message = str(error)
    else:
        return
    raise UserError(message)


class Context:
    """What every command needs: the settings and, on demand, the two stores."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._sessions: sessionmaker[Session] | None = None

    @property
    def lead_store(self) -> LeadStore:
        return LeadStore(
            self.settings.lead_store_path, wait_seconds=self.settings.lead_store_wait_seconds
        )

    def status_sessions(self) -> sessionmaker[Session]:
        """Sessions on the status table, its schema brought up to date on first use."""
        if self._sessions is None:
            engine = make_engine(self.settings.status_database_url)
            migrate(engine)
            self._sessions = make_session_factory(engine)
        return self._sessions


pass_context = click.make_pass_decorator(Context)


@click.group()
@click.version_option(package_name="export-pipeline")
@click.pass_context
def main(click_context: click.Context) -> None:
    """Background CSV exports of lead data.

    Every embedded store lives under EXPORT_PIPELINE_HOME (default ./.export_pipeline).
    """
    try:
        settings = Settings()
    except SettingsError as error:
        raise UserError(f"invalid settings: {error}") from None
    except pydantic.ValidationError as error:
        problems = "; ".join(
            f"EXPORT_PIPELINE_{'_'.join(str(part) for part in e['loc']).upper()}: {e['msg']}"
            for e in error.errors()
        )
        raise UserError(f"invalid settings: {problems}") from None
    click_context.obj = Context(settings)


@main.group()
def leads() -> None:
    """Load leads into the lead store."""


def parse_field_map(
    _context: click.Context, _parameter: click.Parameter, values: tuple[str, ...]
) -> dict[str, str]:
    fields: dict[str, str] = {}
    for value in values:
        key, equals, column = value.partition("=")
        if not equals or not key.strip() or not column:
            msg = f"{value!r} is not KEY=COLUMN (for example --map email='Email 1')"
            raise click.BadParameter(msg)
        if key.strip() in fields:
            msg = f"system field {key.strip()!r} is mapped twice"
            raise click.BadParameter(msg)
        fields[key.strip()] = column
    return fields


@leads.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--source", "source_name", required=True, help="Source to add the leads to.")
@click.option(
    "--map",
    "field_map",
    multiple=True,
    callback=parse_field_map,
    metavar="KEY=COLUMN",
    help="Map a CSV column to a system field, such as email=Email (repeatable).",
)
@click.option("--status-column", metavar="COLUMN", help="Column holding the lead status.")
@click.option(
    "--attribute-column",
    "attribute_columns",
    multiple=True,
    metavar="COLUMN",
    help="Column whose values tag leads as an attribute (repeatable).",
)
@click.option(
    "--created-at-column",
    metavar="COLUMN",
    help="Column with creation dates or timestamps; a date alone is midnight UTC.",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Show how far the import is on stderr; by default only when stderr is a terminal.",
)
@pass_context
def import_command(
    context: Context,
    file: Path,
    source_name: str,
    field_map: dict[str, str],
    status_column: str | None,
    attribute_columns: tuple[str, ...],
    created_at_column: str | None,
    progress: bool | None,
) -> None:
    """Load the leads of a CSV FILE into a source, creating the source if needed.

    Columns without a role become custom fields keyed by their name in snake_case.
    Without --created-at-column, creation times are spread over the past year.
    """
    mapping = ColumnMapping(
        fields=field_map,
        status_column=status_column,
        attribute_columns=attribute_columns,
        created_at_column=created_at_column,
    )

    show = sys.stderr.isatty() if progress is None else progress
    with reported_as_user_errors(), ExitStack() as progress_bars:

        def show_reading(raw: BinaryIO, size: int) -> BinaryIO:
            bar = tqdm.wrapattr(
                raw, "read", total=size, desc=f"reading {file.name}", disable=not show
            )
            return progress_bars.enter_context(bar)

        def show_step(message: str) -> None:
            progress_bars.close()  # the file has been read: end its bar first
            if show:
                click.echo(message, err=True)

        result = import_leads(
            context.lead_store,
            file,
            source_name=source_name,
            mapping=mapping,
            wrap_file=show_reading,
            on_step=show_step,
        )

    click.echo(describe_append(result))


@main.group()
def sources() -> None:
    """Look at the sources of the lead store."""


@sources.command("list")
@pass_context
def list_command(context: Context) -> None:
    """List every source with its id, name, slug and number of leads."""
    with reported_as_user_errors(), context.lead_store.reading() as connection:
        found = list_sources(connection)
        counts = dict(
            connection.execute(
                "SELECT source_id, count(*) FROM leads GROUP BY source_id"
            ).fetchall()
        )

    if not found:
        click.echo("no sources yet; load a CSV with `export-pipeline leads import`", err=True)
        return
    rows = [("id", "name", "slug", "leads")]
    rows += [(str(s.source_id), s.name, s.slug, str(counts.get(s.source_id, 0))) for s in found]
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        click.echo("  ".join([*cells, row[3]]))


@main.group("users")
def users_group() -> None:
    """Create users, give them roles on sources, and manage their API keys.

    These commands are for operators: they need no API key, and unlike the API they
    may leave a source without an admin (they warn when they do).
    """


def parse_grant(value: str) -> tuple[int, Role]:
    """`SOURCE_ID[:ROLE]` as a source id and a role (exporter when none is given)."""
    source_text, colon, role_text = value.partition(":")
    try:
        source_id = int(source_text)
    except ValueError:
        msg = f"{value!r} is not SOURCE_ID[:ROLE]; the source id is a number"
        raise UserError(msg) from None
    if colon and not role_text:
        msg = f"{value!r} names no role after the colon; use one of {', '.join(Role)}"
        raise UserError(msg)
    try:
        role = Role(role_text or Role.EXPORTER.value)
    except ValueError:
        msg = f"{role_text!r} is not a role; use one of {', '.join(r.value for r in Role)}"
        raise UserError(msg) from None
    return source_id, role


def parse_grants(
    _context: click.Context, _parameter: click.Parameter, values: tuple[str, ...]
) -> list[tuple[int, Role]]:
    return [parse_grant(value) for value in values]


def parse_one_grant(
    _context: click.Context, _parameter: click.Parameter, value: str
) -> tuple[int, Role]:
    return parse_grant(value)


MAX_ID = 2**31 - 1
"""Ids in the status table are 32-bit integers."""


def parse_id(_context: click.Context, parameter: click.Parameter, value: str | None) -> int | None:
    """A positive id, as `error: ...` rather than click's usage error when it is not."""
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        number = 0
    if not 0 < number <= MAX_ID:
        msg = f"{value!r} is not a {parameter.human_readable_name}: give a positive number"
        raise UserError(msg)
    return number


def parse_email(
    _context: click.Context, _parameter: click.Parameter, value: str | None
) -> str | None:
    """A valid address, normalized; `error: ...` rather than a usage error otherwise."""
    if value is None:
        return None
    try:
        return normalize_email(value)
    except ValueError as error:
        raise UserError(f"{value!r} is {error}") from None


@users_group.command("create")
@click.argument("name")
@click.option(
    "--grant",
    "grants",
    multiple=True,
    callback=parse_grants,
    metavar="SOURCE_ID[:ROLE]",
    help="Give the user a role (viewer, exporter, admin; default exporter) on a source.",
)
@click.option(
    "--email",
    metavar="ADDR",
    callback=parse_email,
    help="Mail the user when their exports complete or fail (needs a mail server).",
)
@pass_context
def create_user_command(
    context: Context, name: str, grants: list[tuple[int, Role]], email: str | None
) -> None:
    """Create user NAME and print a new API key for it, once."""
    granted = [(find_source(context, source_id), role) for source_id, role in grants]

    with reported_as_user_errors(), context.status_sessions().begin() as session:
        user = users.create_user(session, name)
        if email is not None:
            set_user_email(session, user, email)
        for source, role in granted:
            previous = users.grant_role(session, user, source.source_id, role)
            record_role_granted(session, user, source.source_id, role, previous)
        key, api_key = users.create_api_key(session, user)
        users.record_key_event(
            session, AuditAction.KEY_ISSUED, actor_id=None, user=user, api_key=api_key
        )

    click.echo(f'user "{user.name}" created', err=True)
    if user.email:
        click.echo(f"  mail about exports goes to {user.email}", err=True)
    for source, role in granted:
        click.echo(f"  {describe_role(source, role)}", err=True)
    if not granted:
        click.echo("  no role on any source; give one with `export-pipeline users grant`", err=True)
    print_api_key(key)


@users_group.command("set-email")
@click.argument("name")
@click.argument("address", metavar="ADDR", required=False, callback=parse_email)
@click.option("--clear", is_flag=True, help="Remove the address: no more mail to the user.")
@pass_context
def set_email_command(context: Context, name: str, address: str | None, clear: bool) -> None:
    """Mail user NAME at ADDR when their exports complete or fail, or stop with --clear.

    Mail goes out only while a mail server is configured (EXPORT_PIPELINE_SMTP_HOST).
    """
    if clear == (address is not None):
        msg = "give either an ADDR or --clear"
        raise UserError(msg)

    with context.status_sessions().begin() as session:
        user = find_user(session, name)
        set_user_email(session, user, address)

    if address is None:
        click.echo(f'user "{name}": email address removed; no more mail about exports')
    else:
        click.echo(f'user "{name}": mail about exports goes to {user.email}')


@users_group.command("grant")
@click.argument("name")
@click.argument("grant", metavar="SOURCE_ID[:ROLE]", callback=parse_one_grant)
@pass_context
def grant_command(context: Context, name: str, grant: tuple[int, Role]) -> None:
    """Give user NAME a role on a source, replacing the role it had there."""
    source_id, role = grant
    source = find_source(context, source_id)

    with context.status_sessions().begin() as session:
        user = find_user(session, name)
        previous = users.grant_role(session, user, source.source_id, role)
        record_role_granted(session, user, source.source_id, role, previous)
        admins = users.admin_count(session, source.source_id)

    click.echo(f'user "{name}": {describe_role(source, role)}')
    if previous is Role.ADMIN and admins == 0:
        warn_no_admin(source.source_id)


@users_group.command("revoke")
@click.argument("name")
@click.argument("source_id", callback=parse_id)
@pass_context
def revoke_command(context: Context, name: str, source_id: int) -> None:
    """Remove user NAME's role on a source; it loses access with its next request."""
    with context.status_sessions().begin() as session:
        user = find_user(session, name)
        removed = users.revoke_role(session, user, source_id)
        if removed is None:
            msg = f"user {name!r} has no role on source {source_id}; nothing to remove"
            raise UserError(msg)
        users.record_role_event(
            session,
            AuditAction.ROLE_REVOKED,
            actor_id=None,
            user=user,
            source_id=source_id,
            role=removed,
        )
        admins = users.admin_count(session, source_id)

    click.echo(f'user "{name}": {removed.value} role on source {source_id} removed')
    if removed is Role.ADMIN and admins == 0:
        warn_no_admin(source_id)


@users_group.command("list")
@pass_context
def list_users_command(context: Context) -> None:
    """List every user with its roles (SOURCE_ID:ROLE) and its number of active API keys."""
    sessions = context.status_sessions()
    with sessions() as session:
        rows = [
            (
                user.name,
                describe_roles(user),
                str(sum(1 for key in user.api_keys if key.revoked_at is None)),
            )
            for user in users.list_users(session)
        ]

    if not rows:
        click.echo("no users yet; create one with `export-pipeline users create`", err=True)
        return
    print_table([("name", "roles", "keys"), *rows])


@users_group.command("add-key")
@click.argument("name")
@pass_context
def add_key_command(context: Context, name: str) -> None:
    """Print a new API key for user NAME, once; its other keys keep working."""
    with context.status_sessions().begin() as session:
        user = find_user(session, name)
        key, api_key = users.create_api_key(session, user)
        users.record_key_event(
            session, AuditAction.KEY_ISSUED, actor_id=None, user=user, api_key=api_key
        )

    print_api_key(key)


@users_group.command("keys")
@click.argument("name")
@pass_context
def keys_command(context: Context, name: str) -> None:
    """List user NAME's API keys by id and prefix, revoked ones included (UTC times)."""
    sessions = context.status_sessions()
    with sessions() as session:
        keys = users.list_api_keys(session, find_user(session, name).id)

    if not keys:
        msg = f'user "{name}" has no API key; give one with `export-pipeline users add-key`'
        click.echo(msg, err=True)
        return
    rows = [
        (str(key.id), key.prefix, format_time(key.created_at), format_time(key.revoked_at))
        for key in keys
    ]
    print_table([("id", "prefix", "created", "revoked"), *rows])


@users_group.command("revoke-key")
@click.argument("name")
@click.argument("key_id", required=False, callback=parse_id)
@click.option("--all", "revoke_all", is_flag=True, help="Revoke every active key of the user.")
@pass_context
def revoke_key_command(context: Context, name: str, key_id: int | None, revoke_all: bool) -> None:
    """Revoke API key KEY_ID of user NAME, or all its keys; they stop working at once.

    `export-pipeline users keys NAME` lists the key ids. Revoking a revoked key
    changes nothing.
    """
    if revoke_all and key_id is not None:
        msg = "give either a KEY_ID or --all, not both"
        raise UserError(msg)
    if not revoke_all and key_id is None:
        msg = f"give the KEY_ID of the key to revoke (`export-pipeline users keys {name}` "
        msg += "lists them), or --all"
        raise UserError(msg)

    now = datetime.now(UTC)
    with context.status_sessions().begin() as session:
        user = find_user(session, name)
        if revoke_all:
            revoked = users.revoke_all_api_keys(session, user.id, at=now)
        else:
            assert key_id is not None
            api_key = find_api_key(session, user, key_id)
            if api_key.revoked_at is not None:
                when = format_time(api_key.revoked_at)
                click.echo(f'user "{name}": key {key_id} was revoked already, at {when}')
                return
            revoked = [api_key] if users.revoke_api_key(session, user.id, key_id, at=now) else []
        for api_key in revoked:
            users.record_key_event(
                session, AuditAction.KEY_REVOKED, actor_id=None, user=user, api_key=api_key, at=now
            )

    for api_key in revoked:
        click.echo(f'user "{name}": key {api_key.id} ({api_key.prefix}) revoked')
    if not revoked:
        click.echo(f'user "{name}" has no active API key; nothing revoked')


def record_role_granted(
    session: Session, user: User, source_id: int, role: Role, previous: Role | None
) -> None:
    """Audit a role given at the command line, unless the user had that role already."""
    if previous is not role:
        users.record_role_event(
            session,
            AuditAction.ROLE_GRANTED,
            actor_id=None,
            user=user,
            source_id=source_id,
            role=role,
            previous_role=previous,
        )


def find_api_key(session: Session, user: User, key_id: int) -> ApiKey:
    api_key = users.find_api_key(session, user.id, key_id)
    if api_key is None:
        msg = f"user {user.name!r} has no API key {key_id}; "
        msg += f"`export-pipeline users keys {user.name}` lists them"
        raise UserError(msg)
    return api_key


def describe_roles(user: User) -> str:
    """`1:admin,3:viewer`, as `--grant` takes them, or `-` for none."""
    permissions = sorted(user.permissions, key=lambda permission: permission.source_id)
    return ",".join(f"{p.source_id}:{p.role}" for p in permissions) or "-"


def warn_no_admin(source_id: int) -> None:
    msg = f"warning: source {source_id} has no admin left; give one with "
    msg += f"`export-pipeline users grant NAME {source_id}:admin`"
    click.echo(msg, err=True)


def format_time(moment: datetime | None) -> str:
    """An aware datetime as `2026-03-01T07:00:00Z`, or `-` for none."""
    if moment is None:
        return "-"
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def print_table(rows: Sequence[Sequence[str]]) -> None:
    """Rows as left-aligned columns two spaces apart; the first row is the header."""
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        click.echo("  ".join([*cells, row[-1]]))


@main.command()
@click.option(
    "--leads",
    "lead_count",
    default=2000,
    show_default=True,
    type=click.IntRange(min=1),
    help="How many leads to add (about one second per thousand).",
)
@click.option("--seed", default=7, show_default=True, help="Same seed, same leads.")
@click.option(
    "--source",
    "source_name",
    default=DEMO_SOURCE_NAME,
    show_default=True,
    help="The source to add them to; created when missing.",
)
@click.option("--if-empty", is_flag=True, help="Do nothing if the lead store has a source.")
@pass_context
def demo(context: Context, lead_count: int, seed: int, source_name: str, if_empty: bool) -> None:
    """Add made-up leads to a source ("Demo leads" unless --source names another) and
    print an API key of user "demo".

    The user is created when missing and made admin of the source, so that `serve`
    has something to export on a fresh machine.
    """
    if if_empty:
        with reported_as_user_errors(), context.lead_store.reading() as connection:
            existing = list_sources(connection)
        if existing:
            click.echo(
                f"the lead store already has {len(existing)} source(s); not adding demo leads",
                err=True,
            )
            return

    with reported_as_user_errors():
        result = seed_demo_leads(
            context.lead_store, count=lead_count, seed=seed, source_name=source_name
        )

    with context.status_sessions().begin() as session:
        user = users.find_user(session, DEMO_USER_NAME) or users.create_user(
            session, DEMO_USER_NAME
        )
        users.grant_role(session, user, result.source_id, Role.ADMIN)
        key = users.issue_api_key(session, user)

    click.echo(describe_append(result), err=True)
    click.echo(f'user "{DEMO_USER_NAME}" is admin of source {result.source_id}', err=True)
    print_api_key(key)


@main.command()
@click.option(
    "--sample-export",
    is_flag=True,
    help=f'Once up, export the source "{DEMO_SOURCE_NAME}" as user "{DEMO_USER_NAME}" through '
    "the API and print how to download the file.",
)
@pass_context
def serve(context: Context, sample_export: bool) -> None:
    """Run the API, the Dagster webserver and the Dagster daemon until Ctrl-C.

    Run it from the project root: it reads dagster.yaml and workspace.yaml there.
    """
    try:
        exit_code = run_services(context.settings, sample_export=sample_export)
    except ServeError as error:
        raise UserError(str(error)) from None
    raise SystemExit(exit_code)


def find_source(context: Context, source_id: int) -> Source:
    with reported_as_user_errors(), context.lead_store.reading() as connection:
        source = get_source(connection, source_id)
    if source is None:
        msg = f"the lead store has no source {source_id}; `export-pipeline sources list` "
        msg += "shows the sources"
        raise UserError(msg)
    return source


def find_user(session: Session, name: str) -> User:
    user = users.find_user(session, name)
    if user is None:
        msg = f"there is no user named {name!r}; create it with `export-pipeline users create`"
        raise UserError(msg)
    return user


def describe_append(result: AppendResult) -> str:
    """`source 1 "Datablist" (created): 10000 leads, 80000 custom values, ...`"""
    state = "created" if result.source_created else "existing"
    return (
        f'source {result.source_id} "{result.source_name}" ({state}): {result.leads} leads, '
        f"{result.custom_values} custom values, {result.attributes} attribute tags"
    )


def describe_role(source: Source, role: Role) -> str:
    return f'{role.value} on source {source.source_id} "{source.name}"'


def print_api_key(key: str) -> None:
    click.echo(key)
    click.echo("This API key is shown only now and cannot be shown again; keep it.", err=True)
