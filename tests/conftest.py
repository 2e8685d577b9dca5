"""Fixtures: a fresh PostgreSQL database per session, the real app over real HTTP, a DB handle."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import psycopg
import pytest

from devtools.fake_zoom import ACCOUNT_ID as FAKE_ZOOM_ACCOUNT_ID
from devtools.fake_zoom import CLIENT_ID as FAKE_ZOOM_CLIENT_ID
from devtools.fake_zoom import CLIENT_SECRET as FAKE_ZOOM_CLIENT_SECRET
from devtools.fake_zoom import HOST_USER as FAKE_ZOOM_HOST_USER
from devtools.fake_zoom import FakeZoom
from service.app import create_app
from service.config import Config, ZoomApiCredentials
from service.db import _init_connection
from service.jobs.migrate import apply_migrations

WEBHOOK_SECRET = "test-webhook-secret"
OLD_WEBHOOK_SECRET = "test-webhook-secret-being-rotated-out"
INTERNAL_TOKEN = "test-internal-token"
APP_TABLES = ("zoom_webhook_events", "zoom_session_logs", "booking_requests", "bookings")


def with_database(url: str, name: str) -> str:
    """Return url pointing at database name (works for TCP and Unix-socket DSNs)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def server_url() -> str:
    url = os.environ.get("DATABASE_URL")
    if not url:
        pytest.exit("DATABASE_URL is unset: run the suite with `make test`", returncode=2)
    return url


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A migrated database of its own, created for this test session and dropped after it."""
    base = server_url()
    name = f"test_{uuid.uuid4().hex}"
    admin = with_database(base, "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = with_database(base, name)
    try:
        apply_migrations(url)
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_config(database_url: str, **overrides: Any) -> Config:
    """The configuration tests run the app with; override any field by keyword."""
    config = Config(
        database_url=database_url,
        webhook_secrets=(WEBHOOK_SECRET, OLD_WEBHOOK_SECRET),
        internal_api_tokens=(INTERNAL_TOKEN, "second-internal-token"),
    )
    return replace(config, **overrides)


test_config.__test__ = False  # a factory, not a test


@pytest.fixture
def empty_database_url(database_url: str) -> Iterator[str]:
    """A database of its own with no migration applied, dropped after the test."""
    name = f"test_empty_{uuid.uuid4().hex}"
    admin = with_database(database_url, "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield with_database(database_url, name)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def clean_database(database_url: str) -> Iterator[None]:
    """Empty the app tables after each test that touches the database."""
    yield
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {', '.join(APP_TABLES)} RESTART IDENTITY CASCADE")


@dataclass(frozen=True)
class DatabaseRoute:
    """How the app under test reaches PostgreSQL: its URL and its prepared-statement cache."""

    url: str
    statement_cache_size: int = 100

    def settings(self) -> dict[str, Any]:
        return {"database_url": self.url, "db_statement_cache_size": self.statement_cache_size}


@pytest.fixture(scope="session")
def pgbouncer_url(database_url: str) -> Iterator[str]:
    """The test database through PgBouncer in transaction mode, started for this session."""
    from tests.pgbouncer import PgBouncerUnavailable, running_pgbouncer

    try:
        bouncer = running_pgbouncer(database_url)
        url = bouncer.__enter__()
    except PgBouncerUnavailable as exc:
        pytest.skip(f"PgBouncer is not available: {exc}")
    try:
        yield url
    finally:
        bouncer.__exit__(None, None, None)


@pytest.fixture
def database_route(request: pytest.FixtureRequest, database_url: str) -> DatabaseRoute:
    """Straight to PostgreSQL; in modules marked `pgbouncer_too`, also through PgBouncer."""
    if getattr(request, "param", "direct") == "pgbouncer":
        return DatabaseRoute(request.getfixturevalue("pgbouncer_url"), statement_cache_size=0)
    return DatabaseRoute(database_url)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # A module marked `pgbouncer_too` runs each test using the app twice: straight to
    # PostgreSQL, and through PgBouncer in transaction mode with no statement cache.
    if "database_route" in metafunc.fixturenames and metafunc.definition.get_closest_marker(
        "pgbouncer_too"
    ):
        metafunc.parametrize("database_route", ["direct", "pgbouncer"], indirect=True)


@pytest.fixture
def config(database_route: DatabaseRoute) -> Config:
    return test_config(**database_route.settings())


@pytest.fixture
async def client(aiohttp_client, config: Config, clean_database):
    return await aiohttp_client(create_app(config))


@pytest.fixture
async def db(database_url: str, clean_database) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database_url)
    await _init_connection(conn)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
def auth_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {INTERNAL_TOKEN}"}


@pytest.fixture
async def fake_zoom(aiohttp_server) -> AsyncIterator[FakeZoom]:
    """A fake Zoom API and OAuth endpoint on 127.0.0.1 (see devtools/fake_zoom.py)."""
    fake = FakeZoom()
    server = await aiohttp_server(fake.make_app())
    fake.url = str(server.make_url("")).rstrip("/")
    yield fake
    fake.release()


def zoom_config(database_url: str, fake: FakeZoom, **overrides) -> Config:
    """test_config with Zoom API credentials pointing at the fake, and short timeouts."""
    settings = {
        "zoom_api": ZoomApiCredentials(
            account_id=FAKE_ZOOM_ACCOUNT_ID,
            client_id=FAKE_ZOOM_CLIENT_ID,
            client_secret=FAKE_ZOOM_CLIENT_SECRET,
            host_user=FAKE_ZOOM_HOST_USER,
        ),
        "missing_zoom_api_variables": (),
        "zoom_api_url": fake.api_url,
        "zoom_oauth_url": fake.oauth_url,
        "zoom_connect_timeout_seconds": 1.0,
        "zoom_request_timeout_seconds": 1.0,
        "zoom_budget_seconds": 4.0,
        "zoom_retry_backoff_seconds": 0.05,
    }
    settings.update(overrides)
    return test_config(database_url, **settings)


@pytest.fixture
async def zoom_client(
    aiohttp_client, database_route: DatabaseRoute, fake_zoom: FakeZoom, clean_database
):
    """The real app, its Zoom API calls going to the fake Zoom."""
    settings = database_route.settings()
    app = create_app(zoom_config(settings.pop("database_url"), fake_zoom, **settings))
    return await aiohttp_client(app)
