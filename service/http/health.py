"""Health, readiness and the operational routes."""

from __future__ import annotations

from aiohttp import web

from service.db import pending_migrations
from service.http.errors import Unavailable, database_unavailable, is_database_unavailable
from service.http.payloads import json_response
from service.keys import CONFIG, MIGRATION_IDS, POOL

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    """200 when the database answers and every migration on disk is applied, else 503."""
    pool, config = request.app[POOL], request.app[CONFIG]
    try:
        async with pool.acquire(timeout=config.db_acquire_timeout_seconds) as conn:
            pending = await pending_migrations(conn, request.app[MIGRATION_IDS])
    except Exception as exc:
        if is_database_unavailable(exc):
            return database_unavailable()
        raise
    if pending:
        raise Unavailable(
            "migrations_pending",
            f"Migrations not yet applied: {', '.join(sorted(pending))}. Run `make migrate`.",
        )
    return json_response({"status": "ready"})
