"""Retention: strip participant details (name, email, raw payload) from old webhook events.

Run daily: `python -m service retention --days N`. Rows stay, with what the audit trail and
deduplication need (event type, time, meeting, booking, dedupe key, Zoom's participant ids).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg

from service.db import Queries, load_queries

DEFAULT_BATCH_SIZE = 1000


async def strip_participant_pii(
    conn: asyncpg.Connection, q: Queries, *, older_than: datetime, batch_size: int
) -> int:
    """Strip events that occurred before older_than, one short transaction per batch."""
    total = 0
    while True:
        rows = await conn.fetch(q.strip_webhook_event_pii, older_than, batch_size)
        total += len(rows)
        if len(rows) < batch_size:
            return total


def retention_cutoff(days: int, now: datetime | None = None) -> datetime:
    """The moment before which events lose their participant details."""
    return (now or datetime.now(UTC)) - timedelta(days=days)


async def run_retention(
    database_url: str, days: int, batch_size: int = DEFAULT_BATCH_SIZE
) -> tuple[int, datetime]:
    """Connect, strip everything older than days; return the count and the cutoff used."""
    cutoff = retention_cutoff(days)
    conn = await asyncpg.connect(database_url, timeout=10)
    try:
        # A batch that waits on a lock gives up rather than queue behind ingest; the next run
        # picks up what it left.
        await conn.execute("SET lock_timeout = '2s'")
        stripped = await strip_participant_pii(
            conn, load_queries(), older_than=cutoff, batch_size=batch_size
        )
    finally:
        await conn.close()
    return stripped, cutoff
