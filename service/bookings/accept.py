"""POST /api/requests/{id}/accept: the Zoom meeting and the paid booking, exactly once."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC

import asyncpg
from aiohttp import web

from service.db import Connection, Queries
from service.http.errors import BadGateway, Conflict, Forbidden, NotFound, is_database_unavailable
from service.http.payloads import json_response, parse_uuid, parse_uuid_text, read_json
from service.keys import CONFIG, POOL, QUERIES
from service.zoom_api.client import ZoomClient, require_zoom

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

# How often a racing accept looks again while another accept holds the request's row lock.
LOCK_POLL_SECONDS = 0.1
# A claim outlives its holder's Zoom budget by this much: it lapses only when the holder died.
CLAIM_MARGIN_SECONDS = 10.0
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
    """Accept the request; the flag says whether the booking is new.

    Three short steps, none holding a connection or a transaction while Zoom is called: claim
    the request (committed), create the meeting, then write the booking under that claim. Of
    any number of racing accepts, on any replica, the one holding the claim creates a meeting;
    the others poll until the request is accepted and answer its booking.
    """
    # One budget for waiting on a racing accept and for our own Zoom call: 502 well within 30 s.
    deadline = zoom.deadline()
    claim = uuid.uuid4()
    claim_seconds = zoom.budget + CLAIM_MARGIN_SECONDS
    reconnected = False
    while True:
        try:
            async with pool.acquire(timeout=acquire_timeout) as conn:
                request_row = await conn.fetchrow(
                    q.claim_booking_request, request_id, coach_id, claim, claim_seconds
                )
                if request_row is None:
                    raise NotFound(
                        "booking_request_not_found", f"No booking request with id {request_id}."
                    )
                booking_id = accepted_booking_id(request_row, coach_id)
                if booking_id is not None:
                    return await read_booking(conn, q, booking_id), False
        except asyncpg.LockNotAvailableError:
            pass  # another transaction holds the row for a moment
        except Exception as exc:
            # A connection the server closed while it idled in the pool: once more, on a fresh
            # one (a claim that did commit is ours again, by its token).
            if reconnected or not is_database_unavailable(exc):
                raise
            reconnected = True
        else:
            if request_row["claimed"]:
                booking = await accept_claimed(
                    pool, q, zoom, request_row, claim, deadline, acquire_timeout
                )
                if booking is not None:
                    return booking, True
        if zoom.clock() + LOCK_POLL_SECONDS >= deadline:
            # The holder is almost always an accept still waiting for Zoom: the same 502
            # a caller gets when Zoom hangs, never a 409 it could take for "declined".
            raise BadGateway(
                "zoom_timeout",
                "Zoom did not answer in time for another accept of this booking request; "
                "try again shortly.",
            )
        await asyncio.sleep(LOCK_POLL_SECONDS)


async def accept_claimed(
    pool: asyncpg.Pool[asyncpg.Record],
    q: Queries,
    zoom: ZoomClient,
    request_row: asyncpg.Record,
    claim: uuid.UUID,
    deadline: float,
    acquire_timeout: float,
) -> asyncpg.Record | None:
    """Create the meeting of a request we hold the claim on, then write its booking.

    None when the claim lapsed meanwhile and another accept took the request (our meeting is
    deleted). When the booking cannot be written, the meeting is deleted again, unless the
    write's outcome is unknown (the connection was lost during COMMIT) and cannot be read back:
    then the meeting is kept, for deleting a booked meeting would be worse than a stray one.
    """
    request_id: uuid.UUID = request_row["id"]
    starts_at = request_row["starts_at"].astimezone(UTC)
    try:
        meeting = await zoom.create_meeting(
            topic=f"TeachTape coaching session, {starts_at:%Y-%m-%d %H:%M} UTC",
            agenda=f"TeachTape booking request {request_id}",
            start_time=starts_at,
            duration_minutes=request_row["duration_minutes"],
            deadline=deadline,
        )
    except BaseException:
        await asyncio.shield(release_claim(pool, q, request_id, claim, acquire_timeout))
        raise
    committing = False
    try:
        for attempt in (1, 2):
            try:
                async with pool.acquire(timeout=acquire_timeout) as conn, conn.transaction():
                    booking_id = await conn.fetchval(
                        q.insert_booking_for_request,
                        request_id,
                        meeting.id,
                        meeting.join_url,
                        meeting.start_url,
                    )
                    accepted = await conn.fetchval(
                        q.accept_booking_request, request_id, booking_id, claim
                    )
                    if accepted is None:
                        raise ClaimLost
                    # Read back after the linking trigger ran: an orphan meeting.ended completes it.
                    booking = await read_booking(conn, q, booking_id)
                    committing = True  # leaving the block commits
                return booking
            except Exception as exc:
                # A connection the server closed while it idled in the pool (a restart,
                # pg_terminate_backend) fails before COMMIT: nothing was written, try once more.
                if committing or attempt == 2 or not is_database_unavailable(exc):
                    raise
        raise AssertionError("unreachable")  # pragma: no cover
    except ClaimLost:
        await asyncio.shield(delete_stray_meeting(zoom, meeting.id))
        return None
    except BaseException as exc:
        # A refused statement or COMMIT rolled back for sure; after a connection lost during
        # COMMIT, the request says whether the booking was written.
        if committing and not isinstance(exc, asyncpg.PostgresError):
            try:
                written = await asyncio.shield(
                    booking_of_meeting(pool, q, request_id, meeting.id, acquire_timeout)
                )
            except Exception:
                log.error(
                    "the commit of the booking for Zoom meeting %s has an unknown outcome (%s); "
                    "the meeting is left in place",
                    meeting.id,
                    type(exc).__name__,
                )
                raise exc from None
            if written is not None:
                return written
        await asyncio.shield(delete_stray_meeting(zoom, meeting.id))
        await asyncio.shield(release_claim(pool, q, request_id, claim, acquire_timeout))
        raise


class ClaimLost(Exception):
    """Our claim on the request lapsed and another accept took it over."""


async def release_claim(
    pool: asyncpg.Pool[asyncpg.Record],
    q: Queries,
    request_id: uuid.UUID,
    claim: uuid.UUID,
    acquire_timeout: float,
) -> None:
    """End our claim so that the next accept may go at once; when that fails, it lapses."""
    try:
        async with pool.acquire(timeout=acquire_timeout) as conn:
            await conn.execute(q.release_booking_request_claim, request_id, claim)
    except Exception as exc:
        log.warning("could not release the accept claim on %s (%s)", request_id, type(exc).__name__)


async def booking_of_meeting(
    pool: asyncpg.Pool[asyncpg.Record],
    q: Queries,
    request_id: uuid.UUID,
    meeting_id: str,
    acquire_timeout: float,
) -> asyncpg.Record | None:
    """The request's booking when it holds meeting_id (its write committed), else None."""
    async with pool.acquire(timeout=acquire_timeout) as conn:
        booking = await conn.fetchrow(q.select_request_booking, request_id)
    if booking is not None and booking["zoom_meeting_id"] == meeting_id:
        return booking
    return None


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
