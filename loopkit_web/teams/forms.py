from __future__ import annotations

from django import forms

from loopkit_web.teams.models import Role


class TeamForm(forms.Form):
    name = forms.CharField(max_length=100)
    timezone = forms.CharField(
        max_length=64,
        required=False,
        label="Time zone",
        help_text="IANA name (e.g. Europe/Paris): cron schedules that name no time zone use it.",
    )


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)
