"""The application's typed keys (aiohttp AppKey), kept apart to avoid import cycles.

The modules that define the stored types import this one, so those types are imported for the
type checker only; mypy then checks every `app[KEY]` read and write against them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from service.config import Config

if TYPE_CHECKING:
    import asyncpg

    from service.db import Queries
    from service.http.metrics import Metrics
    from service.webhook.ingest import EventStore
    from service.zoom_api.client import ZoomClient

CONFIG = web.AppKey("config", Config)
POOL: web.AppKey[asyncpg.Pool[asyncpg.Record]] = web.AppKey("pool")
QUERIES: web.AppKey[Queries] = web.AppKey("queries")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
EVENT_STORE: web.AppKey[EventStore] = web.AppKey("event_store")
MIGRATION_IDS: web.AppKey[frozenset[str]] = web.AppKey("migration_ids")
# None when the Zoom API credentials are not configured: accept and start-url answer 503.
ZOOM: web.AppKey[ZoomClient | None] = web.AppKey("zoom")
