"""Run inside `manage.py shell`: a user "runner" owning a team with the example loops and
the loop in RUNS_LOOP_YAML; print one RESULT JSON line (loop ids by name)."""

import io
import json
import os

from django.contrib.auth import get_user_model

from builder.demo import load_example_loops
from builder.models import Loop
from builder.services import create_loop
from loopkit_web.teams.services import create_team

user = get_user_model().objects.create_user("runner", password="x-long-password-1")
team = create_team(None, user, "Runs Team")
create_loop(None, team, os.environ["RUNS_LOOP_YAML"])
load_example_loops(team=team, user=user, stdout=io.StringIO())
print("RESULT " + json.dumps({loop.name: loop.pk for loop in Loop.objects.filter(team=team)}))
