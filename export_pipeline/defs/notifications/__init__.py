"""Dagster definitions for notifications: the sensor that tells requesters how their
exports ended, and the resource it sends through. The status table resource comes
from the export area."""

from __future__ import annotations

import os

import dagster as dg

from export_pipeline.defs.notifications.resources import NotifierResource
from export_pipeline.defs.notifications.sensors import notification_sensor
from export_pipeline.settings import Settings

SMTP_PASSWORD_VARIABLE = "EXPORT_PIPELINE_SMTP_PASSWORD"  # noqa: S105 - a name, no password


def notifications_definitions(settings: Settings) -> dg.Definitions:
    return dg.Definitions(
        sensors=[notification_sensor],
        resources={
            "notifier": NotifierResource(
                public_url=settings.api_base_url,
                smtp_host=settings.smtp_host,
                smtp_port=settings.smtp_port,
                smtp_username=settings.smtp_username,
                smtp_password=_smtp_password(settings),
                smtp_starttls=settings.smtp_starttls,
                mail_from=settings.mail_from,
                allow_private_addresses=settings.webhook_allow_private_addresses,
            )
        },
    )


def _smtp_password(settings: Settings) -> str | dg.EnvVar | None:
    """The password as a reference to its environment variable when it came from
    there, so that Dagster's UI, which shows resource configuration, shows the
    variable's name rather than the password."""
    password = settings.smtp_password
    if password is not None and os.environ.get(SMTP_PASSWORD_VARIABLE) == password:
        return dg.EnvVar(SMTP_PASSWORD_VARIABLE)
    return password
