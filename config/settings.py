"""Intake settings. Everything that differs between machines comes from the environment;
the defaults give a zero-setup developer machine (SQLite, a local Redis)."""

import os
import sys
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("Set DJANGO_SECRET_KEY (or DJANGO_DEBUG=1 for a development key).")
    SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production"

ALLOWED_HOSTS = [
    h.strip() for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",") if h.strip()
]
CSRF_TRUSTED_ORIGINS = [o.strip() for o in os.environ.get("DJANGO_CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()]

INSTALLED_APPS = [
    # daphne's app gives `manage.py runserver` an ASGI server (websockets included); nothing
    # else needs it (`make run`, the tests and production start daphne itself), and importing
    # it installs Twisted's reactor: 27 MB in every Celery worker that never serves a request.
    *(["daphne"] if "runserver" in sys.argv else []),
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "channels",
    "axes",
    "django_htmx",
    "template_partials",
    "ingestion",
    "realtime",
    "analytics",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "config.middleware.ContentSecurityPolicyMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes asks: it turns a locked-out sign-in into its 429 answer.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"

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
    }
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 0),
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # The worker and the web server write the same file: wait for locks instead of failing,
    # and let readers see committed progress while a writer is busy (WAL).
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 30,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
        }
    )
    # A file, not memory: the test worker process must see the test database.
    (BASE_DIR / ".run").mkdir(exist_ok=True)
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / ".run" / f"test-db-{os.getpid()}.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
# django-axes first: it counts failed sign-ins and refuses a locked-out one before the password
# is even checked.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", BASE_DIR / "media"))
MEDIA_URL = "media/"

# --- Redis, Celery, Channels -------------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND", REDIS_URL)
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TRACK_STARTED = True
CELERY_TASK_SEND_SENT_EVENT = True
CELERY_RESULT_EXTENDED = True
CELERY_TASK_SOFT_TIME_LIMIT = env_int("INGEST_SOFT_TIME_LIMIT", 3 * 3600)
CELERY_TASK_TIME_LIMIT = env_int("INGEST_TIME_LIMIT", 3 * 3600 + 300)
# A late-acked task is redelivered after this long if its worker vanished; must exceed the
# longest load, or Redis hands a running task to a second worker.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 4 * 3600)}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A Redis or RabbitMQ blip must not cancel a load that has run for an hour: the running task
# carries on, and the lease (not the broker) decides who owns an upload.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
# Publishing a task to a broker that is down gives up after about a second (the upload stays
# queued and the sweeper sends it once the broker is back), instead of holding a request.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.3, "interval_max": 0.5}
CELERY_BROKER_CONNECTION_TIMEOUT = 2

# Two queues, so a small file never waits behind a large one: files of at least
# INGEST_LARGE_FILE_BYTES go to INGEST_LARGE_QUEUE. A worker started without -Q serves both;
# `make run` gives small files a slot of their own.
INGEST_QUEUE = os.environ.get("INGEST_QUEUE", "intake")
INGEST_LARGE_QUEUE = os.environ.get("INGEST_LARGE_QUEUE", "intake_large")
INGEST_LARGE_FILE_BYTES = env_int("INGEST_LARGE_FILE_BYTES", 20 * 1024 * 1024)
# The analytics' own tasks (an upload's price check, the summaries' refresh, their sweep) have
# a queue of their own: a refresh of a million lines never holds a small file's slot.
ANALYTICS_QUEUE = os.environ.get("ANALYTICS_QUEUE", "intake_analytics")
CELERY_TASK_DEFAULT_QUEUE = INGEST_QUEUE
CELERY_TASK_QUEUES: dict[str, dict] = {INGEST_QUEUE: {}, INGEST_LARGE_QUEUE: {}, ANALYTICS_QUEUE: {}}
CELERY_TASK_ROUTES = {"analytics.tasks.*": {"queue": ANALYTICS_QUEUE}}
# A pool process whose resident memory passed this (KiB) after a task is replaced by a fresh one;
# one that reaches INGEST_WORKER_MEMORY_MB of data while reading gets a MemoryError (or dies
# alone) long before the kernel's OOM killer would pick PostgreSQL or daphne. 0 = no limit.
CELERY_WORKER_MAX_MEMORY_PER_CHILD = env_int("WORKER_MAX_MEMORY_PER_CHILD_KB", 1024 * 1024)
INGEST_WORKER_MEMORY_MB = env_int("INGEST_WORKER_MEMORY_MB", 4096)

# The sweeper (Celery beat runs it every INGEST_SWEEP_SECONDS) heals what no task will: uploads
# whose worker died (stale lease), queued uploads whose task never reached the broker or was
# lost with it (queued longer than INGEST_REQUEUE_AFTER_SECONDS), and cancels with no live run.
INGEST_SWEEP_SECONDS = float(os.environ.get("INGEST_SWEEP_SECONDS", "15"))
INGEST_REQUEUE_AFTER_SECONDS = float(os.environ.get("INGEST_REQUEUE_AFTER_SECONDS", "60"))
# A file whose runs died this many times (killed for memory, a crash in a reader) fails
# instead of stopping workers forever.
INGEST_MAX_ATTEMPTS = env_int("INGEST_MAX_ATTEMPTS", 3)
# The database or Redis failing: the task retries with backoff for this long, then fails the
# upload with a message (the user can retry it).
INGEST_RETRY_FOR_SECONDS = float(os.environ.get("INGEST_RETRY_FOR_SECONDS", "600"))
# Fairness: one user's unfinished uploads (queued or loading) beyond this are refused.
INGEST_MAX_ACTIVE_UPLOADS_PER_USER = env_int("INGEST_MAX_ACTIVE_UPLOADS_PER_USER", 20)
# Housekeeping: stored files and row issues of uploads finished this many days ago are
# deleted (daily); the loaded purchase orders and lines stay.
INGEST_KEEP_FILES_DAYS = env_int("INGEST_KEEP_FILES_DAYS", 30)
# The analytics' own sweep: a price check or a summary refresh whose task never ran (the
# broker was away, the task was lost) is queued again after this long.
ANALYTICS_SWEEP_SECONDS = float(os.environ.get("ANALYTICS_SWEEP_SECONDS", "60"))
ANALYTICS_STALE_SECONDS = float(os.environ.get("ANALYTICS_STALE_SECONDS", "600"))
CELERY_BEAT_SCHEDULE = {
    # Expiring, so a beat that runs while no worker does never piles sweeps up in the queue.
    "sweep-uploads": {
        "task": "ingestion.tasks.sweep_uploads",
        "schedule": INGEST_SWEEP_SECONDS,
        "options": {"expires": INGEST_SWEEP_SECONDS},
    },
    "sweep-analytics": {
        "task": "analytics.tasks.sweep_analytics",
        "schedule": ANALYTICS_SWEEP_SECONDS,
        "options": {"expires": ANALYTICS_SWEEP_SECONDS},
    },
    "delete-expired-files": {
        "task": "ingestion.tasks.delete_expired_files",
        "schedule": 3600.0,
        "options": {"expires": 3600.0},
    },
}

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            # redis-py 8 times sockets out after 5 s by default, exactly channels-redis'
            # blocking-pop time: every idle socket would die with 1011 (channels_redis#422).
            "hosts": [{"address": os.environ.get("CHANNELS_REDIS_URL", REDIS_URL), "socket_timeout": 15}],
            "prefix": os.environ.get("CHANNELS_PREFIX", "intake"),
            # channels-redis drops messages beyond capacity with only an INFO log: give each
            # socket room for a burst of ten busy uploads, and keep nothing older than a minute
            # (a client that reconnects rebuilds from the snapshot, not from stale messages).
            "capacity": 1000,
            "expiry": 60,
            "group_expiry": 86400,
        },
    }
}

# --- Ingestion ---------------------------------------------------------------------------
INGEST_BATCH_ROWS = env_int("INGEST_BATCH_ROWS", 10_000)
UPLOAD_MAX_BYTES = env_int("UPLOAD_MAX_BYTES", 200 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
INGEST_DEFAULT_CURRENCY = os.environ.get("INGEST_DEFAULT_CURRENCY", "USD").upper()
INGEST_DAY_FIRST = env_bool("INGEST_DAY_FIRST", False)
# More than this share of rejected rows fails the whole upload.
INGEST_MAX_REJECTED_SHARE = float(os.environ.get("INGEST_MAX_REJECTED_SHARE", "0.5"))
# Record every state of a line (LineVersion). Off only to measure what history costs.
INGEST_LINE_HISTORY = env_bool("INGEST_LINE_HISTORY", True)
# What one file may cost before it is refused with a message that says why (README: Input
# format). Columns: header fields of a CSV or a sheet. Workbooks: the zip's total unpacked
# size, the packing ratio of any part over 16 MB, and the grid of a sheet read whole
# (calamine holds rows x columns cells, from A1 to the farthest value).
INGEST_MAX_COLUMNS = env_int("INGEST_MAX_COLUMNS", 500)
INGEST_MAX_UNCOMPRESSED_BYTES = env_int("INGEST_MAX_UNCOMPRESSED_BYTES", 2 * 1024 * 1024 * 1024)
INGEST_MAX_COMPRESSION_RATIO = float(os.environ.get("INGEST_MAX_COMPRESSION_RATIO", "100"))
INGEST_MAX_SHEET_CELLS = env_int("INGEST_MAX_SHEET_CELLS", 10_000_000)
# A running upload's worker renews its lease (a heartbeat on the upload row) this often; a
# lease older than INGEST_STALE_SECONDS means a dead worker, and a redelivered task takes
# the upload over. Keep the second several times the first.
INGEST_HEARTBEAT_SECONDS = float(os.environ.get("INGEST_HEARTBEAT_SECONDS", "5"))
INGEST_STALE_SECONDS = float(os.environ.get("INGEST_STALE_SECONDS", "30"))
# Progress fragments per upload are coalesced to at most one per this many seconds: a
# flood of tiny batches stays at 25 swaps a second, and a held-back state waits 40 ms at most.
REALTIME_MIN_INTERVAL = float(os.environ.get("REALTIME_MIN_INTERVAL", "0.04"))

# --- Analytics ---------------------------------------------------------------------------
# The supplier comparison names the cheapest supplier among those that carry at least this
# share of a material's quantity (in the chosen currency).
ANALYTICS_MIN_VOLUME_SHARE = float(os.environ.get("ANALYTICS_MIN_VOLUME_SHARE", "0.1"))
# An upload's quality score: the weight of each dimension ("name=weight,..."; a dimension
# left out or at 0 does not count), and the earliest plausible order date's year.
QUALITY_WEIGHTS = {
    name.strip(): float(weight)
    for name, _, weight in (
        part.partition("=")
        for part in os.environ.get(
            "QUALITY_WEIGHTS", "validity=40,completeness=15,consistency=20,uniqueness=10,plausibility=15"
        ).split(",")
        if part.strip()
    )
}
QUALITY_MIN_YEAR = env_int("QUALITY_MIN_YEAR", 2000)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"daphne": {"level": "WARNING"}, "django.channels.server": {"level": "WARNING"}},
}

# --- Request and websocket limits ------------------------------------------------------------
# Any request body but an upload's (see config/body_limit.py); uploads get UPLOAD_MAX_BYTES + 1 MB.
REQUEST_MAX_BYTES = env_int("REQUEST_MAX_BYTES", 1024 * 1024)
# Per websocket: a token bucket of messages (this many per second, bursts of this many), the
# largest message taken, and how many sockets one user may hold open at once.
REALTIME_MESSAGES_PER_SECOND = float(os.environ.get("REALTIME_MESSAGES_PER_SECOND", "5"))
REALTIME_MESSAGE_BURST = env_int("REALTIME_MESSAGE_BURST", 30)
REALTIME_MAX_MESSAGE_BYTES = env_int("REALTIME_MAX_MESSAGE_BYTES", 8192)
REALTIME_MAX_SOCKETS_PER_USER = env_int("REALTIME_MAX_SOCKETS_PER_USER", 20)
# Cards sent on connect, and per sync message; the rest is counted ("and N more").
REALTIME_SNAPSHOT_MAX = env_int("REALTIME_SNAPSHOT_MAX", 50)
REALTIME_SYNC_MAX = env_int("REALTIME_SYNC_MAX", 25)

# --- Production security ---------------------------------------------------------------------
# HTTPS is assumed in production (DEBUG off); DJANGO_HTTPS=0 serves plain HTTP (a benchmark on
# loopback). Behind a proxy that ends TLS, set DJANGO_SECURE_PROXY_SSL_HEADER (e.g.
# "HTTP_X_FORWARDED_PROTO,https") and make sure the proxy overwrites that header.
HTTPS = env_bool("DJANGO_HTTPS", not DEBUG)
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", HTTPS)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # a load balancer probes over plain HTTP
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 31_536_000 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", HTTPS)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", HTTPS)
SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", HTTPS)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
_proxy_ssl_header = os.environ.get("DJANGO_SECURE_PROXY_SSL_HEADER", "").strip()
if _proxy_ssl_header:
    _name, _, _value = _proxy_ssl_header.partition(",")
    if not _value:
        raise ImproperlyConfigured(
            'DJANGO_SECURE_PROXY_SSL_HEADER is "HEADER,value", e.g. "HTTP_X_FORWARDED_PROTO,https".'
        )
    SECURE_PROXY_SSL_HEADER = (_name.strip(), _value.strip())
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_SAMESITE = "Lax"
SECURE_REFERRER_POLICY = "same-origin"
# Scripts and styles only from this site's own files: no inline script, no eval. 'self'
# covers the page's own websocket (ws/wss on the same host). DJANGO_CSP replaces it whole.
CONTENT_SECURITY_POLICY = os.environ.get(
    "DJANGO_CSP",
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'",
)

# Sign-in throttling (django-axes): after AXES_FAILURE_LIMIT failed attempts for one username
# from one address, that pair is refused (429) for AXES_COOLOFF_MINUTES.
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=float(os.environ.get("AXES_COOLOFF_MINUTES", "15")))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
