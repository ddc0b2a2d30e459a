"""Settings from environment variables, read in child processes as a deployment would."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from .procs import child_env, manage

PRINT_SETTINGS = """
import json
import re
from django.conf import settings
from huey.contrib.djhuey import HUEY
db = settings.DATABASES["default"]
print("SETTINGS " + json.dumps({
    "debug": settings.DEBUG,
    "db_engine": db["ENGINE"],
    "db_name": str(db["NAME"]),
    "conn_max_age": db.get("CONN_MAX_AGE", 0),
    "pool": db.get("OPTIONS", {}).get("pool"),
    "databases": sorted(settings.DATABASES),
    "huey": type(HUEY).__name__,
    "huey_immediate": HUEY.immediate,
    "max_delay": settings.HUEY["consumer"]["max_delay"],
    "channel_layer": settings.CHANNEL_LAYERS["default"]["BACKEND"],
    "secure_cookies": [settings.SESSION_COOKIE_SECURE, settings.CSRF_COOKIE_SECURE],
    "allowed_hosts": settings.ALLOWED_HOSTS,
    "static_storage": settings.STORAGES["staticfiles"]["BACKEND"],
    "secret_key": settings.SECRET_KEY,
    "hsts": [settings.SECURE_HSTS_SECONDS, settings.SECURE_SSL_REDIRECT],
    "proxy_ssl_header": getattr(settings, "SECURE_PROXY_SSL_HEADER", None),
}))
"""

PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": "k3y-" + "x9Qz" * 16,
    "ALLOWED_HOSTS": "loopkit.example.com",
    "LOOPKIT_HTTPS": "true",
}


def read_settings(tmp_path: Path, **env: str) -> dict[str, Any]:
    proc = manage(
        "shell", "-c", PRINT_SETTINGS, env=child_env(**{"LOOPKIT_HOME": str(tmp_path), **env})
    )
    return json.loads(proc.stdout.split("SETTINGS ", 1)[1])  # type: ignore[no-any-return]


def test_the_embedded_default_needs_no_server(tmp_path: Path) -> None:
    s = read_settings(tmp_path)

    assert s["debug"] is True
    assert (s["db_engine"], s["db_name"]) == (
        "django.db.backends.sqlite3",
        str(tmp_path / "loopkit.sqlite3"),
    )
    assert (s["huey"], s["huey_immediate"], s["max_delay"]) == ("SqliteHuey", False, 0.5)
    assert s["channel_layer"] == "channels_lite.layers.core.SQLiteChannelLayer"


def test_database_and_redis_urls_scale_out(tmp_path: Path) -> None:
    s = read_settings(
        tmp_path,
        DATABASE_URL="postgres://loop:pw@db.internal:5432/loopkit",
        REDIS_URL="redis://cache.internal:6379/0",
    )

    assert (s["db_engine"], s["db_name"]) == ("django.db.backends.postgresql", "loopkit")
    assert (s["huey"], s["huey_immediate"]) == ("RedisHuey", False)
    # channels-redis with a bounded, blocking pool (loopkit_web/channel_layers.py).
    assert s["channel_layer"] == "loopkit_web.channel_layers.RedisChannelLayer"


def test_postgres_connections_come_from_a_bounded_pool_never_persistent(tmp_path: Path) -> None:
    url = "postgres://loop:pw@db.internal:5432/loopkit"

    default = read_settings(tmp_path, DATABASE_URL=url)
    sized = read_settings(
        tmp_path,
        DATABASE_URL=url,
        LOOPKIT_DB_POOL_MIN="0",
        LOOPKIT_DB_POOL_MAX="25",
        LOOPKIT_DB_POOL_TIMEOUT="2.5",
        LOOPKIT_DB_POOL_MAX_IDLE="30",
    )
    without = read_settings(tmp_path, DATABASE_URL=url, LOOPKIT_DB_POOL="false")

    # Django refuses a pool with persistent connections: CONN_MAX_AGE is 0 with it.
    assert default["conn_max_age"] == sized["conn_max_age"] == without["conn_max_age"] == 0
    assert default["pool"] == {
        "min_size": 1,
        "max_size": 10,
        "timeout": 30.0,
        "max_idle": 60.0,
        "name": "loopkit",
    }
    assert sized["pool"] == {
        "min_size": 0,
        "max_size": 25,
        "timeout": 2.5,
        "max_idle": 30.0,
        "name": "loopkit",
    }
    # LOOPKIT_DB_POOL=false (a PgBouncer in front, say): a connection per request, closed after it.
    assert without["pool"] is None


def test_other_database_urls_keep_no_persistent_connections(tmp_path: Path) -> None:
    s = read_settings(tmp_path, DATABASE_URL=f"sqlite:///{tmp_path / 'other.sqlite3'}")

    assert (s["db_engine"], s["conn_max_age"], s["pool"]) == ("django.db.backends.sqlite3", 0, None)


def test_postgres_without_redis_keeps_channel_messages_in_local_sqlite(tmp_path: Path) -> None:
    s = read_settings(tmp_path, DATABASE_URL="postgres://loop@db.internal/loopkit")

    assert s["databases"] == ["channels", "default"]
    assert s["channel_layer"] == "channels_lite.layers.core.SQLiteChannelLayer"


def test_huey_immediate_is_explicit_and_switchable(tmp_path: Path) -> None:
    assert read_settings(tmp_path, LOOPKIT_HUEY_IMMEDIATE="true")["huey_immediate"] is True
    # DEBUG on does not make tasks run inline (djhuey's default would).
    assert read_settings(tmp_path, DEBUG="true")["huey_immediate"] is False


def test_production_settings_are_safe(tmp_path: Path) -> None:
    s = read_settings(tmp_path, **PRODUCTION)

    assert s["debug"] is False
    assert s["secure_cookies"] == [True, True]
    assert s["hsts"] == [31536000, True]
    assert s["proxy_ssl_header"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert s["allowed_hosts"] == ["loopkit.example.com"]
    assert s["static_storage"] == "whitenoise.storage.CompressedManifestStaticFilesStorage"


def test_with_no_variables_debug_is_off_and_a_secret_key_is_made_once_in_loopkit_home(
    tmp_path: Path,
) -> None:
    # DEBUG="" is unset for env_bool (child_env sets the development mode's DEBUG=true).
    first = read_settings(tmp_path, DEBUG="")
    second = read_settings(tmp_path, DEBUG="")

    key_file = tmp_path / "secret_key"
    assert first["debug"] is False
    assert first["secure_cookies"] == [False, False]  # plain HTTP on localhost until LOOPKIT_HTTPS
    assert first["allowed_hosts"] == ["localhost", "127.0.0.1", "[::1]"]
    assert first["secret_key"] == second["secret_key"] == key_file.read_text().strip()
    assert len(first["secret_key"]) >= 50
    assert key_file.stat().st_mode & 0o777 == 0o600


def test_loopkit_home_defaults_to_the_users_data_folder(tmp_path: Path) -> None:
    s = read_settings(tmp_path, LOOPKIT_HOME="", XDG_DATA_HOME=str(tmp_path / "data"))

    assert s["db_name"] == str(tmp_path / "data" / "loopkit" / "loopkit.sqlite3")
    assert (tmp_path / "data" / "loopkit" / "secret_key").is_file()


def test_the_deploy_checklist_passes_with_tls_settings(tmp_path: Path) -> None:
    # The settings docs/deploy.md documents: the secret key is the generated one.
    env = child_env(
        LOOPKIT_HOME=str(tmp_path),
        DEBUG="false",
        ALLOWED_HOSTS="loopkit.example.com",
        LOOPKIT_HTTPS="true",
    )

    proc = manage("check", "--deploy", "--fail-level", "WARNING", env=env)

    assert "no issues" in proc.stdout


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DEBUG": "maybe"}, "DEBUG='maybe' is not a boolean: use true or false."),
        (
            {"LOOPKIT_CHANNEL_LAYER": "redis"},
            "LOOPKIT_CHANNEL_LAYER=redis needs REDIS_URL to be set.",
        ),
        ({"LOOPKIT_DB_POOL_MAX": "ten"}, "LOOPKIT_DB_POOL_MAX='ten' is not a whole number."),
        (
            {"LOOPKIT_DB_POOL_MIN": "5", "LOOPKIT_DB_POOL_MAX": "2"},
            "LOOPKIT_DB_POOL_MIN=5 and LOOPKIT_DB_POOL_MAX=2: use 0 <= MIN <= MAX and MAX >= 1.",
        ),
    ],
)
def test_a_misconfiguration_stops_with_a_clear_message(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    proc = manage("check", env=child_env(LOOPKIT_HOME=str(tmp_path), **env), check=False)

    assert proc.returncode != 0
    assert message in proc.stderr


def test_static_files_are_served_by_the_app_with_debug_off(tmp_path: Path) -> None:
    env = child_env(LOOPKIT_HOME=str(tmp_path), **PRODUCTION)
    manage("collectstatic", "--no-input", "-v0", env=env)
    script = (
        "from django.templatetags.static import static; from django.test import Client; "
        "url = static('loopkit_web/base.css'); "
        "r = Client(HTTP_HOST='loopkit.example.com', HTTP_X_FORWARDED_PROTO='https').get(url); "
        "print('STATIC', url, r.status_code, r.headers.get('Cache-Control'))"
    )

    proc = manage("shell", "-c", script, env=env)

    url, status, *cache = proc.stdout.split("STATIC ", 1)[1].split()
    assert re.fullmatch(r"/static/loopkit_web/base\.[0-9a-f]{12}\.css", url)
    assert status == "200"
    assert "immutable" in " ".join(cache)


def test_system_checks_catch_a_huey_without_immediate_and_a_missing_demo_loader(
    settings: Any,
) -> None:
    from loopkit_web.checks import check_demo_loaders, check_huey_immediate

    assert check_huey_immediate(None) == [] and check_demo_loaders(None) == []
    settings.HUEY = {"name": "loopkit"}
    settings.LOOPKIT_DEMO_LOADERS = ["nowhere.load_loops"]

    assert [e.id for e in check_huey_immediate(None)] == ["loopkit.E001"]
    errors = check_demo_loaders(None)
    assert [e.id for e in errors] == ["loopkit.E002"]
    assert errors[0].msg.startswith(
        "LOOPKIT_DEMO_LOADERS entry 'nowhere.load_loops' cannot be imported"
    )
