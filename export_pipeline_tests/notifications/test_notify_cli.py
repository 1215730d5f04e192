"""`export-pipeline users` and email addresses, run as a real process against a home
directory of its own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from export_pipeline.status.database import make_engine, make_session_factory
from export_pipeline.status.models import User

CLI = Path(sys.executable).with_name("export-pipeline")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("EXPORT_PIPELINE_") and name != "DAGSTER_HOME"
    }
    env["EXPORT_PIPELINE_HOME"] = str(home)
    return subprocess.run(
        [str(CLI), *args],
        env=env,
        cwd=home.parent,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def emails(home: Path) -> dict[str, str | None]:
    engine = make_engine(f"sqlite:///{home / 'status.sqlite3'}")
    try:
        with make_session_factory(engine)() as session:
            return dict(session.execute(select(User.name, User.email)).all())
    finally:
        engine.dispose()


def test_users_get_an_email_address_when_created_or_later(home: Path) -> None:
    created = run(home, "users", "create", "ada", "--email", "Ada@Example.COM")
    plain = run(home, "users", "create", "bert")
    set_later = run(home, "users", "set-email", "bert", "bert@example.org")
    after_setting = emails(home)
    cleared = run(home, "users", "set-email", "ada", "--clear")

    assert created.returncode == 0, created.stderr
    assert created.stdout.strip().startswith("ep_")
    assert "mail about exports goes to Ada@example.com" in created.stderr
    assert plain.returncode == 0
    assert set_later.returncode == 0
    assert set_later.stdout == 'user "bert": mail about exports goes to bert@example.org\n'
    assert after_setting == {"ada": "Ada@example.com", "bert": "bert@example.org"}
    assert cleared.stdout == 'user "ada": email address removed; no more mail about exports\n'
    assert emails(home) == {"ada": None, "bert": "bert@example.org"}


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (("users", "create", "cleo", "--email", "not-an-address"), "not a valid email address"),
        (("users", "set-email", "ghost", "ghost@example.com"), "there is no user named 'ghost'"),
        (("users", "set-email", "dora"), "give either an ADDR or --clear"),
        (("users", "set-email", "dora", "d@example.com", "--clear"), "give either an ADDR or"),
        (("users", "set-email", "dora", "dora@@example.com"), "not a valid email address"),
    ],
    ids=["create-invalid", "unknown-user", "neither", "both", "set-invalid"],
)
def test_a_bad_address_or_user_is_an_error_that_changes_nothing(
    home: Path, args: tuple[str, ...], complaint: str
) -> None:
    run(home, "users", "create", "dora")

    done = run(home, *args)

    assert done.returncode == 2
    assert done.stderr.startswith("error: ")
    assert complaint in done.stderr
    assert "Traceback" not in done.stderr
    assert emails(home) == {"dora": None}
