"""Booking routes: GET /api/bookings/{id}/start-url (a fresh host link from Zoom)."""

from __future__ import annotations

from aiohttp import web

from service.errors import Conflict, NotFound
from service.keys import CONFIG, POOL, QUERIES
from service.payloads import json_response, parse_uuid_text
from service.zoom.client import require_zoom

routes = web.RouteTableDef()


@routes.get("/api/bookings/{booking_id}/start-url")
async def get_start_url(request: web.Request) -> web.Response:
    """Ask Zoom for the meeting: the start_url stored at acceptance expires after ~2 hours."""
    zoom = require_zoom(request.app)
    booking_id = parse_uuid_text(request.match_info["booking_id"], "booking")
    pool, q = request.app[POOL], request.app[QUERIES]
    async with pool.acquire(timeout=request.app[CONFIG].db_acquire_timeout_seconds) as conn:
        booking = await conn.fetchrow(q.select_booking, booking_id)
    if booking is None:
        raise NotFound("booking_not_found", f"No booking with id {booking_id}.")
    meeting_id = booking["zoom_meeting_id"]
    if not meeting_id:
        raise Conflict("booking_has_no_meeting", "This booking has no Zoom meeting.")
    meeting = await zoom.get_meeting(meeting_id)
    return json_response(
        {"booking_id": booking_id, "zoom_meeting_id": meeting_id, "start_url": meeting.start_url}
    )
