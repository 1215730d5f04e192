"""Schemathesis generates requests from the OpenAPI document, valid and invalid, and
sends them to a live API with stores of its own: no answer may be a server error or
differ from what the document promises (status codes, bodies, headers, the `Allow` of a
405), every request the document calls invalid must be refused, and no operation may
answer as if an invalid key were valid.

Schemathesis's own pytest plugin does not run under this pytest, so each operation's
case strategy is drawn with hypothesis directly.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import checks
from schemathesis.generation import GenerationMode

from export_pipeline.api.main import create_app
from export_pipeline.status.models import Role
from export_pipeline_tests.api.conftest import ApiServer, Harness, built_harness

UVICORN_REFUSAL = b"Invalid HTTP request received."


@schemathesis.check
def status_code_of_the_app_conforms(ctx, response, case) -> bool | None:
    """The documented status codes, for every answer the app gives. A request whose
    HTTP framing is broken (such as an empty `Content-Length`) is refused with 400 by
    the HTTP server before the app sees it; the document describes the app."""
    if response.status_code == 400 and response.content == UVICORN_REFUSAL:
        return None
    return checks.status_code_conformance(ctx, response, case)


CHECKS = [
    checks.not_a_server_error,
    status_code_of_the_app_conforms,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
    checks.negative_data_rejection,
    checks.ignored_auth,
    checks.missing_required_header,
    checks.allow_header_conformance,
]
EXAMPLES_PER_OPERATION = 30


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Harness, ApiServer]]:
    home = Path(tmp_path_factory.mktemp("fuzz_home"))
    with built_harness(home) as harness, ApiServer(create_app(harness.settings)) as server:
        yield harness, server


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_request_gets_a_server_error_or_an_undocumented_answer(fuzzed, mode):
    harness, server = fuzzed
    admin = harness.person({harness.acme_id: Role.ADMIN, harness.other_id: Role.EXPORTER})
    harness.completed_export(admin, harness.acme_id)
    schema = schemathesis.openapi.from_url(server.base_url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20
    checked: list[str] = []
    skipped: list[str] = []

    for operation in operations:
        if operation.path.startswith("/api/v1/me/keys") and operation.method == "delete":
            continue  # revoking the fuzzing user's own key would end the run early

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def call(case: schemathesis.Case) -> None:
            case.call_and_validate(base_url=server.base_url, headers=admin.auth, checks=CHECKS)

        try:
            call()
        except Unsatisfiable:
            # An operation without parameters or body has no invalid variant.
            assert mode is GenerationMode.NEGATIVE, operation.label
            skipped.append(operation.label)
        checked.append(operation.label)

    assert len(skipped) < len(checked) / 2, skipped
