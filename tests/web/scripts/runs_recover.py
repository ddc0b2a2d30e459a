"""Run inside `manage.py shell`: enqueue the recovery task for the workers; print its result."""

import json

from runs.tasks import recover_runs

result = recover_runs().get(blocking=True, timeout=60)
print("RESULT " + json.dumps(result))
