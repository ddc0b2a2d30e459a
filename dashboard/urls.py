"""Pages: /dashboard/ and the runs list at /runs/ (the runs app serves /runs/<id>/).

Mounted at the site root (``URL_PREFIX = ""``); "dashboard" comes before "runs"
in settings.LOOPKIT_APPS so that /runs/ is this list.
"""

from __future__ import annotations

from django.urls import path

from dashboard import views

app_name = "dashboard"
URL_PREFIX = ""

urlpatterns = [
    path("dashboard/", views.dashboard, name="dashboard"),
    path("dashboard/<slug:dashboard_table>.csv", views.dashboard_csv, name="table_csv"),
    path("runs/", views.run_list, name="run_list"),
    path("runs/export.csv", views.run_list_csv, name="run_list_csv"),
]
