from __future__ import annotations

from django.urls import path

from loopkit_web.teams import views

app_name = "teams"

urlpatterns = [
    path("", views.team_list, name="list"),
    path("switch/", views.switch, name="switch"),
    path("current/", views.current, name="current"),
    path("join/<str:token>/", views.accept_invitation, name="invitation"),
    path("<int:team_id>/", views.team_settings, name="settings"),
    path("<int:team_id>/rename/", views.rename, name="rename"),
    path("<int:team_id>/leave/", views.leave, name="leave"),
    path(
        "<int:team_id>/members/<int:membership_id>/role/",
        views.change_role,
        name="change_role",
    ),
    path(
        "<int:team_id>/members/<int:membership_id>/remove/",
        views.remove_member,
        name="remove_member",
    ),
    path("<int:team_id>/invitations/", views.invite, name="invite"),
    path(
        "<int:team_id>/invitations/<int:invitation_id>/revoke/",
        views.revoke_invitation,
        name="revoke_invitation",
    ),
]
