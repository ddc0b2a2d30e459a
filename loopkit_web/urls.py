"""URL configuration.

Apps in ``settings.LOOPKIT_APPS`` that have a ``urls.py`` are included at
``URL_PREFIX`` (a module attribute, default ``<app>/``) under their
``app_name`` namespace; API routers are mounted by loopkit_web/api.py.
"""

from __future__ import annotations

from importlib import import_module
from importlib.util import find_spec
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from loopkit_web import views
from loopkit_web.api import api

urlpatterns: list[Any] = [
    path("", views.home, name="home"),
    path("accounts/", include("loopkit_web.accounts.urls")),
    path("teams/", include("loopkit_web.teams.urls")),
    path("audit/", include("loopkit_web.audit.urls")),
    path("admin/", admin.site.urls),
    path("api/", api.urls),
]

for _app in settings.LOOPKIT_APPS:
    if find_spec(f"{_app}.urls") is not None:
        _module = import_module(f"{_app}.urls")
        urlpatterns.append(path(getattr(_module, "URL_PREFIX", f"{_app}/"), include(_module)))

handler404 = "loopkit_web.views.handler404"
handler500 = "loopkit_web.views.handler500"
