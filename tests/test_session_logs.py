"""POST /api/zoom-logs: a click is stored with the booking's coach and athlete."""

from __future__ import annotations

import uuid

import orjson
import pytest

from tests.factories import make_booking

ROW_FIELDS = {"id", "booking_id", "coach_id", "athlete_id", "action_type", "created_at"}


@pytest.mark.parametrize("action", ["start_meeting", "join_meeting"])
async def test_a_click_is_stored_with_the_bookings_coach_and_athlete(
    client, db, auth_headers, action
):
    booking = await make_booking(db)
    resp = await client.post(
        "/api/zoom-logs",
        json={"booking_id": str(booking["id"]), "action_type": action},
        headers=auth_headers,
    )
    assert resp.status == 201
    assert resp.content_type == "application/json"
    body = await resp.json()
    assert set(body) == ROW_FIELDS
    assert body["booking_id"] == str(booking["id"])
    assert body["coach_id"] == str(booking["coach_id"])
    assert body["athlete_id"] == str(booking["athlete_id"])
    assert body["action_type"] == action
    assert body["created_at"].endswith("Z")
    [row] = await db.fetch("SELECT * FROM zoom_session_logs")
    assert str(row["id"]) == body["id"]
    assert (row["coach_id"], row["athlete_id"], row["action_type"]) == (
        booking["coach_id"],
        booking["athlete_id"],
        action,
    )


async def test_an_unknown_booking_is_404_and_nothing_is_stored(client, db, auth_headers):
    resp = await client.post(
        "/api/zoom-logs",
        json={"booking_id": str(uuid.uuid4()), "action_type": "join_meeting"},
        headers=auth_headers,
    )
    assert resp.status == 404
    assert (await resp.json())["error"] == "booking_not_found"
    assert await db.fetchval("SELECT count(*) FROM zoom_session_logs") == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"action_type": "join_meeting"}, "booking_id"),
        ({"booking_id": "not-a-uuid", "action_type": "join_meeting"}, "booking_id"),
        ({"booking_id": 42, "action_type": "join_meeting"}, "booking_id"),
        ({"booking_id": "BOOKING"}, "action_type"),
        ({"booking_id": "BOOKING", "action_type": "leave_meeting"}, "action_type"),
        ({"booking_id": "BOOKING", "action_type": None}, "action_type"),
    ],
)
async def test_a_bad_body_is_422_naming_the_field(client, db, auth_headers, body, field):
    booking = await make_booking(db)
    if body.get("booking_id") == "BOOKING":
        body = {**body, "booking_id": str(booking["id"])}
    resp = await client.post("/api/zoom-logs", json=body, headers=auth_headers)
    assert resp.status == 422
    error = await resp.json()
    assert error["error"] == "invalid_field"
    assert field in error["message"]
    assert await db.fetchval("SELECT count(*) FROM zoom_session_logs") == 0


async def test_a_body_that_is_not_an_object_is_422(client, auth_headers):
    resp = await client.post("/api/zoom-logs", data=b"[1, 2]", headers=auth_headers)
    assert resp.status == 422
    assert set(await resp.json()) == {"error", "message"}


async def test_unparseable_json_is_a_bad_body_422(client, auth_headers):
    resp = await client.post("/api/zoom-logs", data=b"{not json", headers=auth_headers)
    assert resp.status == 422
    assert orjson.loads(await resp.read())["error"] == "invalid_json"
