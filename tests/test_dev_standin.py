"""The local Zoom stand-in of `make run`, sessions with lost deliveries, and `make demo`."""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from devtools import demo
from devtools.devdb import ZOOM_CREDENTIALS, start_zoom_standin
from devtools.fake_zoom import ACCOUNT_ID, BASIC
from devtools.simulator import SESSION_STEPS, run
from devtools.zoom_standin import ZoomStandIn, credentials
from tests.conftest import INTERNAL_TOKEN, WEBHOOK_SECRET
from tests.factories import make_booking
from tests.processes import free_port, running_service
from tests.test_attendance_picture import assert_standalone, drawn

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
async def standin(aiohttp_server) -> AsyncIterator[ZoomStandIn]:
    """The stand-in's app, served on 127.0.0.1 in this test's loop."""
    fake = ZoomStandIn()
    server = await aiohttp_server(fake.make_app())
    fake.url = str(server.make_url("")).rstrip("/")
    yield fake
    fake.release()


async def simulate(client, *argv: str) -> tuple[int, list[str], str]:
    out, err = io.StringIO(), io.StringIO()
    url = str(client.make_url("/"))
    code = await run(["--url", url, "--secret", WEBHOOK_SECRET, *argv], out=out, err=err)
    return code, out.getvalue().splitlines(), err.getvalue()


async def report_of(standin: ZoomStandIn, meeting_id: str) -> list[dict]:
    """Ask the stand-in, as reconciliation does (token, instances, report), for each record."""
    async with aiohttp.ClientSession() as http:
        async with http.post(
            standin.oauth_url,
            params={"grant_type": "account_credentials", "account_id": ACCOUNT_ID},
            headers={"Authorization": BASIC},
        ) as response:
            assert response.status == 200, await response.text()
            token = (await response.json())["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        async with http.get(
            f"{standin.api_url}/past_meetings/{meeting_id}/instances", headers=headers
        ) as response:
            assert response.status == 200, await response.text()
            [instance] = (await response.json())["meetings"]
        async with http.get(
            f"{standin.api_url}/report/meetings/{instance['uuid']}/participants",
            params={"page_size": "300"},
            headers=headers,
        ) as response:
            assert response.status == 200, await response.text()
            return list((await response.json())["participants"])


async def test_a_session_with_lost_deliveries_and_its_report_at_the_standin(
    client, db, standin: ZoomStandIn
):
    booking = await make_booking(db, zoom_meeting_id="4242")
    code, lines, err = await simulate(
        client,
        "session",
        "--meeting-id", "4242",
        "--start", "2026-05-04T17:00:00Z",
        "--late", "7",
        "--lose", "guest-rejoined,guest-left,ended",
        "--report-to", standin.url,
    )  # fmt: skip

    assert code == 0, err
    assert sum("-> LOST" in line for line in lines) == 3
    assert sum("-> 200" in line for line in lines) == 5
    assert "loaded into the stand-in" in lines[-1]
    stored = await db.fetch(
        "SELECT event_type, participant_name FROM zoom_webhook_events WHERE booking_id = $1",
        booking["id"],
    )
    assert len(stored) == 5
    assert "meeting.ended" not in {r["event_type"] for r in stored}
    assert await db.fetchval("SELECT status FROM bookings WHERE id = $1", booking["id"]) == "paid"
    # Zoom's report still has every join: the host's, and the athlete's two.
    records = await report_of(standin, "4242")
    assert [(r["name"], r["join_time"], r["leave_time"]) for r in records] == [
        ("Coach Casey", "2026-05-04T17:00:04Z", "2026-05-04T18:00:00Z"),
        ("Athlete Alex", "2026-05-04T17:07:00Z", "2026-05-04T17:24:00Z"),
        ("Athlete Alex", "2026-05-04T17:25:15Z", "2026-05-04T17:59:20Z"),
    ]
    assert len({r["participant_user_id"] for r in records}) == 2  # one person across the rejoin
    assert len({r["user_id"] for r in records}) == 3  # a new per-join id for each join


async def test_an_unknown_step_to_lose_is_refused_naming_the_steps(client, capsys):
    with pytest.raises(SystemExit):
        await simulate(client, "session", "--meeting-id", "1", "--lose", "guest-vanished")
    assert "guest-vanished" in capsys.readouterr().err
    assert all(step in SESSION_STEPS for step in ("started", "ended"))


async def test_an_unreachable_standin_is_reported(client, db):
    port = free_port()
    code, _, err = await simulate(
        client, "session", "--meeting-id", "1", "--report-to", f"http://127.0.0.1:{port}"
    )
    assert code == 1
    assert f"could not reach the Zoom stand-in at http://127.0.0.1:{port}" in err


async def test_the_standin_refuses_a_report_it_cannot_read(standin: ZoomStandIn):
    async with aiohttp.ClientSession() as http:
        for body in (b"[1]", b"{", b'{"uuid": "u==", "start_time": 5}'):
            async with http.post(f"{standin.url}/dev/past_meetings/1", data=body) as response:
                assert response.status == 422
                assert (await response.json())["error"] == "invalid_report"
    assert standin.past_meetings.get("1", []) == []


def test_make_run_starts_the_standin_only_without_zoom_credentials(capsys):
    with_credentials = {"ZOOM_ACCOUNT_ID": "real-account", "ZOOM_STANDIN_PORT": "1"}
    assert start_zoom_standin(with_credentials) is None
    assert "real Zoom" in capsys.readouterr().out
    assert "ZOOM_API_URL" not in with_credentials

    port = free_port()
    env = {"ZOOM_STANDIN_PORT": str(port)}
    process = start_zoom_standin(env)
    try:
        assert process is not None and process.poll() is None
        said = capsys.readouterr().out
        assert "local Zoom stand-in" in said and "DEV ONLY" in said
        assert env == {"ZOOM_STANDIN_PORT": str(port), **credentials(f"http://127.0.0.1:{port}")}
        assert set(ZOOM_CREDENTIALS) <= set(env)
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=10)


def test_the_image_never_ships_the_standin():
    dockerfile = (ROOT / "Dockerfile").read_text()
    copied = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("COPY ")]
    assert "devtools/" not in copied and all(not c.startswith("devtools") for c in copied)
    result = subprocess.run(
        [sys.executable, "-c", "import service.app, sys; print(sorted(sys.modules))"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "devtools" not in result.stdout  # the service never imports the dev tools


async def test_make_demo_walks_the_product_against_a_served_instance(
    database_url, clean_database, db, standin: ZoomStandIn, monkeypatch, tmp_path: Path, capsys
):
    with running_service(database_url, **credentials(standin.url)) as service:
        monkeypatch.setenv("DATABASE_URL", database_url)
        monkeypatch.setenv("INTERNAL_API_TOKENS", INTERNAL_TOKEN)
        monkeypatch.setenv("ZOOM_WEBHOOK_SECRET", WEBHOOK_SECRET)
        args = argparse.Namespace(
            url=service.url, standin=standin.url, screenshot=None, out=tmp_path
        )
        assert await demo.main_async(args) == 0
    said = capsys.readouterr().out
    booking = await db.fetchrow("SELECT id, status, zoom_meeting_id FROM bookings")
    assert booking["zoom_meeting_id"] in standin.past_meetings  # the report of the session
    request = await db.fetchrow("SELECT status, booking_id FROM booking_requests")
    assert (request["status"], request["booking_id"]) == ("accepted", booking["id"])
    clicks = await db.fetch("SELECT action_type FROM zoom_session_logs ORDER BY created_at")
    assert [c["action_type"] for c in clicks] == ["start_meeting", "join_meeting"]
    assert said.count("-> LOST") == 3
    for step in ("/accept", "zoom-simulate", "/reconcile", "/attendance", "/timeline"):
        assert step in said, step
    # Reconciliation recovered exactly the three lost steps and completed the booking.
    assert '"outcome":"recovered"' in said and '"recovered":3' in said
    assert booking["status"] == "completed"
    recovered = await db.fetch(
        "SELECT event_type, participant_name FROM zoom_webhook_events"
        " WHERE booking_id = $1 AND source = 'zoom_api' ORDER BY occurred_at",
        booking["id"],
    )
    assert [(r["event_type"], r["participant_name"]) for r in recovered] == [
        ("meeting.participant_joined", "Athlete Alex"),
        ("meeting.participant_left", "Athlete Alex"),
        ("meeting.ended", None),
    ]
    # The pictures: before, the rejoin is missing; after, it is drawn as recovered evidence.
    before = assert_standalone((tmp_path / "before-reconcile.svg").read_bytes())
    after = assert_standalone((tmp_path / "after-reconcile.svg").read_bytes())
    assert [b.get("data-source") for b in drawn(before, "bar")] == ["webhook", "webhook"]
    assert drawn(before, "meeting-end") == []
    assert [b.get("data-source") for b in drawn(after, "bar")] == ["webhook", "webhook", "zoom_api"]
    assert len(drawn(after, "meeting-end")) == 1
    started = await db.fetchval(
        "SELECT min(occurred_at) FROM zoom_webhook_events WHERE booking_id = $1", booking["id"]
    )
    assert started < datetime.now(UTC)  # a session that is over, as reconciliation expects
