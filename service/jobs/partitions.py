"""Partitions ahead: the months of zoom_webhook_events to come, created before events need them.

Run daily: `python -m service partitions [--months-ahead N]`. An event of a month that has no
partition is still stored, in zoom_webhook_events_default; creating its month moves it over.
"""

from __future__ import annotations

from datetime import date

import asyncpg

from service.db import load_queries

DEFAULT_MONTHS_AHEAD = 3


async def create_partitions(database_url: str, months_ahead: int) -> list[date]:
    """Create the missing monthly partitions up to months_ahead; return the months created."""
    conn = await asyncpg.connect(database_url, timeout=10)
    try:
        # Attaching a partition briefly locks the table: give up rather than queue ingest
        # behind it; tomorrow's run, months ahead of need, tries again.
        await conn.execute("SET lock_timeout = '5s'")
        rows = await conn.fetch(load_queries().create_webhook_event_partitions, months_ahead)
    finally:
        await conn.close()
    return [r["month"] for r in rows]
