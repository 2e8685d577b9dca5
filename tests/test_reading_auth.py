"""Click-log and reading routes: 401 without a good token, 404 for an unknown booking."""

from __future__ import annotations

import re
import uuid

import pytest

from service.app import create_app
from tests.conftest import test_config
from tests.factories import make_booking

BOOKING = "BOOKING"
ROUTES = [
    ("POST", "/api/zoom-logs"),
    ("GET", f"/api/bookings/{BOOKING}/zoom-events"),
    ("GET", f"/api/bookings/{BOOKING}/zoom-logs"),
    ("GET", f"/api/bookings/{BOOKING}/attendance"),
    ("GET", f"/api/bookings/{BOOKING}/timeline"),
]
BAD_HEADERS = [
    {},
    {"Authorization": "Bearer wrong-token"},
    {"Authorization": "Basic dGVzdDp0ZXN0"},
    {"Authorization": "Bearer "},
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize("headers", BAD_HEADERS, ids=["none", "wrong", "basic", "empty"])
async def test_no_or_wrong_token_is_401_with_the_error_body(client, db, method, path, headers):
    booking = await make_booking(db)
    path = path.replace(BOOKING, str(booking["id"]))
    body = {"booking_id": str(booking["id"]), "action_type": "join_meeting"}
    resp = await client.request(method, path, json=body, headers=headers)
    assert resp.status == 401
    assert resp.content_type == "application/json"
    error = await resp.json()
    assert set(error) == {"error", "message"}
    assert error["error"] == "unauthorized"
    assert await db.fetchval("SELECT count(*) FROM zoom_session_logs") == 0


async def test_every_api_route_but_zoom_webhook_refuses_a_caller_without_a_token(client):
    # Walks the router, so that a route added later without internal_routes() fails here.
    checked = []
    for resource in client.app.router.resources():
        info = resource.get_info()
        path = info.get("formatter") or info.get("path", "")
        if not path.startswith("/api/") or path == "/api/zoom/webhook":
            continue
        url = re.sub(r"\{[a-z_]+\}", str(uuid.uuid4()), path)
        for route in resource:
            if route.method == "HEAD":
                continue  # aiohttp's automatic HEAD of a GET
            resp = await client.request(route.method, url)
            assert resp.status == 401, (route.method, path)
            checked.append((route.method, path))
    assert len(checked) >= 7  # accept, zoom-logs and the five booking routes


@pytest.mark.parametrize(("method", "path"), ROUTES[1:])
async def test_unknown_or_malformed_booking_is_404(client, auth_headers, method, path):
    for booking_id in (str(uuid.uuid4()), "not-a-uuid"):
        resp = await client.request(method, path.replace(BOOKING, booking_id), headers=auth_headers)
        assert resp.status == 404
        error = await resp.json()
        assert error["error"] == "booking_not_found"
        assert set(error) == {"error", "message"}


async def test_a_malformed_id_is_404_even_with_a_bad_limit(client, auth_headers):
    resp = await client.get("/api/bookings/nope/zoom-events?limit=0", headers=auth_headers)
    assert resp.status == 404
    assert (await resp.json())["error"] == "booking_not_found"


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_database_down_is_503_with_the_error_body(aiohttp_client, auth_headers, method, path):
    # Port 1 on the loopback refuses at once: the database is unreachable.
    config = test_config("postgresql://nobody@127.0.0.1:1/none")
    client = await aiohttp_client(create_app(config))
    booking_id = str(uuid.uuid4())
    body = {"booking_id": booking_id, "action_type": "join_meeting"}
    resp = await client.request(
        method, path.replace(BOOKING, booking_id), json=body, headers=auth_headers
    )
    assert resp.status == 503
    assert (await resp.json())["error"] == "database_unavailable"
