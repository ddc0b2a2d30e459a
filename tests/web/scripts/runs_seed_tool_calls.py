"""Run inside `manage.py shell`: create a team, a loop (YAML in RUNS_LOOP_YAML) and a
finished dry run of it whose stored events include tool calls and a plan (dry runs
start no connectors, so the events are written here as the engine would have);
print one RESULT JSON line."""

import json
import os

from django.contrib.auth import get_user_model
from django.utils import timezone

from builder.services import create_loop
from loopkit_web.teams.services import create_team
from runs.models import Run, RunEvent

user = get_user_model().objects.create_user("runner", password="x-long-password-1")
team = create_team(None, user, "Runs Team")
loop, _ = create_loop(None, team, os.environ["RUNS_LOOP_YAML"])
now = timezone.now()
run = Run.objects.create(
    team=team,
    loop=loop,
    loop_name=loop.name,
    version_number=1,
    loop_yaml=os.environ["RUNS_LOOP_YAML"],
    trigger_type="manual",
    dry_run=True,
    started_by=user,
    status="succeeded",
    started_at=now,
    finished_at=now,
)
at = now.timestamp()
events = [
    ("run_started", {"at": at, "budget": {}}),
    ("step_started", {"key": "pipeline[0]", "label": "Investigate", "kind": "plan", "at": at}),
    (
        "plan_made",
        {
            "key": "pipeline[0]",
            "label": "Investigate",
            "iteration": 1,
            "max_iterations": 2,
            "steps": [
                {
                    "template": "search_logs",
                    "input": "payment declined",
                    "label": "Investigate 1.1 search_logs",
                },
                {
                    "template": "read_ticket",
                    "input": "4242",
                    "label": "Investigate 1.2 read_ticket",
                },
            ],
            "done": True,
            "reason": None,
            "limit_reached": False,
            "at": at,
        },
    ),
    (
        "tool_called",
        {
            "key": "pipeline[0].plan[1][0]",
            "label": "Investigate 1.1 search_logs",
            "name": "logs.search",
            "arguments": {"query": "payment declined", "token": "[REDACTED]"},
            "result": "3 lines: 09:14 card declined (acme)",
            "is_error": False,
            "duration_ms": 41.5,
            "at": at,
        },
    ),
    (
        "tool_called",
        {
            "key": "pipeline[0].plan[1][1]",
            "label": "Investigate 1.2 read_ticket",
            "name": "tracker.get_issue",
            "arguments": {"id": 4242},
            "result": "HTTP 404: no such ticket",
            "is_error": True,
            "duration_ms": 1250.0,
            "at": at,
        },
    ),
    (
        "step_finished",
        {
            "key": "pipeline[0]",
            "label": "Investigate",
            "kind": "plan",
            "round": 1,
            "tokens": {"input": 10, "output": 20},
            "cost": 0,
            "duration_ms": 1300,
            "at": at,
        },
    ),
    (
        "run_finished",
        {
            "status": "succeeded",
            "tokens": {"input": 10, "output": 20},
            "cost": 0,
            "duration_ms": 1400,
            "at": at,
        },
    ),
]
for seq, (kind, payload) in enumerate(events, start=1):
    RunEvent.objects.create(run=run, seq=seq, type=kind, payload=payload)
Run.objects.filter(pk=run.pk).update(last_seq=len(events))
print("RESULT " + json.dumps({"team": team.pk, "loop": loop.pk, "run": run.pk}))
