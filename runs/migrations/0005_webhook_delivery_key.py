"""Keep webhook delivery ids whole; refuse replays by the id's SHA-256.

Ids were cut to 200 characters, so two ids sharing that prefix counted as one
delivery. Stored ids are hashed as they are (already cut: nothing to recover).
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.db import migrations, models


def fill_keys(apps: Any, schema_editor: Any) -> None:
    WebhookDelivery = apps.get_model("runs", "WebhookDelivery")
    for delivery in WebhookDelivery.objects.only("pk", "delivery_id").iterator(chunk_size=2000):
        key = hashlib.sha256(delivery.delivery_id.encode()).hexdigest()
        WebhookDelivery.objects.filter(pk=delivery.pk).update(delivery_key=key)


class Migration(migrations.Migration):
    dependencies = [("runs", "0004_backfill_runmodel")]

    operations = [
        migrations.RemoveConstraint(
            model_name="webhookdelivery", name="runs_unique_webhook_delivery"
        ),
        migrations.AlterField(
            model_name="webhookdelivery",
            name="delivery_id",
            field=models.TextField(help_text="The X-GitHub-Delivery header, whole."),
        ),
        migrations.AddField(
            model_name="webhookdelivery",
            name="delivery_key",
            field=models.CharField(
                default="", max_length=64, help_text="SHA-256 of delivery_id (hex)."
            ),
            preserve_default=False,
        ),
        migrations.RunPython(fill_keys, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="webhookdelivery",
            constraint=models.UniqueConstraint(
                fields=("loop", "delivery_key"), name="runs_unique_webhook_delivery_key"
            ),
        ),
    ]
