"""Run inside `manage.py shell` under the scale-out settings; print one JSON line.

Creates a team through the services, calls /api/health, checks that the
database refuses UPDATE and DELETE of audit rows, enqueues a Huey task for the
worker the test started, and sends a channel message to another process.
"""

import json
import os

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.test import Client

from loopkit_web.audit.models import AuditEvent
from loopkit_web.tasks import ping
from loopkit_web.teams.models import Membership
from loopkit_web.teams.services import create_team

out = {}
user = get_user_model().objects.create_user("scale", password="x-long-password-1")
team = create_team(None, user, "Scale Team")
out["team"] = [team.name, Membership.objects.get(team=team).role]
response = Client(HTTP_HOST="127.0.0.1").get("/api/health")
out["health"] = [response.status_code, response.json()]

event = AuditEvent.objects.filter(action="team.created").first()
refused = []
for sql in (
    "UPDATE audit_auditevent SET action = 'forged' WHERE id = %s",
    "DELETE FROM audit_auditevent WHERE id = %s",
):
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, [event.pk])
        refused.append(None)
    except Exception as exc:  # the trigger's error
        refused.append(str(exc).splitlines()[0])
out["raw_sql"] = refused
out["audit_action"] = AuditEvent.objects.get(pk=event.pk).action

result = ping("scaled")
out["pid"] = os.getpid()
out["task"] = result.get(blocking=True, timeout=float(os.environ.get("TASK_TIMEOUT", "20")))
async_to_sync(get_channel_layer().send)(
    os.environ["CHANNEL_NAME"], {"type": "test.message", "text": "across processes"}
)
print("RESULT " + json.dumps(out))
