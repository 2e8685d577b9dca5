"""The application's typed keys (aiohttp AppKey), kept apart to avoid import cycles."""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiohttp
import asyncpg
from aiohttp import web

from service.config import Config

if TYPE_CHECKING:
    pass

CONFIG = web.AppKey("config", Config)
POOL = web.AppKey("pool", asyncpg.Pool)
QUERIES = web.AppKey("queries", "Queries")
METRICS = web.AppKey("metrics", "Metrics")
EVENT_STORE = web.AppKey("event_store", "EventStore")
MIGRATION_IDS = web.AppKey("migration_ids", frozenset)
HTTP = web.AppKey("http", aiohttp.ClientSession)
# None when the Zoom API credentials are not configured: accept and start-url answer 503.
ZOOM = web.AppKey("zoom", "ZoomClient | None")
