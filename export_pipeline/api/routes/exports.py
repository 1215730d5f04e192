from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated

from fastapi import (
    APIRouter,
    BackgroundTasks,
    Header,
    HTTPException,
    Query,
    Request,
    Response,
    status,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from export_pipeline.api.deps import (
    SOURCE_NOT_FOUND,
    CurrentUser,
    ExportAccessDep,
    LeadStoreDep,
    SessionDep,
    SettingsDep,
    SourceAccessDep,
    deny,
)
from export_pipeline.api.errors import error_responses
from export_pipeline.api.schemas import (
    ErrorOut,
    ExportHistoryQuery,
    ExportList,
    ExportOut,
    ExportRequest,
    NewExportOut,
    NotifyOut,
    PreviewOut,
)
from export_pipeline.api.validation import check_request_against_source, check_webhook_address
from export_pipeline.defs.exports.launch import launch_export_run
from export_pipeline.engine.export import count_matching
from export_pipeline.engine.filters import ExportFilters, FrozenFilters, freeze_filters
from export_pipeline.engine.options import ExportOptions
from export_pipeline.leads.catalog import get_source, read_catalog
from export_pipeline.settings import Settings
from export_pipeline.status.exports import (
    attach_run,
    get_export,
    mark_cancelled,
    request_export,
    unsettled_retry,
)
from export_pipeline.status.history import HistoryFilters, read_history
from export_pipeline.status.idempotency import (
    MAX_KEY_LENGTH,
    find_key,
    remember_key,
    request_fingerprint,
)
from export_pipeline.status.models import Export, ExportStatus, Role
from export_pipeline.status.notifications import (
    carry_export_webhook,
    get_export_webhook,
    subscribe_export_webhook,
)

log = logging.getLogger(__name__)

router = APIRouter(tags=["exports"])


@router.post(
    "/sources/{source_id}/exports",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Request an export of a source's leads",
    description=(
        "Validates the filters and options against the source, freezes them at the "
        "request time and queues the export as `pending`; a background run writes the "
        "file. Answers with the export and its URL in `Location`. Needs the exporter role. "
        "With `notify.webhook_url`, the outcome is also posted there, signed with the "
        "secret this answer shows once; its host must be, or resolve to, a public address "
        "unless the server allows private ones."
    ),
    response_description="The queued export.",
    response_model_exclude_unset=True,
    responses={
        status.HTTP_202_ACCEPTED: {
            "headers": {
                "Location": {
                    "description": "The export's URL path.",
                    "schema": {"type": "string"},
                }
            }
        },
        **error_responses(
            status.HTTP_401_UNAUTHORIZED,
            status.HTTP_403_FORBIDDEN,
            status.HTTP_404_NOT_FOUND,
            status.HTTP_503_SERVICE_UNAVAILABLE,
        ),
        status.HTTP_409_CONFLICT: {
            "model": ErrorOut,
            "description": "The `Idempotency-Key` was used before with another body.",
        },
    },
)
def create_export(
    access: SourceAccessDep,
    session: SessionDep,
    settings: SettingsDep,
    lead_store: LeadStoreDep,
    user: CurrentUser,
    request: Request,
    response: Response,
    background: BackgroundTasks,
    export_request: ExportRequest | None = None,
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=MAX_KEY_LENGTH,
            description=(
                "A client-chosen key; the same key with the same body answers the first "
                "export again, with another body 409."
            ),
        ),
    ] = None,
) -> NewExportOut:
    access.require(Role.EXPORTER)
    export_request = export_request or ExportRequest()
    fingerprint = request_fingerprint(access.source_id, export_request.model_dump(mode="json"))
    if idempotency_key is not None:
        replayed = _replay(session, user.id, idempotency_key, fingerprint)
        if replayed is not None:
            response.headers["Location"] = _location(request, replayed.id)
            response.headers["Idempotent-Replayed"] = "true"
            return _new_export_out(session, replayed)

    if export_request.notify is not None:
        url = export_request.notify.webhook_url
        check_webhook_address(settings, url, loc=("notify", "webhook_url"))

    with lead_store.reading() as connection:
        catalog = read_catalog(connection, access.source_id)
        if catalog is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, SOURCE_NOT_FOUND)
        check_request_against_source(connection, catalog, export_request)
        # Taken while the store is open for reading: an import cannot hold the write
        # lock now, so every lead it stamps later is stamped after this cut-off.
        requested_at = datetime.now(UTC)
    export = request_export(
        session,
        source=catalog.source,
        requested_by=user.id,
        filters=export_request.filters,
        frozen=freeze_filters(export_request.filters, requested_at=requested_at),
        options=export_request.options,
        requested_at=requested_at,
    )
    if export_request.notify is not None:
        subscribe_export_webhook(
            session, export.id, export_request.notify.webhook_url, at=requested_at
        )
    if idempotency_key is not None:
        remember_key(session, user.id, idempotency_key, fingerprint, export.id, requested_at)
    try:
        session.commit()
    except IntegrityError:
        # The same key arrived twice at once, and the other request won.
        session.rollback()
        replayed = _replay(session, user.id, idempotency_key or "", fingerprint)
        if replayed is None:
            raise
        response.headers["Idempotent-Replayed"] = "true"
        export = replayed
    log.info("export %s requested on source %d by user %d", export.id, export.source_id, user.id)
    _launch_after_answer(background, request, settings, export, user.name)

    response.headers["Location"] = _location(request, export.id)
    return _new_export_out(session, export)


def _new_export_out(session: Session, export: Export) -> NewExportOut:
    """The export and, when its request named a webhook, that webhook's secret; without
    one, `notify` is left out and the answer is what `GET /exports/{id}` answers."""
    answer = ExportOut.from_export(export).model_dump()
    webhook = get_export_webhook(session, export.id)
    if webhook is not None:
        answer["notify"] = NotifyOut(webhook_url=webhook.url, secret=webhook.secret)
    return NewExportOut(**answer)


def _replay(session: Session, user_id: int, key: str, fingerprint: str) -> Export | None:
    """The export a key already made for this request; 409 if it was made for another."""
    known = find_key(session, user_id, key)
    if known is None:
        return None
    if known.request_hash != fingerprint:
        msg = "this Idempotency-Key was already used for a different request; use a new key"
        raise HTTPException(status.HTTP_409_CONFLICT, msg)
    return get_export(session, known.export_id)


def _launch_after_answer(
    background: BackgroundTasks,
    request: Request,
    settings: Settings,
    export: Export,
    requested_by: str,
) -> None:
    """Have the export's run launched once the answer is sent, unless the request
    sensor is left to start it or a run has it already."""
    if settings.launch_from_api and export.dagster_run_id is None:
        background.add_task(
            _hand_to_dagster,
            settings,
            request.app.state.session_factory,
            export.id,
            export.source_id,
            requested_by,
        )


def _hand_to_dagster(
    settings: Settings,
    sessions: sessionmaker[Session],
    export_id: str,
    source_id: int,
    requested_by: str,
) -> None:
    """Launch the export's run now rather than at the request sensor's next tick. Runs
    after the answer is sent, so the requester never waits for Dagster; the request is
    stored already, so a Dagster that cannot be reached only delays the run."""
    run_id = launch_export_run(settings.dagster_url, export_id, source_id, requested_by)
    if run_id is not None:
        with sessions() as session:
            attach_run(session, export_id, run_id, at=datetime.now(UTC))
            session.commit()


def _location(request: Request, export_id: str) -> str:
    return request.app.url_path_for("read_export", export_id=export_id)


@router.post(
    "/sources/{source_id}/exports/preview",
    summary="Count the leads an export with these filters would hold now",
    description=(
        "Validates the request exactly as an export request and answers how many leads "
        "match at this moment, without queueing anything. Needs the exporter role."
    ),
    responses=error_responses(
        status.HTTP_401_UNAUTHORIZED,
        status.HTTP_403_FORBIDDEN,
        status.HTTP_404_NOT_FOUND,
        status.HTTP_503_SERVICE_UNAVAILABLE,
    ),
)
def preview_export(
    access: SourceAccessDep,
    lead_store: LeadStoreDep,
    export_request: ExportRequest | None = None,
) -> PreviewOut:
    access.require(Role.EXPORTER)
    export_request = export_request or ExportRequest()
    with lead_store.reading() as connection:
        catalog = read_catalog(connection, access.source_id)
        if catalog is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, SOURCE_NOT_FOUND)
        check_request_against_source(connection, catalog, export_request)
        frozen = freeze_filters(export_request.filters, requested_at=datetime.now(UTC))
        return PreviewOut(lead_count=count_matching(connection, access.source_id, frozen))


@router.post(
    "/exports/{export_id}/cancel",
    summary="Cancel a pending or running export",
    description=(
        "A pending export never starts; a running one has its run stopped within seconds "
        "and leaves no file. The requester (with the exporter role) or an admin of the "
        "source may cancel; cancelling a cancelled export answers it again."
    ),
    responses=error_responses(
        status.HTTP_401_UNAUTHORIZED,
        status.HTTP_403_FORBIDDEN,
        status.HTTP_404_NOT_FOUND,
        status.HTTP_409_CONFLICT,
    ),
)
def cancel_export(access: ExportAccessDep, session: SessionDep, user: CurrentUser) -> ExportOut:
    access.require(Role.EXPORTER)
    export = access.export
    if export.requested_by != user.id and not access.role.allows(Role.ADMIN):
        deny(
            session,
            user.id,
            reason="cancel of another user's export",
            source_id=export.source_id,
            export_id=export.id,
        )
        msg = "only the requester or an admin of the source can cancel this export"
        raise HTTPException(status.HTTP_403_FORBIDDEN, msg)
    if export.status == ExportStatus.CANCELLED:
        return ExportOut.from_export(export)
    if not mark_cancelled(session, export, at=datetime.now(UTC), actor_id=user.id):
        # Settled since it was read: by a cancel at the same moment, or by its run.
        session.refresh(export)
        if export.status == ExportStatus.CANCELLED:
            return ExportOut.from_export(export)
        msg = f"export {export.id} is {export.status}; only pending or running exports cancel"
        raise HTTPException(status.HTTP_409_CONFLICT, msg)
    session.commit()
    log.info("export %s cancelled by user %d", export.id, user.id)
    return ExportOut.from_export(export)


@router.post(
    "/exports/{export_id}/retry",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Request a failed or cancelled export again",
    description=(
        "Queues a new export with the same filters, frozen as they were (the same "
        "request-time cut-off), and the same options. A webhook the original request "
        "named in `notify` is told the retry's outcome too, signed with the same secret. "
        "Needs the exporter role. An `Idempotency-Key` works as on an export request; "
        "without one, a retry while another retry of the same export is still pending or "
        "processing is 409, naming that retry."
    ),
    responses=error_responses(
        status.HTTP_401_UNAUTHORIZED,
        status.HTTP_403_FORBIDDEN,
        status.HTTP_404_NOT_FOUND,
        status.HTTP_409_CONFLICT,
        status.HTTP_503_SERVICE_UNAVAILABLE,
    ),
)
def retry_export(
    access: ExportAccessDep,
    session: SessionDep,
    settings: SettingsDep,
    lead_store: LeadStoreDep,
    user: CurrentUser,
    request: Request,
    response: Response,
    background: BackgroundTasks,
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=MAX_KEY_LENGTH,
            description=(
                "A client-chosen key; the same key for a retry of the same export answers "
                "the first retry again, for any other request 409."
            ),
        ),
    ] = None,
) -> ExportOut:
    access.require(Role.EXPORTER)
    original = access.export
    original_id = original.id
    fingerprint = request_fingerprint(original.source_id, {"retry_of": original_id})

    def replayed_answer() -> ExportOut | None:
        """The retry this request's key already made, answered again."""
        replayed = (
            _replay(session, user.id, idempotency_key, fingerprint) if idempotency_key else None
        )
        if replayed is None:
            return None
        response.headers["Location"] = _location(request, replayed.id)
        response.headers["Idempotent-Replayed"] = "true"
        return ExportOut.from_export(replayed)

    def answer_again_or_refuse() -> ExportOut:
        """For a retry that another request stored: answered again when this request's
        key made it (a request with the same key may have stored it since this one
        looked for the key), else 409 naming it."""
        answer = replayed_answer()
        if answer is not None:
            return answer
        under_way = unsettled_retry(session, original_id)
        if under_way is None:
            msg = "the retry could not be stored; try again"
        else:
            msg = (
                f"a retry of export {original_id} is already under way: export {under_way.id} "
                f"is {under_way.status}; follow it, or retry again once it has failed or been "
                "cancelled"
            )
        raise HTTPException(status.HTTP_409_CONFLICT, msg)

    answer = replayed_answer()
    if answer is not None:
        return answer
    if original.status not in (ExportStatus.FAILED, ExportStatus.CANCELLED):
        msg = f"export {original.id} is {original.status}; only failed or cancelled exports retry"
        raise HTTPException(status.HTTP_409_CONFLICT, msg)
    if unsettled_retry(session, original_id) is not None:
        return answer_again_or_refuse()
    with lead_store.reading() as connection:
        source = get_source(connection, original.source_id)
    if source is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, SOURCE_NOT_FOUND)

    try:
        export = request_export(
            session,
            source=source,
            requested_by=user.id,
            filters=ExportFilters.model_validate(original.filters),
            frozen=FrozenFilters.from_json(original.frozen_filters),
            options=ExportOptions.model_validate(original.options),
            requested_at=datetime.now(UTC),
            retry_of=original_id,
        )
        carry_export_webhook(session, original_id, export.id, at=export.requested_at)
        if idempotency_key is not None:
            remember_key(
                session, user.id, idempotency_key, fingerprint, export.id, export.requested_at
            )
        session.commit()
    except IntegrityError:
        # A retry of the same export, or one with the same key, was stored first: the
        # unique index on unsettled retries or the key's primary key refused this one.
        session.rollback()
        return answer_again_or_refuse()
    log.info("export %s requested by user %d as a retry of %s", export.id, user.id, original_id)
    _launch_after_answer(background, request, settings, export, user.name)
    response.headers["Location"] = _location(request, export.id)
    return ExportOut.from_export(export)


@router.get(
    "/sources/{source_id}/exports",
    summary="List a source's exports, newest request first, a page at a time",
    description=(
        "Filters combine with AND. Pages are cut by key: pass `next_cursor` as `cursor`, "
        "with the same filters, for the next page. Exports requested meanwhile appear on a "
        "new first page and never shift a page already read. Needs any role."
    ),
    responses=error_responses(status.HTTP_401_UNAUTHORIZED, status.HTTP_404_NOT_FOUND),
)
def read_exports(
    access: SourceAccessDep,
    session: SessionDep,
    query: Annotated[ExportHistoryQuery, Query()],
) -> ExportList:
    filters = HistoryFilters(
        statuses=frozenset(query.status),
        requested_by=query.requested_by,
        requested_from=query.requested_from,
        requested_to=query.requested_to,
    )
    page = read_history(session, access.source_id, filters, limit=query.limit, cursor=query.cursor)
    return ExportList(
        items=[ExportOut.from_export(export) for export in page.items],
        next_cursor=page.next_cursor,
    )


@router.get(
    "/exports/{export_id}",
    summary="Read one export",
    responses=error_responses(status.HTTP_401_UNAUTHORIZED, status.HTTP_404_NOT_FOUND),
)
def read_export(access: ExportAccessDep) -> ExportOut:
    return ExportOut.from_export(access.export)
