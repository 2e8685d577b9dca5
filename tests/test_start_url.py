"""GET /api/bookings/{id}/start-url: a freshly signed host link, asked of Zoom each time."""

from __future__ import annotations

import uuid

from service.app import create_app
from service.config import ZOOM_API_VARIABLES
from tests.conftest import INTERNAL_TOKEN, test_config
from tests.factories import make_booking, make_booking_request

AUTH = {"Authorization": f"Bearer {INTERNAL_TOKEN}"}


async def accepted_booking(client, db) -> dict:
    req = await make_booking_request(db)
    resp = await client.post(
        f"/api/requests/{req['id']}/accept", json={"coach_id": str(req["coach_id"])}, headers=AUTH
    )
    assert resp.status == 201
    return await resp.json()


async def test_start_url_is_fresh_from_zoom(zoom_client, fake_zoom, db):
    booking = await accepted_booking(zoom_client, db)

    resp = await zoom_client.get(f"/api/bookings/{booking['id']}/start-url", headers=AUTH)

    assert resp.status == 200
    body = await resp.json()
    assert body["booking_id"] == booking["id"]
    assert body["zoom_meeting_id"] == booking["zoom_meeting_id"]
    assert body["start_url"].startswith(f"https://zoom.example/s/{booking['zoom_meeting_id']}")
    assert body["start_url"] != booking["zoom_start_url"]
    (get_call,) = fake_zoom.calls_to("get")
    assert get_call.path == f"/v2/meetings/{booking['zoom_meeting_id']}"
    assert get_call.headers["Authorization"].startswith("Bearer fake-access-token-")


async def test_start_url_works_for_a_booking_the_web_app_inserted(zoom_client, fake_zoom, db):
    booking = await accepted_booking(zoom_client, db)
    copy = await make_booking(db, zoom_meeting_id=booking["zoom_meeting_id"])

    resp = await zoom_client.get(f"/api/bookings/{copy['id']}/start-url", headers=AUTH)

    assert resp.status == 200
    assert (await resp.json())["booking_id"] == str(copy["id"])


async def test_start_url_of_unknown_booking_is_404(zoom_client, fake_zoom):
    resp = await zoom_client.get(f"/api/bookings/{uuid.uuid4()}/start-url", headers=AUTH)

    assert resp.status == 404
    assert (await resp.json())["error"] == "booking_not_found"
    assert fake_zoom.calls == []


async def test_start_url_with_malformed_id_is_404(zoom_client):
    resp = await zoom_client.get("/api/bookings/nope/start-url", headers=AUTH)

    assert resp.status == 404


async def test_start_url_of_booking_without_meeting_is_409(zoom_client, fake_zoom, db):
    booking = await make_booking(db)

    resp = await zoom_client.get(f"/api/bookings/{booking['id']}/start-url", headers=AUTH)

    assert resp.status == 409
    assert (await resp.json())["error"] == "booking_has_no_meeting"
    assert fake_zoom.calls == []


async def test_start_url_when_zoom_fails_is_502(zoom_client, fake_zoom, db):
    booking = await accepted_booking(zoom_client, db)
    fake_zoom.fail("server_error", target="get", times=3)

    resp = await zoom_client.get(f"/api/bookings/{booking['id']}/start-url", headers=AUTH)

    assert resp.status == 502
    assert set(await resp.json()) == {"error", "message"}


async def test_start_url_of_meeting_deleted_at_zoom_is_502_saying_so(zoom_client, fake_zoom, db):
    booking = await make_booking(db, zoom_meeting_id="999")

    resp = await zoom_client.get(f"/api/bookings/{booking['id']}/start-url", headers=AUTH)

    assert resp.status == 502
    message = (await resp.json())["message"]
    assert "3001" in message and "Meeting does not exist" in message


async def test_start_url_needs_the_internal_token(zoom_client, db):
    booking = await accepted_booking(zoom_client, db)

    resp = await zoom_client.get(f"/api/bookings/{booking['id']}/start-url")

    assert resp.status == 401


async def test_start_url_without_zoom_credentials_is_503_naming_them(
    aiohttp_client, database_url, clean_database, db
):
    config = test_config(database_url, missing_zoom_api_variables=ZOOM_API_VARIABLES)
    client = await aiohttp_client(create_app(config))
    booking = await make_booking(db, zoom_meeting_id="123")

    resp = await client.get(f"/api/bookings/{booking['id']}/start-url", headers=AUTH)

    assert resp.status == 503
    message = (await resp.json())["message"]
    assert all(name in message for name in ZOOM_API_VARIABLES)
