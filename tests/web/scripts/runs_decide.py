"""Run inside `manage.py shell`: approve (RUNS_DECISION=approve, default) or reject every
pending approval of run RUNS_RUN_ID as the team's owner; print one RESULT JSON line."""

import json
import os

from loopkit_web.teams.models import Membership
from runs.approvals import decide_approval
from runs.models import ApprovalRequest, ApprovalStatus, Run

run = Run.objects.get(pk=int(os.environ["RUNS_RUN_ID"]))
owner = Membership.objects.get(team=run.team, role="owner")
decided = []
for approval in ApprovalRequest.objects.filter(run=run, status=ApprovalStatus.PENDING):
    decide_approval(
        approval,
        approved=os.environ.get("RUNS_DECISION", "approve") == "approve",
        comment="from the test",
        membership=owner,
    )
    decided.append(approval.pk)
print("RESULT " + json.dumps({"decided": decided}))
