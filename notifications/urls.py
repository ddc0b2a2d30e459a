"""Pages of the notifications app: a team's notification settings (under /teams/)."""

from __future__ import annotations

from django.urls import path

from notifications import views

app_name = "notifications"
URL_PREFIX = "teams/"

urlpatterns = [
    path("<int:team_id>/notifications/", views.team_notifications, name="settings"),
    path("<int:team_id>/notifications/test/", views.test, name="test"),
]
