"""Loops, their versions and a team's git repository, in the ORM.

A loop's YAML lives in its versions only: ``Loop.version`` is the number of the
current one. Stored YAML is the canonical dump of ``loopkit.yamlio`` (see
docs/builder-api.md, "Round-trip"), so a loop read back is byte-identical to
what the editor shows after a save.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

from loopkit_web.teams.scoping import TeamScopedQuerySet


class Loop(models.Model):
    """A team's loop: its name, the number of its current version and its cached LRS."""

    team = models.ForeignKey("teams.Team", on_delete=models.CASCADE, related_name="loops")
    name = models.CharField(max_length=100, help_text="The loop's `name:`, unique in its team.")
    description = models.TextField(blank=True)
    version = models.PositiveIntegerField(
        default=0, help_text="The number of the current version (0 before the first save)."
    )
    lrs_score = models.PositiveSmallIntegerField(null=True, blank=True)
    lrs_grade = models.CharField(max_length=1, blank=True)
    lrs_report = models.JSONField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    objects = TeamScopedQuerySet["Loop"].as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["team", "name"], name="builder_unique_loop_name"),
        ]
        ordering = ["name", "pk"]

    def __str__(self) -> str:
        return self.name

    def current(self) -> LoopVersion:
        """Return the current version."""
        return self.versions.get(number=self.version)


class VersionQuerySet(TeamScopedQuerySet["LoopVersion"]):
    team_field = "loop__team"


class LoopVersion(models.Model):
    """One saved state of a loop: the YAML text, who saved it, why, and its LRS."""

    loop = models.ForeignKey(Loop, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    yaml = models.TextField(help_text="The canonical YAML of the loop at this version.")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    author_label = models.CharField(max_length=150, blank=True)
    message = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    lrs_score = models.PositiveSmallIntegerField(null=True, blank=True)
    lrs_grade = models.CharField(max_length=1, blank=True)
    lrs_report = models.JSONField(null=True, blank=True)
    restored_from = models.PositiveIntegerField(
        null=True, blank=True, help_text="The version this one restored, if it is a restore."
    )

    objects = VersionQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["loop", "number"], name="builder_unique_version"),
        ]
        ordering = ["loop", "-number"]

    def __str__(self) -> str:
        return f"{self.loop.name} v{self.number}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.number,
            "yaml": self.yaml,
            "author": self.author_label,
            "message": self.message,
            "created_at": self.created_at.isoformat(),
        }


class GitRepository(models.Model):
    """Where a team exports its loops to and imports them from.

    ``url`` is a remote (``https://…``, ``ssh://…``, ``git@host:…``) or, where
    the deployment allows it, a local path. Credentials are never stored:
    ``username_env`` and ``password_env`` name environment variables of the
    server process that hold them.
    """

    team = models.OneToOneField(
        "teams.Team", on_delete=models.CASCADE, related_name="git_repository"
    )
    url = models.CharField(max_length=500)
    branch = models.CharField(max_length=200, default="main")
    folder = models.CharField(max_length=200, default="loops/")
    username_env = models.CharField(max_length=100, blank=True)
    password_env = models.CharField(max_length=100, blank=True)
    last_export_at = models.DateTimeField(null=True, blank=True)
    last_export_commit = models.CharField(max_length=40, blank=True)
    last_import_at = models.DateTimeField(null=True, blank=True)
    last_import_commit = models.CharField(max_length=40, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    objects = TeamScopedQuerySet["GitRepository"].as_manager()

    def __str__(self) -> str:
        return f"{self.url} ({self.branch}:{self.folder})"
