"""Huey tasks: keep every team's dashboard rollups up to date."""

from __future__ import annotations

import logging

from huey import crontab
from huey.contrib.djhuey import db_periodic_task

from dashboard import rollups
from loopkit_web.teams.models import Team

logger = logging.getLogger(__name__)


def roll_up_all() -> int:
    """Roll up the closed hours of every team; return how many teams moved forward."""
    moved = 0
    for team in Team.objects.only("pk").iterator():
        before = rollups.closed_until(team)
        if rollups.advance(team) != before:
            moved += 1
    return moved


@db_periodic_task(crontab(minute="*/5"))
def roll_up_dashboards() -> None:
    """Every 5 minutes: page requests then only read what finished since."""
    moved = roll_up_all()
    if moved:
        logger.info("dashboard rollups advanced for %d team(s)", moved)
