"""Reconciliation against a real PostgreSQL and the fake Zoom: POST /api/bookings/{id}/reconcile.

A session whose deliveries were lost, wholly or in part, is recovered from Zoom's report; what
was delivered is never stored twice, attendance counts nothing twice, and Zoom's failures end
as the contract says.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest

from devtools.fake_zoom import HOST_ID, FakeZoom, PastInstance, participant_record, zoom_time
from service.app import create_app
from service.db import load_queries
from service.jobs.retention import strip_participant_pii
from tests.conftest import INTERNAL_TOKEN, zoom_config
from tests.factories import make_booking, make_booking_request
from tests.processes import free_port
from tests.zoom_payloads import meeting_event, post_signed

# Each test runs straight to PostgreSQL and again through PgBouncer in transaction mode.
pytestmark = pytest.mark.pgbouncer_too
AUTH = {"Authorization": f"Bearer {INTERNAL_TOKEN}"}
MEETING_ID = "81234567890"
INSTANCE = "Kx2/abcDEF//ghiJKLmn=="  # needs double encoding
START = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
END = START + timedelta(minutes=45)
ATHLETE_ID = "athlete-zoom-id"


def at(minutes: float) -> datetime:
    return START + timedelta(minutes=minutes)


def report_records() -> list[dict]:
    """The coach all along; the athlete joins, drops out for 5 minutes, rejoins; a waiting row."""
    coach = {"name": "Carl Coach", "email": "coach@example.com", "participant_user_id": HOST_ID}
    athlete = {"name": "Jill Chill", "email": "jill@example.com", "participant_user_id": ATHLETE_ID}
    return [
        participant_record(user_id="16777216", join_time=at(0), leave_time=at(45), **coach),
        participant_record(
            user_id="16777300",
            join_time=at(1),
            leave_time=at(2),
            status="in_waiting_room",
            **athlete,
        ),
        participant_record(user_id="16778240", join_time=at(2), leave_time=at(20), **athlete),
        participant_record(user_id="16779264", join_time=at(25), leave_time=at(44), **athlete),
    ]


def zoom_played(fake: FakeZoom, **instance_fields) -> None:
    fields = {"uuid": INSTANCE, "start_time": START, "end_time": END}
    fields.update(instance_fields)
    fields.setdefault("participants", report_records())
    fake.add_past_meeting(MEETING_ID, PastInstance(**fields))


def delivered(kind: str, record: dict | None = None, when: datetime | None = None) -> dict:
    """The webhook Zoom would have sent for a fact of the played session."""
    fields: dict = {}
    if kind == "meeting.started":
        fields["start_time"] = zoom_time(START)
        when = START
    elif kind == "meeting.ended":
        fields["end_time"] = zoom_time(END)
        when = END
    else:
        assert record is not None
        time_field = "join_time" if kind.endswith("joined") else "leave_time"
        when = datetime.fromisoformat(record[time_field])
        fields["participant"] = {
            "user_id": record["user_id"],
            "user_name": record["name"],
            "id": record["participant_user_id"],
            "participant_user_id": record["participant_user_id"],
            "participant_uuid": f"pu-{record['user_id']}",
            "email": record["user_email"],
            time_field: record[time_field],
        }
    assert when is not None
    return meeting_event(
        kind,
        meeting_id=MEETING_ID,
        uuid=INSTANCE,
        host_id=HOST_ID,
        event_ts=int(when.timestamp() * 1000) + 700,
        **fields,
    )


def all_deliveries() -> list[dict]:
    attended = [r for r in report_records() if r["status"] == "in_meeting"]
    return [
        delivered("meeting.started"),
        *(delivered("meeting.participant_joined", r) for r in attended),
        *(delivered("meeting.participant_left", r) for r in attended),
        delivered("meeting.ended"),
    ]


@pytest.fixture
async def booking(db):
    """A paid booking of a 45-minute session that ended over two hours ago."""
    request = await make_booking_request(
        db, starts_at=START, duration_minutes=45, status="accepted"
    )
    row = await make_booking(db, zoom_meeting_id=MEETING_ID)
    await db.execute(
        "UPDATE booking_requests SET booking_id = $1 WHERE id = $2", row["id"], request["id"]
    )
    return row


async def reconcile(client, booking_id, status: int = 200) -> dict:
    resp = await client.post(f"/api/bookings/{booking_id}/reconcile", headers=AUTH)
    body = await resp.json()
    assert resp.status == status, body
    return body


async def attendance(client, booking_id) -> dict:
    resp = await client.get(f"/api/bookings/{booking_id}/attendance", headers=AUTH)
    assert resp.status == 200
    return await resp.json()


async def deliver(client, payloads: list[dict]) -> None:
    for payload in payloads:
        resp = await post_signed(client, payload)
        assert resp.status == 200, await resp.text()


def seconds_by_name(summary: dict) -> dict[str, int]:
    return {p["name"]: p["seconds_present"] for p in summary["participants"]}


async def test_session_whose_deliveries_were_all_lost_is_recovered(
    zoom_client, fake_zoom, db, booking
):
    zoom_played(fake_zoom)

    body = await reconcile(zoom_client, booking["id"])

    assert body == {
        "booking_id": str(booking["id"]),
        "zoom_meeting_id": MEETING_ID,
        "outcome": "recovered",
        "instances": 1,
        "recovered": 2 + 2 * 3,  # start, end, a join and a leave per attendance record
    }
    rows = await db.fetch(
        "SELECT event_type, source, booking_id, meeting_uuid, participant_name, "
        "participant_email, participant_user_id, raw_data FROM zoom_webhook_events"
    )
    assert {(r["source"], r["booking_id"], r["meeting_uuid"]) for r in rows} == {
        ("zoom_api", booking["id"], INSTANCE)
    }
    joins = sorted(
        (r["participant_name"], r["participant_email"], r["participant_user_id"])
        for r in rows
        if r["event_type"] == "meeting.participant_joined"
    )
    assert joins == [
        ("Carl Coach", "coach@example.com", HOST_ID),
        ("Jill Chill", "jill@example.com", ATHLETE_ID),
        ("Jill Chill", "jill@example.com", ATHLETE_ID),
    ]
    ended = next(r for r in rows if r["event_type"] == "meeting.ended")
    assert ended["raw_data"]["end_time"] == zoom_time(END)  # the instance's details
    assert (
        await db.fetchval("SELECT status FROM bookings WHERE id = $1", booking["id"]) == "completed"
    )

    summary = await attendance(zoom_client, booking["id"])
    assert summary["evidence"] == "zoom_api"
    assert summary["reconciled_at"] is not None
    assert summary["meeting_started_at"] == START.isoformat().replace("+00:00", "Z")
    assert seconds_by_name(summary) == {"Carl Coach": 45 * 60, "Jill Chill": (18 + 19) * 60}
    coach = next(p for p in summary["participants"] if p["name"] == "Carl Coach")
    assert coach["is_host"] and coach["user_id"] == HOST_ID

    events = await zoom_client.get(f"/api/bookings/{booking['id']}/zoom-events", headers=AUTH)
    assert {item["source"] for item in (await events.json())["items"]} == {"zoom_api"}


async def test_partly_delivered_session_gains_only_the_missing_facts(
    zoom_client, fake_zoom, db, booking
):
    zoom_played(fake_zoom)
    everything = all_deliveries()
    lost = {1, 5, 7}  # the coach's join, the athlete's first leave, meeting.ended
    await deliver(zoom_client, [p for i, p in enumerate(everything) if i not in lost])
    assert await db.fetchval("SELECT status FROM bookings WHERE id = $1", booking["id"]) == "paid"

    body = await reconcile(zoom_client, booking["id"])

    assert (body["outcome"], body["recovered"]) == ("recovered", 3)
    recovered = await db.fetch(
        "SELECT event_type, participant_name FROM zoom_webhook_events WHERE source = 'zoom_api' "
        "ORDER BY occurred_at"
    )
    assert [(r["event_type"], r["participant_name"]) for r in recovered] == [
        ("meeting.participant_joined", "Carl Coach"),
        ("meeting.participant_left", "Jill Chill"),
        ("meeting.ended", None),
    ]
    assert (
        await db.fetchval("SELECT status FROM bookings WHERE id = $1", booking["id"]) == "completed"
    )
    summary = await attendance(zoom_client, booking["id"])
    assert summary["evidence"] == "webhooks+zoom_api"
    expected = {"Carl Coach": 45 * 60, "Jill Chill": (18 + 19) * 60}
    assert seconds_by_name(summary) == expected

    # Zoom's late retries of the lost deliveries arrive after reconciliation: no figure moves.
    await deliver(zoom_client, [everything[i] for i in sorted(lost)] + everything[:3])
    after = await attendance(zoom_client, booking["id"])
    assert seconds_by_name(after) == expected
    assert after["participants"] == summary["participants"]
    assert after["meeting_ended_at"] == summary["meeting_ended_at"]


async def test_fully_delivered_session_is_complete_and_stores_nothing(
    zoom_client, fake_zoom, db, booking
):
    zoom_played(fake_zoom)
    await deliver(zoom_client, all_deliveries())
    before = await attendance(zoom_client, booking["id"])

    body = await reconcile(zoom_client, booking["id"])

    assert (body["outcome"], body["instances"], body["recovered"]) == ("complete", 1, 0)
    assert (
        await db.fetchval("SELECT count(*) FROM zoom_webhook_events WHERE source = 'zoom_api'") == 0
    )
    after = await attendance(zoom_client, booking["id"])
    assert after["evidence"] == "webhooks" and after["reconciled_at"] is not None
    assert after["participants"] == before["participants"]


async def test_reconciling_again_stores_nothing_new(zoom_client, fake_zoom, db, booking):
    zoom_played(fake_zoom)
    await reconcile(zoom_client, booking["id"])
    count = await db.fetchval("SELECT count(*) FROM zoom_webhook_events")

    body = await reconcile(zoom_client, booking["id"])

    assert (body["outcome"], body["recovered"]) == ("complete", 0)
    assert await db.fetchval("SELECT count(*) FROM zoom_webhook_events") == count
    runs = await db.fetch(
        "SELECT outcome, instances, recovered FROM zoom_reconciliation_runs ORDER BY finished_at"
    )
    assert [tuple(r) for r in runs] == [("recovered", 1, 8), ("complete", 1, 0)]


async def test_every_instance_is_reconciled(zoom_client, fake_zoom, db, booking):
    zoom_played(fake_zoom, end_time=at(10), participants=[report_records()[0]])
    fake_zoom.add_past_meeting(
        MEETING_ID,
        PastInstance("second-instance==", at(12), END, [report_records()[2]]),
    )
    body = await reconcile(zoom_client, booking["id"])
    assert (body["instances"], body["recovered"]) == (2, 4 + 4)
    uuids = await db.fetch("SELECT DISTINCT meeting_uuid FROM zoom_webhook_events ORDER BY 1")
    assert [r[0] for r in uuids] == [INSTANCE, "second-instance=="]


async def test_meeting_that_never_ran_is_no_meeting_and_final(zoom_client, fake_zoom, db, booking):
    body = await reconcile(zoom_client, booking["id"])

    assert (body["outcome"], body["instances"], body["recovered"]) == ("no_meeting", 0, 0)
    assert await db.fetchval("SELECT status FROM bookings WHERE id = $1", booking["id"]) == "paid"
    summary = await attendance(zoom_client, booking["id"])
    assert summary["evidence"] == "none" and summary["reconciled_at"] is not None


async def test_unfinished_report_is_pending_and_stores_nothing_of_that_instance(
    zoom_client, fake_zoom, db, booking
):
    zoom_played(fake_zoom, end_time=None)

    body = await reconcile(zoom_client, booking["id"])

    assert (body["outcome"], body["recovered"]) == ("pending", 0)
    assert await db.fetchval("SELECT count(*) FROM zoom_webhook_events") == 0
    assert (await attendance(zoom_client, booking["id"]))["reconciled_at"] is None


async def test_meeting_still_running_is_pending_not_complete(zoom_client, fake_zoom, db, booking):
    fake_zoom.add_past_meeting(MEETING_ID)  # Zoom lists only ended instances: none yet
    await deliver(zoom_client, [delivered("meeting.started")])

    body = await reconcile(zoom_client, booking["id"])

    assert (body["outcome"], body["instances"], body["recovered"]) == ("pending", 0, 0)
    assert (await attendance(zoom_client, booking["id"]))["reconciled_at"] is None


async def test_meeting_zoom_lists_no_instance_of_is_complete(zoom_client, fake_zoom, booking):
    fake_zoom.add_past_meeting(MEETING_ID)
    body = await reconcile(zoom_client, booking["id"])
    assert (body["outcome"], body["instances"], body["recovered"]) == ("complete", 0, 0)


async def test_record_with_duration_zero_is_pending(zoom_client, fake_zoom, db, booking):
    records = report_records()
    records[2]["duration"] = 0
    zoom_played(fake_zoom, participants=records)

    body = await reconcile(zoom_client, booking["id"])

    assert (body["outcome"], body["recovered"]) == ("pending", 0)
    assert await db.fetchval("SELECT count(*) FROM zoom_webhook_events") == 0


async def test_one_person_meeting_recovers_the_meetings_start_and_end(
    zoom_client, fake_zoom, db, booking
):
    zoom_played(fake_zoom, participants=[], report_missing=True)

    body = await reconcile(zoom_client, booking["id"])

    assert (body["outcome"], body["recovered"]) == ("recovered", 2)
    summary = await attendance(zoom_client, booking["id"])
    assert summary["participants"] == [] and summary["meeting_ended_at"] is not None


async def test_zoom_unreachable_is_502(aiohttp_client, database_url, fake_zoom, db, booking):
    config = zoom_config(database_url, fake_zoom, zoom_api_url=f"http://127.0.0.1:{free_port()}/v2")
    client = await aiohttp_client(create_app(config))

    body = await reconcile(client, booking["id"], status=502)

    assert body["error"] == "zoom_unreachable"
    assert await db.fetchval("SELECT outcome FROM zoom_reconciliation_runs") == "failed"


@pytest.mark.parametrize(
    ("kind", "code"),
    [("server_error", "zoom_error"), ("hang", "zoom_timeout")],
)
async def test_zoom_failing_is_502_and_left_for_the_next_run(
    zoom_client, fake_zoom, db, booking, kind, code
):
    zoom_played(fake_zoom)
    fake_zoom.fail(kind, target="participants", times=5)

    began = time.monotonic()
    body = await reconcile(zoom_client, booking["id"], status=502)

    assert time.monotonic() - began < 30
    assert body["error"] == code and body["message"]
    assert await db.fetchval("SELECT count(*) FROM zoom_webhook_events") == 0
    run = await db.fetchrow("SELECT outcome, detail FROM zoom_reconciliation_runs")
    assert run["outcome"] == "failed" and run["detail"]
    assert (await attendance(zoom_client, booking["id"]))["reconciled_at"] is None


async def test_rate_limit_is_waited_out_when_short(zoom_client, fake_zoom, booking):
    zoom_played(fake_zoom)
    fake_zoom.fail("rate_limited", target="details", retry_after="1")

    body = await reconcile(zoom_client, booking["id"])

    assert body["outcome"] == "recovered"
    assert len(fake_zoom.calls_to("details")) == 2


async def test_rate_limit_longer_than_the_route_may_wait_is_502(
    zoom_client, fake_zoom, db, booking
):
    zoom_played(fake_zoom)
    fake_zoom.fail("rate_limited", target="instances", retry_after="45")

    began = time.monotonic()
    body = await reconcile(zoom_client, booking["id"], status=502)

    assert time.monotonic() - began < 5
    assert body["error"] == "zoom_rate_limited"
    assert await db.fetchval("SELECT outcome FROM zoom_reconciliation_runs") == "failed"


async def test_unknown_booking_is_404(zoom_client):
    body = await reconcile(zoom_client, "8f2d9c58-3c1e-4d5e-9f00-000000000000", status=404)
    assert body["error"] == "booking_not_found"


async def test_booking_without_meeting_is_409(zoom_client, db):
    row = await make_booking(db)
    body = await reconcile(zoom_client, row["id"], status=409)
    assert body["error"] == "booking_has_no_meeting"


async def test_without_zoom_credentials_503(client, db, booking):
    body = await reconcile(client, booking["id"], status=503)
    assert body["error"] == "zoom_not_configured"


async def test_without_token_401(zoom_client, booking):
    resp = await zoom_client.post(f"/api/bookings/{booking['id']}/reconcile")
    assert resp.status == 401


async def test_two_replicas_never_reconcile_one_booking_at_once(
    aiohttp_client, database_route, fake_zoom, db, booking
):
    """Two app instances (each its own pool, as two processes have) asked at the same moment."""
    zoom_played(fake_zoom)
    fake_zoom.read_latency = 0.3
    settings = database_route.settings()
    config = zoom_config(settings.pop("database_url"), fake_zoom, **settings)
    first = await aiohttp_client(create_app(config))
    second = await aiohttp_client(create_app(config))

    answers = await asyncio.gather(
        reconcile(first, booking["id"]), reconcile(second, booking["id"])
    )

    assert sorted(a["outcome"] for a in answers) == ["complete", "recovered"]
    assert sum(a["recovered"] for a in answers) == 8
    assert await db.fetchval("SELECT count(*) FROM zoom_webhook_events") == 8
    runs = await db.fetch(
        "SELECT started_at, finished_at FROM zoom_reconciliation_runs ORDER BY started_at"
    )
    assert len(runs) == 2
    assert runs[0]["finished_at"] <= runs[1]["started_at"]  # one after the other, never both


async def test_metrics_count_reconciliations_and_zoom_calls(zoom_client, fake_zoom, booking):
    zoom_played(fake_zoom)
    await reconcile(zoom_client, booking["id"])

    text = await (await zoom_client.get("/metrics")).text()

    assert 'zoom_reconciliations_total{outcome="recovered"} 1.0' in text
    assert "zoom_reconcile_events_recovered_total 8.0" in text
    assert (
        'zoom_api_calls_total{endpoint="GET /report/meetings/{meetingUUID}/participants",'
        'status="200"} 1.0'
    ) in text


async def test_retention_keeps_what_recovered_attendance_needs(zoom_client, fake_zoom, db, booking):
    zoom_played(fake_zoom)
    await reconcile(zoom_client, booking["id"])
    before = await attendance(zoom_client, booking["id"])

    await strip_participant_pii(
        db, load_queries(), older_than=datetime.now(UTC) + timedelta(days=1), batch_size=100
    )

    after = await attendance(zoom_client, booking["id"])
    assert "Jill Chill" not in str(await db.fetch("SELECT raw_data FROM zoom_webhook_events"))
    assert [(p["user_id"], p["is_host"], p["seconds_present"]) for p in after["participants"]] == [
        (p["user_id"], p["is_host"], p["seconds_present"]) for p in before["participants"]
    ]
    assert (await reconcile(zoom_client, booking["id"]))["recovered"] == 0
