"""Run inside `manage.py shell`: create a team, a loop (YAML in RUNS_LOOP_YAML) and,
unless RUNS_NO_RUN is set, start RUNS_COUNT (default 1) dry runs of it; print one
RESULT JSON line ("run": the first run's id, "runs": all of them)."""

import json
import os

from django.contrib.auth import get_user_model

from builder.services import create_loop
from loopkit_web.teams.services import create_team
from runs.lifecycle import start_run

user = get_user_model().objects.create_user("runner", password="x-long-password-1")
team = create_team(None, user, "Runs Team")
loop, _ = create_loop(None, team, os.environ["RUNS_LOOP_YAML"])
out = {"team": team.pk, "loop": loop.pk}
if os.environ.get("RUNS_OTHER_LOOP_YAML"):
    out["other_loop"] = create_loop(None, team, os.environ["RUNS_OTHER_LOOP_YAML"])[0].pk
if not os.environ.get("RUNS_NO_RUN"):
    count = int(os.environ.get("RUNS_COUNT", "1"))
    runs = [
        start_run(loop, trigger_type="manual", dry_run=True, actor=user).pk for _ in range(count)
    ]
    out["run"], out["runs"] = runs[0], runs
print("RESULT " + json.dumps(out))
