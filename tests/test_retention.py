"""Retention strips participant details from old events and keeps what the audit trail needs."""

from __future__ import annotations

import asyncio
import subprocess
from datetime import UTC, datetime, timedelta

import orjson

from service.db import load_queries
from service.jobs.retention import strip_participant_pii
from tests.factories import make_booking
from tests.processes import ROOT, python_argv, service_env
from tests.zoom_payloads import meeting_event, participant, post_signed

PII = ("Jill Chill", "jchill@example.com", "8615250064084", "Private topic")


def zoom_time(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


async def ingest(client, *, at: datetime, event_ts: int, meeting_id: str = "123") -> dict:
    person = participant(
        "Jill Chill",
        email="jchill@example.com",
        join_time=zoom_time(at),
        phone_number="8615250064084",
        registrant_id="reg-1",
        customer_key="ck-1",
    )
    payload = meeting_event(
        "meeting.participant_joined",
        meeting_id=meeting_id,
        event_ts=event_ts,
        participant=person,
        topic="Private topic",
    )
    response = await post_signed(client, payload)
    assert response.status == 200
    return payload


async def test_retention_command_strips_old_events_and_keeps_the_trail(client, db, database_url):
    booking = await make_booking(db, zoom_meeting_id="123")
    now = datetime.now(UTC).replace(microsecond=0)
    old_payload = await ingest(client, at=now - timedelta(days=40), event_ts=1)
    await post_signed(
        client,
        meeting_event(
            "meeting.ended",
            meeting_id="123",
            event_ts=2,
            end_time=zoom_time(now - timedelta(days=40)),
        ),
    )
    await ingest(client, at=now - timedelta(days=2), event_ts=3)
    before = {r["id"]: r for r in await db.fetch("SELECT * FROM zoom_webhook_events")}

    result = await asyncio.to_thread(
        subprocess.run,
        python_argv(["python", "-m", "service", "retention", "--days", "30"]),
        cwd=ROOT,
        env=service_env(database_url, port=0),
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("stripped participant details from 2 event(s) before ")
    after = {r["id"]: r for r in await db.fetch("SELECT * FROM zoom_webhook_events")}
    assert after.keys() == before.keys()  # every row stays
    old = [r for r in after.values() if r["occurred_at"] < now - timedelta(days=30)]
    recent = [r for r in after.values() if r["occurred_at"] >= now - timedelta(days=30)]
    assert len(old) == 2 and len(recent) == 1
    for row in old:
        kept = before[row["id"]]
        for column in (
            "event_type",
            "occurred_at",
            "zoom_meeting_id",
            "meeting_uuid",
            "booking_id",
            "dedupe_key",
            "participant_user_id",
            "created_at",
        ):
            assert row[column] == kept[column], column
        assert row["booking_id"] == booking["id"]
        assert row["participant_name"] is None and row["participant_email"] is None
        text = orjson.dumps(row["raw_data"]).decode()
        assert not any(value in text for value in PII)
        assert row["raw_data"]["redacted"] is True
    joined = next(r for r in old if r["event_type"] == "meeting.participant_joined")
    assert joined["raw_data"] == {
        "redacted": True,
        "event": "meeting.participant_joined",
        "event_ts": 1,
        "payload": {
            "object": {
                "id": "123",
                "uuid": old_payload["payload"]["object"]["uuid"],
                "host_id": old_payload["payload"]["object"]["host_id"],
                "type": 2,
                "start_time": old_payload["payload"]["object"]["start_time"],
                "duration": 60,
                "participant": {
                    "id": "iFxeBPYun6SAiWUzBcEkX",
                    "user_id": "16778240",
                    "participant_user_id": "iFxeBPYun6SAiWUzBcEkX",
                    "participant_uuid": "uuid-iFxeBPYun6SAiWUzBcEkX",
                    "join_time": old_payload["payload"]["object"]["participant"]["join_time"],
                },
            }
        },
    }
    (fresh,) = recent
    # Untouched but for its person token: the same one as the stripped events of that person.
    fresh, untouched = dict(fresh), dict(before[fresh["id"]])
    assert fresh.pop("participant_person") == joined["participant_person"] is not None
    assert untouched.pop("participant_person") is None
    assert fresh == untouched


async def test_a_redelivered_old_event_is_still_recognised_after_retention(client, db):
    old = datetime.now(UTC) - timedelta(days=90)
    payload = await ingest(client, at=old, event_ts=1)
    stripped = await strip_participant_pii(
        db, load_queries(), older_than=datetime.now(UTC) - timedelta(days=30), batch_size=10
    )

    response = await post_signed(client, payload)

    assert stripped == 1
    assert (await response.json())["status"] == "duplicate"
    assert await db.fetchval("SELECT count(*) FROM zoom_webhook_events") == 1


async def test_retention_works_in_batches_and_a_second_run_finds_nothing(client, db):
    start = datetime.now(UTC) - timedelta(days=60)
    for n in range(7):
        await ingest(client, at=start + timedelta(minutes=n), event_ts=100 + n)
    q, cutoff = load_queries(), datetime.now(UTC) - timedelta(days=30)

    first = await strip_participant_pii(db, q, older_than=cutoff, batch_size=3)
    second = await strip_participant_pii(db, q, older_than=cutoff, batch_size=3)

    assert (first, second) == (7, 0)
    names = await db.fetch("SELECT participant_name FROM zoom_webhook_events")
    assert [r["participant_name"] for r in names] == [None] * 7


def test_retention_needs_days(database_url):
    result = subprocess.run(
        python_argv(["python", "-m", "service", "retention"]),
        cwd=ROOT,
        env=service_env(database_url, port=0),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "--days" in result.stderr


def guest(name: str, user_id: str, at: datetime) -> dict:
    """A guest without an account: no stable id, no email, a fresh user_id per join."""
    return {"user_id": user_id, "user_name": name, "id": "", "participant_uuid": "",
            "email": "", "join_time": zoom_time(at), "leave_time": zoom_time(at)}  # fmt: skip


async def test_attendance_is_the_same_before_and_after_retention(client, db, auth_headers):
    """A guest's name was their only key: retention leaves a person token in its place."""
    start = datetime.now(UTC) - timedelta(days=60)
    booking = await make_booking(db, zoom_meeting_id="777")

    def event(kind: str, minutes: int, person: dict | None = None, ts: int = 0) -> dict:
        fields = {"start_time": zoom_time(start), "end_time": zoom_time(start + timedelta(hours=1))}
        return meeting_event(
            kind, meeting_id="777", uuid="inst==", event_ts=ts or 10**12 + minutes,
            participant=person, **fields,
        )  # fmt: skip

    def at(minutes: int) -> datetime:
        return start + timedelta(minutes=minutes)

    joined, left = "meeting.participant_joined", "meeting.participant_left"
    deliveries = [
        event("meeting.started", 0),
        event(joined, 1, guest("Gus Guest", "16778240", at(1))),
        event(left, 10, guest("Gus Guest", "16778240", at(10))),
        event(joined, 20, guest("gus guest", "16779999", at(20))),  # rejoins, a new user_id
        event(left, 30, guest("Gus Guest", "16779999", at(30))),
        event(joined, 2, guest("Vera Visitor", "16770001", at(2))),
        event(left, 50, guest("Vera Visitor", "16770001", at(50))),
        event(joined, 3, participant("Jill Chill", join_time=zoom_time(at(3)))),
        event(left, 40, participant("Jill Chill", leave_time=zoom_time(at(40)))),
        event("meeting.ended", 60),
    ]
    for body in deliveries:
        await post_signed(client, body)
    path = f"/api/bookings/{booking['id']}/attendance"
    before = await (await client.get(path, headers=auth_headers)).json()

    q, cutoff = load_queries(), datetime.now(UTC) - timedelta(days=30)
    assert await strip_participant_pii(db, q, older_than=cutoff, batch_size=4) == len(deliveries)
    after = await (await client.get(path, headers=auth_headers)).json()

    details = "SELECT count(*) FROM zoom_webhook_events WHERE participant_name IS NOT NULL"
    assert await db.fetchval(details) == 0
    assert len(before["participants"]) == 3
    seconds = sorted(p["seconds_present"] for p in before["participants"])
    assert seconds == [19 * 60, 37 * 60, 48 * 60]
    for person in before["participants"]:
        person["name"] = person["email"] = None  # what retention is for
    assert after == before
