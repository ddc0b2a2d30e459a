from __future__ import annotations

from django.apps import AppConfig


class BuilderConfig(AppConfig):
    name = "builder"
    verbose_name = "Loop builder"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.http import HttpRequest, HttpResponse

        from builder.services import BuilderError
        from loopkit_web.api import api

        def on_builder_error(request: HttpRequest, exc: BuilderError) -> HttpResponse:
            return api.create_response(request, exc.body(), status=exc.status)

        api.add_exception_handler(BuilderError, on_builder_error)
