from __future__ import annotations

from django.contrib import admin

from loopkit_web.teams.models import Invitation, Membership, Team

# ModelAdmin and TabularInline are generic only in django-stubs (no __class_getitem__ at
# run time without django_stubs_ext.monkeypatch), hence each class's ignore[type-arg].


class MembershipInline(admin.TabularInline):  # type: ignore[type-arg]
    model = Membership
    extra = 0


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("name", "slug", "created_at")
    search_fields = ("name", "slug")
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("user", "team", "role", "created_at")
    list_filter = ("role", "team")
    search_fields = ("user__username", "team__name")


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = (
        "team",
        "role",
        "created_by",
        "created_at",
        "expires_at",
        "accepted_by",
        "revoked_at",
    )
    list_filter = ("team", "role")
