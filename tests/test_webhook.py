"""POST /api/zoom/webhook, through the real app on the real database."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import random
import time
from datetime import UTC, datetime

import orjson
import pytest

from service.webhook.events import dedupe_key
from tests.conftest import OLD_WEBHOOK_SECRET, WEBHOOK_SECRET
from tests.factories import make_booking
from tests.zoom_payloads import encode, example, meeting_event, participant, post_signed, sign

# Each test runs straight to PostgreSQL and again through PgBouncer in transaction mode.
pytestmark = pytest.mark.pgbouncer_too

STARTED = "meeting.started"
ENDED = "meeting.ended"
JOINED = "meeting.participant_joined"
LEFT = "meeting.participant_left"


async def stored_events(db):
    return await db.fetch("SELECT * FROM zoom_webhook_events ORDER BY occurred_at, id")


async def assert_error(resp, status: int, code: str | None = None) -> dict:
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/json"
    body = await resp.json()
    assert set(body) == {"error", "message"}
    assert body["message"]
    if code is not None:
        assert body["error"] == code
    return body


# --- URL validation -------------------------------------------------------------------------


async def test_url_validation_answers_with_the_first_secret(client, db):
    body = example("official-docs_endpoint.url_validation_request.json")
    resp = await post_signed(client, body)
    assert resp.status == 200
    assert resp.content_type == "application/json"
    token = "qgg8vlvZRS6UYooatFL8Aw"
    answer = await resp.json()
    digest = hmac.new(WEBHOOK_SECRET.encode(), token.encode(), hashlib.sha256).hexdigest()
    assert answer == {"plainToken": token, "encryptedToken": digest}
    assert await stored_events(db) == []


async def test_url_validation_signed_with_the_old_secret_still_answers_with_the_first(client):
    body = example("official-docs_endpoint.url_validation_request.json")
    resp = await post_signed(client, body, secret=OLD_WEBHOOK_SECRET)
    assert resp.status == 200
    answer = await resp.json()
    digest = hmac.new(WEBHOOK_SECRET.encode(), b"qgg8vlvZRS6UYooatFL8Aw", hashlib.sha256)
    assert answer["encryptedToken"] == digest.hexdigest()


async def test_url_validation_without_plain_token_is_400(client):
    resp = await post_signed(
        client, {"event": "endpoint.url_validation", "payload": {}}, expect=400
    )
    await assert_error(resp, 400)


async def test_unsigned_url_validation_is_401(client):
    body = example("official-docs_endpoint.url_validation_request.json")
    resp = await client.post("/api/zoom/webhook", data=body)
    await assert_error(resp, 401)


# --- every way a signature can be wrong -------------------------------------------------------


async def test_wrong_secret_is_401_and_stores_nothing(client, db):
    resp = await post_signed(client, meeting_event(STARTED), secret="not-our-secret", expect=401)
    await assert_error(resp, 401, "invalid_signature")
    assert await stored_events(db) == []


async def test_the_signed_post_helper_fails_a_test_whose_delivery_was_refused(client):
    """post_signed checks the status, so a test cannot pass because every delivery failed."""
    with pytest.raises(AssertionError, match="answered 401, not 200"):
        await post_signed(client, meeting_event(STARTED), secret="not-our-secret")


async def test_tampered_body_is_401(client, db):
    body = encode(meeting_event(STARTED))
    headers = sign(body)
    resp = await client.post(
        "/api/zoom/webhook", data=body.replace(b"85746065432", b"85746065433"), headers=headers
    )
    await assert_error(resp, 401, "invalid_signature")
    assert await stored_events(db) == []


async def test_missing_signature_header_is_401(client):
    body = encode(meeting_event(STARTED))
    headers = sign(body)
    del headers["x-zm-signature"]
    await assert_error(await client.post("/api/zoom/webhook", data=body, headers=headers), 401)


async def test_missing_timestamp_header_is_401(client):
    body = encode(meeting_event(STARTED))
    headers = sign(body)
    del headers["x-zm-request-timestamp"]
    await assert_error(await client.post("/api/zoom/webhook", data=body, headers=headers), 401)


@pytest.mark.parametrize("timestamp", ["abc", "1.5", "-100", " 1739923528", "1739923528000000"])
async def test_malformed_timestamp_header_is_401(client, timestamp):
    body = encode(meeting_event(STARTED))
    headers = sign(body, ts=timestamp)
    await assert_error(await client.post("/api/zoom/webhook", data=body, headers=headers), 401)


@pytest.mark.parametrize("signature", ["", "v0=", "v1=abc", "sha256=00", "v0=" + "0" * 64])
async def test_malformed_signature_header_is_401(client, signature):
    body = encode(meeting_event(STARTED))
    headers = sign(body)
    headers["x-zm-signature"] = signature
    await assert_error(await client.post("/api/zoom/webhook", data=body, headers=headers), 401)


async def test_signature_for_another_timestamp_is_401(client):
    body = encode(meeting_event(STARTED))
    headers = sign(body)
    headers["x-zm-request-timestamp"] = str(int(headers["x-zm-request-timestamp"]) - 1)
    await assert_error(await client.post("/api/zoom/webhook", data=body, headers=headers), 401)


async def test_stale_timestamp_is_401(client, db):
    resp = await post_signed(client, meeting_event(STARTED), ts=int(time.time()) - 7300, expect=401)
    await assert_error(resp, 401, "invalid_timestamp")
    assert await stored_events(db) == []


async def test_timestamp_inside_the_two_hour_window_is_accepted(client, db):
    # Zoom's retry at +85 minutes may carry the original timestamp.
    resp = await post_signed(client, meeting_event(STARTED), ts=int(time.time()) - 85 * 60)
    assert resp.status == 200
    assert len(await stored_events(db)) == 1


async def test_timestamp_more_than_five_minutes_ahead_is_401(client, db):
    resp = await post_signed(client, meeting_event(STARTED), ts=int(time.time()) + 400, expect=401)
    await assert_error(resp, 401, "invalid_timestamp")
    assert await stored_events(db) == []


async def test_small_clock_skew_ahead_is_accepted(client):
    resp = await post_signed(client, meeting_event(STARTED), ts=int(time.time()) + 60)
    assert resp.status == 200


async def test_tolerance_is_configurable(aiohttp_client, config, db):
    from dataclasses import replace

    from service.app import create_app

    strict = await aiohttp_client(create_app(replace(config, webhook_tolerance_seconds=300)))
    resp = await post_signed(strict, meeting_event(STARTED), ts=int(time.time()) - 600, expect=401)
    await assert_error(resp, 401, "invalid_timestamp")


async def test_event_signed_with_a_secret_being_rotated_out_is_stored(client, db):
    resp = await post_signed(client, meeting_event(STARTED), secret=OLD_WEBHOOK_SECRET)
    assert resp.status == 200
    assert len(await stored_events(db)) == 1


# --- the example payloads --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "event_type", "meeting_id"),
    [
        ("official-docs_meeting.started.json", STARTED, "1234567890"),
        ("zoomnet-sample_meeting.started.json", STARTED, "1234567890"),
        ("zoomnet-sample_meeting.ended.json", ENDED, "1234567890"),
        ("zoomnet-sample_meeting.participant_joined.json", JOINED, "1234567890"),
        ("zoomnet-sample_meeting.participant_left.json", LEFT, "1234567890"),
        ("real-world_zoomnet-issue-349_meeting.ended.json", ENDED, "55555555555"),
    ],
)
async def test_example_payload_is_stored_byte_for_byte(client, db, name, event_type, meeting_id):
    body = example(name)
    resp = await post_signed(client, body)
    assert resp.status == 200
    assert await resp.json() == {"status": "stored", "event": event_type}
    [row] = await stored_events(db)
    assert row["event_type"] == event_type
    assert row["zoom_meeting_id"] == meeting_id
    assert row["raw_data"] == orjson.loads(body)


async def test_meeting_created_example_is_acknowledged_and_not_stored(client, db):
    resp = await post_signed(client, example("zoomnet-sample_meeting.created.json"))
    assert resp.status == 200
    assert (await resp.json())["status"] == "ignored"
    assert await stored_events(db) == []


@pytest.mark.parametrize(
    "event", ["recording.completed", "meeting.deleted", "", None, 42, {"a": 1}, ["meeting.ended"]]
)
async def test_other_signed_events_are_acknowledged_and_not_stored(client, db, event):
    resp = await post_signed(client, {"event": event, "payload": {"object": {"id": 1}}})
    assert resp.status == 200
    assert await stored_events(db) == []


# --- column mapping -------------------------------------------------------------------------


async def test_meeting_id_sent_as_a_number_is_stored_as_text(client, db):
    await post_signed(client, meeting_event(STARTED, meeting_id=85746065432))
    [row] = await stored_events(db)
    assert row["zoom_meeting_id"] == "85746065432"


async def test_meeting_id_sent_as_a_string_is_stored_as_is(client, db):
    await post_signed(client, meeting_event(STARTED, meeting_id="85746065432"))
    [row] = await stored_events(db)
    assert row["zoom_meeting_id"] == "85746065432"


async def test_numeric_and_string_meeting_ids_link_to_the_same_booking(client, db):
    booking = await make_booking(db, zoom_meeting_id="85746065432")
    await post_signed(client, meeting_event(STARTED, meeting_id=85746065432))
    await post_signed(client, meeting_event(JOINED, participant=participant(join_time=None)))
    rows = await stored_events(db)
    assert [r["booking_id"] for r in rows] == [booking["id"], booking["id"]]


async def test_started_maps_its_columns(client, db):
    booking = await make_booking(db, zoom_meeting_id="85746065432")
    payload = meeting_event(STARTED, start_time="2026-11-26T15:00:05Z")
    await post_signed(client, payload)
    [row] = await stored_events(db)
    assert row["booking_id"] == booking["id"]
    assert row["event_type"] == STARTED
    assert row["occurred_at"] == datetime(2026, 11, 26, 15, 0, 5, tzinfo=UTC)
    assert row["participant_name"] is None
    assert row["participant_email"] is None
    assert row["participant_user_id"] is None
    assert row["raw_data"] == payload
    assert row["id"] is not None and row["created_at"] is not None


async def test_ended_takes_its_time_from_end_time(client, db):
    await post_signed(client, meeting_event(ENDED, end_time="2026-11-26T16:01:00Z"))
    [row] = await stored_events(db)
    assert row["occurred_at"] == datetime(2026, 11, 26, 16, 1, tzinfo=UTC)


async def test_participant_joined_maps_its_columns(client, db):
    who = participant("Coach Carter", email="carter@example.com", stable_id="stable-1")
    who["join_time"] = "2026-11-26T15:01:00Z"
    await post_signed(client, meeting_event(JOINED, participant=who))
    [row] = await stored_events(db)
    assert row["event_type"] == JOINED
    assert row["occurred_at"] == datetime(2026, 11, 26, 15, 1, tzinfo=UTC)
    assert row["participant_name"] == "Coach Carter"
    assert row["participant_email"] == "carter@example.com"
    assert row["participant_user_id"] == "stable-1"


async def test_participant_left_takes_its_time_from_leave_time(client, db):
    who = participant(leave_time="2026-11-26T15:31:00Z")
    await post_signed(client, meeting_event(LEFT, participant=who))
    [row] = await stored_events(db)
    assert row["event_type"] == LEFT
    assert row["occurred_at"] == datetime(2026, 11, 26, 15, 31, tzinfo=UTC)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"participant_user_id": "puid", "id": "zid", "user_id": "uid"}, "puid"),
        ({"participant_user_id": "", "id": "zid", "user_id": "uid"}, "zid"),
        ({"participant_user_id": None, "id": "", "user_id": "uid"}, "uid"),
        ({"user_id": 16778240}, "16778240"),
        ({}, None),
    ],
)
async def test_participant_user_id_is_the_first_non_empty_id(client, db, fields, expected):
    who = {"user_name": "Guest", "email": "", "join_time": "2026-11-26T15:01:00Z", **fields}
    await post_signed(client, meeting_event(JOINED, participant=who))
    [row] = await stored_events(db)
    assert row["participant_user_id"] == expected
    assert row["participant_email"] is None


async def test_missing_time_falls_back_to_event_ts_keeping_milliseconds(client, db):
    payload = meeting_event(STARTED, event_ts=1764169205123)
    del payload["payload"]["object"]["start_time"]
    await post_signed(client, payload)
    [row] = await stored_events(db)
    assert row["occurred_at"] == datetime(2025, 11, 26, 15, 0, 5, 123000, tzinfo=UTC)


async def test_participant_without_join_time_falls_back_to_event_ts(client, db):
    who = participant()
    await post_signed(client, meeting_event(JOINED, participant=who, event_ts=1764169205999))
    [row] = await stored_events(db)
    assert row["occurred_at"] == datetime(2025, 11, 26, 15, 0, 5, 999000, tzinfo=UTC)


async def test_raw_data_keeps_non_ascii_and_unknown_fields(client, db):
    payload = meeting_event(STARTED, topic="Café 🚒 coaching", brand_new_field={"x": [1, 2]})
    await post_signed(client, payload)
    [row] = await stored_events(db)
    assert row["raw_data"] == payload


async def test_nul_characters_are_stored_without_losing_the_event(client, db):
    who = participant("Bad\u0000Name", join_time="2026-11-26T15:01:00Z")
    await post_signed(client, meeting_event(JOINED, participant=who))
    [row] = await stored_events(db)
    assert row["participant_name"] == "Bad\ufffdName"


# --- duplicates ------------------------------------------------------------------------------


async def test_replayed_meeting_ended_is_stored_once(client, db):
    booking = await make_booking(db, zoom_meeting_id="85746065432")
    body = encode(meeting_event(ENDED, end_time="2026-11-26T16:00:00Z"))
    first = await client.post("/api/zoom/webhook", data=body, headers=sign(body))
    again = await client.post("/api/zoom/webhook", data=body, headers=sign(body))
    assert (first.status, again.status) == (200, 200)
    assert (await first.json())["status"] == "stored"
    assert (await again.json())["status"] == "duplicate"
    assert len(await stored_events(db)) == 1
    status = await db.fetchval("SELECT status FROM bookings WHERE id = $1", booking["id"])
    assert status == "completed"


def test_dedupe_keys_stay_what_earlier_releases_stored():
    # Keys already in the table must keep matching Zoom's later retries: a change to how the
    # key is made would store every retry that spans a deploy a second time.
    jill = {"user_name": "Jill Chill", "id": "iFxeBPYun6SAiWUzBcEkX", "user_id": "16778240"}
    jill["email"] = "jchill@example.com"
    joined = dedupe_key(JOINED, 1626230700000, "4118522452", "uuid==", jill)
    ended = dedupe_key("meeting.ended", 1626230700001, "4118522452", "uuid==", {})
    assert joined.hex() == "5c39497fba06212b0e0a003628844cf4f59ba233da8ecc24ea0a940c7ce4f426"
    assert ended.hex() == "9823302eb6468f4cdd8d656c2e1f4bbc4783197605d8786215db83ea963377c6"


async def test_retry_re_signed_later_is_still_a_duplicate(client, db):
    body = encode(meeting_event(JOINED, participant=participant(join_time="2026-11-26T15:00:00Z")))
    now = int(time.time())
    assert (await post_signed(client, body, ts=now - 85 * 60)).status == 200
    assert (await post_signed(client, body, ts=now)).status == 200
    assert len(await stored_events(db)) == 1


async def test_twenty_copies_at_the_same_instant_are_stored_once(client, db):
    await make_booking(db, zoom_meeting_id="85746065432")
    body = encode(meeting_event(LEFT, participant=participant(leave_time="2026-11-26T15:30:00Z")))
    responses = await asyncio.gather(
        *(client.post("/api/zoom/webhook", data=body, headers=sign(body)) for _ in range(20))
    )
    assert [r.status for r in responses] == [200] * 20
    outcomes = sorted([(await r.json())["status"] for r in responses])
    assert outcomes == ["duplicate"] * 19 + ["stored"]
    assert len(await stored_events(db)) == 1


async def test_different_participants_at_the_same_instant_are_both_stored(client, db):
    for name, stable in [("Coach", "c-1"), ("Athlete", "a-1")]:
        who = participant(name, email=f"{stable}@example.com", stable_id=stable, user_id=stable)
        await post_signed(client, meeting_event(JOINED, participant=who))
    assert len(await stored_events(db)) == 2


async def test_rejoin_of_the_same_person_is_a_new_event(client, db):
    who = participant()
    await post_signed(client, meeting_event(JOINED, participant=who, event_ts=1764169200000))
    await post_signed(client, meeting_event(JOINED, participant=who, event_ts=1764169500000))
    assert len(await stored_events(db)) == 2


async def test_same_event_of_another_meeting_instance_is_a_new_event(client, db):
    await post_signed(client, meeting_event(STARTED, uuid="instance-1=="))
    await post_signed(client, meeting_event(STARTED, uuid="instance-2=="))
    assert len(await stored_events(db)) == 2


# --- meeting.ended and bookings --------------------------------------------------------------


async def test_meeting_ended_completes_a_paid_booking(client, db):
    booking = await make_booking(db, zoom_meeting_id="85746065432", status="paid")
    resp = await post_signed(client, meeting_event(ENDED, end_time="2026-11-26T16:00:00Z"))
    assert resp.status == 200
    row = await db.fetchrow("SELECT status, updated_at FROM bookings WHERE id = $1", booking["id"])
    assert row["status"] == "completed"
    assert row["updated_at"] > booking["updated_at"]


@pytest.mark.parametrize("status", ["cancelled", "refunded"])
async def test_meeting_ended_leaves_cancelled_and_refunded_bookings_alone(client, db, status):
    booking = await make_booking(db, zoom_meeting_id="85746065432", status=status)
    resp = await post_signed(client, meeting_event(ENDED))
    assert resp.status == 200
    row = await db.fetchrow("SELECT status, updated_at FROM bookings WHERE id = $1", booking["id"])
    assert (row["status"], row["updated_at"]) == (status, booking["updated_at"])
    [event] = await stored_events(db)
    assert event["booking_id"] == booking["id"]


async def test_second_meeting_ended_changes_nothing(client, db):
    booking = await make_booking(db, zoom_meeting_id="85746065432")
    await post_signed(client, meeting_event(ENDED, event_ts=1764169200000))
    after_first = await db.fetchrow("SELECT * FROM bookings WHERE id = $1", booking["id"])
    await post_signed(client, meeting_event(ENDED, event_ts=1764169900000))
    after_second = await db.fetchrow("SELECT * FROM bookings WHERE id = $1", booking["id"])
    assert after_first["status"] == "completed"
    assert dict(after_second) == dict(after_first)


@pytest.mark.parametrize("event_type", [STARTED, JOINED, LEFT])
async def test_other_meeting_events_do_not_complete_the_booking(client, db, event_type):
    booking = await make_booking(db, zoom_meeting_id="85746065432")
    extra = {"participant": participant()} if event_type in (JOINED, LEFT) else {}
    await post_signed(client, meeting_event(event_type, **extra))
    status = await db.fetchval("SELECT status FROM bookings WHERE id = $1", booking["id"])
    assert status == "paid"


async def test_meeting_ended_for_another_meeting_leaves_the_booking_alone(client, db):
    booking = await make_booking(db, zoom_meeting_id="111")
    await post_signed(client, meeting_event(ENDED, meeting_id="222"))
    status = await db.fetchval("SELECT status FROM bookings WHERE id = $1", booking["id"])
    assert status == "paid"


# --- orphans ---------------------------------------------------------------------------------


async def test_event_without_a_booking_is_stored_as_an_orphan(client, db):
    resp = await post_signed(client, meeting_event(STARTED, meeting_id="999000111"))
    assert resp.status == 200
    [row] = await stored_events(db)
    assert (row["zoom_meeting_id"], row["booking_id"]) == ("999000111", None)


async def test_orphan_is_linked_once_a_booking_with_its_meeting_id_appears(client, db):
    await post_signed(client, meeting_event(STARTED, meeting_id="999000111"))
    await post_signed(
        client, meeting_event(JOINED, meeting_id=999000111, participant=participant())
    )
    await post_signed(client, meeting_event(STARTED, meeting_id="555"))
    booking = await make_booking(db, zoom_meeting_id="999000111")
    rows = await db.fetch("SELECT zoom_meeting_id, booking_id FROM zoom_webhook_events")
    linked = {(r["zoom_meeting_id"], r["booking_id"]) for r in rows}
    assert linked == {("999000111", booking["id"]), ("555", None)}


async def test_orphan_is_linked_when_an_existing_booking_gets_the_meeting_id(client, db):
    await post_signed(client, meeting_event(STARTED, meeting_id="999000111"))
    booking = await make_booking(db)
    await db.execute(
        "UPDATE bookings SET zoom_meeting_id = '999000111' WHERE id = $1", booking["id"]
    )
    [row] = await stored_events(db)
    assert row["booking_id"] == booking["id"]


async def test_orphan_meeting_ended_completes_the_booking_when_it_appears(client, db):
    await post_signed(client, meeting_event(ENDED, meeting_id="999000111"))
    booking = await make_booking(db, zoom_meeting_id="999000111")
    status = await db.fetchval("SELECT status FROM bookings WHERE id = $1", booking["id"])
    assert status == "completed"


async def test_event_racing_its_booking_is_linked_either_way(client, db, database_url):
    """A booking committed while events for its meeting arrive: none may stay an orphan."""
    import asyncpg

    for round_number in range(10):
        meeting_id = f"7700{round_number}"
        writer = await asyncpg.connect(database_url)
        try:
            posts = [
                post_signed(client, meeting_event(STARTED, meeting_id=meeting_id, event_ts=ts))
                for ts in range(1764169200000, 1764169200005)
            ]
            insert = writer.execute(
                "INSERT INTO bookings (coach_id, athlete_id, zoom_meeting_id) "
                "VALUES (gen_random_uuid(), gen_random_uuid(), $1)",
                meeting_id,
            )
            await asyncio.gather(insert, *posts)
        finally:
            await writer.close()
        counts = await db.fetchrow(
            "SELECT count(*) AS stored, count(*) FILTER (WHERE booking_id IS NULL) AS orphans"
            "  FROM zoom_webhook_events WHERE zoom_meeting_id = $1",
            meeting_id,
        )
        assert (counts["stored"], counts["orphans"]) == (5, 0)


# --- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [b"{not json", b"", b"\xff\xfe", b'{"event": "meeting.started"'])
async def test_unparseable_json_after_a_good_signature_is_400(client, db, body):
    resp = await client.post("/api/zoom/webhook", data=body, headers=sign(body))
    await assert_error(resp, 400)
    assert await stored_events(db) == []


@pytest.mark.parametrize("body", [b"[]", b'"meeting.started"', b"null", b"42"])
async def test_json_that_is_not_an_object_is_400(client, body):
    resp = await client.post("/api/zoom/webhook", data=body, headers=sign(body))
    await assert_error(resp, 400)


@pytest.mark.parametrize(
    "payload",
    [
        {"event": STARTED},
        {"event": STARTED, "payload": {"object": "x"}},
        {"event": STARTED, "payload": {"object": {"uuid": "u"}}},
        {"event": STARTED, "payload": {"object": {"id": True}}},
        {"event": STARTED, "payload": {"object": {"id": ""}}},
        {"event": JOINED, "payload": {"object": {"id": "1", "start_time": "x"}}},
        {"event": STARTED, "payload": {"object": {"id": "1", "start_time": "soon"}}},
    ],
)
async def test_meeting_event_missing_what_it_needs_is_400(client, db, payload):
    resp = await post_signed(client, payload, expect=400)
    await assert_error(resp, 400, "invalid_event")
    assert await stored_events(db) == []


@pytest.mark.parametrize(
    ("event", "field", "moment"),
    [
        (STARTED, "start_time", "0001-01-01T00:00:00+01:00"),  # year 0 in UTC
        (ENDED, "end_time", "9999-12-31T23:30:00-01:00"),  # year 10000 in UTC
    ],
)
async def test_a_time_python_cannot_hold_is_400_not_a_server_error(
    client, db, event, field, moment
):
    resp = await post_signed(client, meeting_event(event, **{field: moment}), expect=400)
    body = await assert_error(resp, 400, "invalid_event")
    assert "out of range" in body["message"]
    assert await stored_events(db) == []


async def test_meeting_id_longer_than_any_of_zooms_is_400_not_an_index_failure(client, db):
    # 3 000 random digits: too long for the meeting id's b-tree index, even compressed.
    meeting_id = "".join(random.Random(7).choice("0123456789") for _ in range(3000))
    resp = await post_signed(client, meeting_event(STARTED, meeting_id=meeting_id), expect=400)
    await assert_error(resp, 400, "invalid_event")
    assert "longer than 255 characters" in (await resp.json())["message"]
    assert await stored_events(db) == []


async def post_large(client, payload):
    body = encode(payload)
    return await client.post("/api/zoom/webhook", data=io.BytesIO(body), headers=sign(body))


async def test_body_over_one_mebibyte_is_413(client, db):
    payload = meeting_event(STARTED, topic="x" * (1024 * 1024))
    resp = await post_large(client, payload)
    await assert_error(resp, 413)
    assert await stored_events(db) == []


async def test_body_of_almost_one_mebibyte_is_accepted(client, db):
    payload = meeting_event(STARTED, topic="")
    padding = 1024 * 1024 - len(encode(payload)) - 64
    payload["payload"]["object"]["topic"] = "x" * padding
    resp = await post_large(client, payload)
    assert resp.status == 200
    assert len(await stored_events(db)) == 1


async def test_get_on_the_webhook_is_405_in_the_json_error_shape(client):
    await assert_error(await client.get("/api/zoom/webhook"), 405, "method_not_allowed")


async def test_unknown_path_is_404_in_the_json_error_shape(client):
    await assert_error(await client.get("/api/nothing-here"), 404, "not_found")
