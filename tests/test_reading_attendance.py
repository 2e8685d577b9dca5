"""GET /api/bookings/{id}/attendance and /timeline over real webhook deliveries."""

from __future__ import annotations

import random
from datetime import datetime

from service.bookings.reads import MAX_BOOKING_EVENTS
from tests.factories import make_booking
from tests.zoom_payloads import meeting_event, participant, post_signed

HOST_ID = "x1yCzABCDEfg23HiJKl4mN"
COACH = participant("Carl Coach", email="coach@example.com", stable_id=HOST_ID, user_id="16777216")
ATHLETE_ID = "iFxeBPYun6SAiWUzBcEkX"


def athlete(user_id: str) -> dict:
    # Zoom's user_id changes on every join; participant_user_id / id / email / name do not.
    return participant(stable_id=ATHLETE_ID, user_id=user_id, participant_uuid="pu-jill")


def session(meeting_id: str, uuid: str = "inst-1==") -> list[dict]:
    """A 32-minute session: the coach never leaves by event, the athlete drops out once."""

    def event(kind: str, ts: int, **fields) -> dict:
        return meeting_event(kind, meeting_id=meeting_id, uuid=uuid, event_ts=ts, **fields)

    return [
        event("meeting.started", 1790002800000, start_time="2026-09-21T15:00:00Z"),
        event(
            "meeting.participant_joined",
            1790002805000,
            participant={**COACH, "join_time": "2026-09-21T15:00:05Z"},
        ),
        event(
            "meeting.participant_joined",
            1790002930000,
            participant={**athlete("16778240"), "join_time": "2026-09-21T15:02:10Z"},
        ),
        event(
            "meeting.participant_left",
            1790003400000,
            participant={**athlete("16778240"), "leave_time": "2026-09-21T15:10:00Z"},
        ),
        event(
            "meeting.participant_joined",
            1790003490000,
            participant={**athlete("16779264"), "join_time": "2026-09-21T15:11:30Z"},
        ),
        event(
            "meeting.participant_left",
            1790004660000,
            participant={**athlete("16779264"), "leave_time": "2026-09-21T15:31:00Z"},
        ),
        event("meeting.ended", 1790004720000, end_time="2026-09-21T15:32:00Z"),
    ]


async def deliver(client, payloads) -> None:
    for payload in payloads:
        resp = await post_signed(client, payload)
        assert resp.status == 200, await resp.text()


async def click(db, booking, action: str, at: str) -> None:
    actor = {"start_meeting": "coach_id", "join_meeting": "athlete_id"}[action]
    assert actor
    await db.execute(
        "INSERT INTO zoom_session_logs (booking_id, coach_id, athlete_id, action_type, created_at)"
        " VALUES ($1, $2, $3, $4, $5)",
        booking["id"],
        booking["coach_id"],
        booking["athlete_id"],
        action,
        datetime.fromisoformat(at),
    )


async def get_json(client, path, headers) -> dict:
    resp = await client.get(path, headers=headers)
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "application/json"
    return await resp.json()


async def test_attendance_of_a_session_in_the_contracts_shape(client, db, auth_headers):
    booking = await make_booking(db, zoom_meeting_id="111")
    await click(db, booking, "join_meeting", "2026-09-21T15:01:40Z")
    await click(db, booking, "start_meeting", "2026-09-21T14:59:30Z")
    await click(db, booking, "start_meeting", "2026-09-21T15:00:01Z")
    await deliver(client, session("111"))
    body = await get_json(client, f"/api/bookings/{booking['id']}/attendance", auth_headers)
    assert body == {
        "booking_id": str(booking["id"]),
        "meeting_started_at": "2026-09-21T15:00:00Z",
        "meeting_ended_at": "2026-09-21T15:32:00Z",
        "first_start_click_at": "2026-09-21T14:59:30Z",
        "first_join_click_at": "2026-09-21T15:01:40Z",
        "participants": [
            {
                "name": "Carl Coach",
                "email": "coach@example.com",
                "user_id": HOST_ID,
                "is_host": True,
                # No leave arrived: the join counts until the meeting ended.
                "intervals": [
                    {"joined_at": "2026-09-21T15:00:05Z", "left_at": "2026-09-21T15:32:00Z"}
                ],
                "seconds_present": 31 * 60 + 55,
            },
            {
                "name": "Jill Chill",
                "email": "jchill@example.com",
                "user_id": ATHLETE_ID,
                "is_host": False,
                "intervals": [
                    {"joined_at": "2026-09-21T15:02:10Z", "left_at": "2026-09-21T15:10:00Z"},
                    {"joined_at": "2026-09-21T15:11:30Z", "left_at": "2026-09-21T15:31:00Z"},
                ],
                "seconds_present": 470 + 1170,
            },
        ],
        "evidence": "webhooks",
        "reconciled_at": None,
    }


async def test_any_arrival_order_and_redelivery_give_the_same_attendance(client, db, auth_headers):
    in_order = await make_booking(db, zoom_meeting_id="111")
    shuffled = await make_booking(db, zoom_meeting_id="222")
    await deliver(client, session("111"))
    scrambled = session("222", uuid="inst-2==") * 2
    random.Random(7).shuffle(scrambled)
    await deliver(client, scrambled)
    first = await get_json(client, f"/api/bookings/{in_order['id']}/attendance", auth_headers)
    second = await get_json(client, f"/api/bookings/{shuffled['id']}/attendance", auth_headers)
    assert first.pop("booking_id") != second.pop("booking_id")
    assert first == second
    assert await db.fetchval(
        "SELECT count(*) FROM zoom_webhook_events WHERE booking_id = $1", shuffled["id"]
    ) == len(session("222"))


async def test_while_the_meeting_runs_left_at_is_null(client, db, auth_headers):
    booking = await make_booking(db, zoom_meeting_id="111")
    await deliver(client, session("111")[:3])  # started, coach and athlete joined
    body = await get_json(client, f"/api/bookings/{booking['id']}/attendance", auth_headers)
    assert body["meeting_started_at"] == "2026-09-21T15:00:00Z"
    assert body["meeting_ended_at"] is None
    assert [p["intervals"][0]["left_at"] for p in body["participants"]] == [None, None]
    # Counted up to the latest stored event (the athlete's join at 15:02:10).
    assert [p["seconds_present"] for p in body["participants"]] == [125, 0]


async def test_a_leave_with_no_join_is_ignored_in_the_sums_but_kept_in_the_timeline(
    client, db, auth_headers
):
    booking = await make_booking(db, zoom_meeting_id="111")
    events = session("111")
    await deliver(client, [events[0], events[3], events[6]])  # started, athlete left, ended
    body = await get_json(client, f"/api/bookings/{booking['id']}/attendance", auth_headers)
    [jill] = body["participants"]
    assert (jill["name"], jill["intervals"], jill["seconds_present"]) == ("Jill Chill", [], 0)
    timeline = await get_json(client, f"/api/bookings/{booking['id']}/timeline", auth_headers)
    assert [e["description"] for e in timeline["items"]] == [
        "Meeting started",
        "Jill Chill (jchill@example.com) left the meeting (no join matches this leave)",
        "Meeting ended",
    ]


async def test_a_time_from_event_ts_keeps_its_milliseconds(client, db, auth_headers):
    booking = await make_booking(db, zoom_meeting_id="111")
    joined = meeting_event(
        "meeting.participant_joined", meeting_id="111", event_ts=1790002930123,
        participant=athlete("1"),
    )  # fmt: skip
    await deliver(client, [joined])
    body = await get_json(client, f"/api/bookings/{booking['id']}/attendance", auth_headers)
    assert body["participants"][0]["intervals"] == [
        {"joined_at": "2026-09-21T15:02:10.123000Z", "left_at": None}
    ]


async def test_a_booking_without_events_has_null_times_and_no_participants(
    client, db, auth_headers
):
    booking = await make_booking(db)
    body = await get_json(client, f"/api/bookings/{booking['id']}/attendance", auth_headers)
    assert body == {
        "booking_id": str(booking["id"]),
        "meeting_started_at": None,
        "meeting_ended_at": None,
        "first_start_click_at": None,
        "first_join_click_at": None,
        "participants": [],
        "evidence": "none",
        "reconciled_at": None,
    }


async def test_clicks_posted_through_the_api_set_the_first_click_times(client, db, auth_headers):
    booking = await make_booking(db)
    created = []
    for action in ("join_meeting", "start_meeting", "join_meeting"):
        resp = await client.post(
            "/api/zoom-logs",
            json={"booking_id": str(booking["id"]), "action_type": action},
            headers=auth_headers,
        )
        created.append(await resp.json())
    body = await get_json(client, f"/api/bookings/{booking['id']}/attendance", auth_headers)
    assert body["first_join_click_at"] == created[0]["created_at"]
    assert body["first_start_click_at"] == created[1]["created_at"]


async def test_the_timeline_tells_the_session_in_words(client, db, auth_headers):
    booking = await make_booking(db, zoom_meeting_id="111")
    await click(db, booking, "start_meeting", "2026-09-21T14:59:30Z")
    await click(db, booking, "join_meeting", "2026-09-21T15:01:40Z")
    events = session("111")
    await deliver(client, reversed(events))
    body = await get_json(client, f"/api/bookings/{booking['id']}/timeline", auth_headers)
    assert body["booking_id"] == str(booking["id"])
    items = body["items"]
    jill = "Jill Chill (jchill@example.com)"
    assert [(e["at"], e["kind"], e["description"]) for e in items] == [
        ("2026-09-21T14:59:30Z", "click", "Coach clicked Start Meeting"),
        ("2026-09-21T15:00:00Z", "zoom_event", "Meeting started"),
        ("2026-09-21T15:00:05Z", "zoom_event",
         "Carl Coach (coach@example.com) joined the meeting as host"),
        ("2026-09-21T15:01:40Z", "click", "Athlete clicked Join Meeting"),
        ("2026-09-21T15:02:10Z", "zoom_event", f"{jill} joined the meeting"),
        ("2026-09-21T15:10:00Z", "zoom_event", f"{jill} left the meeting"),
        ("2026-09-21T15:11:30Z", "zoom_event", f"{jill} joined the meeting"),
        ("2026-09-21T15:31:00Z", "zoom_event", f"{jill} left the meeting"),
        ("2026-09-21T15:32:00Z", "zoom_event", "Meeting ended"),
    ]  # fmt: skip
    assert items[0]["actor"] == "coach"
    assert items[0]["actor_id"] == str(booking["coach_id"])
    assert items[3]["actor"] == "athlete"
    assert items[3]["actor_id"] == str(booking["athlete_id"])
    assert items[1]["actor"] == "zoom"
    assert items[4]["actor"] == "Jill Chill (jchill@example.com)"
    assert all(set(e) == {"at", "kind", "type", "actor", "actor_id", "description", "id", "source"}
               for e in items)  # fmt: skip
    assert [e["source"] for e in items if e["kind"] == "zoom_event"] == ["webhook"] * 7
    assert [e["source"] for e in items if e["kind"] == "click"] == [None] * 2


async def test_events_written_without_a_raw_body_are_read_from_their_columns(
    client, db, auth_headers
):
    booking = await make_booking(db)
    rows = [
        ("meeting.started", "2026-09-21T15:00:00Z", None, None, None),
        ("meeting.participant_joined", "2026-09-21T15:01:00Z", "Jill", "j@example.com", "jill"),
        ("meeting.participant_left", "2026-09-21T15:05:00Z", "Jill", "j@example.com", "jill"),
        (None, "2026-09-21T15:06:00Z", None, None, None),
    ]
    await db.executemany(
        "INSERT INTO zoom_webhook_events (booking_id, zoom_meeting_id, event_type, occurred_at,"
        " participant_name, participant_email, participant_user_id)"
        " VALUES ($1, '1', $2, $3::text::timestamptz, $4, $5, $6)",
        [(booking["id"], *row) for row in rows],
    )
    body = await get_json(client, f"/api/bookings/{booking['id']}/attendance", auth_headers)
    [jill] = body["participants"]
    assert (jill["user_id"], jill["seconds_present"], jill["is_host"]) == ("jill", 240, False)
    timeline = await get_json(client, f"/api/bookings/{booking['id']}/timeline", auth_headers)
    assert [e["description"] for e in timeline["items"]] == [
        "Meeting started",
        "Jill (j@example.com) joined the meeting",
        "Jill (j@example.com) left the meeting",
        "Zoom sent an event without a type",
    ]


async def test_attendance_reads_at_most_its_cap_of_events_and_says_so(client, db, auth_headers):
    booking = await make_booking(db, zoom_meeting_id="cap-1")
    await db.execute(
        """
        INSERT INTO zoom_webhook_events (event_type, zoom_meeting_id, booking_id, occurred_at,
                                         dedupe_key, raw_data)
        SELECT 'meeting.participant_joined', 'cap-1', $1,
               '2026-11-26T15:00:00Z'::timestamptz + n * interval '1 second',
               decode(md5(n::text), 'hex'), '{}'::jsonb
          FROM generate_series(1, $2) AS n
        """,
        booking["id"],
        MAX_BOOKING_EVENTS + 1,
    )
    for route in ("attendance", "timeline"):
        resp = await client.get(f"/api/bookings/{booking['id']}/{route}", headers=auth_headers)
        assert resp.status == 422, await resp.text()
        body = await resp.json()
        assert body["error"] == "too_many_events"
        assert str(MAX_BOOKING_EVENTS) in body["message"]
