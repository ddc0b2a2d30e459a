"""WSGI entry point (no WebSockets: use asgi.py with daphne in production)."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loopkit_web.settings")

application = get_wsgi_application()
