from __future__ import annotations

from fastapi import APIRouter

from export_pipeline.api.schemas import HealthOut

router = APIRouter(tags=["health"])


@router.get("/health", summary="Check that the API answers; needs no API key")
def read_health() -> HealthOut:
    return HealthOut()
