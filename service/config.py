"""Configuration, read once from the environment into a frozen dataclass."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

# Names earlier versions of this service and its docs used for the secret; we refuse to read
# them, but say what to do.
LEGACY_SECRET_NAMES = ("ZOOM_VERIFICATION_TOKEN", "ZOOM_WEBHOOK_SECRET_TOKEN")
# More processes than this on one machine is a typo, not a plan (each holds its own pool).
MAX_WEB_CONCURRENCY = 64
ZOOM_API_VARIABLES = ("ZOOM_ACCOUNT_ID", "ZOOM_CLIENT_ID", "ZOOM_CLIENT_SECRET", "ZOOM_HOST_USER")


class ConfigError(Exception):
    """A required setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class ZoomApiCredentials:
    """Server-to-Server OAuth app credentials and the user meetings are created under."""

    account_id: str
    client_id: str
    client_secret: str = field(repr=False)
    host_user: str


@dataclass(frozen=True)
class Config:
    database_url: str = field(repr=False)
    webhook_secrets: tuple[str, ...] = field(repr=False)
    internal_api_tokens: tuple[str, ...] = field(repr=False)
    # None when any of ZOOM_API_VARIABLES is unset: webhooks work, accept answers 503.
    zoom_api: ZoomApiCredentials | None = None
    missing_zoom_api_variables: tuple[str, ...] = ()
    zoom_api_url: str = "https://api.zoom.us/v2"
    zoom_oauth_url: str = "https://zoom.us/oauth/token"
    host: str = "0.0.0.0"  # noqa: S104 - a container listens on all interfaces
    port: int = 8080
    webhook_tolerance_seconds: int = 7200
    # A timestamp further ahead than this is refused whatever the tolerance (clock skew allowance).
    webhook_max_future_seconds: int = 300
    # Server processes sharing the port (service/processes.py); each has its own pool.
    web_concurrency: int = 1
    db_pool_min_size: int = 0
    db_pool_max_size: int = 10
    # asyncpg's prepared statements per connection; 0 behind PgBouncer in transaction mode,
    # where the next transaction may run on another server connection that never saw them.
    db_statement_cache_size: int = 100
    # Zoom gives up on a delivery after 3 s, so waiting longer for the database helps nobody.
    db_connect_timeout_seconds: float = 2.0
    db_acquire_timeout_seconds: float = 2.5
    # Zoom API calls: accept must answer (502 at worst) well within 30 s even when Zoom hangs.
    # One exchange is bounded by the connect and request timeouts; everything one operation does
    # (token, retries, Retry-After waits, waiting for a racing accept) by the budget.
    zoom_connect_timeout_seconds: float = 3.0
    zoom_request_timeout_seconds: float = 10.0
    zoom_budget_seconds: float = 20.0
    zoom_max_attempts: int = 3
    zoom_retry_backoff_seconds: float = 0.5
    # Group commit (service/webhook/ingest.py): events waiting at most, per transaction, writers.
    # Full queue -> 503 + Retry-After; 1024 events drain in a fraction of a second.
    ingest_queue_size: int = 1024
    ingest_max_batch: int = 512
    ingest_writers: int = 4
    # How long one batch may wait for a lock (a meeting's, a booking's) before it is stored
    # again meeting by meeting, so that one locked meeting holds up only its own events.
    ingest_lock_timeout_seconds: float = 0.5

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Config:
        """Build the configuration, raising ConfigError naming the first bad variable."""
        zoom_api_values = {name: environ.get(name, "").strip() for name in ZOOM_API_VARIABLES}
        missing_zoom = tuple(name for name, value in zoom_api_values.items() if not value)
        zoom_api = None
        if not missing_zoom:
            zoom_api = ZoomApiCredentials(
                account_id=zoom_api_values["ZOOM_ACCOUNT_ID"],
                client_id=zoom_api_values["ZOOM_CLIENT_ID"],
                client_secret=zoom_api_values["ZOOM_CLIENT_SECRET"],
                host_user=zoom_api_values["ZOOM_HOST_USER"],
            )
        return cls(
            database_url=database_url_from_env(environ),
            webhook_secrets=webhook_secrets_from_env(environ),
            internal_api_tokens=required_list(environ, "INTERNAL_API_TOKENS"),
            zoom_api=zoom_api,
            missing_zoom_api_variables=missing_zoom,
            zoom_api_url=url_setting(environ, "ZOOM_API_URL", cls.zoom_api_url),
            zoom_oauth_url=url_setting(environ, "ZOOM_OAUTH_URL", cls.zoom_oauth_url),
            host=environ.get("HOST", "").strip() or cls.host,
            port=int_setting(environ, "PORT", cls.port, low=1, high=65535),
            webhook_tolerance_seconds=int_setting(
                environ, "WEBHOOK_TOLERANCE_SECONDS", cls.webhook_tolerance_seconds, low=1
            ),
            web_concurrency=int_setting(
                environ, "WEB_CONCURRENCY", cls.web_concurrency, low=1, high=MAX_WEB_CONCURRENCY
            ),
            # Two at least: ingest's writer keeps one, and reads and accepts need another.
            db_pool_max_size=int_setting(environ, "DB_POOL_MAX_SIZE", cls.db_pool_max_size, low=2),
            db_statement_cache_size=int_setting(
                environ, "DB_STATEMENT_CACHE_SIZE", cls.db_statement_cache_size, low=0
            ),
            ingest_queue_size=int_setting(
                environ, "INGEST_QUEUE_SIZE", cls.ingest_queue_size, low=1
            ),
            ingest_max_batch=int_setting(environ, "INGEST_MAX_BATCH", cls.ingest_max_batch, low=1),
            ingest_writers=int_setting(environ, "INGEST_WRITERS", cls.ingest_writers, low=1),
            ingest_lock_timeout_seconds=int_setting(
                environ,
                "INGEST_LOCK_TIMEOUT_MS",
                round(cls.ingest_lock_timeout_seconds * 1000),
                low=1,
            )
            / 1000,
        )


def zoom_job_config_from_env(environ: Mapping[str, str]) -> Config:
    """The configuration of a job that calls Zoom's API (reconcile): the database and Zoom only.

    Webhook secrets and internal tokens are not needed; the Zoom API credentials are.
    """
    missing = [name for name in ZOOM_API_VARIABLES if not environ.get(name, "").strip()]
    if missing:
        raise ConfigError(f"{', '.join(missing)} required to call Zoom's API")
    return Config.from_env(
        {
            "ZOOM_WEBHOOK_SECRET": "unused-by-jobs",
            "INTERNAL_API_TOKENS": "unused-by-jobs",
            **environ,
        }
    )


def database_url_from_env(environ: Mapping[str, str]) -> str:
    """Return DATABASE_URL, which must be a postgresql:// DSN."""
    url = environ.get("DATABASE_URL", "").strip()
    if not url:
        raise ConfigError("DATABASE_URL is required (postgresql://user:password@host:port/db)")
    if not url.startswith(("postgresql://", "postgres://")):
        raise ConfigError("DATABASE_URL must start with postgresql://")
    return url


def webhook_secrets_from_env(environ: Mapping[str, str]) -> tuple[str, ...]:
    """Return the Zoom Secret Tokens, the first one answering URL validation."""
    secrets = split_list(environ.get("ZOOM_WEBHOOK_SECRET", ""))
    if secrets:
        return secrets
    for legacy in LEGACY_SECRET_NAMES:
        if environ.get(legacy, "").strip():
            raise ConfigError(
                f"ZOOM_WEBHOOK_SECRET is required; {legacy} is no longer read: "
                f"rename it to ZOOM_WEBHOOK_SECRET"
            )
    raise ConfigError("ZOOM_WEBHOOK_SECRET is required (the Zoom app's Secret Token)")


def required_list(environ: Mapping[str, str], name: str) -> tuple[str, ...]:
    values = split_list(environ.get(name, ""))
    if not values:
        raise ConfigError(f"{name} is required")
    return values


def split_list(value: str) -> tuple[str, ...]:
    """Split a comma-separated setting, dropping blanks."""
    return tuple(part.strip() for part in value.split(",") if part.strip())


def int_setting(
    environ: Mapping[str, str], name: str, default: int, *, low: int, high: int | None = None
) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ConfigError(f"{name} must be {bound}, got {value}")
    return value


def url_setting(environ: Mapping[str, str], name: str, default: str) -> str:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.startswith(("http://", "https://")):
        raise ConfigError(f"{name} must be an http(s) URL, got {raw!r}")
    return raw.rstrip("/")
