"""Schemathesis over the running app's OpenAPI: no server error, no answer off the schema.

Every operation gets requests generated from its schema (valid ones and, in
negative mode, ones that break it), sent to a live server with an owner's API
token, and every answer is checked: not a 5xx, a status the operation
declares, the declared content type, a body that matches the declared
schema. Bounded and seeded: MAX_EXAMPLES per operation and mode, derandomized.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from loopkit_web.accounts.models import ApiToken

from .builder_fixtures import builder_ids
from .runs_fixtures import runs_ids

MAX_EXAMPLES = int(os.environ.get("LOOPKIT_FUZZ_EXAMPLES", "8"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
MODES = [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]


@pytest.fixture
def owner(transactional_db: Any, settings: Any) -> tuple[Any, Any]:
    from tests.conftest import create_team

    settings.LOOPKIT_RUNS_DRY_RUN_ONLY = True  # a generated "dry_run": false must not call a model
    team, users = create_team("Fuzz", roles=["owner"])
    builder_ids(team, users["owner"])
    runs_ids(team, users["owner"])
    return team, users["owner"]


def _fuzz(operation: Any, mode: Any, base_url: str, headers: dict[str, str]) -> str | None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
    )
    def run(case: Any) -> None:
        case.call_and_validate(base_url=base_url, headers=headers, checks=CHECKS, timeout=30)

    try:
        run()
    except Unsatisfiable:  # nothing to break (negative mode of an operation without inputs)
        return None
    except Exception as exc:  # a failed check: keep going, report every operation at the end
        return f"{operation.label} ({mode.value}): {_describe(exc)}"
    return None


def _describe(exc: BaseException) -> str:
    parts = [str(exc)]
    for inner in getattr(exc, "exceptions", ()):  # a group: Hypothesis's flaky report, ...
        parts.append(_describe(inner))
    return "\n".join(parts)


def test_no_generated_request_gets_a_server_error_or_an_answer_off_the_schema(
    live_server: Any, owner: tuple[Any, Any]
) -> None:
    team, user = owner
    schema = schemathesis.openapi.from_url(f"{live_server.url}/api/openapi.json")
    failures = []
    only = os.environ.get("LOOPKIT_FUZZ_ONLY", "")  # e.g. "GET /api/runs" while debugging
    for result in schema.get_all_operations():
        operation = result.ok()
        if only not in operation.label:
            continue
        for mode in MODES:
            # A fresh token each time: DELETE /api/tokens/{token_id} may revoke the last one.
            _, raw = ApiToken.issue(user=user, team=team, name="fuzz")
            headers = {"Authorization": f"Bearer {raw}"}
            failure = _fuzz(operation, mode, live_server.url, headers)
            if failure is not None:
                failures.append(failure)

    if failures:
        pytest.fail("\n\n".join(failures), pytrace=False)
