"""Load the example loops (``loopkit.examples``) into the demo team (``loopkit serve --demo``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TextIO

from django.conf import settings
from django.db import transaction

from builder import services
from builder.models import Loop
from loopkit import examples


def example_files() -> list[tuple[str, bytes]]:
    """Return (file name, content) of each example loop, sorted by file name.

    The package's examples (``loopkit.examples``), or the YAML files of
    ``settings.LOOPKIT_EXAMPLE_LOOPS_DIR`` when that is set.
    """
    folder = getattr(settings, "LOOPKIT_EXAMPLE_LOOPS_DIR", None)
    if folder is not None:
        return [(p.name, p.read_bytes()) for p in sorted(Path(folder).glob("*.y*ml"))]
    found = [(examples.filename(n), examples.read(n).encode()) for n in examples.names()]
    return sorted(found)


def load_example_loops(*, team: Any, user: Any, stdout: TextIO) -> None:
    """Create each example loop the team does not have yet; leave edited ones alone.

    Idempotent: runs at every start. A file that does not validate is reported
    and skipped, the others still load.
    """
    created = 0
    for name, content in example_files():
        checked = services.validate(content, file=f"loops/{name}")
        if not checked.ok or checked.loop is None:
            first = checked.errors[0] if checked.errors else {"message": "invalid"}
            stdout.write(f"  skipped loops/{name}: {first['message']}\n")
            continue
        if Loop.objects.filter(team=team, name=checked.loop.name).exists():
            continue
        with transaction.atomic():
            loop = Loop(team=team, created_by=user)
            services._add_version(loop, checked, None, f"Example loop from loops/{name}")
            loop.versions.filter(number=loop.version).update(
                author=user, author_label=user.get_username()
            )
            from loopkit_web.audit.services import record, snapshot

            record(user, "loop.created", loop, after=snapshot(loop, services.AUDITED))
        created += 1
    stdout.write(f"  example loops: {created} loaded into team {team}\n")
