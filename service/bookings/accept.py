"""POST /api/requests/{id}/accept: the Zoom meeting and the paid booking, exactly once."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC

import asyncpg
from aiohttp import web

from service.db import Connection, Queries
from service.http.errors import BadGateway, Conflict, Forbidden, NotFound
from service.http.payloads import json_response, parse_uuid, parse_uuid_text, read_json
from service.keys import CONFIG, POOL, QUERIES
from service.zoom_api.client import ZoomClient, require_zoom

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

# How often a racing accept looks again while another accept holds the request's row lock.
LOCK_POLL_SECONDS = 0.1
# How long deleting a meeting whose booking could not be written may take.
CLEANUP_SECONDS = 5.0


@routes.post("/api/requests/{request_id}/accept")
async def accept_request(request: web.Request) -> web.Response:
    zoom = require_zoom(request.app)
    request_id = parse_uuid_text(request.match_info["request_id"], "booking_request")
    coach_id = parse_uuid(await read_json(request), "coach_id")
    booking, created = await accept_when_free(
        request.app[POOL],
        request.app[QUERIES],
        zoom,
        request_id,
        coach_id,
        acquire_timeout=request.app[CONFIG].db_acquire_timeout_seconds,
    )
    return json_response(dict(booking), status=201 if created else 200)


async def accept_when_free(
    pool: asyncpg.Pool[asyncpg.Record],
    q: Queries,
    zoom: ZoomClient,
    request_id: uuid.UUID,
    coach_id: uuid.UUID,
    *,
    acquire_timeout: float,
) -> tuple[asyncpg.Record, bool]:
    """Run accept() once it gets the request's row lock; poll, connection released, meanwhile."""
    # One budget for waiting on a racing accept and for our own Zoom call: 502 well within 30 s.
    deadline = zoom.deadline()
    while True:
        try:
            async with pool.acquire(timeout=acquire_timeout) as conn:
                return await accept(conn, q, zoom, request_id, coach_id, deadline)
        except asyncpg.LockNotAvailableError:
            if zoom.clock() + LOCK_POLL_SECONDS >= deadline:
                # The holder is almost always an accept still waiting for Zoom: the same 502
                # a caller gets when Zoom hangs, never a 409 it could take for "declined".
                raise BadGateway(
                    "zoom_timeout",
                    "Zoom did not answer in time for another accept of this booking request; "
                    "try again shortly.",
                ) from None
        await asyncio.sleep(LOCK_POLL_SECONDS)


async def accept(
    conn: Connection,
    q: Queries,
    zoom: ZoomClient,
    request_id: uuid.UUID,
    coach_id: uuid.UUID,
    deadline: float,
) -> tuple[asyncpg.Record, bool]:
    """Accept the request in one transaction; the flag says whether the booking is new.

    The request's row stays locked while Zoom is called (bounded by the Zoom deadline), so of
    any number of racing accepts, on any replica, exactly one creates a meeting; the others
    find the request accepted and answer its booking. Should the write fail after Zoom created
    the meeting, the meeting is deleted again: nothing is left half-done on either side (but
    for a connection lost during COMMIT, whose outcome is unknown: that meeting is kept).
    """
    meeting = None
    committing = False
    try:
        async with conn.transaction():
            locked_request = await conn.fetchrow(q.lock_booking_request, request_id)
            if locked_request is None:
                raise NotFound(
                    "booking_request_not_found", f"No booking request with id {request_id}."
                )
            booking_id = accepted_booking_id(locked_request, coach_id)
            if booking_id is not None:
                return await read_booking(conn, q, booking_id), False
            starts_at = locked_request["starts_at"].astimezone(UTC)
            meeting = await zoom.create_meeting(
                topic=f"TeachTape coaching session, {starts_at:%Y-%m-%d %H:%M} UTC",
                agenda=f"TeachTape booking request {request_id}",
                start_time=starts_at,
                duration_minutes=locked_request["duration_minutes"],
                deadline=deadline,
            )
            booking_id = await conn.fetchval(
                q.insert_booking_for_request,
                request_id,
                meeting.id,
                meeting.join_url,
                meeting.start_url,
            )
            if await conn.fetchval(q.accept_booking_request, request_id, booking_id) is None:
                raise RuntimeError(f"booking request {request_id} stopped being pending under lock")
            # Read back after the linking trigger ran: an orphan meeting.ended completes it.
            booking = await read_booking(conn, q, booking_id)
            committing = True  # leaving the block commits
    except BaseException as exc:
        if meeting is None:
            raise
        # A refused statement or COMMIT rolled back for sure; a connection lost during COMMIT
        # may have committed, and deleting that booking's meeting would be worse than a stray.
        if committing and not isinstance(exc, asyncpg.PostgresError):
            log.error(
                "the commit of the booking for Zoom meeting %s has an unknown outcome (%s); "
                "the meeting is left in place",
                meeting.id,
                type(exc).__name__,
            )
        else:
            await asyncio.shield(delete_stray_meeting(zoom, meeting.id))
        raise
    return booking, True


def accepted_booking_id(locked_request: asyncpg.Record, coach_id: uuid.UUID) -> uuid.UUID | None:
    """The booking of an already accepted request, None for a pending one; else 403/409."""
    if locked_request["coach_id"] != coach_id:
        raise Forbidden("not_your_request", "This booking request was made to another coach.")
    booking_id: uuid.UUID | None = locked_request["booking_id"]
    if locked_request["status"] == "accepted" and booking_id is not None:
        return booking_id
    if locked_request["status"] != "pending":
        raise Conflict(
            "request_not_pending",
            f"The booking request is {locked_request['status']} and can no longer be accepted.",
        )
    return None


async def read_booking(conn: Connection, q: Queries, booking_id: uuid.UUID) -> asyncpg.Record:
    """Read a booking this transaction found or wrote (a request's booking_id references it)."""
    booking = await conn.fetchrow(q.select_booking, booking_id)
    if booking is None:
        raise RuntimeError(f"booking {booking_id} is missing inside the accept transaction")
    return booking


async def delete_stray_meeting(zoom: ZoomClient, meeting_id: str) -> None:
    """Delete a meeting whose booking was not written; best effort, logged either way."""
    log.error("the booking for Zoom meeting %s was not written; deleting the meeting", meeting_id)
    try:
        await zoom.delete_meeting(meeting_id, deadline=zoom.clock() + CLEANUP_SECONDS)
    except Exception as exc:
        log.error("could not delete stray Zoom meeting %s: %s", meeting_id, exc)
    else:
        log.info("deleted stray Zoom meeting %s", meeting_id)
