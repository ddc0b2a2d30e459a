# Run inside `manage.py shell` on PostgreSQL by tests/web/test_builder_race.py.
# A save holds the loop's row lock; a second save based on the same version
# starts meanwhile. Prints what the second save got, as JSON.
import json
import threading
import time

from django.core.management import call_command
from django.db import connection, connections, transaction

from builder import services
from builder.models import Loop
from loopkit_web.teams.models import Team

for app in ("teams", "builder", "audit"):  # and what they depend on: not the whole project
    call_command("migrate", app, verbosity=0, interactive=False)


def loop_text(prompt):
    return f"name: race\npipeline:\n  - prompt: {prompt}\n    label: One\n"


team = Team.objects.create(name="Race")
loop, _ = services.create_loop(None, team, loop_text("First."))
locked, release, result = threading.Event(), threading.Event(), {}


def holder():
    try:
        with transaction.atomic():
            row = Loop.objects.select_for_update().get(pk=loop.pk)
            locked.set()
            release.wait(20)
            services._add_version(row, services.validate(loop_text("Holder.")), None, "holder")
    finally:
        connection.close()


def contender():
    locked.wait(20)
    try:
        services.save_loop(None, Loop.objects.get(pk=loop.pk), loop_text("Contender."), 1, "late")
        result["contender"] = "saved"
    except services.StaleVersion as exc:
        result["contender"] = {"status": exc.status, "current": exc.extra["current"]["version"]}
    except Exception as exc:  # a lost race shows up here (IntegrityError)
        result["contender"] = repr(exc)
    finally:
        connection.close()


threads = [threading.Thread(target=holder), threading.Thread(target=contender)]
for t in threads:
    t.start()
locked.wait(20)
deadline = time.monotonic() + 20
with connections["default"].cursor() as cursor:
    while time.monotonic() < deadline:  # until the contender waits on the row lock
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        if cursor.fetchone()[0] >= 1:
            result["contender_waited"] = True
            break
        time.sleep(0.01)
release.set()
for t in threads:
    t.join(30)
result["versions"] = list(
    Loop.objects.get(pk=loop.pk).versions.order_by("number").values_list("number", "message")
)
print("RESULT " + json.dumps(result))
