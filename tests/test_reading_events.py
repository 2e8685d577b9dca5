"""GET /api/bookings/{id}/zoom-events and /zoom-logs: the stored facts, oldest first."""

from __future__ import annotations

import base64
import uuid

import orjson
import pytest

from tests.factories import make_booking
from tests.zoom_payloads import meeting_event, participant, post_signed

MEETING_ID = "85746065432"
EVENT_FIELDS = {
    "id",
    "event_type",
    "occurred_at",
    "zoom_meeting_id",
    "participant_name",
    "participant_email",
    "participant_user_id",
    "source",
}


def joined(n: int, join_time: str = "2021-07-13T21:50:00Z", **fields) -> dict:
    who = participant(f"Person {n}", email=f"p{n}@example.com", stable_id=f"id-{n}", user_id=str(n))
    return meeting_event(
        "meeting.participant_joined",
        event_ts=1626230700000 + n,
        participant={**who, "join_time": join_time, **fields},
    )


async def store(client, *payloads) -> None:
    for payload in payloads:
        resp = await post_signed(client, payload)
        assert resp.status == 200, await resp.text()


async def get_json(client, path, headers, status=200):
    resp = await client.get(path, headers=headers)
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/json"
    return await resp.json()


async def test_events_come_oldest_first_by_occurred_at_not_by_arrival(client, db, auth_headers):
    booking = await make_booking(db, zoom_meeting_id=MEETING_ID)
    await store(
        client,
        meeting_event("meeting.ended", end_time="2021-07-13T22:30:00Z"),
        joined(1, "2021-07-13T21:50:00Z"),
        meeting_event("meeting.started", start_time="2021-07-13T21:44:51Z"),
    )
    body = await get_json(client, f"/api/bookings/{booking['id']}/zoom-events", auth_headers)
    assert [i["event_type"] for i in body["items"]] == [
        "meeting.started",
        "meeting.participant_joined",
        "meeting.ended",
    ]
    assert [i["occurred_at"] for i in body["items"]] == [
        "2021-07-13T21:44:51Z",
        "2021-07-13T21:50:00Z",
        "2021-07-13T22:30:00Z",
    ]
    assert body["next"] is None
    item = body["items"][1]
    assert set(item) == EVENT_FIELDS
    assert item["zoom_meeting_id"] == MEETING_ID
    assert (item["participant_name"], item["participant_email"], item["participant_user_id"]) == (
        "Person 1",
        "p1@example.com",
        "id-1",
    )


async def test_pages_hold_every_event_exactly_once_when_many_share_a_time(client, db, auth_headers):
    booking = await make_booking(db, zoom_meeting_id=MEETING_ID)
    await store(client, *(joined(n) for n in range(7)))  # all at 21:50:00
    await store(client, joined(7, "2021-07-13T21:40:00Z"), joined(8, "2021-07-13T22:00:00Z"))
    stored = await db.fetch(
        "SELECT id FROM zoom_webhook_events WHERE booking_id = $1 ORDER BY occurred_at, id",
        booking["id"],
    )
    seen, pages, cursor = [], 0, None
    while True:
        path = f"/api/bookings/{booking['id']}/zoom-events?limit=2"
        body = await get_json(client, path + (f"&after={cursor}" if cursor else ""), auth_headers)
        pages += 1
        assert len(body["items"]) <= 2
        seen += [i["id"] for i in body["items"]]
        cursor = body["next"]
        if cursor is None:
            break
    assert seen == [str(r["id"]) for r in stored]
    assert len(set(seen)) == 9
    assert pages == 5


async def test_a_full_last_page_says_there_is_no_next(client, db, auth_headers):
    booking = await make_booking(db, zoom_meeting_id=MEETING_ID)
    await store(client, joined(1), joined(2))
    body = await get_json(
        client, f"/api/bookings/{booking['id']}/zoom-events?limit=2", auth_headers
    )
    assert (len(body["items"]), body["next"]) == (2, None)


async def test_limit_defaults_to_100_and_allows_1000(client, db, auth_headers):
    booking = await make_booking(db, zoom_meeting_id=MEETING_ID)
    rows = [
        (
            booking["id"],
            MEETING_ID,
            "meeting.participant_joined",
            f"2021-07-13T21:{n // 60:02}:{n % 60:02}Z",
        )
        for n in range(101)
    ]
    await db.executemany(
        "INSERT INTO zoom_webhook_events (booking_id, zoom_meeting_id, event_type, occurred_at)"
        " VALUES ($1, $2, $3, $4::text::timestamptz)",
        rows,
    )
    path = f"/api/bookings/{booking['id']}/zoom-events"
    first = await get_json(client, path, auth_headers)
    assert len(first["items"]) == 100
    assert first["next"] is not None
    rest = await get_json(client, f"{path}?after={first['next']}", auth_headers)
    assert (len(rest["items"]), rest["next"]) == (1, None)
    everything = await get_json(client, f"{path}?limit=1000", auth_headers)
    assert (len(everything["items"]), everything["next"]) == (101, None)


@pytest.mark.parametrize("limit", ["0", "-1", "1001", "abc", "1.5", ""])
async def test_a_bad_limit_is_400(client, db, auth_headers, limit):
    booking = await make_booking(db)
    body = await get_json(
        client, f"/api/bookings/{booking['id']}/zoom-events?limit={limit}", auth_headers, 400
    )
    assert body["error"] == "invalid_limit"
    assert "limit" in body["message"]


EXTREME_CURSOR = (
    base64.urlsafe_b64encode(f"0001-01-01T00:00:00+01:00|{uuid.uuid4()}".encode())
    .decode()
    .rstrip("=")
)


@pytest.mark.parametrize("cursor", ["garbage!", "bm90IGEgY3Vyc29y", "", "MjAyMQ", EXTREME_CURSOR])
async def test_a_bad_cursor_is_400(client, db, auth_headers, cursor):
    booking = await make_booking(db)
    body = await get_json(
        client, f"/api/bookings/{booking['id']}/zoom-events?after={cursor}", auth_headers, 400
    )
    assert body["error"] == "invalid_cursor"


async def test_raw_payload_only_when_asked(client, db, auth_headers):
    booking = await make_booking(db, zoom_meeting_id=MEETING_ID)
    payload = joined(1)
    await store(client, payload)
    path = f"/api/bookings/{booking['id']}/zoom-events"
    [plain] = (await get_json(client, path, auth_headers))["items"]
    assert "raw_data" not in plain
    [raw] = (await get_json(client, f"{path}?include=raw", auth_headers))["items"]
    assert set(raw) == EVENT_FIELDS | {"raw_data"}
    assert raw["raw_data"] == orjson.loads(orjson.dumps(payload))
    bad = await get_json(client, f"{path}?include=everything", auth_headers, 400)
    assert bad["error"] == "invalid_include"


async def test_occurred_at_from_event_ts_keeps_its_milliseconds(client, db, auth_headers):
    booking = await make_booking(db, zoom_meeting_id=MEETING_ID)
    payload = meeting_event(
        "meeting.participant_left", event_ts=1626230691572, participant=participant()
    )
    await store(client, payload)  # no leave_time: event_ts stands in
    [item] = (await get_json(client, f"/api/bookings/{booking['id']}/zoom-events", auth_headers))[
        "items"
    ]
    assert item["occurred_at"] == "2021-07-14T02:44:51.572000Z"


async def test_other_bookings_events_are_not_listed(client, db, auth_headers):
    booking = await make_booking(db, zoom_meeting_id=MEETING_ID)
    other = await make_booking(db, zoom_meeting_id="999")
    await store(client, joined(1), meeting_event("meeting.started", meeting_id="999"))
    body = await get_json(client, f"/api/bookings/{other['id']}/zoom-events", auth_headers)
    assert [i["event_type"] for i in body["items"]] == ["meeting.started"]
    assert booking["id"] != other["id"]


async def test_zoom_logs_list_a_bookings_clicks_oldest_first(client, db, auth_headers):
    booking = await make_booking(db)
    other = await make_booking(db)
    for action in ("start_meeting", "join_meeting", "join_meeting"):
        resp = await client.post(
            "/api/zoom-logs",
            json={"booking_id": str(booking["id"]), "action_type": action},
            headers=auth_headers,
        )
        assert resp.status == 201
    await client.post(
        "/api/zoom-logs",
        json={"booking_id": str(other["id"]), "action_type": "join_meeting"},
        headers=auth_headers,
    )
    body = await get_json(client, f"/api/bookings/{booking['id']}/zoom-logs", auth_headers)
    assert set(body) == {"items"}
    assert [i["action_type"] for i in body["items"]] == [
        "start_meeting",
        "join_meeting",
        "join_meeting",
    ]
    stamps = [i["created_at"] for i in body["items"]]
    assert stamps == sorted(stamps)
    assert all(s.endswith("Z") for s in stamps)
    for item in body["items"]:
        assert set(item) == {"id", "action_type", "coach_id", "athlete_id", "created_at"}
        assert item["coach_id"] == str(booking["coach_id"])
        assert item["athlete_id"] == str(booking["athlete_id"])


async def test_zoom_logs_of_a_booking_without_clicks_is_empty(client, db, auth_headers):
    booking = await make_booking(db)
    body = await get_json(client, f"/api/bookings/{booking['id']}/zoom-logs", auth_headers)
    assert body == {"items": []}
    assert uuid.UUID(str(booking["id"]))
