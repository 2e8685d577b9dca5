"""Retention: strip participant details (name, email, raw payload) from old webhook events.

Run daily: `python -m service retention --days N`. Rows stay, with what the audit trail and
deduplication need (event type, time, meeting, booking, dedupe key, Zoom's participant ids),
and each participant event's person token, so attendance is the same before and after.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import asyncpg

from service.bookings.attendance import ZoomFact, fact_from_row, group_people
from service.db import Queries, load_queries

DEFAULT_BATCH_SIZE = 1000


async def strip_participant_pii(
    conn: asyncpg.Connection, q: Queries, *, older_than: datetime, batch_size: int
) -> int:
    """Strip events that occurred before older_than, one short transaction per batch.

    Before a batch loses its names and emails, every participant event of its meetings gets
    its person's token (person_tokens), so that attendance groups joins and leaves the same
    way afterwards.
    """
    total = 0
    while True:
        async with conn.transaction():
            batch = await conn.fetch(q.select_webhook_events_to_strip, older_than, batch_size)
            if batch:
                meetings = sorted({r["zoom_meeting_id"] for r in batch if r["zoom_meeting_id"]})
                rows = await conn.fetch(q.select_meeting_participant_events, meetings)
                ids, tokens = zip(*person_tokens(rows), strict=True) if rows else ((), ())
                await conn.execute(q.set_webhook_event_persons, list(ids), list(tokens))
                await conn.execute(q.strip_webhook_event_pii, [r["id"] for r in batch])
        total += len(batch)
        if len(batch) < batch_size:
            return total


def person_tokens(rows: Sequence[asyncpg.Record]) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """Each participant event's person token: one per person, as attendance groups them.

    A person some of whose events already have a token (an earlier run stripped part of the
    meeting) keeps it; anyone else gets a new random one, which tells nothing about them.
    """
    ids_of: dict[ZoomFact, list[asyncpg.Record]] = {}
    for row in rows:
        ids_of.setdefault(fact_from_row(row), []).append(row)
    tokens: list[tuple[uuid.UUID, uuid.UUID]] = []
    for person in group_people(ids_of):
        members = [row for fact in person for row in ids_of[fact]]
        known = sorted(r["participant_person"] for r in members if r["participant_person"])
        token = known[0] if known else uuid.uuid4()
        tokens += [(row["id"], token) for row in members]
    return tokens


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
