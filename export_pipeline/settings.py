"""Typed settings, read from `EXPORT_PIPELINE_*` environment variables.

Every setting has a default that runs on one machine with embedded stores under
`EXPORT_PIPELINE_HOME`; production overrides the URLs through the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where the stores live and how the services behave.

    Unset URLs derive from `home`, so one variable moves the whole embedded product.
    """

    model_config = SettingsConfigDict(env_prefix="EXPORT_PIPELINE_", frozen=True)

    home: Path = Field(default=Path(".export_pipeline"))
    lead_store: Path | None = None
    database_url: str | None = None
    storage_url: str | None = None
    storage_options: dict[str, Any] = Field(default_factory=dict)
    public_url: str | None = None
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    dagster_port: int = 3000
    launch_from_api: bool = False
    """Launch each export's run from the API as soon as it is requested, through the
    Dagster webserver at `dagster_port`; without it the request sensor starts runs, up
    to five seconds later. `serve` turns it on for the webserver it starts, so that an
    API never launches runs into some other home's Dagster."""
    link_ttl_seconds: int = Field(default=24 * 3600, gt=0)
    link_max_ttl_seconds: int = Field(default=7 * 24 * 3600, gt=0)
    lead_store_wait_seconds: float = Field(default=600.0, ge=0)
    large_export_leads: int = Field(default=100_000, ge=1)
    """Exports of at least this many leads are marked large in the audit log and stats."""
    max_running_exports: int = Field(default=4, ge=1)
    """Export runs Dagster runs at once, over all sources."""
    max_running_exports_per_source: int = Field(default=2, ge=1)
    retention_days: int = Field(default=30, ge=1)
    """Export files older than this are deleted and their exports become `expired`."""
    smtp_host: str | None = None
    """Mail server for notifications; no email is sent while it is unset."""
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    mail_from: str = "exports@localhost"
    webhook_allow_private_addresses: bool = False
    """Let webhooks point to loopback, private, link-local and other non-public addresses;
    without it such a URL is refused when it is set and again before each delivery."""
    export_memory_limit: str = "128MB"
    """DuckDB's memory limit in an export run. DuckDB otherwise keeps every block it
    scanned cached, so a run's memory would grow with the lead store; the engine's own
    buffers are bounded separately, by its window of lead ids."""

    @property
    def resolved_home(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def lead_store_path(self) -> Path:
        return self.lead_store or self.resolved_home / "leads.duckdb"

    @property
    def status_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.resolved_home / 'status.sqlite3'}"

    @property
    def export_storage_url(self) -> str:
        return self.storage_url or str(self.resolved_home / "exports")

    @property
    def api_base_url(self) -> str:
        """Where users reach the API; download links start with it. Set `public_url`
        when the API sits behind a proxy or another host name."""
        return (self.public_url or f"http://{self.api_host}:{self.api_port}").rstrip("/")

    @property
    def dagster_url(self) -> str:
        """The Dagster webserver, through which the API launches export runs."""
        return f"http://127.0.0.1:{self.dagster_port}"

    @property
    def dagster_home(self) -> Path:
        return self.resolved_home / "dagster"


def load_settings() -> Settings:
    return Settings()
