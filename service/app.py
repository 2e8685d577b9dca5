"""Application assembly: keys, cleanup contexts, middlewares and routes. No I/O."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from service.bookings import accept, clicks, reads, reconciliation
from service.config import Config
from service.db import load_queries, migration_ids, pool_ctx
from service.http import health, metrics, openapi
from service.http.access_log import access_log_middleware
from service.http.auth import internal_routes
from service.http.errors import error_middleware
from service.http.metrics import Metrics
from service.keys import CONFIG, EVENT_STORE, METRICS, MIGRATION_IDS, POOL, QUERIES
from service.webhook import handler as webhook
from service.webhook.ingest import EventStore
from service.zoom_api.client import zoom_ctx

# Zoom's payloads are a few kB; anything over 1 MiB is refused with 413 before it is read.
MAX_BODY_BYTES = 1024 * 1024
# With several worker processes on one machine, a worker's writer lets its event loop run up to
# this many more passes before taking a batch, while deliveries keep arriving: the sibling
# workers keep the cores busy meanwhile, and fewer, larger transactions cost the database less
# CPU per event (README, Performance). One process alone sends at once: its commits overlap
# its own parsing, which is worth more than the batch size.
GATHER_ROUNDS = 3


async def event_store_ctx(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    store = EventStore(
        app[POOL],
        app[QUERIES],
        app[METRICS],
        acquire_timeout=config.db_acquire_timeout_seconds,
        queue_size=config.ingest_queue_size,
        max_batch=config.ingest_max_batch,
        lock_timeout=config.ingest_lock_timeout_seconds,
        # Each writer holds a pool connection during its transaction; leave some for the rest.
        writers=max(1, min(config.ingest_writers, config.db_pool_max_size - 2)),
        gather_rounds=GATHER_ROUNDS if config.web_concurrency > 1 else 0,
    )
    app[EVENT_STORE] = store
    store.start()
    yield
    await store.close()  # runs before pool_ctx closes the pool: queued events are still stored


def create_app(config: Config) -> web.Application:
    app = web.Application(
        middlewares=[access_log_middleware, error_middleware],
        client_max_size=MAX_BODY_BYTES,
    )
    app[CONFIG] = config
    app[QUERIES] = load_queries()
    app[METRICS] = Metrics.create()
    app[MIGRATION_IDS] = migration_ids()
    app.cleanup_ctx.append(pool_ctx)
    app.cleanup_ctx.append(event_store_ctx)
    app.cleanup_ctx.append(zoom_ctx)
    app.add_routes(health.routes)
    app.add_routes(metrics.routes)
    app.add_routes(webhook.routes)  # Zoom's: it proves itself by its signature
    # The web app's routes: every one needs an internal API token.
    app.add_routes(internal_routes(clicks.routes))
    app.add_routes(internal_routes(accept.routes))
    app.add_routes(internal_routes(reads.routes))
    app.add_routes(internal_routes(reconciliation.routes))
    app.add_routes(openapi.routes)
    return app
