from __future__ import annotations

from django import forms

from loopkit_web.teams.models import Role


class TeamForm(forms.Form):
    name = forms.CharField(max_length=100)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)
