"""Django settings for the LoopKit web app, read from environment variables.

Embedded default (no variables set): SQLite and SqliteHuey in ``LOOPKIT_HOME``
(a user-data folder, ``~/.local/share/loopkit``), a channel layer that crosses
processes through SQLite (channels-lite), DEBUG off, a secret key generated once
into ``LOOPKIT_HOME``. ``loopkit serve --dev`` (``make run``) turns DEBUG on.

Scale-out: ``DATABASE_URL`` (PostgreSQL) and ``REDIS_URL`` (RedisHuey and
channels-redis). Served over HTTPS: ``LOOPKIT_HTTPS=true`` turns on secure
cookies, HSTS and the redirect to HTTPS. docs/deploy.md lists every variable.

Importing this module writes nothing but ``LOOPKIT_HOME`` and the secret key
file in it; never inside the installed package.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from whitenoise.compress import Compressor

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    """Return the boolean value of environment variable *name*."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean: use true or false.")


def env_list(name: str, default: list[str]) -> list[str]:
    """Return the comma-separated list in environment variable *name*."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_int(name: str, default: int) -> int:
    """Return the whole number in environment variable *name*."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number.") from None


def env_float(name: str, default: float) -> float:
    """Return the number (seconds, say) in environment variable *name*."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number.") from None


def default_home() -> Path:
    """Return the user-data folder: ``$XDG_DATA_HOME/loopkit`` or ``~/.local/share/loopkit``."""
    data_home = os.environ.get("XDG_DATA_HOME", "").strip()
    return Path(data_home or Path.home() / ".local" / "share") / "loopkit"


def read_secret_key(home: Path) -> str:
    """Return the secret key stored in *home*, generating it on first use (mode 0600)."""
    path = home / "secret_key"
    try:
        key = path.read_text().strip()
    except FileNotFoundError:
        key = ""
    if key:
        return key
    key = secrets.token_urlsafe(50)
    try:
        # O_EXCL: of two processes starting at once, one writes and both read its key.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as out:
        out.write(key + "\n")
    return key


DEBUG = env_bool("DEBUG", False)

# Where the embedded mode keeps its files: SQLite databases, the Huey queue, the
# secret key, collected static files. LOOPKIT_VAR_DIR is its older name.
VAR_DIR = Path(
    os.environ.get("LOOPKIT_HOME") or os.environ.get("LOOPKIT_VAR_DIR") or default_home()
).resolve()
VAR_DIR.mkdir(parents=True, exist_ok=True)

SECRET_KEY = os.environ.get("SECRET_KEY", "") or read_secret_key(VAR_DIR)
# Fernet keys (comma-separated, the first encrypts) for the providers' API keys at rest;
# unset: derived from SECRET_KEY. Rotation: docs/deploy.md.
LOOPKIT_SECRETS_KEY = os.environ.get("LOOPKIT_SECRETS_KEY", "")

# Served under other names than the local ones: set ALLOWED_HOSTS (loopkit.example.com).
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# Apps of later issues append themselves here (e.g. "builder", "runs"); their
# urls.py and api.py are then mounted by loopkit_web/urls.py and api.py.
# "dashboard" before "runs": its /runs/ list answers before the runs app's pages.
LOOPKIT_APPS: list[str] = ["builder", "dashboard", "runs", "providers", "notifications"]

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "huey.contrib.djhuey",
    # Swagger UI's own files for /api/docs (no CDN: works on an offline server).
    "ninja",
    "loopkit_web",
    "loopkit_web.accounts",
    "loopkit_web.teams",
    "loopkit_web.audit",
    *LOOPKIT_APPS,
]

MIDDLEWARE = [
    # A refused database connection: 503 with Retry-After, never a 500 (loopkit_web/db.py).
    "loopkit_web.db.DatabaseRefusalMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "loopkit_web.urls"
ASGI_APPLICATION = "loopkit_web.asgi.application"
WSGI_APPLICATION = "loopkit_web.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # Ahead of the apps' own (admin's registration/ pages are replaced).
        "DIRS": [Path(__file__).resolve().parent / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "loopkit_web.context_processors.navigation",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------

SQLITE_OPTIONS: dict[str, Any] = {
    # WAL lets the server, the Huey worker and the channel layer read while one writes;
    # IMMEDIATE transactions take the write lock up front instead of failing mid-way.
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    "transaction_mode": "IMMEDIATE",
    "timeout": 20,
}

DATABASE_URL = os.environ.get("DATABASE_URL", "")

# Connections. Under ASGI (Daphne) each request runs in a thread of its own, and
# Django's docs advise against persistent connections there (CONN_MAX_AGE > 0):
# every such thread would keep one open. So connections are never persistent;
# on PostgreSQL each process borrows them from a bounded pool (psycopg_pool,
# Django 5.1+), returned at the end of each request or task. A request that
# finds the pool busy waits up to LOOPKIT_DB_POOL_TIMEOUT seconds, then is
# answered 503 with Retry-After (loopkit_web/db.py). The budget per process:
# docs/deploy.md, "Database connections".
DB_POOL = env_bool("LOOPKIT_DB_POOL", True)
DB_POOL_MIN = env_int("LOOPKIT_DB_POOL_MIN", 1)
DB_POOL_MAX = env_int("LOOPKIT_DB_POOL_MAX", 10)
DB_POOL_TIMEOUT = env_float("LOOPKIT_DB_POOL_TIMEOUT", 30.0)
DB_POOL_MAX_IDLE = env_float("LOOPKIT_DB_POOL_MAX_IDLE", 60.0)
if not 0 <= DB_POOL_MIN <= DB_POOL_MAX or DB_POOL_MAX < 1:
    raise ImproperlyConfigured(
        f"LOOPKIT_DB_POOL_MIN={DB_POOL_MIN} and LOOPKIT_DB_POOL_MAX={DB_POOL_MAX}: "
        "use 0 <= MIN <= MAX and MAX >= 1."
    )
if DATABASE_URL:
    DATABASES: dict[str, dict[str, Any]] = {
        # A plain dict (parse returns a TypedDict): OPTIONS may be added below.
        "default": dict(
            dj_database_url.parse(DATABASE_URL, conn_max_age=0, conn_health_checks=True)
        )
    }
    DATABASES["default"]["OPTIONS"] = dict(DATABASES["default"].get("OPTIONS") or {})
    if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
        DATABASES["default"]["OPTIONS"].update(SQLITE_OPTIONS)
    elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and DB_POOL:
        DATABASES["default"]["OPTIONS"]["pool"] = {
            "min_size": DB_POOL_MIN,
            "max_size": DB_POOL_MAX,
            # How long a request or task waits for a free connection (then PoolTimeout).
            "timeout": DB_POOL_TIMEOUT,
            # Connections above min_size unused this long are closed, one per period.
            "max_idle": DB_POOL_MAX_IDLE,
            "name": "loopkit",
        }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "loopkit.sqlite3",
            "OPTIONS": dict(SQLITE_OPTIONS),
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Huey (background tasks) -------------------------------------------------------

REDIS_URL = os.environ.get("REDIS_URL", "")
# Always explicit: djhuey would otherwise run tasks inline whenever DEBUG is on.
HUEY_IMMEDIATE = env_bool("LOOPKIT_HUEY_IMMEDIATE", False)
HUEY: dict[str, Any] = {
    # Deployments sharing one Redis database keep their queues apart by name.
    "name": os.environ.get("LOOPKIT_HUEY_NAME", "loopkit"),
    "immediate": HUEY_IMMEDIATE,
    "results": True,
    "utc": True,
    "consumer": {
        "workers": int(os.environ.get("LOOPKIT_HUEY_WORKERS", "4")),
        "worker_type": "thread",
        # An idle consumer backs off polling up to 10 s by default; 0.5 s keeps
        # enqueue-to-start well under a second.
        "max_delay": 0.5,
        "periodic": True,
    },
}
if REDIS_URL:
    HUEY.update({"huey_class": "huey.RedisHuey", "url": REDIS_URL})
else:
    HUEY.update(
        {
            "huey_class": "huey.SqliteHuey",
            "filename": str(VAR_DIR / "huey.sqlite3"),
        }
    )

# --- Channels (live updates) --------------------------------------------------------

# "redis" (needs REDIS_URL), "sqlite" (channels-lite: crosses processes on one
# machine without a server) or "memory" (one process only: tests).
CHANNEL_LAYER_BACKEND = os.environ.get(
    "LOOPKIT_CHANNEL_LAYER", "redis" if REDIS_URL else "sqlite"
).lower()
if CHANNEL_LAYER_BACKEND == "redis":
    if not REDIS_URL:
        raise ImproperlyConfigured("LOOPKIT_CHANNEL_LAYER=redis needs REDIS_URL to be set.")
    CHANNEL_LAYERS: dict[str, Any] = {
        "default": {
            # channels-redis with a bounded pool that waits for a free connection
            # (loopkit_web/channel_layers.py): many sockets at once never fail.
            "BACKEND": "loopkit_web.channel_layers.RedisChannelLayer",
            "CONFIG": {
                "hosts": [REDIS_URL],
                "max_connections": int(os.environ.get("LOOPKIT_REDIS_MAX_CONNECTIONS", "50")),
            },
        }
    }
elif CHANNEL_LAYER_BACKEND == "sqlite":
    INSTALLED_APPS.append("channels_lite")
    _channels_db = "default"
    if DATABASES["default"]["ENGINE"] != "django.db.backends.sqlite3":
        # channels-lite needs SQLite: a PostgreSQL deployment without Redis keeps
        # its channel messages in a local SQLite file (one machine only).
        _channels_db = "channels"
        DATABASES["channels"] = {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "channels.sqlite3",
            "OPTIONS": dict(SQLITE_OPTIONS),
        }
        DATABASE_ROUTERS = ["channels_lite.router.ChannelsRouter"]
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_lite.layers.core.SQLiteChannelLayer",
            "CONFIG": {"database": _channels_db, "polling_interval": 0.1},
        }
    }
elif CHANNEL_LAYER_BACKEND == "memory":
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
else:
    raise ImproperlyConfigured(
        f"LOOPKIT_CHANNEL_LAYER={CHANNEL_LAYER_BACKEND!r} is unknown: use redis, sqlite or memory."
    )

# --- Auth ---------------------------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# --- I18N, static files -------------------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", str(VAR_DIR / "staticfiles")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
# In DEBUG the server finds static files without collectstatic.
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG
# Source maps (5 MB of Swagger UI's) are for developer tools only: compressing them
# was most of collectstatic's time, which `loopkit serve` pays at its first start.
WHITENOISE_SKIP_COMPRESS_EXTENSIONS = [*Compressor.SKIP_COMPRESS_EXTENSIONS, "map"]

# --- Production safety ------------------------------------------------------------

# LOOPKIT_HTTPS: browsers reach the app over HTTPS (a proxy terminates TLS and sets
# X-Forwarded-Proto). Each setting it implies can be overridden on its own.
HTTPS = env_bool("LOOPKIT_HTTPS", False)
SECURE_COOKIES = env_bool("LOOPKIT_SECURE_COOKIES", HTTPS)
SESSION_COOKIE_SECURE = SECURE_COOKIES
CSRF_COOKIE_SECURE = SECURE_COOKIES
SESSION_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
if env_bool("LOOPKIT_BEHIND_TLS_PROXY", HTTPS):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("LOOPKIT_SSL_REDIRECT", HTTPS)
# /api/health answers plain HTTP: load balancers probe the app directly.
SECURE_REDIRECT_EXEMPT = [r"^api/health$"]
SECURE_HSTS_SECONDS = int(os.environ.get("LOOPKIT_HSTS_SECONDS", "31536000" if HTTPS else "0"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("LOOPKIT_HSTS_INCLUDE_SUBDOMAINS", HTTPS)
SECURE_HSTS_PRELOAD = env_bool("LOOPKIT_HSTS_PRELOAD", False)
# Preloading is the domain owner's commitment (hstspreload.org), not a default: the
# deploy check's reminder of it is not a finding.
SILENCED_SYSTEM_CHECKS = ["security.W021"]

# --- LoopKit ----------------------------------------------------------------------

# Callables "module.function" run by `loopkit serve --demo` after the demo
# team exists, each called as loader(team=..., user=..., stdout=...). The builder
# app appends its example-loop loader here.
LOOPKIT_DEMO_LOADERS: list[str] = ["builder.demo.load_example_loops"]

# Builder: the largest import upload (YAML files or a zip), and whether a team's
# git repository may be a local path on the server (off by default in production).
LOOPKIT_IMPORT_MAX_BYTES = int(os.environ.get("LOOPKIT_IMPORT_MAX_BYTES", str(10 * 1024 * 1024)))
LOOPKIT_GIT_ALLOW_LOCAL = env_bool("LOOPKIT_GIT_ALLOW_LOCAL", DEBUG)

# Who may create an account: open (anyone), invite (only with a team's invitation
# link; the default unless DEBUG) or closed (admins create accounts).
LOOPKIT_SIGNUP = os.environ.get("LOOPKIT_SIGNUP", "").strip().lower() or (
    "open" if DEBUG else "invite"
)
if LOOPKIT_SIGNUP not in ("open", "invite", "closed"):
    raise ImproperlyConfigured(
        f"LOOPKIT_SIGNUP must be open, invite or closed, not {LOOPKIT_SIGNUP!r}"
    )

# --- Notifications (docs/notifications.md) ----------------------------------------

# Where people open LoopKit (https://loopkit.example.com): the links in notifications.
# Unset: http://localhost:$LOOPKIT_PORT, fine only on one machine.
LOOPKIT_PUBLIC_URL = os.environ.get("LOOPKIT_PUBLIC_URL", "").strip().rstrip("/")
# Teams' email notifications go through Django's email backend: an SMTP server.
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 30)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "loopkit@localhost")

# Navigation entries of the base template: (label, URL name). An entry whose
# URL name does not resolve yet is shown disabled instead of failing the page.
LOOPKIT_NAV: list[tuple[str, str]] = [
    ("Loops", "builder:loop_list"),
    ("Runs", "dashboard:run_list"),
    ("Dashboard", "dashboard:dashboard"),
    ("Providers", "providers:list"),
    ("Audit", "audit:list"),
    ("Team settings", "teams:current"),
]

LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        # run_huey attaches its own handler to "huey"; do not print every line twice.
        "huey": {"level": "INFO", "propagate": False},
        # The pool logs each connection it opens or closes at INFO.
        "psycopg.pool": {"level": "WARNING"},
    },
}
