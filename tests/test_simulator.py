"""zoom-simulate against the real app: what it prints, and the rows the service stored."""

from __future__ import annotations

import io
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from devtools.simulator import run
from tests.conftest import WEBHOOK_SECRET
from tests.factories import make_booking
from tests.processes import running_service

SESSION_EVENTS = [
    "meeting.started",
    "meeting.participant_joined",
    "meeting.participant_joined",
    "meeting.participant_left",
    "meeting.participant_joined",
    "meeting.participant_left",
    "meeting.participant_left",
    "meeting.ended",
]


async def simulate(client, *argv: str, secret: str = WEBHOOK_SECRET) -> tuple[int, list[str]]:
    out, err = io.StringIO(), io.StringIO()
    code = await run(
        ["--url", str(client.make_url("/")), "--secret", secret, *argv], out=out, err=err
    )
    return code, out.getvalue().splitlines() + err.getvalue().splitlines()


async def test_session_plays_a_whole_meeting_that_completes_its_booking(client, db):
    booking = await make_booking(db, status="paid", zoom_meeting_id="123")

    code, lines = await simulate(client, "session", "--meeting-id", "123")

    assert code == 0
    assert len(lines) == 8
    assert all("-> 200" in line and '"stored"' in line for line in lines)
    rows = await db.fetch(
        "SELECT event_type, booking_id, participant_name, participant_user_id, occurred_at"
        "  FROM zoom_webhook_events WHERE zoom_meeting_id = '123' ORDER BY occurred_at, event_type"
    )
    assert sorted(r["event_type"] for r in rows) == sorted(SESSION_EVENTS)
    assert {r["booking_id"] for r in rows} == {booking["id"]}
    guest = [r for r in rows if r["participant_name"] == "Athlete Alex"]
    assert [r["event_type"].rsplit("_", 1)[1] for r in guest] == ["joined", "left"] * 2
    assert len({r["participant_user_id"] for r in guest}) == 1  # one person across the rejoin
    assert rows[0]["event_type"] == "meeting.started"
    assert rows[-1]["occurred_at"] <= datetime.now(UTC)
    status = await db.fetchval("SELECT status FROM bookings WHERE id = $1", booking["id"])
    assert status == "completed"


async def test_session_played_twice_is_stored_once(client, db):
    argv = ("session", "--meeting-id", "555", "--start", "2026-01-02T03:04:05Z")
    await simulate(client, *argv)
    code, lines = await simulate(client, *argv)

    assert code == 0
    assert all('"duplicate"' in line for line in lines)
    assert await db.fetchval("SELECT count(*) FROM zoom_webhook_events") == 8


async def test_one_event_at_a_given_time(client, db):
    code, lines = await simulate(
        client,
        "event",
        "meeting.participant_joined",
        "--meeting-id",
        "777",
        "--name",
        "Guest Gina",
        "--email",
        "gina@example.com",
        "--at",
        "2026-03-01T10:05:00Z",
    )

    assert code == 0
    assert lines == [
        'meeting.participant_joined Guest Gina meeting=777 -> 200 {"status":"stored",'
        '"event":"meeting.participant_joined"}'
    ]
    row = await db.fetchrow("SELECT * FROM zoom_webhook_events")
    assert row["zoom_meeting_id"] == "777"
    assert row["participant_email"] == "gina@example.com"
    assert row["occurred_at"] == datetime(2026, 3, 1, 10, 5, tzinfo=UTC)
    assert row["raw_data"]["payload"]["object"]["participant"]["join_time"] == (
        "2026-03-01T10:05:00Z"
    )


async def test_validate_checks_the_encrypted_token(client):
    code, lines = await simulate(client, "validate")

    assert code == 0
    assert lines[0].startswith("endpoint.url_validation -> 200")
    assert lines[0].endswith("(encryptedToken matches)")


async def test_wrong_secret_prints_the_401_and_fails(client, db):
    argv = ("event", "meeting.started", "--meeting-id", "1")
    code, lines = await simulate(client, *argv, secret="wrong")

    assert code == 1
    assert "-> 401" in lines[0] and "invalid_signature" in lines[0]
    assert await db.fetchval("SELECT count(*) FROM zoom_webhook_events") == 0


async def test_secret_comes_from_the_environment(client, db, monkeypatch):
    monkeypatch.setenv("ZOOM_WEBHOOK_SECRET", f"{WEBHOOK_SECRET},an-older-one")
    out = io.StringIO()
    code = await run(
        [
            "--url",
            str(client.make_url("/api/zoom/webhook")),
            "event",
            "meeting.ended",
            "--meeting-id",
            "42",
        ],
        out=out,
    )

    assert code == 0
    assert await db.fetchval("SELECT event_type FROM zoom_webhook_events") == "meeting.ended"


async def test_missing_secret_is_an_error(client, monkeypatch):
    monkeypatch.delenv("ZOOM_WEBHOOK_SECRET", raising=False)
    err = io.StringIO()
    code = await run(["--url", "http://127.0.0.1:9", "validate"], err=err)

    assert code == 2
    assert "ZOOM_WEBHOOK_SECRET" in err.getvalue()


async def test_unreachable_service_is_reported(monkeypatch):
    err = io.StringIO()
    code = await run(["--url", "http://127.0.0.1:9", "--secret", "s", "validate"], err=err)

    assert code == 1
    assert err.getvalue().startswith("error: could not reach http://127.0.0.1:9/api/zoom/webhook")


def test_console_script_plays_a_session_against_a_running_service(database_url, clean_database):
    script = Path(sys.executable).with_name("zoom-simulate")
    with running_service(database_url) as service:
        env = {**service.env, "ZOOM_SIMULATE_URL": service.url}
        result = subprocess.run(
            [str(script), "session", "--meeting-id", "9876543210"],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.count("-> 200") == 8
        assert service.terminate() == 0
    with psycopg.connect(database_url) as conn:
        stored = conn.execute(
            "SELECT count(*) FROM zoom_webhook_events WHERE zoom_meeting_id = '9876543210'"
        ).fetchone()
    assert stored == (8,)


async def test_one_session_command_shows_up_in_the_attendance(client, db, auth_headers):
    booking = await make_booking(db, status="paid", zoom_meeting_id="31415926")
    code, _ = await simulate(
        client, "session", "--meeting-id", "31415926", "--start", "2026-05-04T17:00:00Z"
    )

    response = await client.get(f"/api/bookings/{booking['id']}/attendance", headers=auth_headers)

    assert code == 0
    assert response.status == 200
    summary = await response.json()
    assert summary["meeting_started_at"] == "2026-05-04T17:00:00Z"
    assert summary["meeting_ended_at"] == "2026-05-04T18:00:00Z"
    people = {p["name"]: p for p in summary["participants"]}
    assert set(people) == {"Coach Casey", "Athlete Alex"}
    assert people["Coach Casey"]["is_host"] is True
    assert people["Athlete Alex"]["is_host"] is False
    assert [i["joined_at"] for i in people["Athlete Alex"]["intervals"]] == [
        "2026-05-04T17:02:13Z",
        "2026-05-04T17:25:15Z",
    ]
    # 17:02:13-17:24:00 and 17:25:15-17:59:20
    assert people["Athlete Alex"]["seconds_present"] == 1307 + 2045
    assert people["Coach Casey"]["seconds_present"] == 3600 - 4
