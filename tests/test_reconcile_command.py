"""`python -m service reconcile` as a real process against the test database and the fake Zoom."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime, timedelta

import pytest

from devtools.fake_zoom import (
    ACCOUNT_ID,
    CLIENT_ID,
    CLIENT_SECRET,
    HOST_USER,
    FakeZoom,
    PastInstance,
    participant_record,
)
from tests.conftest import INTERNAL_TOKEN
from tests.factories import make_booking, make_booking_request
from tests.processes import ROOT

AUTH = {"Authorization": f"Bearer {INTERNAL_TOKEN}"}
NOW = datetime.now(UTC).replace(microsecond=0)


def zoom_env(database_url: str, fake: FakeZoom, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZOOM_", "INTERNAL_"))}
    env.update(
        DATABASE_URL=database_url,
        ZOOM_API_URL=fake.api_url,
        ZOOM_OAUTH_URL=fake.oauth_url,
        ZOOM_ACCOUNT_ID=ACCOUNT_ID,
        ZOOM_CLIENT_ID=CLIENT_ID,
        ZOOM_CLIENT_SECRET=CLIENT_SECRET,
        ZOOM_HOST_USER=HOST_USER,
    )
    env.update(extra)
    return env


async def run_command(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "service",
        "reconcile",
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def scheduled_booking(db, meeting_id: str | None, ends_ago: timedelta, **booking):
    """A paid booking whose request ended ends_ago (negative: still to come)."""
    starts_at = NOW - ends_ago - timedelta(minutes=45)
    request = await make_booking_request(
        db, starts_at=starts_at, duration_minutes=45, status="accepted"
    )
    row = await make_booking(db, zoom_meeting_id=meeting_id, **booking)
    await db.execute(
        "UPDATE booking_requests SET booking_id = $1 WHERE id = $2", row["id"], request["id"]
    )
    return row


def played(fake: FakeZoom, meeting_id: str, ended_ago: timedelta) -> None:
    end = NOW - ended_ago
    start = end - timedelta(minutes=45)
    records = [
        participant_record(
            name="Carl Coach",
            user_id="1",
            participant_user_id="fake-host-id",
            join_time=start,
            leave_time=end,
        ),
        participant_record(
            name="Jill Chill",
            user_id="2",
            email="jill@example.com",
            join_time=start + timedelta(minutes=3),
            leave_time=end - timedelta(minutes=1),
        ),
    ]
    fake.add_past_meeting(meeting_id, PastInstance(f"uuid-{meeting_id}==", start, end, records))


async def test_every_due_booking_is_reconciled_once_and_final_ones_are_not_asked_again(
    fake_zoom, database_url, db
):
    due_played = await scheduled_booking(db, "81000000011", timedelta(hours=2))
    due_never_ran = await scheduled_booking(db, "81000000012", timedelta(days=3))
    not_yet = await scheduled_booking(db, "81000000013", timedelta(minutes=10))
    too_old = await scheduled_booking(db, "81000000014", timedelta(days=40))
    cancelled = await scheduled_booking(db, "81000000015", timedelta(hours=2), status="cancelled")
    await scheduled_booking(db, None, timedelta(hours=2))
    no_request = await make_booking(db, zoom_meeting_id="81000000016")
    await db.execute(
        "UPDATE bookings SET created_at = now() - interval '25 hours' WHERE id = $1",
        no_request["id"],
    )
    for meeting_id in ("81000000011", "81000000013", "81000000014", "81000000015"):
        played(fake_zoom, meeting_id, timedelta(hours=2))
    env = zoom_env(database_url, fake_zoom)

    status, out, err = await run_command(env)

    assert status == 0, err
    lines = out.splitlines()
    assert len(lines) == 4, out
    assert lines[0].startswith(f"{due_never_ran['id']} meeting 81000000012: no_meeting")
    assert f"{due_played['id']} meeting 81000000011: recovered, 1 instance(s), 6 event(s)" in out
    assert f"{no_request['id']} meeting 81000000016: no_meeting" in out
    assert lines[-1].startswith("reconciled 3 booking(s)") and "0 left" in lines[-1]
    for skipped in (not_yet, too_old, cancelled):
        assert str(skipped["id"]) not in out
    assert await db.fetchval("SELECT status FROM bookings WHERE id = $1", due_played["id"]) == (
        "completed"
    )
    calls = len(fake_zoom.calls)

    status, out, err = await run_command(env)

    assert status == 0, err
    assert out.splitlines() == ["reconciled 0 booking(s): nothing due; 0 left for the next run"]
    assert len(fake_zoom.calls) == calls  # final outcomes are never asked of Zoom again
    assert await db.fetchval("SELECT count(*) FROM zoom_webhook_events") == 6

    status, out, _ = await run_command(env, "--days", "60")
    assert status == 0 and str(too_old["id"]) in out


async def test_zoom_failing_exits_1_and_the_booking_stays_due(fake_zoom, database_url, db):
    booking = await scheduled_booking(db, "81000000021", timedelta(hours=2))
    played(fake_zoom, "81000000021", timedelta(hours=2))
    fake_zoom.fail("server_error", target="details", times=3)
    env = zoom_env(database_url, fake_zoom)

    status, out, err = await run_command(env)

    assert status == 1, err
    assert f"{booking['id']} meeting 81000000021: failed" in out and "HTTP 500" in out
    assert "1 left for the next run" in out
    assert await db.fetchval("SELECT count(*) FROM zoom_webhook_events") == 0

    status, out, err = await run_command(env)
    assert status == 0, err
    assert "recovered" in out


async def test_unfinished_report_exits_1_and_is_tried_again(fake_zoom, database_url, db):
    booking = await scheduled_booking(db, "81000000031", timedelta(hours=1))
    end = NOW - timedelta(hours=1)
    fake_zoom.add_past_meeting(
        "81000000031", PastInstance("late==", end - timedelta(hours=1), None)
    )

    status, out, _ = await run_command(zoom_env(database_url, fake_zoom))

    assert status == 1
    assert f"{booking['id']} meeting 81000000031: pending" in out


async def test_daily_rate_limit_ends_the_run_leaving_the_rest_due(fake_zoom, database_url, db):
    for n in range(3):
        await scheduled_booking(db, f"8100000004{n}", timedelta(hours=2 + n))
        played(fake_zoom, f"8100000004{n}", timedelta(hours=2 + n))
    fake_zoom.fail(
        "rate_limited", target="instances", retry_after="3600", rate_limit_type="Daily-limit"
    )

    status, out, _ = await run_command(zoom_env(database_url, fake_zoom))

    assert status == 1
    assert "3 left for the next run" in out and "rate limit" in out
    assert len(fake_zoom.calls_to("instances")) == 1
    assert await db.fetchval("SELECT count(*) FROM zoom_webhook_events") == 0


async def test_named_booking_is_reconciled_even_when_not_due(fake_zoom, database_url, db):
    booking = await scheduled_booking(db, "81000000051", timedelta(minutes=5))
    played(fake_zoom, "81000000051", timedelta(minutes=5))

    status, out, err = await run_command(
        zoom_env(database_url, fake_zoom), "--booking", str(booking["id"])
    )

    assert status == 0, err
    assert f"{booking['id']} meeting 81000000051: recovered" in out


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--booking", "not-a-uuid"], "invalid UUID"),
        (["--booking", "8f2d9c58-3c1e-4d5e-9f00-000000000000"], "no booking with id"),
        (["--days", "0"], "--days must be at least 1"),
    ],
)
async def test_bad_arguments_exit_2(fake_zoom, database_url, db, args, says):
    status, _, err = await run_command(zoom_env(database_url, fake_zoom), *args)
    assert status == 2
    assert says in err


async def test_without_zoom_credentials_exit_2_naming_them(fake_zoom, database_url, db):
    env = zoom_env(database_url, fake_zoom)
    del env["ZOOM_CLIENT_SECRET"]
    status, out, err = await run_command(env)
    assert status == 2
    assert "ZOOM_CLIENT_SECRET" in err and "Traceback" not in err and out == ""


async def test_without_database_url_exit_2(fake_zoom, database_url):
    env = zoom_env(database_url, fake_zoom)
    del env["DATABASE_URL"]
    status, _, err = await run_command(env)
    assert status == 2 and "DATABASE_URL" in err


async def test_command_and_route_in_two_processes_never_reconcile_one_booking_at_once(
    zoom_client, fake_zoom, database_url, db
):
    booking = await scheduled_booking(db, "81000000061", timedelta(hours=2))
    played(fake_zoom, "81000000061", timedelta(hours=2))
    fake_zoom.read_latency = 0.4  # each of the route's three Zoom reads

    route = asyncio.create_task(
        zoom_client.post(f"/api/bookings/{booking['id']}/reconcile", headers=AUTH)
    )
    await asyncio.sleep(0.3)  # the route holds the booking's lock now
    status, out, err = await run_command(
        zoom_env(database_url, fake_zoom), "--booking", str(booking["id"])
    )
    answer = await route

    assert answer.status == 200 and (await answer.json())["recovered"] == 6
    assert status == 0, err
    assert f"{booking['id']} meeting 81000000061: complete, 1 instance(s), 0 event(s)" in out
    assert await db.fetchval("SELECT count(*) FROM zoom_webhook_events") == 6
    runs = await db.fetch(
        "SELECT started_at, finished_at FROM zoom_reconciliation_runs ORDER BY started_at"
    )
    assert len(runs) == 2 and runs[0]["finished_at"] <= runs[1]["started_at"]


async def test_command_through_pgbouncer_in_transaction_mode(
    fake_zoom, database_url, pgbouncer_url, db
):
    booking = await scheduled_booking(db, "81000000071", timedelta(hours=2))
    played(fake_zoom, "81000000071", timedelta(hours=2))
    env = zoom_env(pgbouncer_url, fake_zoom, DB_STATEMENT_CACHE_SIZE="0")

    status, out, err = await run_command(env)

    assert status == 0, err
    assert f"{booking['id']} meeting 81000000071: recovered, 1 instance(s), 6 event(s)" in out
    status, out, err = await run_command(env)
    assert (status, out.splitlines()[-1]) == (
        0,
        "reconciled 0 booking(s): nothing due; 0 left for the next run",
    ), err
