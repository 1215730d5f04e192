"""Export schedules: recurring exports that a Dagster sensor files as ordinary export
requests, with the schedule's owner as requester.

Anyone with a role on the source sees its schedules; the exporter role creates one,
and its creator becomes the owner. The owner (while an exporter) and the source's
admins change, pause, resume and delete it; anyone else with a role gets 403, and a
user without any role on the source 404, as for its exports.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from export_pipeline.api.deps import (
    SOURCE_NOT_FOUND,
    CurrentUser,
    LeadStoreDep,
    SessionDep,
    SourceAccess,
    SourceAccessDep,
    deny,
    require_role,
)
from export_pipeline.api.errors import error_responses, validation_error
from export_pipeline.api.schedules_schemas import (
    ScheduleIn,
    ScheduleList,
    ScheduleOut,
    SchedulePatch,
)
from export_pipeline.api.schemas import ExportRequest
from export_pipeline.api.validation import check_request_against_source
from export_pipeline.leads.catalog import read_catalog
from export_pipeline.leads.store import LeadStore
from export_pipeline.status.models import ExportSchedule, Role
from export_pipeline.status.schedules import (
    create_schedule,
    delete_schedule,
    get_schedule,
    list_schedules,
    update_schedule,
)
from export_pipeline.status.users import role_on_source

log = logging.getLogger(__name__)

router = APIRouter(tags=["schedules"])

SCHEDULE_NOT_FOUND = "export schedule not found"
SCHEDULE_PATH = "/export-schedules/{schedule_id}"


@dataclass(frozen=True)
class ScheduleAccess:
    schedule: ExportSchedule
    role: Role


def get_schedule_access(schedule_id: str, session: SessionDep, user: CurrentUser) -> ScheduleAccess:
    """The path's schedule and the caller's role on its source; 404 for a malformed or
    unknown id, and for a schedule on a source the caller has no role on (audited)."""
    schedule = get_schedule(session, schedule_id)
    if schedule is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, SCHEDULE_NOT_FOUND)
    role = role_on_source(session, user.id, schedule.source_id)
    if role is None:
        deny(session, user.id, reason="no role on the source", source_id=schedule.source_id)
        raise HTTPException(status.HTTP_404_NOT_FOUND, SCHEDULE_NOT_FOUND)
    return ScheduleAccess(schedule=schedule, role=role)


ScheduleAccessDep = Annotated[ScheduleAccess, Depends(get_schedule_access)]


def get_managing_access(
    access: ScheduleAccessDep, session: SessionDep, user: CurrentUser
) -> ScheduleAccess:
    """403 unless the caller is the schedule's owner with the exporter role, or an admin
    of its source; a dependency, so the refusal comes before the body is checked."""
    schedule = access.schedule
    if not access.role.allows(Role.EXPORTER):
        deny(
            session,
            user.id,
            reason=f"role {access.role.value} lacks {Role.EXPORTER.value}",
            source_id=schedule.source_id,
        )
        require_role(access.role, Role.EXPORTER)
    if schedule.owner_id != user.id and not access.role.allows(Role.ADMIN):
        deny(
            session,
            user.id,
            reason="change of another user's export schedule",
            source_id=schedule.source_id,
        )
        msg = "only the schedule's owner or an admin of the source can change or delete it"
        raise HTTPException(status.HTTP_403_FORBIDDEN, msg)
    return access


ManagingAccessDep = Annotated[ScheduleAccess, Depends(get_managing_access)]


def get_exporter_access(access: SourceAccessDep) -> SourceAccess:
    """403 below the exporter role, before the body is checked."""
    access.require(Role.EXPORTER)
    return access


ExporterAccessDep = Annotated[SourceAccess, Depends(get_exporter_access)]

SCHEDULE_ERRORS = (
    status.HTTP_401_UNAUTHORIZED,
    status.HTTP_403_FORBIDDEN,
    status.HTTP_404_NOT_FOUND,
)


@router.post(
    "/sources/{source_id}/export-schedules",
    status_code=status.HTTP_201_CREATED,
    summary="Create a recurring export of a source's leads",
    description=(
        "At every tick of the cron expression in the time zone, an export request with "
        "these filters and options is filed as if the caller had made it then: relative "
        "date ranges are resolved at the tick's time, the request is checked against the "
        "source as a request through this API is, and the tick's time is its request time. "
        "The definition is checked the same way now, and nothing is stored unless it "
        "passes. Answers with the schedule and its URL in `Location`. Needs the exporter "
        "role; the caller becomes the schedule's owner."
    ),
    responses={
        status.HTTP_201_CREATED: {
            "headers": {
                "Location": {
                    "description": "The schedule's URL path.",
                    "schema": {"type": "string"},
                }
            }
        },
        **error_responses(*SCHEDULE_ERRORS, status.HTTP_503_SERVICE_UNAVAILABLE),
    },
)
def create_export_schedule(
    access: ExporterAccessDep,
    session: SessionDep,
    lead_store: LeadStoreDep,
    user: CurrentUser,
    request: Request,
    response: Response,
    definition: ScheduleIn,
) -> ScheduleOut:
    _check_against_source(lead_store, access.source_id, definition)

    schedule = create_schedule(
        session,
        source_id=access.source_id,
        owner_id=user.id,
        name=definition.name,
        cron=definition.cron,
        time_zone=definition.time_zone,
        filters=definition.stored_filters(),
        options=definition.options.model_dump(mode="json"),
        enabled=definition.enabled,
        now=datetime.now(UTC),
    )
    session.commit()
    log.info(
        "export schedule %s created on source %d by user %d",
        schedule.id,
        access.source_id,
        user.id,
    )

    response.headers["Location"] = request.app.url_path_for(
        "read_export_schedule", schedule_id=schedule.id
    )
    return ScheduleOut.from_schedule(schedule)


@router.get(
    "/sources/{source_id}/export-schedules",
    summary="List a source's export schedules",
    description="Paused ones included, oldest first. Needs any role on the source.",
    responses=error_responses(status.HTTP_401_UNAUTHORIZED, status.HTTP_404_NOT_FOUND),
)
def read_export_schedules(access: SourceAccessDep, session: SessionDep) -> ScheduleList:
    schedules = list_schedules(session, access.source_id)
    return ScheduleList(items=[ScheduleOut.from_schedule(schedule) for schedule in schedules])


@router.get(
    SCHEDULE_PATH,
    summary="Read one export schedule",
    description="With its next tick and what its last tick filed. Needs any role on the source.",
    responses=error_responses(status.HTTP_401_UNAUTHORIZED, status.HTTP_404_NOT_FOUND),
)
def read_export_schedule(access: ScheduleAccessDep) -> ScheduleOut:
    return ScheduleOut.from_schedule(access.schedule)


@router.patch(
    SCHEDULE_PATH,
    summary="Change, pause or resume an export schedule",
    description=(
        'Only the fields given change; `{"enabled": false}` pauses the schedule and '
        '`{"enabled": true}` resumes it from the next tick after now. The result is '
        "checked as a whole, and changed filters or options against the source, as when "
        "creating a schedule. For the schedule's owner (with the exporter role) and the "
        "source's admins."
    ),
    responses=error_responses(*SCHEDULE_ERRORS, status.HTTP_503_SERVICE_UNAVAILABLE),
)
def change_export_schedule(
    access: ManagingAccessDep,
    session: SessionDep,
    lead_store: LeadStoreDep,
    user: CurrentUser,
    patch: SchedulePatch,
) -> ScheduleOut:
    schedule = access.schedule
    given = patch.model_dump(mode="json", exclude_unset=True)
    definition = _merged(schedule, given)
    if "filters" in given or "options" in given:
        _check_against_source(lead_store, schedule.source_id, definition)

    changes: dict[str, Any] = {key: getattr(definition, key) for key in given}
    if "filters" in given:
        changes["filters"] = definition.stored_filters()
    if "options" in given:
        changes["options"] = definition.options.model_dump(mode="json")
    update_schedule(session, schedule, changes, now=datetime.now(UTC))
    session.commit()
    log.info(
        "export schedule %s changed by user %d: %s",
        schedule.id,
        user.id,
        ", ".join(sorted(given)) or "nothing",
    )

    return ScheduleOut.from_schedule(schedule)


@router.delete(
    SCHEDULE_PATH,
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete an export schedule",
    description=(
        "No more exports are filed; the exports it filed stay in the history. For the "
        "schedule's owner (with the exporter role) and the source's admins."
    ),
    responses=error_responses(*SCHEDULE_ERRORS),
)
def delete_export_schedule(
    access: ManagingAccessDep, session: SessionDep, user: CurrentUser
) -> Response:
    schedule_id = access.schedule.id
    delete_schedule(session, access.schedule)
    session.commit()
    log.info("export schedule %s deleted by user %d", schedule_id, user.id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _merged(schedule: ExportSchedule, given: dict[str, Any]) -> ScheduleIn:
    """The schedule with the changes, validated as a new one; 422 naming the field."""
    current = {
        "name": schedule.name,
        "cron": schedule.cron,
        "time_zone": schedule.time_zone,
        "filters": schedule.filters,
        "options": schedule.options,
        "enabled": schedule.enabled,
    }
    try:
        return ScheduleIn.model_validate({**current, **given})
    except ValidationError as error:
        raise RequestValidationError(
            [
                validation_error(("body", *entry["loc"]), entry["msg"], entry["type"])
                for entry in error.errors()
            ]
        ) from None


def _check_against_source(lead_store: LeadStore, source_id: int, definition: ScheduleIn) -> None:
    """422 naming each status, attribute or column the source does not have; 404 when
    the source itself is gone from the lead store."""
    export_request = ExportRequest(filters=definition.filters, options=definition.options)
    with lead_store.reading() as connection:
        catalog = read_catalog(connection, source_id)
        if catalog is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, SOURCE_NOT_FOUND)
        check_request_against_source(connection, catalog, export_request)
