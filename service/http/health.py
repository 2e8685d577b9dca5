"""Health, readiness and the operational routes."""

from __future__ import annotations

import asyncpg
from aiohttp import web

from service.db import pending_migrations
from service.http.errors import Unavailable, database_unavailable, is_database_unavailable
from service.http.payloads import json_response
from service.keys import CONFIG, EVENT_STORE, MIGRATION_IDS, POOL, QUERIES
from service.webhook.ingest import store_events

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    """200 when ingest can write and every migration on disk is applied, else 503.

    "Can write" is proven, not assumed: an empty batch goes through the ingest statement (a
    read-only server after a failover refuses it), and every ingest writer is running and not
    stuck on a batch.
    """
    pool, config, store = request.app[POOL], request.app[CONFIG], request.app[EVENT_STORE]
    stalled = store.stalled()
    if stalled is not None:
        raise Unavailable("ingest_unavailable", f"{stalled} Webhooks are answered 503 meanwhile.")
    try:
        async with pool.acquire(timeout=config.db_acquire_timeout_seconds) as conn:
            pending = await pending_migrations(conn, request.app[MIGRATION_IDS])
            if not pending:
                await store_events(
                    conn,
                    request.app[QUERIES],
                    [],
                    lock_timeout_ms=store.lock_timeout_ms,
                    timeout=config.db_acquire_timeout_seconds,
                )
    except Exception as exc:
        if is_database_unavailable(exc):
            return database_unavailable()
        if isinstance(exc, asyncpg.PostgresError):
            raise Unavailable(
                "ingest_unavailable",
                f"The database does not take webhook events (SQLSTATE {exc.sqlstate}).",
            ) from None
        raise
    if pending:
        raise Unavailable(
            "migrations_pending",
            f"Migrations not yet applied: {', '.join(sorted(pending))}. Run `make migrate`.",
        )
    return json_response({"status": "ready"})
