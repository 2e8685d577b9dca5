"""Booking routes: the audit trail (events, clicks, attendance, timeline) and a fresh start URL."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiohttp import web

from service.bookings.attendance import attendance, evidence, fact_from_row
from service.bookings.picture import Schedule, attendance_svg
from service.bookings.timeline import timeline
from service.db import Connection, Queries
from service.http.errors import BadRequest, Conflict, NotFound, Unprocessable
from service.http.payloads import json_response, parse_uuid_text
from service.keys import CONFIG, POOL, QUERIES
from service.zoom_api.client import require_zoom

routes = web.RouteTableDef()

DEFAULT_PAGE_SIZE = 100
INCLUDE_RAW = "raw"  # ?include=raw: each event with its raw_data
MAX_PAGE_SIZE = 1000
# The most events attendance, its picture and the timeline read for one booking (README,
# Reading): far beyond a real coaching session, and a bound on one request's time and memory.
MAX_BOOKING_EVENTS = 10_000
# Before every stored event: where the first page starts.
FIRST_POSITION = (datetime.min.replace(tzinfo=UTC), uuid.UUID(int=0))


def encode_cursor(occurred_at: datetime, event_id: uuid.UUID) -> str:
    """Return an opaque cursor for the position just after (occurred_at, event_id)."""
    text = f"{occurred_at.isoformat()}|{event_id}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """Read a cursor made by encode_cursor; 400 for anything else."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        text = base64.b64decode(padded, altchars=b"-_", validate=True).decode()
        moment, _, event_id = text.partition("|")
        occurred_at = datetime.fromisoformat(moment)
        if occurred_at.tzinfo is None:
            raise ValueError("naive time")
        # The database gets it in UTC: a time that cannot be held there is no cursor of ours.
        return occurred_at.astimezone(UTC), uuid.UUID(event_id)
    except (binascii.Error, UnicodeDecodeError, ValueError, OverflowError):
        raise BadRequest(
            "invalid_cursor", "after must be a cursor returned as next by this endpoint."
        ) from None


def parse_limit(value: str | None) -> int:
    """Return the page size from ?limit= (default 100); 400 unless an integer in 1..1000."""
    if value is None:
        return DEFAULT_PAGE_SIZE
    try:
        limit = int(value)
    except ValueError:
        limit = 0
    if not value.strip().isdigit() or not 1 <= limit <= MAX_PAGE_SIZE:
        raise BadRequest(
            "invalid_limit", f"limit must be an integer from 1 to {MAX_PAGE_SIZE}, got {value!r}."
        )
    return limit


def parse_include(value: str | None) -> bool:
    """Return whether ?include=raw asks for the raw payloads; 400 for any other value."""
    if value is None or value == "":
        return False
    if value == INCLUDE_RAW:
        return True
    raise BadRequest("invalid_include", f"include may only be '{INCLUDE_RAW}', got {value!r}.")


async def booking_from_path(
    conn: Connection | asyncpg.Pool[asyncpg.Record], q: Queries, raw: str
) -> asyncpg.Record:
    """Return the booking named in the path, or 404 when the id is malformed or unknown."""
    booking_id = parse_uuid_text(raw, "booking")
    booking = await conn.fetchrow(q.select_booking, booking_id)
    if booking is None:
        raise NotFound("booking_not_found", f"No booking with id {booking_id}.")
    return booking


async def booking_id_from_path(
    conn: Connection | asyncpg.Pool[asyncpg.Record], q: Queries, raw: str
) -> uuid.UUID:
    """Return the booking id from the path, or 404 when it is malformed or unknown."""
    booking_id: uuid.UUID = (await booking_from_path(conn, q, raw))["id"]
    return booking_id


async def read_audit_trail(
    conn: Connection, q: Queries, raw_id: str
) -> tuple[uuid.UUID, list[asyncpg.Record], list[asyncpg.Record]]:
    """Read a booking's events and clicks from one snapshot; 404 for an unknown booking."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        booking_id = await booking_id_from_path(conn, q, raw_id)
        events = await conn.fetch(q.select_booking_events, booking_id, MAX_BOOKING_EVENTS + 1)
        if len(events) > MAX_BOOKING_EVENTS:
            raise Unprocessable(
                "too_many_events",
                f"This booking has more than {MAX_BOOKING_EVENTS} Zoom events; attendance and "
                "the timeline read at most that many. Page through them with zoom-events.",
            )
        clicks = await conn.fetch(q.select_session_logs, booking_id)
    return booking_id, events, clicks


async def read_schedule(conn: Connection, q: Queries, booking_id: uuid.UUID) -> Schedule | None:
    """The booking's scheduled window, from its request; None for a booking without one."""
    planned = await conn.fetchrow(q.select_booking_schedule, booking_id)
    return Schedule(planned["starts_at"], planned["ends_at"]) if planned else None


@routes.get("/api/bookings/{id}/zoom-events")
async def list_zoom_events(request: web.Request) -> web.Response:
    parse_uuid_text(request.match_info["id"], "booking")  # a malformed id is 404 before all else
    limit = parse_limit(request.query.get("limit"))
    after = request.query.get("after")
    position = decode_cursor(after) if after is not None else FIRST_POSITION
    include_raw = parse_include(request.query.get("include"))
    q, pool = request.app[QUERIES], request.app[POOL]
    async with pool.acquire(timeout=request.app[CONFIG].db_acquire_timeout_seconds) as conn:
        booking_id = await booking_id_from_path(conn, q, request.match_info["id"])
        # One row more than asked says whether another page exists.
        rows = await conn.fetch(
            q.select_booking_events_page, booking_id, *position, limit + 1, include_raw
        )
    page = rows[:limit]
    items: list[dict[str, Any]] = []
    for row in page:
        item = dict(row)
        if not include_raw:
            del item["raw_data"]
        items.append(item)
    more = len(rows) > limit
    next_cursor = encode_cursor(page[-1]["occurred_at"], page[-1]["id"]) if more else None
    return json_response({"items": items, "next": next_cursor})


@routes.get("/api/bookings/{id}/zoom-logs")
async def list_zoom_logs(request: web.Request) -> web.Response:
    q, pool = request.app[QUERIES], request.app[POOL]
    async with pool.acquire(timeout=request.app[CONFIG].db_acquire_timeout_seconds) as conn:
        booking_id = await booking_id_from_path(conn, q, request.match_info["id"])
        rows = await conn.fetch(q.select_session_logs, booking_id)
    return json_response({"items": [dict(r) for r in rows]})


def summarise(
    booking_id: uuid.UUID,
    events: list[asyncpg.Record],
    clicks: list[asyncpg.Record],
    *,
    interval_sources: bool = False,
) -> dict[str, Any]:
    """The attendance summary both the JSON route and the picture show, with its evidence."""
    facts = [fact_from_row(e) for e in events]
    action_times = [(c["action_type"], c["created_at"]) for c in clicks]
    summary = attendance(booking_id, facts, action_times, interval_sources=interval_sources)
    summary["evidence"] = evidence(e["source"] for e in events)
    return summary


@routes.get("/api/bookings/{id}/attendance")
async def show_attendance(request: web.Request) -> web.Response:
    q, pool = request.app[QUERIES], request.app[POOL]
    async with pool.acquire(timeout=request.app[CONFIG].db_acquire_timeout_seconds) as conn:
        booking_id, events, clicks = await read_audit_trail(conn, q, request.match_info["id"])
        reconciled_at = await conn.fetchval(q.select_reconciled_at, booking_id)
    return json_response({**summarise(booking_id, events, clicks), "reconciled_at": reconciled_at})


# Opened directly in a browser, the picture may run nothing and load nothing.
PICTURE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
}


@routes.get("/api/bookings/{id}/attendance.svg")
async def draw_attendance(request: web.Request) -> web.Response:
    q, pool = request.app[QUERIES], request.app[POOL]
    async with pool.acquire(timeout=request.app[CONFIG].db_acquire_timeout_seconds) as conn:
        booking_id, events, clicks = await read_audit_trail(conn, q, request.match_info["id"])
        # Read apart from the events: a request's schedule never changes once it is accepted.
        schedule = await read_schedule(conn, q, booking_id)
        reconciled_at = await conn.fetchval(q.select_reconciled_at, booking_id)
    summary = summarise(booking_id, events, clicks, interval_sources=True)
    return web.Response(
        body=attendance_svg({**summary, "reconciled_at": reconciled_at}, schedule),
        content_type="image/svg+xml",
        headers=PICTURE_HEADERS,
    )


@routes.get("/api/bookings/{id}/timeline")
async def show_timeline(request: web.Request) -> web.Response:
    q, pool = request.app[QUERIES], request.app[POOL]
    async with pool.acquire(timeout=request.app[CONFIG].db_acquire_timeout_seconds) as conn:
        booking_id, events, clicks = await read_audit_trail(conn, q, request.match_info["id"])
    entries = timeline([(e["id"], fact_from_row(e)) for e in events], clicks)
    return json_response({"booking_id": booking_id, "items": entries})


@routes.get("/api/bookings/{id}/start-url")
async def get_start_url(request: web.Request) -> web.Response:
    """Ask Zoom for the meeting: the start_url stored at acceptance expires after ~2 hours."""
    zoom = require_zoom(request.app)
    q, pool = request.app[QUERIES], request.app[POOL]
    async with pool.acquire(timeout=request.app[CONFIG].db_acquire_timeout_seconds) as conn:
        booking = await booking_from_path(conn, q, request.match_info["id"])
    booking_id = booking["id"]
    meeting_id = booking["zoom_meeting_id"]
    if not meeting_id:
        raise Conflict("booking_has_no_meeting", "This booking has no Zoom meeting.")
    meeting = await zoom.get_meeting(meeting_id)
    return json_response(
        {"booking_id": booking_id, "zoom_meeting_id": meeting_id, "start_url": meeting.start_url}
    )
