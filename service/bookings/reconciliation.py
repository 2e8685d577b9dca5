"""POST /api/bookings/{id}/reconcile: ask Zoom now what the webhooks of this booking missed."""

from __future__ import annotations

import asyncio

from aiohttp import web

from service.bookings.reads import booking_from_path
from service.http.errors import Conflict
from service.http.payloads import json_response
from service.jobs.reconcile import (
    ROUTE_RATE_LIMIT_SECONDS,
    ReconciliationBusy,
    booking_lock,
    reconcile_booking,
    route_failure,
)
from service.keys import CONFIG, METRICS, POOL, QUERIES
from service.zoom_api.client import RateLimitAllowance, require_zoom

routes = web.RouteTableDef()


@routes.post("/api/bookings/{id}/reconcile")
async def reconcile_now(request: web.Request) -> web.Response:
    """Reconcile the booking now, due or not; 502 when Zoom fails, within Zoom's budget."""
    q, pool = request.app[QUERIES], request.app[POOL]
    acquire_timeout = request.app[CONFIG].db_acquire_timeout_seconds
    async with pool.acquire(timeout=acquire_timeout) as conn:
        booking = await booking_from_path(conn, q, request.match_info["id"])
    booking_id, meeting_id = booking["id"], booking["zoom_meeting_id"]
    if not meeting_id:
        raise Conflict("booking_has_no_meeting", "This booking has no Zoom meeting to reconcile.")
    zoom = require_zoom(request.app)
    # One budget for everything: waiting for another reconciliation, Zoom's calls, 429 waits.
    deadline = zoom.deadline()
    wait_until = asyncio.get_running_loop().time() + zoom.budget
    async with pool.acquire(timeout=acquire_timeout) as conn:
        try:
            async with booking_lock(conn, q, booking_id, wait_until=wait_until):
                result = await reconcile_booking(
                    conn,
                    q,
                    zoom,
                    request.app[METRICS],
                    booking_id,
                    meeting_id,
                    deadline=deadline,
                    allowance=RateLimitAllowance(ROUTE_RATE_LIMIT_SECONDS),
                )
        except ReconciliationBusy:
            raise Conflict(
                "reconciliation_running",
                "Another reconciliation of this booking is still running; try again shortly.",
            ) from None
    failure = route_failure(result)
    if failure is not None:
        raise failure
    return json_response(
        {
            "booking_id": booking_id,
            "zoom_meeting_id": meeting_id,
            "outcome": result.outcome,
            "instances": result.instances,
            "recovered": result.recovered,
        }
    )
