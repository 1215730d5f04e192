"""`export-pipeline` commands run as a real process on a lead store and status table of
their own: what they print, what they exit with, and what they leave in the stores."""

from __future__ import annotations

import csv
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from export_pipeline.status import users
from export_pipeline.status.models import Role
from export_pipeline_tests.cli.conftest import CLI, REPO, Cli, cli_environment

US_500_MAP = (
    "first_name=first_name",
    "last_name=last_name",
    "email=email",
    "phone=phone1",
    "address=address",
    "city=city",
    "state=state",
    "zip_code=zip",
)
US_500_CUSTOM_COLUMNS = ("company_name", "county", "phone2", "web")


def map_options(*mappings: str) -> list[str]:
    return [part for mapping in mappings for part in ("--map", mapping)]


@pytest.fixture
def us_500(shared_data: Path) -> Path:
    return shared_data / "leads" / "us-500.csv"


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as file:
        return list(csv.DictReader(file))


def test_import_prints_the_source_and_counts_of_what_it_added(cli: Cli, us_500: Path) -> None:
    rows = read_rows(us_500)
    custom_values = sum(1 for row in rows for column in US_500_CUSTOM_COLUMNS if row[column])

    first = cli.ok("leads", "import", str(us_500), "--source", "US 500", *map_options(*US_500_MAP))
    again = cli.ok("leads", "import", str(us_500), "--source", "US 500", *map_options(*US_500_MAP))

    assert first.stdout == (
        f'source 1 "US 500" (created): 500 leads, {custom_values} custom values, 0 attribute tags\n'
    )
    assert again.stdout.startswith('source 1 "US 500" (existing): 500 leads')
    listing = cli.ok("sources", "list").stdout.splitlines()
    assert listing[0].split() == ["id", "name", "slug", "leads"]
    assert listing[1].split() == ["1", "US", "500", "us-500", "1000"]
    stored_zip_codes = [
        zip_code
        for (zip_code,) in cli.query(
            "SELECT zip_code FROM leads WHERE lead_id <= 500 ORDER BY lead_id"
        )
    ]
    assert stored_zip_codes == [row["zip"] for row in rows]


def test_import_names_a_missing_column_exits_2_and_changes_nothing(cli: Cli, us_500: Path) -> None:
    cli.ok("leads", "import", str(us_500), "--source", "US 500", *map_options(*US_500_MAP))
    before = cli.query("SELECT count(*), max(lead_id) FROM leads")

    done = cli.run(
        "leads", "import", str(us_500), "--source", "Second", "--map", "email=Email Address"
    )

    assert done.returncode == 2
    assert done.stderr.startswith("error: --map email names column 'Email Address'")
    assert "Traceback" not in done.stderr
    assert cli.query("SELECT count(*), max(lead_id) FROM leads") == before
    assert cli.query("SELECT name FROM sources") == [("US 500",)]


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--map", "email"], "'email' is not KEY=COLUMN"),
        (["--map", "=email"], "'=email' is not KEY=COLUMN"),
        (["--map", "email=a", "--map", "email=b"], "'email' is mapped twice"),
    ],
)
def test_import_rejects_a_malformed_map_as_a_usage_error(
    cli: Cli, us_500: Path, option: list[str], message: str
) -> None:
    done = cli.run("leads", "import", str(us_500), "--source", "US 500", *option)

    assert done.returncode == 2
    assert message in done.stderr
    assert not (cli.home / "leads.duckdb").exists()


def test_import_of_a_missing_file_is_an_error_without_traceback(cli: Cli, tmp_path: Path) -> None:
    done = cli.run("leads", "import", str(tmp_path / "nope.csv"), "--source", "X")

    assert done.returncode == 2
    assert done.stderr == f"error: {tmp_path / 'nope.csv'}: no such file\n"


def test_import_of_a_file_the_system_cannot_read_is_an_error_without_traceback(cli: Cli) -> None:
    # Reading /proc/self/mem from its start fails with an I/O error, even for root.
    done = cli.run("leads", "import", "/proc/self/mem", "--source", "X")

    assert done.returncode == 2
    assert done.stderr == "error: /proc/self/mem: cannot read it: Input/output error\n"
    assert not (cli.home / "leads.duckdb").exists()


def test_import_shows_its_progress_when_asked_and_stays_quiet_otherwise(
    cli: Cli, us_500: Path
) -> None:
    shown = cli.ok("leads", "import", str(us_500), "--source", "A", "--progress")
    quiet = cli.ok("leads", "import", str(us_500), "--source", "B")

    steps = [line for line in shown.stderr.replace("\r", "\n").splitlines() if line.strip()]
    assert any(line.startswith("reading us-500.csv: 100%") for line in steps), shown.stderr
    assert steps[-2].startswith("read 500 rows of 12 columns")
    assert steps[-1].startswith("writing 500 leads, ")
    assert steps[-1].endswith("attribute tags in one transaction")
    assert quiet.stderr == ""
    assert shown.stdout.startswith('source 1 "A" (created): 500 leads')


def test_users_create_prints_a_key_once_that_authenticates(cli: Cli, us_500: Path) -> None:
    cli.ok("leads", "import", str(us_500), "--source", "US 500")

    created = cli.ok("users", "create", "alice", "--grant", "1:admin")
    added = cli.ok("users", "add-key", "alice")
    cli.ok("users", "grant", "alice", "1:viewer")

    key = created.stdout.strip()
    assert created.stdout == key + "\n"
    assert key.startswith(users.API_KEY_PREFIX)
    assert 'user "alice" created' in created.stderr
    assert 'admin on source 1 "US 500"' in created.stderr
    assert "cannot be shown again" in created.stderr
    with cli.status_session() as session:
        for shown in (key, added.stdout.strip()):
            user = users.authenticate(session, shown)
            assert user is not None
            assert user.name == "alice"
        assert users.role_on_source(session, user.id, 1) is Role.VIEWER
        assert users.authenticate(session, key + "x") is None


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["users", "create", "bob", "--grant", "2"], "the lead store has no source 2"),
        (["users", "create", "bob", "--grant", "x:admin"], "the source id is a number"),
        (["users", "create", "bob", "--grant", "1:owner"], "'owner' is not a role"),
        (["users", "create", "bob", "--grant", "1:"], "names no role after the colon"),
        (["users", "create", "  "], "a user name must not be blank"),
        (["users", "add-key", "nobody"], "there is no user named 'nobody'"),
        (["users", "grant", "nobody", "1"], "there is no user named 'nobody'"),
    ],
)
def test_users_commands_reject_what_does_not_exist(
    cli: Cli, us_500: Path, arguments: list[str], message: str
) -> None:
    cli.ok("leads", "import", str(us_500), "--source", "US 500")

    done = cli.run(*arguments)

    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    with cli.status_session() as session:
        assert users.find_user(session, "bob") is None


def test_users_create_refuses_a_taken_name(cli: Cli) -> None:
    cli.ok("users", "create", "alice")

    done = cli.run("users", "create", "alice")

    assert done.returncode == 2
    assert done.stderr == "error: a user named 'alice' already exists\n"


LEAD_ROWS = """
SELECT l.lead_id, s.name, l.first_name, l.last_name, l.email, l.phone, l.address, l.city,
       l.state, l.zip_code, l.status, l.created_at, l.updated_at,
       (SELECT list(v.field_key || '=' || v.value ORDER BY v.field_key)
          FROM lead_custom_values v WHERE v.lead_id = l.lead_id),
       (SELECT list(a.key || '=' || a.value ORDER BY a.key)
          FROM lead_attributes a WHERE a.lead_id = l.lead_id)
FROM leads l JOIN sources s USING (source_id)
ORDER BY l.lead_id
"""


def test_demo_with_the_same_seed_writes_the_same_leads(tmp_path: Path) -> None:
    first = Cli(tmp_path / "first", cli_environment(tmp_path / "first"))
    second = Cli(tmp_path / "second", cli_environment(tmp_path / "second"))

    first.ok("demo", "--leads", "300", "--seed", "11")
    second.ok("demo", "--leads", "300", "--seed", "11")

    rows = first.query(LEAD_ROWS)
    assert len(rows) == 300
    assert {row[1] for row in rows} == {"Demo leads"}
    assert rows == second.query(LEAD_ROWS)
    definitions = "SELECT key, type, position FROM field_definitions ORDER BY position"
    assert [row[1] for row in first.query(definitions)] == [
        "text",
        "number",
        "date",
        "boolean",
        "select",
    ]


def test_demo_if_empty_seeds_once_and_the_demo_key_is_admin(cli: Cli) -> None:
    seeded = cli.ok("demo", "--leads", "50", "--if-empty")
    skipped = cli.ok("demo", "--leads", "50", "--if-empty")

    assert 'source 1 "Demo leads" (created): 50 leads' in seeded.stderr
    assert skipped.stdout == ""
    assert "already has 1 source(s); not adding demo leads" in skipped.stderr
    assert cli.query("SELECT count(*) FROM leads") == [(50,)]
    with cli.status_session() as session:
        user = users.authenticate(session, seeded.stdout.strip())
        assert user is not None
        assert user.name == "demo"
        assert users.role_on_source(session, user.id, 1) is Role.ADMIN


def test_demo_reuses_the_demo_user(cli: Cli) -> None:
    first = cli.ok("demo", "--leads", "20")
    second = cli.ok("demo", "--leads", "20")

    assert 'source 1 "Demo leads" (existing): 20 leads' in second.stderr
    with cli.status_session() as session:
        owners = {users.authenticate(session, done.stdout.strip()).id for done in (first, second)}
        assert len(owners) == 1


def test_serve_outside_the_project_root_says_where_to_run_it(cli: Cli, tmp_path: Path) -> None:
    done = cli.run("serve", cwd=tmp_path)

    assert done.returncode == 2
    assert done.stderr == (
        f"error: dagster.yaml and workspace.yaml not found in {tmp_path}; "
        "run `export-pipeline serve` from the project root\n"
    )


def test_serve_refuses_a_taken_port_before_starting_anything(cli: Cli) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = cli.env | {"EXPORT_PIPELINE_API_PORT": str(port)}
        done = subprocess.run(
            [str(CLI), "serve"], env=env, cwd=REPO, capture_output=True, text=True, check=False
        )

    assert done.returncode == 2
    assert f"error: cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "EXPORT_PIPELINE_API_PORT" in done.stderr
    assert "started" not in done.stdout


def test_serve_refuses_a_home_another_serve_holds(cli: Cli) -> None:
    cli.home.mkdir(parents=True)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys, time; lock = open(sys.argv[1], 'w'); "
            "fcntl.flock(lock, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)",
            str(cli.home / "serve.lock"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "held\n"
        done = subprocess.run(
            [str(CLI), "serve"], env=cli.env, cwd=REPO, capture_output=True, text=True, check=False
        )
    finally:
        holder.kill()
        holder.wait()

    assert done.returncode == 2
    assert f"error: another `export-pipeline serve` is running on {cli.home}" in done.stderr


@pytest.mark.parametrize(
    "created", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "yesterday"]
)
def test_import_of_a_created_at_it_cannot_place_is_an_error_without_traceback(
    cli: Cli, tmp_path: Path, created: str
) -> None:
    path = tmp_path / "leads.csv"
    path.write_text(f"name,created\nAda,{created}\n")

    done = cli.run("leads", "import", str(path), "--source", "X", "--created-at-column", "created")

    assert done.returncode == 2
    assert done.stderr.startswith("error: record 1 ")
    assert "'created'" in done.stderr
    assert "Traceback" not in done.stderr


def test_invalid_settings_are_an_error_naming_the_setting(cli: Cli) -> None:
    env = cli.env | {"EXPORT_PIPELINE_STORAGE_OPTIONS": "not json"}

    done = subprocess.run(
        [str(CLI), "sources", "list"], env=env, capture_output=True, text=True, check=False
    )

    assert done.returncode == 2
    assert done.stderr.startswith("error: invalid settings:")
    assert "storage_options" in done.stderr
