"""MedGenomics settings: one file, driven by environment variables.

Every secret can also be read from ``<NAME>_FILE`` (Docker/Kubernetes secrets). The embedded
default needs no variable at all: SQLite, an in-process worker pool and the in-memory channel
layer, with keys generated on first run in the data directory (outside the repository).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name: str, default: str | None = None) -> str | None:
    """Read ``name`` from the environment, or from the file named by ``name_FILE``."""
    file_path = os.environ.get(f"{name}_FILE")
    if file_path:
        return Path(file_path).read_text().strip()
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    value = env(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = env(name)
    return int(value) if value not in (None, "") else default


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in (env(name, default) or "").split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)
TESTING = env_bool("MEDGENOMICS_TESTING", False)

# Where keys, the SQLite database, staged (encrypted) uploads and archives live. Never inside
# the repository: a clone must not carry keys or patient data.
DATA_DIR = Path(
    env("MEDGENOMICS_DATA_DIR")
    or Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "medgenomics"
).resolve()
STAGING_DIR = DATA_DIR / "staging"
ARCHIVE_DIR = DATA_DIR / "archives"
KEYS_DIR = DATA_DIR / "keys"


def _secret_key() -> str:
    configured = env("SECRET_KEY")
    if configured:
        return configured
    # Development default: a random key kept in the data directory, so sessions survive a
    # restart without a secret ever being committed.
    key_file = KEYS_DIR / "django-secret-key"
    if not key_file.exists():
        key_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(50))
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "daphne",  # only for `manage.py runserver`; production serves with uvicorn (see README)
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "django_htmx",
    "django_prometheus",
    "csp",
    "analysis",
    "security",
    "jobs",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "security.middleware.BlockedAddressMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "jobs.middleware.OneTimePasswordMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "medgenomics.urls"
ASGI_APPLICATION = "medgenomics.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASE_URL = env("DATABASE_URL")
if DATABASE_URL:
    # No persistent connections: under ASGI each request runs in its own thread, and kept-open
    # connections pile up until PostgreSQL refuses more.
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": env("MEDGENOMICS_SQLITE_PATH") or str(DATA_DIR / "db.sqlite3"),
            # Worker threads write while requests read: WAL lets readers go on, IMMEDIATE
            # takes the write lock at BEGIN (no upgrade deadlocks), the timeout waits for it.
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    }

REDIS_URL = env("REDIS_URL")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL]},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# Celery: used only when REDIS_URL is set; the embedded default runs jobs in-process.
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
MEDGENOMICS_JOB_RUNNER = env("MEDGENOMICS_JOB_RUNNER") or ("celery" if REDIS_URL else "thread")
MEDGENOMICS_WORKER_THREADS = env_int("MEDGENOMICS_WORKER_THREADS", 2)
# Transient failures retry after base, 2*base and 4*base seconds (four attempts in all).
MEDGENOMICS_RETRY_BASE_SECONDS = float(env("MEDGENOMICS_RETRY_BASE_SECONDS") or 1)
# A running job whose heartbeat is older than this is taken to have lost its worker; a job
# never picked up is given longer (it may just be waiting in a long queue).
MEDGENOMICS_STALE_JOB_SECONDS = env_int("MEDGENOMICS_STALE_JOB_SECONDS", 120)
MEDGENOMICS_STALE_QUEUED_SECONDS = env_int("MEDGENOMICS_STALE_QUEUED_SECONDS", 900)
MEDGENOMICS_SWEEP_INTERVAL_SECONDS = env_int("MEDGENOMICS_SWEEP_INTERVAL_SECONDS", 60)
CELERY_BEAT_SCHEDULE = {
    "recover-stale-jobs": {
        "task": "jobs.tasks.sweep_stale_jobs",
        "schedule": float(MEDGENOMICS_SWEEP_INTERVAL_SECONDS),
    },
    "purge-expired-archives": {"task": "jobs.tasks.purge_expired_archives", "schedule": 3600.0},
    # Weekly GA run; it publishes a new policy version only if it beats the active one.
    "optimise-security-policy": {
        "task": "security.tasks.optimise_policy_task",
        "schedule": 7 * 24 * 3600.0,
    },
}
CELERY_TASK_DEFAULT_QUEUE = "medgenomics"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
MEDGENOMICS_WORKER_METRICS_PORT = env_int("MEDGENOMICS_WORKER_METRICS_PORT", 0)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "jobs:list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env("STATIC_ROOT") or DATA_DIR / "staticfiles")
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG or TESTING
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Uploads ------------------------------------------------------------------------------
# Every file upload goes through the encrypting handler: plaintext is AES-GCM encrypted chunk by
# chunk as it arrives, so neither Django's temporary upload file nor any other file holds it.
FILE_UPLOAD_HANDLERS = ["jobs.upload.EncryptingUploadHandler"]
MEDGENOMICS_MAX_UPLOAD_BYTES = env_int("MEDGENOMICS_MAX_UPLOAD_BYTES", 50 * 1024 * 1024)
# Room for the multipart envelope around the file when refusing by Content-Length.
MEDGENOMICS_MULTIPART_ALLOWANCE = 1024 * 1024
MEDGENOMICS_UPLOADS_PER_MINUTE = env_int("MEDGENOMICS_UPLOADS_PER_MINUTE", 10)

# --- Keys and vault -----------------------------------------------------------------------
MEDGENOMICS_KEK_FILE = Path(env("MEDGENOMICS_KEK_FILE") or KEYS_DIR / "staging-kek.bin")
MEDGENOMICS_SIGNING_KEY_FILE = Path(
    env("MEDGENOMICS_SIGNING_KEY_FILE") or KEYS_DIR / "certificate-signing-ed25519.pem"
)
MEDGENOMICS_CUSTODIAN_PUBLIC_KEYS = [
    Path(p) for p in env_list("MEDGENOMICS_CUSTODIAN_PUBLIC_KEYS")
] or [KEYS_DIR / "custodian.c4gh.pub"]
# Only the development default generates a custodian private key (beside the public one);
# production gives the server public keys only.
MEDGENOMICS_GENERATE_MISSING_KEYS = env_bool(
    "MEDGENOMICS_GENERATE_MISSING_KEYS", not env("MEDGENOMICS_CUSTODIAN_PUBLIC_KEYS")
)
MEDGENOMICS_PSEUDONYM_SECRET = env("MEDGENOMICS_PSEUDONYM_SECRET")
MEDGENOMICS_ZSTD_LEVEL = env_int("MEDGENOMICS_ZSTD_LEVEL", 3)
MEDGENOMICS_RETENTION_DAYS = env_int("MEDGENOMICS_RETENTION_DAYS", 7)
MEDGENOMICS_ISSUER = env("MEDGENOMICS_ISSUER") or "MedGenomics"
# The site's address as others reach it (certificate QR codes), e.g. https://genomics.example.org
MEDGENOMICS_PUBLIC_URL = env("MEDGENOMICS_PUBLIC_URL") or ""

# --- Logging: JSON lines with job ids, never file content or names ------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "medgenomics.jsonlog.JsonFormatter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL") or "INFO"},
    "loggers": {
        # crypt4gh logs session keys at DEBUG: never let it go below WARNING.
        "crypt4gh": {"level": "WARNING"},
        "django.db.backends": {"level": "INFO"},
    },
}

# --- Operations ---------------------------------------------------------------------------
MEDGENOMICS_OPS_ALLOWED_IPS = env_list("MEDGENOMICS_OPS_ALLOWED_IPS", "127.0.0.1,::1")
MEDGENOMICS_OPS_TOKEN = env("MEDGENOMICS_OPS_TOKEN")
# /healthz fails below this much free space in the data directory (several full uploads).
MEDGENOMICS_MIN_FREE_BYTES = env_int("MEDGENOMICS_MIN_FREE_BYTES", 512 * 1024 * 1024)

# --- Production hardening (see docs/operations.md) ----------------------------------------
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
if env_bool("BEHIND_TLS_PROXY", False):
    # The proxy terminates TLS and says so in X-Forwarded-Proto; only set this behind one.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# Content Security Policy (django-csp): everything from this origin, nothing inline but styles
# (SVG charts carry presentation attributes), no framing.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    }
}
