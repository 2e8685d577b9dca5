"""POST /api/zoom-logs: the web app records a Start Meeting / Join Meeting click."""

from __future__ import annotations

from aiohttp import web

from service.bookings.attendance import JOIN_CLICK, START_CLICK
from service.http.errors import NotFound
from service.http.payloads import json_response, parse_choice, parse_uuid, read_json
from service.keys import CONFIG, POOL, QUERIES

routes = web.RouteTableDef()

SESSION_ACTIONS = frozenset({START_CLICK, JOIN_CLICK})


@routes.post("/api/zoom-logs")
async def create_session_log(request: web.Request) -> web.Response:
    body = await read_json(request)
    booking_id = parse_uuid(body, "booking_id")
    action = parse_choice(body, "action_type", SESSION_ACTIONS)
    q, pool = request.app[QUERIES], request.app[POOL]
    async with pool.acquire(timeout=request.app[CONFIG].db_acquire_timeout_seconds) as conn:
        row = await conn.fetchrow(q.insert_session_log, booking_id, action)
    if row is None:
        raise NotFound("booking_not_found", f"No booking with id {booking_id}.")
    return json_response(dict(row), status=201)
