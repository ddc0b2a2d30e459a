"""Run inside `manage.py shell`: GET /api/runs/RUNS_RUN_ID as the user runs_setup.py made;
print one RESULT JSON line with the status code and the body."""

import json
import os

from django.test import Client

client = Client(HTTP_HOST="127.0.0.1")
assert client.login(username="runner", password="x-long-password-1")
response = client.get(f"/api/runs/{os.environ['RUNS_RUN_ID']}")
print("RESULT " + json.dumps({"status": response.status_code, "body": response.json()}))
