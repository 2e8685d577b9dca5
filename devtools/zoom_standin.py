"""DEV ONLY: the local Zoom stand-in `make run` starts when no Zoom credentials are configured.

It is the fake Zoom the tests use (devtools/fake_zoom.py: OAuth token, create/get/delete
meeting, past meetings and the participant report), served on 127.0.0.1 with its dev-only
credentials, plus one route of its own to load what a played session really was:

    POST /dev/past_meetings/{meeting_id}   body: the simulator's session_report()
      {"uuid", "start_time", "end_time", "host_id", "topic", "participants": [report records]}

`zoom-simulate session --report-to URL` posts it, so reconciliation finds in "Zoom's" report
the steps whose deliveries were lost. Never part of the image (which copies only service/,
sql/ and migrations/).

    python -m devtools.zoom_standin [--host 127.0.0.1] [--port 9090]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import datetime
from typing import Any

import orjson
from aiohttp import web

from devtools.fake_zoom import (
    ACCOUNT_ID,
    CLIENT_ID,
    CLIENT_SECRET,
    HOST_USER,
    FakeZoom,
    PastInstance,
    serve,
)

DEFAULT_PORT = 9090
FIRST_MEETING_ID = 80_000_000_000
LOAD_PATH = "/dev/past_meetings/{meeting_id}"


def credentials(url: str) -> dict[str, str]:
    """The environment that points the service at a stand-in serving on url (dev-only values)."""
    return {
        "ZOOM_API_URL": f"{url}/v2",
        "ZOOM_OAUTH_URL": f"{url}/oauth/token",
        "ZOOM_ACCOUNT_ID": ACCOUNT_ID,
        "ZOOM_CLIENT_ID": CLIENT_ID,
        "ZOOM_CLIENT_SECRET": CLIENT_SECRET,
        "ZOOM_HOST_USER": HOST_USER,
    }


def zoom_datetime(value: Any, field: str) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"{field} must be a Zoom time such as 2026-09-21T15:00:00Z")
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def past_instance(body: Any) -> PastInstance:
    """Read a loaded session report; ValueError names what is wrong."""
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    uuid = body.get("uuid")
    if not isinstance(uuid, str) or not uuid:
        raise ValueError("uuid (the meeting instance) is required")
    participants = body.get("participants", [])
    if not isinstance(participants, list) or not all(isinstance(p, dict) for p in participants):
        raise ValueError("participants must be a list of report records")
    end = body.get("end_time")
    return PastInstance(
        uuid=uuid,
        start_time=zoom_datetime(body.get("start_time"), "start_time"),
        end_time=None if end is None else zoom_datetime(end, "end_time"),
        participants=participants,
        host_id=str(body.get("host_id") or "fake-host-id"),
        topic=str(body.get("topic") or "TeachTape session"),
    )


class ZoomStandIn(FakeZoom):
    """The fake Zoom, plus the dev route that loads a played session's report."""

    def make_app(self) -> web.Application:
        app = super().make_app()
        app.router.add_post(LOAD_PATH, self.load_past_meeting)
        return app

    async def load_past_meeting(self, request: web.Request) -> web.Response:
        meeting_id = request.match_info["meeting_id"]
        try:
            instance = past_instance(orjson.loads(await request.read()))
        except (orjson.JSONDecodeError, ValueError) as exc:
            return web.json_response({"error": "invalid_report", "message": str(exc)}, status=422)
        known = self.past_meetings.setdefault(meeting_id, [])
        # Loading an instance again (the same session played twice) replaces it.
        known[:] = [past for past in known if past.uuid != instance.uuid] + [instance]
        return web.json_response(
            {
                "meeting_id": meeting_id,
                "uuid": instance.uuid,
                "participants": len(instance.participants),
            },
            status=201,
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.zoom_standin",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    args = parser.parse_args(argv)

    async def run() -> None:
        # Meeting ids never repeat across restarts, as Zoom's do not: var/pgdata keeps bookings.
        first_id = FIRST_MEETING_ID + int(time.time() * 10) % 10**10
        standin, runner = await serve(args.host, args.port, ZoomStandIn(next_meeting_id=first_id))
        print(f"Zoom stand-in (DEV ONLY) serving on {standin.url}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            standin.release()
            await runner.cleanup()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        raise SystemExit(
            f"error: the Zoom stand-in cannot listen on {args.host}:{args.port}: {exc}"
        ) from None


if __name__ == "__main__":
    main()
