"""``manage.py dashboard_rollup [--rebuild] [--team SLUG]``: roll up finished hours now."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from dashboard import rollups
from loopkit_web.teams.models import Team


class Command(BaseCommand):
    help = (
        "Roll up every finished hour of runs for the dashboard (after an upgrade or an "
        "import of old runs; --rebuild forgets the rollups first)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--team", help="the slug of one team (default: every team)")
        parser.add_argument(
            "--rebuild", action="store_true", help="forget the rollups and make them again"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        teams = Team.objects.all()
        if options["team"]:
            teams = teams.filter(slug=options["team"])
            if not teams.exists():
                raise CommandError(f"no team with the slug {options['team']!r}")
        for team in teams:
            began = time.perf_counter()
            if options["rebuild"]:
                rollups.rebuild(team)
            until = rollups.advance(team)
            self.stdout.write(
                f"{team.slug}: rolled up until {until.isoformat() if until else '(no runs)'} "
                f"in {time.perf_counter() - began:.1f} s"
            )
