"""Forget the rollups made before runs.RunModel, so the by-model rows are made again.

Before, a run that used several models was rolled up in full under each of
them; ``ModelHour`` rows now hold each model's own tokens and cost. Every
team's rollups are dropped: the periodic task (or ``manage.py
dashboard_rollup``) rolls them up again, and until then pages read the runs.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations


def forget(apps: Any, schema_editor: Any) -> None:
    for name in ("LoopHour", "ModelHour", "RollupState"):
        apps.get_model("dashboard", name).objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [
        ("dashboard", "0001_rollups"),
        ("runs", "0004_backfill_runmodel"),
    ]

    operations = [migrations.RunPython(forget, migrations.RunPython.noop)]
