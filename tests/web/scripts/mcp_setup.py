"""Run inside `manage.py shell`: two teams and their loops for the MCP endpoint's tests.

Team "Acme" has an owner, an editor and a viewer, the loops in MCP_ACME_LOOPS (a JSON list
of YAML texts) and an API token each; team "Bravo" has an owner, the loop in
MCP_BRAVO_LOOP and a token. Prints one RESULT JSON line with the raw tokens.
"""

import json
import os

from django.contrib.auth import get_user_model

from builder.services import create_loop
from loopkit_web.accounts.models import ApiToken
from loopkit_web.teams.models import Membership
from loopkit_web.teams.services import create_team

users = get_user_model().objects
owner = users.create_user("acme-owner", password="x-long-password-1")
acme = create_team(None, owner, "Acme")
tokens = {"owner": ApiToken.issue(user=owner, team=acme, name="owner mcp")[1]}
for role in ("editor", "viewer"):
    user = users.create_user(f"acme-{role}", password="x-long-password-1")
    Membership.objects.create(team=acme, user=user, role=role)
    tokens[role] = ApiToken.issue(user=user, team=acme, name=f"{role} mcp")[1]
for text in json.loads(os.environ["MCP_ACME_LOOPS"]):
    create_loop(None, acme, text)

bravo_owner = users.create_user("bravo-owner", password="x-long-password-1")
bravo = create_team(None, bravo_owner, "Bravo")
create_loop(None, bravo, os.environ["MCP_BRAVO_LOOP"])
tokens["outsider"] = ApiToken.issue(user=bravo_owner, team=bravo, name="bravo mcp")[1]
print("RESULT " + json.dumps({"tokens": tokens}))
