"""Run inside `manage.py shell`: create a user, a team, a dry-run loop and an API token;
print one RESULT JSON line (tests/web/test_db_refusals.py, bench/starts.py)."""

import json
import os

from django.contrib.auth import get_user_model

from builder.services import create_loop
from loopkit_web.accounts.models import ApiToken
from loopkit_web.teams.services import create_team

password = "load-password-123"
user = get_user_model().objects.create_user("loader", password=password)
team = create_team(None, user, "Load Team")
loop, _ = create_loop(None, team, os.environ["DBLOAD_LOOP_YAML"])
_, token = ApiToken.issue(user=user, team=team, name="load")
print(
    "RESULT "
    + json.dumps(
        {"team": team.pk, "loop": loop.pk, "token": token, "user": "loader", "password": password}
    )
)
