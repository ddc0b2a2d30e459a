"""Load the example loops of ``loops/`` into the demo team (``make run``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TextIO

from django.conf import settings
from django.db import transaction

from builder import services
from builder.models import Loop


def examples_dir() -> Path:
    return Path(getattr(settings, "LOOPKIT_EXAMPLE_LOOPS_DIR", settings.BASE_DIR / "loops"))


def load_example_loops(*, team: Any, user: Any, stdout: TextIO) -> None:
    """Create each example loop the team does not have yet; leave edited ones alone.

    Idempotent: runs at every start. A file that does not validate is reported
    and skipped, the others still load.
    """
    created = 0
    for path in sorted(examples_dir().glob("*.y*ml")):
        checked = services.validate(path.read_bytes(), file=f"loops/{path.name}")
        if not checked.ok or checked.loop is None:
            first = checked.errors[0] if checked.errors else {"message": "invalid"}
            stdout.write(f"  skipped loops/{path.name}: {first['message']}\n")
            continue
        if Loop.objects.filter(team=team, name=checked.loop.name).exists():
            continue
        with transaction.atomic():
            loop = Loop(team=team, created_by=user)
            services._add_version(loop, checked, None, f"Example loop from loops/{path.name}")
            loop.versions.filter(number=loop.version).update(
                author=user, author_label=user.get_username()
            )
            from loopkit_web.audit.services import record, snapshot

            record(user, "loop.created", loop, after=snapshot(loop, services.AUDITED))
        created += 1
    stdout.write(f"  example loops: {created} loaded into team {team}\n")
