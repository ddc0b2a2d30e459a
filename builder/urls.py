from __future__ import annotations

from django.urls import path

from builder import views

app_name = "builder"
URL_PREFIX = "loops/"

urlpatterns = [
    path("", views.loop_list, name="loop_list"),
    path("new/", views.loop_new, name="loop_new"),
    path("templates/", views.loop_templates, name="loop_templates"),
    path("import/", views.import_loops, name="import"),
    path("export.zip", views.export_all, name="export_all"),
    path("repository/", views.repository, name="repository"),
    path("repository/export/", views.repository_export, name="repository_export"),
    path("repository/import/", views.repository_import, name="repository_import"),
    path("<int:loop_id>/", views.loop_detail, name="loop_detail"),
    path("<int:loop_id>/edit/", views.loop_edit, name="loop_edit"),
    path("<int:loop_id>/diff/", views.loop_diff, name="loop_diff"),
    path("<int:loop_id>/delete/", views.loop_delete, name="loop_delete"),
    path("<int:loop_id>/export.yaml", views.export_one, name="export_one"),
    path("<int:loop_id>/export.md", views.export_gh_aw, name="export_gh_aw"),
    path(
        "<int:loop_id>/versions/<int:number>/restore/",
        views.restore_version,
        name="restore_version",
    ),
]
