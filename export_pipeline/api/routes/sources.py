from __future__ import annotations

from fastapi import APIRouter, status

from export_pipeline.api.deps import CurrentUser, LeadStoreDep
from export_pipeline.api.errors import error_responses
from export_pipeline.api.schemas import SourceList, SourceOut
from export_pipeline.leads.catalog import list_sources
from export_pipeline.status.models import Role

router = APIRouter(tags=["sources"])


@router.get(
    "/sources",
    summary="List the sources the caller has a role on",
    responses=error_responses(status.HTTP_401_UNAUTHORIZED, status.HTTP_503_SERVICE_UNAVAILABLE),
)
def read_sources(lead_store: LeadStoreDep, user: CurrentUser) -> SourceList:
    roles = {permission.source_id: Role(permission.role) for permission in user.permissions}
    if not roles:
        return SourceList(items=[])

    with lead_store.reading() as connection:
        sources = list_sources(connection)

    return SourceList(
        items=[
            SourceOut(
                id=source.source_id,
                name=source.name,
                slug=source.slug,
                role=roles[source.source_id],
            )
            for source in sources
            if source.source_id in roles
        ]
    )
