"""make demo: walk the whole product against `make run`, with no Zoom account. DEV ONLY.

With `make run` serving (and its local Zoom stand-in, used when no Zoom credentials are set):

  1. the athlete asks for a session: a booking_requests row, as the web app writes it (SQL);
  2. the coach accepts it: POST /api/requests/{id}/accept (the meeting is made at the stand-in);
  3. the web app logs the coach's Start click and the athlete's Join click (zoom_session_logs);
  4. Zoom plays the session through signed webhooks (zoom-simulate): the coach starts it, the
     athlete joins late, drops out and rejoins, the meeting ends; three deliveries are lost,
     and the stand-in's report holds the whole truth;
  5. attendance before reconciling: the athlete's rejoin and the meeting's end are missing;
  6. reconciliation: POST /api/bookings/{id}/reconcile recovers them from the report;
  7. the evidence: attendance, the timeline, and the picture (attendance.svg, a screenshot).

Each step prints the command or curl that does the same by hand.

    python -m devtools.demo [--url URL] [--standin URL] [--screenshot PNG]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import shlex
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import psycopg

from devtools import simulator
from devtools.browser import find_chromium, screenshot
from devtools.devdb import VAR, dev_database_url, dev_secrets
from devtools.zoom_standin import DEFAULT_PORT

DEFAULT_URL = "http://127.0.0.1:8080"
OUT = VAR / "demo"
# Lost on the way: the athlete's rejoin and final leave, and the meeting's end.
LOST = ("guest-rejoined", "guest-left", "ended")
MEETING_MINUTES = 55
ATHLETE_LATE_MINUTES = 7.3


class DemoError(Exception):
    """A step failed; the message says which and what to do."""


def heading(number: int, words: str) -> None:
    print(f"\n== {number}. {words}", flush=True)


def shown(command: str) -> None:
    print(f"   $ {command}", flush=True)


def pretty(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()


class Demo:
    def __init__(self, args: argparse.Namespace, http: aiohttp.ClientSession) -> None:
        keys = ("INTERNAL_API_TOKENS", "ZOOM_WEBHOOK_SECRET")
        # make run's own: the environment's, else those it generated under var/.
        secrets = {key: os.environ.get(key) or dev_secrets()[key] for key in keys}
        self.url = args.url.rstrip("/")
        self.standin = args.standin.rstrip("/")
        self.token = secrets["INTERNAL_API_TOKENS"].split(",")[0].strip()
        self.secret = secrets["ZOOM_WEBHOOK_SECRET"].split(",")[0].strip()
        self.database_url = os.environ.get("DATABASE_URL") or dev_database_url()
        self.screenshot_to: Path | None = args.screenshot
        self.out: Path = args.out
        self.http = http
        self.auth = {"Authorization": f"Bearer {self.token}"}

    def curl(self, method: str, path: str, body: Any = None, out: str = "") -> str:
        parts = ["curl -sS"]
        if method != "GET":
            parts.append(f"-X {method}")
        parts.append('-H "Authorization: Bearer $TOKEN"')
        if body is not None:
            parts.append(f"-H 'content-type: application/json' -d '{orjson.dumps(body).decode()}'")
        if out:
            parts.append(f"-o {out}")
        return " ".join([*parts, f"{self.url}{path}"])

    async def call(
        self, method: str, path: str, body: Any = None, *, expect: tuple[int, ...] = (200,)
    ) -> Any:
        async with self.http.request(
            method, f"{self.url}{path}", json=body, headers=self.auth
        ) as response:
            data = await response.read()
            if response.status not in expect:
                raise DemoError(f"{method} {path} answered {response.status}: {data.decode()}")
            if response.content_type == "application/json":
                return orjson.loads(data)
            return data

    async def check_ready(self) -> None:
        try:
            async with self.http.get(f"{self.url}/readyz") as response:
                if response.status != 200:
                    raise DemoError(f"the service at {self.url} is not ready ({response.status})")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DemoError(
                f"nothing serves at {self.url}: start `make run` first ({exc})"
            ) from exc
        try:
            async with self.http.get(f"{self.standin}/v2/past_meetings/0/instances"):
                pass
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DemoError(
                f"no Zoom stand-in at {self.standin}: `make run` starts it only when no Zoom "
                "credentials are configured (unset ZOOM_ACCOUNT_ID, ZOOM_CLIENT_ID, "
                "ZOOM_CLIENT_SECRET, ZOOM_HOST_USER and restart it)"
            ) from exc

    def create_request(self, starts_at: datetime) -> tuple[uuid.UUID, uuid.UUID]:
        """Insert a pending booking request as the web app does; return (request, coach)."""
        coach, athlete = uuid.uuid4(), uuid.uuid4()
        sql = (
            "INSERT INTO booking_requests (coach_id, athlete_id, starts_at, duration_minutes, "
            "status) VALUES (%s, %s, %s, 60, 'pending') RETURNING id"
        )
        shown(
            f'psql "$DATABASE_URL" -c "INSERT INTO booking_requests (coach_id, athlete_id, '  # noqa: S608
            f"starts_at, duration_minutes, status) VALUES ('{coach}', '{athlete}', "
            f"'{starts_at.isoformat()}', 60, 'pending') RETURNING id\""
        )
        with psycopg.connect(self.database_url, connect_timeout=10) as conn:
            row = conn.execute(sql, (coach, athlete, starts_at)).fetchone()
        assert row is not None
        print(
            f"   request {row[0]}: coach {coach}, athlete {athlete}, "
            f"60 min at {starts_at:%H:%M} UTC"
        )
        return row[0], coach

    def log_clicks(self, booking_id: str, start_click: datetime, join_click: datetime) -> None:
        """The two clicks, at the moments they happened during the session."""
        shown(
            self.curl(
                "POST", "/api/zoom-logs", {"booking_id": booking_id, "action_type": "start_meeting"}
            )
        )
        shown(
            self.curl(
                "POST", "/api/zoom-logs", {"booking_id": booking_id, "action_type": "join_meeting"}
            )
        )
        print(
            "   (the route stamps a click with the moment it is called; the session below is\n"
            "   played after the fact, so the demo writes the two rows the route would have\n"
            "   written at session time, copying coach and athlete from the booking like it)"
        )
        sql = (
            "INSERT INTO zoom_session_logs (booking_id, coach_id, athlete_id, action_type, "
            "created_at) SELECT b.id, b.coach_id, b.athlete_id, %s, %s FROM bookings AS b "
            "WHERE b.id = %s"
        )
        with psycopg.connect(self.database_url, connect_timeout=10) as conn:
            conn.execute(sql, ("start_meeting", start_click, booking_id))
            conn.execute(sql, ("join_meeting", join_click, booking_id))
        print(
            f"   coach clicked Start at {start_click:%H:%M:%S}, "
            f"athlete Join at {join_click:%H:%M:%S} UTC"
        )

    async def play(self, meeting_id: str, start: datetime) -> None:
        argv = [
            "session",
            "--meeting-id", meeting_id,
            "--start", start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "--minutes", str(MEETING_MINUTES),
            "--late", str(ATHLETE_LATE_MINUTES),
            "--host-name", "Coach Casey",
            "--guest-name", "Athlete Alex",
            "--lose", ",".join(LOST),
            "--report-to", self.standin,
        ]  # fmt: skip
        shown(
            f"ZOOM_WEBHOOK_SECRET=$SECRET .venv/bin/zoom-simulate --url {self.url} "
            + shlex.join(argv)
        )
        out, err = io.StringIO(), io.StringIO()
        code = await simulator.run(["--url", self.url, "--secret", self.secret, *argv], out, err)
        for line in out.getvalue().splitlines():
            print(f"   {line}")
        if code != 0:
            raise DemoError(f"zoom-simulate failed: {err.getvalue().strip()}")

    def summarise(self, summary: dict[str, Any]) -> None:
        print(f"   meeting {summary['meeting_started_at']} .. {summary['meeting_ended_at']}")
        if "evidence" in summary:
            print(
                f"   evidence: {summary['evidence']}, reconciled_at: {summary.get('reconciled_at')}"
            )
        for person in summary["participants"]:
            spans = ", ".join(
                f"{i['joined_at'][11:19]}-{(i['left_at'] or '(open)')[11:19]}"
                for i in person["intervals"]
            )
            host = " (host)" if person["is_host"] else ""
            print(f"   {person['name']}{host}: {person['seconds_present']} s present: {spans}")

    def booking_status(self, booking_id: str) -> str:
        with psycopg.connect(self.database_url, connect_timeout=10) as conn:
            row = conn.execute(
                "SELECT status FROM bookings WHERE id = %s", (booking_id,)
            ).fetchone()
        return str(row[0]) if row else "?"

    async def save_picture(self, booking_id: str, name: str) -> Path:
        path = f"/api/bookings/{booking_id}/attendance.svg"
        self.out.mkdir(parents=True, exist_ok=True)
        picture = self.out / f"{name}.svg"
        shown(self.curl("GET", path, out=str(picture)))
        picture.write_bytes(await self.call("GET", path))
        return picture

    async def run(self) -> None:
        await self.check_ready()
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        scheduled = now - timedelta(minutes=75)
        started = scheduled - timedelta(seconds=20)
        print(
            "TOKEN and SECRET below: INTERNAL_API_TOKENS, ZOOM_WEBHOOK_SECRET (var/dev-secrets.env)"
        )

        heading(1, "The athlete asks for a session: the web app inserts a booking request")
        request_id, coach = self.create_request(scheduled)

        heading(2, "The coach accepts it: the service creates the Zoom meeting (at the stand-in)")
        shown(self.curl("POST", f"/api/requests/{request_id}/accept", {"coach_id": str(coach)}))
        booking = await self.call(
            "POST", f"/api/requests/{request_id}/accept", {"coach_id": str(coach)}, expect=(201,)
        )
        booking_id, meeting_id = booking["id"], booking["zoom_meeting_id"]
        print(f"   booking {booking_id}, status {booking['status']}, Zoom meeting {meeting_id}")

        heading(3, "The web app logs the coach's Start and the athlete's Join clicks")
        late = timedelta(minutes=ATHLETE_LATE_MINUTES)
        self.log_clicks(
            booking_id, started - timedelta(seconds=25), started + late - timedelta(seconds=40)
        )

        heading(4, f"Zoom plays the session; {len(LOST)} deliveries are lost on the way")
        await self.play(meeting_id, started)

        heading(5, "Attendance from what was delivered")
        shown(self.curl("GET", f"/api/bookings/{booking_id}/attendance"))
        self.summarise(await self.call("GET", f"/api/bookings/{booking_id}/attendance"))
        print(f"   booking status: {self.booking_status(booking_id)} (its meeting.ended was lost)")
        before = await self.save_picture(booking_id, "before-reconcile")

        heading(6, "Reconciliation asks Zoom (the stand-in) what the webhooks missed")
        shown(self.curl("POST", f"/api/bookings/{booking_id}/reconcile"))
        outcome = await self.call(
            "POST", f"/api/bookings/{booking_id}/reconcile", expect=(200, 404)
        )
        if isinstance(outcome, dict) and outcome.get("error") == "booking_not_found":
            raise DemoError("the booking vanished before reconciliation")
        if isinstance(outcome, dict) and "outcome" in outcome:
            print(f"   {orjson.dumps(outcome).decode()}")
        else:
            print("   this version of the service has no reconcile route yet: skipped")
        print(f"   booking status: {self.booking_status(booking_id)}")

        heading(7, "The evidence")
        shown(self.curl("GET", f"/api/bookings/{booking_id}/attendance"))
        summary = await self.call("GET", f"/api/bookings/{booking_id}/attendance")
        print("\n".join(f"   {line}" for line in pretty(summary).splitlines()))
        shown(self.curl("GET", f"/api/bookings/{booking_id}/timeline"))
        timeline = await self.call("GET", f"/api/bookings/{booking_id}/timeline")
        for item in timeline["items"]:
            source = f" [{item['source']}]" if item.get("source") else ""
            print(f"   {item['at'][11:19]}  {item['description']}{source}")
        after = await self.save_picture(booking_id, "after-reconcile")
        print(f"\n   The picture: {after}  (before reconciling: {before})")
        print(f"   {self.url}/api/bookings/{booking_id}/attendance.svg with the bearer token")
        self.take_screenshot(after)

    def take_screenshot(self, picture: Path) -> None:
        chromium = find_chromium()
        if chromium is None:
            print("   (no chromium here for a PNG: `apt-get install chromium` to get one)")
            return
        target = self.screenshot_to or picture.with_suffix(".png")
        screenshot(chromium, picture, target)
        print(f"   screenshot: {target}")


async def main_async(args: argparse.Namespace) -> int:
    """Run the demo; 0 when every step worked."""
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        try:
            await Demo(args, http).run()
        except DemoError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--url", default=DEFAULT_URL, help=f"the service (default {DEFAULT_URL})")
    parser.add_argument(
        "--standin",
        default=os.environ.get("ZOOM_STANDIN_URL", f"http://127.0.0.1:{DEFAULT_PORT}"),
        help="the local Zoom stand-in that make run started",
    )
    parser.add_argument("--screenshot", type=Path, help="where to write the PNG of the picture")
    parser.add_argument(
        "--out", type=Path, default=OUT, help=f"where the pictures go (default {OUT})"
    )
    return asyncio.run(main_async(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
