"""A source's webhook: where its exports' outcomes are posted, set by its admins.

The secret that signs the notifications is made by the server and shown once, in the
answer that sets the webhook; setting it again (even to the same URL) makes a new
secret and is how a secret is rotated.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from fastapi import APIRouter, HTTPException, Response, status

from export_pipeline.api.deps import SessionDep, SettingsDep, SourceAccessDep
from export_pipeline.api.errors import error_responses
from export_pipeline.api.schemas import NewWebhookOut, WebhookOut, WebhookRequest
from export_pipeline.api.validation import check_webhook_address
from export_pipeline.status.models import Role
from export_pipeline.status.notifications import (
    get_source_webhook,
    remove_source_webhook,
    set_source_webhook,
)

log = logging.getLogger(__name__)

router = APIRouter(tags=["notifications"])

WEBHOOK_NOT_FOUND = "this source has no webhook; set one with PUT"
ADMIN_ERRORS = (status.HTTP_401_UNAUTHORIZED, status.HTTP_403_FORBIDDEN, status.HTTP_404_NOT_FOUND)


@router.put(
    "/sources/{source_id}/webhook",
    summary="Set the source's webhook and get a new signing secret",
    description=(
        "Every export of the source that completes or fails is then posted to `url` as "
        "JSON, signed with HMAC-SHA256 (`X-Export-Timestamp`, `X-Export-Signature`). The "
        "answer shows the secret once; setting the webhook again replaces the URL and the "
        "secret. The URL's host must be, or resolve to, a public address unless the "
        "server allows private ones. Needs the admin role."
    ),
    responses=error_responses(*ADMIN_ERRORS),
)
def set_webhook(
    access: SourceAccessDep, session: SessionDep, settings: SettingsDep, webhook: WebhookRequest
) -> NewWebhookOut:
    access.require(Role.ADMIN)
    check_webhook_address(settings, webhook.url, loc=("url",))
    secret = set_source_webhook(
        session, access.source_id, webhook.url, set_by=access.user_id, at=datetime.now(UTC)
    )
    session.commit()
    log.info("webhook of source %d set by user %d", access.source_id, access.user_id)
    return NewWebhookOut(url=webhook.url, secret=secret)


@router.get(
    "/sources/{source_id}/webhook",
    summary="Read the source's webhook URL",
    description="The URL only: the secret is shown once, when the webhook is set. Admin only.",
    responses=error_responses(*ADMIN_ERRORS),
)
def read_webhook(access: SourceAccessDep, session: SessionDep) -> WebhookOut:
    access.require(Role.ADMIN)
    webhook = get_source_webhook(session, access.source_id)
    if webhook is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, WEBHOOK_NOT_FOUND)
    return WebhookOut(url=webhook.url)


@router.delete(
    "/sources/{source_id}/webhook",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove the source's webhook",
    description=(
        "No more notifications are posted to it, including those still waiting for a "
        "retry. Removing a webhook that is not there changes nothing. Admin only."
    ),
    responses=error_responses(*ADMIN_ERRORS),
)
def delete_webhook(access: SourceAccessDep, session: SessionDep) -> Response:
    access.require(Role.ADMIN)
    if remove_source_webhook(session, access.source_id):
        session.commit()
        log.info("webhook of source %d removed by user %d", access.source_id, access.user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
