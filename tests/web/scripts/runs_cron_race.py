"""Run inside `manage.py shell`: enqueue every scheduler tick of two due times several
times over (as several workers' schedulers would), wait for all; print the results."""

import json
from datetime import UTC, datetime, timedelta

from runs.tasks import fire_crons_at

now = datetime.now(UTC).replace(second=5, microsecond=0)
ticks = [now, now + timedelta(minutes=1)] * 4
handles = [fire_crons_at(t.isoformat()) for t in ticks]
results = [h.get(blocking=True, timeout=60) for h in handles]
print(
    "RESULT "
    + json.dumps({"due": [t.replace(second=0).isoformat() for t in ticks[:2]], "ticks": results})
)
