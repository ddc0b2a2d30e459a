"""Objects of the runs app that the authorization matrix points URLs at."""

from __future__ import annotations

import gzip
import os
from typing import Any

from .runs_support import loop_yaml

#: The environment variable holding the matrix loop's webhook secret.
HOOK_SECRET_ENV = "LOOPKIT_TEST_MATRIX_HOOK_SECRET"


def runs_ids(team: Any, user: Any) -> dict[str, Any]:
    """Give a team a runnable loop, a webhook loop and a run waiting at an approval."""
    from builder.models import Loop
    from builder.services import create_loop
    from runs.models import ApprovalRequest, LoopTest, Run, Status

    os.environ.setdefault(HOOK_SECRET_ENV, "matrix-secret")
    loop, version = create_loop(None, team, loop_yaml("matrix-run-loop"))
    create_loop(
        None,
        team,
        loop_yaml(
            "matrix-hook-loop",
            trigger={"type": "webhook", "event": "push", "secretEnv": HOOK_SECRET_ENV},
        ),
    )
    run = Run.objects.create(
        team=team,
        loop=loop,
        loop_version=version,
        loop_name=loop.name,
        version_number=version.number,
        loop_yaml=version.yaml,
        trigger_type="manual",
        dry_run=True,
        status=Status.WAITING,
        started_by=user,
    )
    approval = ApprovalRequest.objects.create(run=run, step="Ship", question="Ship it?")
    test = LoopTest.objects.create(
        loop=Loop.objects.get(team=team, name="matrix-loop"),
        name="matrix-test",
        test_yaml="loop: ../loops/matrix-loop.yaml\nexpect: {status: succeeded}\n",
        cassette=gzip.compress(b"version: 1\nloop: matrix-loop\ncalls: []\n"),
    )
    return {
        "test_id": test.pk,
        "run_id": run.pk,
        "run_loop_id": loop.pk,
        "approval_id": approval.pk,
        "team_slug": team.slug,
        "loop_name": "matrix-hook-loop",
    }
