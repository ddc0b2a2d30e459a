"""Pages of the providers app."""

from __future__ import annotations

from django.urls import path

from providers import views

app_name = "providers"

urlpatterns = [
    path("", views.provider_list, name="list"),
    path("<int:provider_id>/", views.provider_update, name="update"),
    path("<int:provider_id>/delete/", views.provider_delete, name="delete"),
    path("<int:provider_id>/test/", views.provider_test, name="test"),
]
