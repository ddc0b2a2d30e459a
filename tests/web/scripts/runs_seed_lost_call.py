"""Run inside `manage.py shell`: create a team, a loop (YAML in RUNS_LOOP_YAML) and a
finished run whose first worker died with step Two's call in flight: its events are
stored through the recorder as the worker and the recovery would have (events, the
take-over, ``record_lost_calls``, the resumed attempt); print one RESULT JSON line."""

import json
import os

from django.contrib.auth import get_user_model
from django.utils import timezone

from builder.services import create_loop
from loopkit_web.teams.services import create_team
from runs.models import Run
from runs.recorder import record_events, record_lost_calls

user = get_user_model().objects.create_user("runner", password="x-long-password-1")
team = create_team(None, user, "Runs Team")
loop, version = create_loop(None, team, os.environ["RUNS_LOOP_YAML"])
now = timezone.now()
run = Run.objects.create(
    team=team,
    loop=loop,
    loop_version=version,
    loop_name=loop.name,
    version_number=version.number,
    loop_yaml=version.yaml,
    trigger_type="manual",
    started_by=user,
    status="running",
    attempt=1,
    started_at=now,
    heartbeat_at=now,
)
at = now.timestamp()
MODEL = "gpt-4o-mini"


def step(label, key, type_, **extra):
    return (type_, {"key": key, "label": label, "kind": "agent", "round": 1, "at": at, **extra})


def done(label, key, cost):
    tokens = {"input": 100, "output": 20}
    return step(label, key, "step_finished", model=MODEL, tokens=tokens, cost=cost, output="ok")


record_events(
    run.pk,
    [
        ("run_started", {"loop": loop.name, "at": at, "budget": {"maxModelCalls": 5}}),
        step("One", "pipeline[0]", "step_started", model=MODEL),
        done("One", "pipeline[0]", 0.0123),
        step("Two", "pipeline[1]", "step_started", model=MODEL),
    ],
)
# The worker dies; recovery takes the run over, then records the call it lost.
Run.objects.filter(pk=run.pk).update(attempt=2, worker="recovering")
record_events(run.pk, [("run_recovered", {"attempt": 2, "at": at})])
lost = record_lost_calls(run.pk)
record_events(
    run.pk,
    [
        ("run_started", {"loop": loop.name, "resumed": True, "at": at}),
        step("One", "pipeline[0]", "step_started"),
        step("One", "pipeline[0]", "step_finished", resumed=True, cost=0.0123, output="ok"),
        step("Two", "pipeline[1]", "step_started", model=MODEL),
        done("Two", "pipeline[1]", 0.01),
        (
            "run_finished",
            {
                "status": "succeeded",
                "tokens": {"input": 200, "output": 40},
                "cost": 0.0223,
                "cost_known": True,
                "requests": 3,
                "lost_calls": lost,
                "duration_ms": 1500,
                "at": at + 1.5,
            },
        ),
    ],
)
Run.objects.filter(pk=run.pk).update(status="succeeded", finished_at=timezone.now())
print("RESULT " + json.dumps({"team": team.pk, "loop": loop.pk, "run": run.pk, "lost": lost}))
