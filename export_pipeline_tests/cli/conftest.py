"""Running `export-pipeline` as a real process against a home directory of its own."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest
from sqlalchemy.orm import Session

from export_pipeline.status.database import make_engine, make_session_factory, migrate

REPO = Path(__file__).resolve().parents[2]
CLI = Path(sys.executable).with_name("export-pipeline")


@dataclass(frozen=True)
class Cli:
    """The installed command with `EXPORT_PIPELINE_HOME` set to a fresh folder."""

    home: Path
    env: dict[str, str]

    def run(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(CLI), *args],
            env=self.env,
            cwd=cwd or self.home.parent,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    def ok(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = self.run(*args)
        assert done.returncode == 0, f"export-pipeline {' '.join(args)}:\n{done.stderr}"
        return done

    def query(self, sql: str) -> list[tuple]:
        """Rows of a query over the lead store, opened read-only."""
        with duckdb.connect(str(self.home / "leads.duckdb"), read_only=True) as connection:
            connection.execute("SET TimeZone = 'UTC'")
            return connection.execute(sql).fetchall()

    def status_session(self) -> Session:
        """A session on the status table, migrated first in case no command did."""
        engine = make_engine(f"sqlite:///{self.home / 'status.sqlite3'}")
        migrate(engine)
        return make_session_factory(engine)()


def cli_environment(home: Path) -> dict[str, str]:
    """This process's environment without any setting of ours, and a home of its own."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("EXPORT_PIPELINE_") and name != "DAGSTER_HOME"
    }
    env["EXPORT_PIPELINE_HOME"] = str(home)
    return env


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    home = tmp_path / "home"
    return Cli(home=home, env=cli_environment(home))
