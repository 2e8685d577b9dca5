"""Durable storage of verified webhook events: one transaction, committed before Zoom hears 200."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from service.db import Queries
from service.zoom.events import MEETING_ENDED, WebhookEvent


async def store_events(
    conn: asyncpg.Connection, q: Queries, events: Sequence[WebhookEvent]
) -> set[bytes]:
    """Store events in one transaction; return the dedupe keys that were new (not redeliveries)."""
    async with conn.transaction():
        await conn.execute(q.lock_meetings, [e.zoom_meeting_id for e in events])
        rows = await conn.fetch(
            q.insert_webhook_events,
            [e.event_type for e in events],
            [e.zoom_meeting_id for e in events],
            [e.meeting_uuid for e in events],
            [e.occurred_at for e in events],
            [e.participant_name for e in events],
            [e.participant_email for e in events],
            [e.participant_user_id for e in events],
            [e.dedupe_key for e in events],
            [e.raw_data for e in events],
        )
        ended = [
            r["booking_id"] for r in rows if r["event_type"] == MEETING_ENDED and r["booking_id"]
        ]
        if ended:
            await conn.execute(q.complete_bookings, ended)
    return {bytes(r["dedupe_key"]) for r in rows}


class EventStore:
    """Stores one event per call; the seam where batching of concurrent deliveries plugs in."""

    def __init__(self, pool: asyncpg.Pool, queries: Queries, acquire_timeout: float):
        self.pool = pool
        self.queries = queries
        self.acquire_timeout = acquire_timeout

    async def store(self, event: WebhookEvent) -> bool:
        """Store the event; True when new, False when it was a redelivery."""
        async with self.pool.acquire(timeout=self.acquire_timeout) as conn:
            new_keys = await store_events(conn, self.queries, [event])
        return event.dedupe_key in new_keys
