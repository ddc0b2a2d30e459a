from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("runs", "0006_run_model"),
    ]

    operations = [
        migrations.AddField(
            model_name="run",
            name="lost_calls",
            field=models.PositiveIntegerField(
                default=0,
                help_text="Model calls in flight when a worker died: paid, then made again on "
                "resume; their usage is unknown (runs.recorder.record_lost_calls).",
            ),
        ),
        migrations.AlterField(
            model_name="run",
            name="cost_usd",
            field=models.DecimalField(
                blank=True,
                decimal_places=6,
                help_text="The cost of the calls whose usage is recorded; null when a model's "
                "price is unknown: unknown prices stay unknown.",
                max_digits=14,
                null=True,
            ),
        ),
        migrations.AlterField(
            model_name="run",
            name="cost_known",
            field=models.BooleanField(
                default=True,
                help_text="cost_usd is the run's whole cost: no price unknown and no lost call.",
            ),
        ),
    ]
