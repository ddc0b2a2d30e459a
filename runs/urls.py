"""Pages of the runs app (mounted at the site root) and the webhook endpoint."""

from __future__ import annotations

from django.urls import path

from runs import views, webhooks

app_name = "runs"
URL_PREFIX = ""

urlpatterns = [
    path("runs/", views.run_list, name="run_list"),
    path("runs/<int:run_id>/", views.run_detail, name="run_detail"),
    path("runs/start/<int:loop_id>/", views.start, name="start"),
    path("runs/<int:run_id>/keep-as-test/", views.keep_as_test, name="keep_as_test"),
    path("loops/<int:loop_id>/tests/run/", views.run_loop_tests, name="run_loop_tests"),
    path(
        "loops/<int:loop_id>/tests/<int:test_id>/delete/",
        views.delete_loop_test,
        name="delete_loop_test",
    ),
    path("hooks/<slug:team_slug>/<str:loop_name>/", webhooks.receive, name="webhook"),
]
