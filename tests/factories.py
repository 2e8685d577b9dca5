"""Plain async factories: sensible defaults, any column overridable, the row returned."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg


async def make_booking(db: asyncpg.Connection, **overrides) -> asyncpg.Record:
    values = {
        "coach_id": uuid.uuid4(),
        "athlete_id": uuid.uuid4(),
        "status": "paid",
        "zoom_meeting_id": None,
        "zoom_join_url": None,
        "zoom_start_url": None,
    }
    values.update(overrides)
    columns = ", ".join(values)
    placeholders = ", ".join(f"${i}" for i in range(1, len(values) + 1))
    return await db.fetchrow(
        f"INSERT INTO bookings ({columns}) VALUES ({placeholders}) RETURNING *",
        *values.values(),
    )


async def make_booking_request(db: asyncpg.Connection, **overrides) -> asyncpg.Record:
    values = {
        "coach_id": uuid.uuid4(),
        "athlete_id": uuid.uuid4(),
        "starts_at": datetime.now(UTC).replace(microsecond=0) + timedelta(days=2),
        "duration_minutes": 60,
        "status": "pending",
    }
    values.update(overrides)
    columns = ", ".join(values)
    placeholders = ", ".join(f"${i}" for i in range(1, len(values) + 1))
    return await db.fetchrow(
        f"INSERT INTO booking_requests ({columns}) VALUES ({placeholders}) RETURNING *",
        *values.values(),
    )
