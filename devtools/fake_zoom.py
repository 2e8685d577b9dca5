"""A fake Zoom: a real aiohttp server on 127.0.0.1 with S2S OAuth and the Meeting API.

The tests run it, and `make run` can use it as the local stand-in for Zoom
(`python -m devtools.fake_zoom`). It checks the Basic credentials and the bearer token, records
every call, and can be told to fail the next calls: an expired token (401, code 124), 429 with
Retry-After (per second or daily), 500, a refusal (400 with a Zoom code), 404 with code 3001,
malformed JSON, or a hang until the test ends.

Past meetings are loaded with `add_past_meeting(meeting_id, PastInstance(...), ...)`; the fake
then serves what reconciliation reads: the meeting's instances, each instance's details and its
participant report page by page (as Zoom does, a UUID that begins with "/" or contains "//" is
found only when double-encoded in the path).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import re
import secrets
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, unquote

import orjson
from aiohttp import web

# Dev-only credentials: the fake accepts these and nothing else.
ACCOUNT_ID = "test-zoom-account"
CLIENT_ID = "test-zoom-client-id"
CLIENT_SECRET = "test-zoom-client-secret-never-logged"  # noqa: S105 - dev-only
HOST_USER = "coach-host@example.com"
BASIC = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
START_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
FAILURE_KINDS = frozenset(
    {"expired_token", "rate_limited", "server_error", "refused", "not_found", "malformed", "hang"}
)
# Which calls a failure applies to: any REST call, or one kind of call. "instances", "details"
# and "participants" are GET past_meetings/{id}/instances, GET past_meetings/{uuid} and
# GET report/meetings/{uuid}/participants.
TARGETS = frozenset(
    {"oauth", "api", "create", "get", "delete", "instances", "details", "participants"}
)
READ_TARGETS = frozenset({"instances", "details", "participants"})
DEFAULT_PAGE_SIZE = 30  # Zoom's default page_size; at most MAX_PAGE_SIZE
MAX_PAGE_SIZE = 300
HOST_ID = "fake-host-id"


def zoom_time(value: datetime) -> str:
    """Zoom's time format: UTC, to the second, with a Z."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def needs_double_encoding(meeting_uuid: str) -> bool:
    """Zoom: a UUID that begins with "/" or contains "//" must be double-encoded in a path."""
    return meeting_uuid.startswith("/") or "//" in meeting_uuid


def participant_record(
    *,
    name: str,
    join_time: datetime,
    leave_time: datetime,
    user_id: str,
    participant_user_id: str = "",
    email: str = "",
    status: str = "in_meeting",
    duration: int | None = None,
) -> dict[str, Any]:
    """One record of Zoom's participant report: one join, `duration` in seconds.

    `id` (deprecated by Zoom) carries the same value as `participant_user_id`, and both are
    empty for a participant who did not sign in, as Zoom sends them.
    """
    seconds = int((leave_time - join_time).total_seconds()) if duration is None else duration
    return {
        "id": participant_user_id,
        "user_id": user_id,
        "participant_user_id": participant_user_id,
        "name": name,
        "user_email": email,
        "join_time": zoom_time(join_time),
        "leave_time": zoom_time(leave_time),
        "duration": seconds,
        "registrant_id": "",
        "failover": False,
        "status": status,
        "customer_key": "",
    }


@dataclass
class PastInstance:
    """One ended instance (Zoom uuid) of a meeting, and its participant report.

    end_time None plays an instance whose report Zoom has not finished; report_missing plays a
    one-person meeting, for which Zoom's report answers 404 (code 3001).
    """

    uuid: str
    start_time: datetime
    end_time: datetime | None
    participants: list[dict[str, Any]] = field(default_factory=list)
    host_id: str = HOST_ID
    topic: str = "TeachTape session"
    report_missing: bool = False

    def details(self, meeting_id: str) -> dict[str, Any]:
        """GET past_meetings/{uuid}: the instance's details as Zoom gives them."""
        answer: dict[str, Any] = {
            "id": int(meeting_id) if meeting_id.isdigit() else meeting_id,
            "uuid": self.uuid,
            "host_id": self.host_id,
            "type": 2,
            "topic": self.topic,
            "user_name": "Coach Host",
            "user_email": HOST_USER,
            "start_time": zoom_time(self.start_time),
            "participants_count": len({p["user_id"] for p in self.participants}),
            "source": "Zoom",
            "dept": "",
        }
        if self.end_time is not None:
            minutes = int((self.end_time - self.start_time).total_seconds() // 60)
            answer.update(end_time=zoom_time(self.end_time), duration=minutes)
            answer["total_minutes"] = minutes
        return answer


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    target: str
    raw_path: str  # as sent, before percent-decoding


@dataclass
class Failure:
    kind: str
    target: str
    retry_after: str | None = None
    rate_limit_type: str = "QPS"


@dataclass
class FakeZoom:
    url: str = ""
    expires_in: int = 3600
    # Seconds every meeting creation takes (Zoom is not instant; racing accepts overlap it).
    create_latency: float = 0.0
    # Seconds every past-meeting read takes (instances, details, report pages).
    read_latency: float = 0.0
    calls: list[Call] = field(default_factory=list)
    meetings: dict[str, dict[str, Any]] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)
    valid_tokens: set[str] = field(default_factory=set)
    failures: deque[Failure] = field(default_factory=deque)
    released: asyncio.Event = field(default_factory=asyncio.Event)
    # The id the next created meeting gets.
    next_meeting_id: int = 81000000001
    # Past meetings: meeting id -> its instances, oldest first (see add_past_meeting).
    past_meetings: dict[str, list[PastInstance]] = field(default_factory=dict)
    # Open next_page_tokens: token -> (instance uuid, offset of the next record).
    page_tokens: dict[str, tuple[str, int]] = field(default_factory=dict)
    _serial: itertools.count = field(default_factory=lambda: itertools.count(1))

    @property
    def api_url(self) -> str:
        return f"{self.url}/v2"

    @property
    def oauth_url(self) -> str:
        return f"{self.url}/oauth/token"

    def fail(
        self,
        kind: str,
        *,
        target: str = "api",
        times: int = 1,
        retry_after: str | None = None,
        rate_limit_type: str = "QPS",
    ) -> None:
        """Answer the next `times` calls of `target` with the failure `kind`.

        rate_limit_type is the X-RateLimit-Type of a 429: "QPS" or "Daily-limit".
        """
        assert kind in FAILURE_KINDS and target in TARGETS
        self.failures.extend(
            Failure(kind, target, retry_after, rate_limit_type) for _ in range(times)
        )

    def add_past_meeting(self, meeting_id: str | int, *instances: PastInstance) -> None:
        """Make Zoom remember these instances of the meeting (added after any already known)."""
        self.past_meetings.setdefault(str(meeting_id), []).extend(instances)

    def instance(self, meeting_uuid: str) -> tuple[str, PastInstance] | None:
        """The (meeting id, instance) with this uuid, if Zoom knows it."""
        for meeting_id, instances in self.past_meetings.items():
            for past in instances:
                if past.uuid == meeting_uuid:
                    return meeting_id, past
        return None

    def calls_to(self, target: str) -> list[Call]:
        return [c for c in self.calls if c.target == target]

    @property
    def token_requests(self) -> list[Call]:
        return self.calls_to("oauth")

    def release(self) -> None:
        """Let hanging handlers finish (the test is over)."""
        self.released.set()

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/oauth/token", self.token)
        app.router.add_post("/v2/users/{user}/meetings", self.create_meeting)
        app.router.add_get("/v2/meetings/{meeting_id}", self.get_meeting)
        app.router.add_delete("/v2/meetings/{meeting_id}", self.delete_meeting)
        # The path is read raw (see path_uuid): a double-encoded UUID must not be decoded twice.
        app.router.add_get("/v2/past_meetings/{rest:.+}", self.past_meeting)
        app.router.add_get("/v2/report/meetings/{rest:.+}", self.report_participants)
        return app

    async def _record(self, request: web.Request, target: str) -> Call:
        raw = await request.read()
        if request.content_type == "application/x-www-form-urlencoded":
            body: Any = dict(parse_qsl(raw.decode()))
        else:
            try:
                body = orjson.loads(raw) if raw else None
            except orjson.JSONDecodeError:
                body = raw.decode(errors="replace")
        call = Call(
            request.method,
            request.path,
            dict(request.query),
            dict(request.headers),
            body,
            target,
            request.raw_path.partition("?")[0],
        )
        self.calls.append(call)
        return call

    async def _scripted(self, target: str) -> web.Response | None:
        """The failure to answer with, if the next one queued applies to this call."""
        if not self.failures:
            return None
        failure = self.failures[0]
        applies = failure.target == target or (failure.target == "api" and target != "oauth")
        if not applies:
            return None
        self.failures.popleft()
        headers = {"x-zm-trackingid": f"fake-tracking-{next(self._serial)}"}
        if failure.kind == "expired_token":
            self.valid_tokens.clear()
            return None  # the bearer check below now answers 401 with code 124
        if failure.kind == "rate_limited":
            if failure.retry_after is not None:
                headers["Retry-After"] = failure.retry_after
            headers["X-RateLimit-Type"] = failure.rate_limit_type
            headers["X-RateLimit-Category"] = "Heavy"
            if failure.rate_limit_type == "QPS":
                message = "You have reached the maximum per-second rate limit for this API."
            else:
                message = "You have reached the maximum daily rate limit for this API."
            return error(429, 429, message, headers)
        if failure.kind == "server_error":
            return error(500, 500, "Internal error.", headers)
        if failure.kind == "not_found":
            return error(404, 3001, "Meeting does not exist.", headers)
        if failure.kind == "refused":
            message = (
                "Your user account is not allowed meeting hosting and scheduling capabilities."
            )
            return error(400, 3161, message, headers)
        if failure.kind == "malformed":
            return web.Response(
                status=201 if target == "create" else 200,
                body=b'{"id": 1, "join_url": "https://zoom.exam',
                content_type="application/json",
                headers=headers,
            )
        await asyncio.wait_for(self.released.wait(), timeout=60)
        return error(504, 504, "Too late.", headers)

    async def _rest_call(
        self, request: web.Request, target: str
    ) -> tuple[Call, web.Response | None]:
        """Record a REST call; the answer is a scripted failure or a bearer refusal, if any."""
        call = await self._record(request, target)
        if target == "create":
            await asyncio.sleep(self.create_latency)
        elif target in READ_TARGETS:
            await asyncio.sleep(self.read_latency)
        scripted = await self._scripted(target)
        if scripted is not None:
            return call, scripted
        scheme, _, token = call.headers.get("Authorization", "").partition(" ")
        if scheme != "Bearer" or token not in self.valid_tokens:
            refusal = error(401, 124, "Invalid access token.", {"x-zm-trackingid": "fake-auth"})
            return call, refusal
        return call, None

    async def token(self, request: web.Request) -> web.Response:
        call = await self._record(request, "oauth")
        scripted = await self._scripted("oauth")
        if scripted is not None:
            return scripted
        params = {**call.query, **(call.body if isinstance(call.body, dict) else {})}
        good = (
            call.headers.get("Authorization") == BASIC
            and params.get("grant_type") == "account_credentials"
            and params.get("account_id") == ACCOUNT_ID
        )
        if not good:
            return web.json_response(
                {"reason": "Invalid client_id or client_secret", "error": "invalid_client"},
                status=401,
            )
        token = f"fake-access-token-{next(self._serial)}"
        self.valid_tokens.add(token)
        return web.json_response(
            {
                "access_token": token,
                "token_type": "bearer",
                "expires_in": self.expires_in,
                "scope": "meeting:write:admin meeting:read:admin",
                "api_url": "https://api.zoom.us",
            }
        )

    async def create_meeting(self, request: web.Request) -> web.Response:
        call, refusal = await self._rest_call(request, "create")
        if refusal is not None:
            return refusal
        if request.match_info["user"] != HOST_USER:
            return error(404, 1001, f"User does not exist: {request.match_info['user']}.")
        body = call.body
        problems = []
        if not isinstance(body, dict):
            return error(400, 300, "Request Body should be a valid JSON object.")
        if body.get("type") != 2:
            problems.append("type")
        if not isinstance(body.get("start_time"), str) or not START_TIME.match(body["start_time"]):
            problems.append("start_time")
        if not isinstance(body.get("duration"), int):
            problems.append("duration")
        if not body.get("topic"):
            problems.append("topic")
        if problems:
            return error(400, 300, f"Invalid field(s): {', '.join(problems)}.")
        meeting_id = self.next_meeting_id
        self.next_meeting_id += 1
        meeting = {
            **body,
            "id": meeting_id,
            "uuid": f"uuid-{meeting_id}==",
            "host_id": HOST_ID,
            "host_email": HOST_USER,
            "join_url": f"https://zoom.example/j/{meeting_id}?pwd=abc",
            "password": "abc",
        }
        self.meetings[str(meeting_id)] = meeting
        return web.json_response({**meeting, "start_url": self._start_url(meeting_id)}, status=201)

    def _start_url(self, meeting_id: int) -> str:
        # Every answer carries a freshly signed start_url, as Zoom's does.
        return f"https://zoom.example/s/{meeting_id}?zak=fresh-{next(self._serial)}"

    async def get_meeting(self, request: web.Request) -> web.Response:
        _, refusal = await self._rest_call(request, "get")
        if refusal is not None:
            return refusal
        meeting = self.meetings.get(request.match_info["meeting_id"])
        if meeting is None:
            return error(404, 3001, f"Meeting does not exist: {request.match_info['meeting_id']}.")
        return web.json_response({**meeting, "start_url": self._start_url(meeting["id"])})

    async def delete_meeting(self, request: web.Request) -> web.Response:
        _, refusal = await self._rest_call(request, "delete")
        if refusal is not None:
            return refusal
        meeting_id = request.match_info["meeting_id"]
        if self.meetings.pop(meeting_id, None) is None:
            return error(404, 3001, f"Meeting does not exist: {meeting_id}.")
        self.deleted.append(meeting_id)
        return web.Response(status=204)

    async def past_meeting(self, request: web.Request) -> web.Response:
        """GET past_meetings/{id}/instances, or GET past_meetings/{uuid} (the details)."""
        segments = raw_segments(request, "/v2/past_meetings/")
        if len(segments) == 2 and segments[1] == "instances":
            return await self.list_instances(request, unquote(segments[0]))
        if len(segments) != 1:
            return error(404, 404, "Not found.")
        _, refusal = await self._rest_call(request, "details")
        if refusal is not None:
            return refusal
        found = self.instance_at(segments[0])
        if found is None:
            return error(404, 3001, f"Meeting does not exist: {unquote(segments[0])}.")
        meeting_id, past = found
        return web.json_response(past.details(meeting_id))

    async def list_instances(self, request: web.Request, meeting_id: str) -> web.Response:
        _, refusal = await self._rest_call(request, "instances")
        if refusal is not None:
            return refusal
        instances = self.past_meetings.get(meeting_id)
        if instances is None:
            return error(404, 3001, f"Meeting does not exist: {meeting_id}.")
        listed = [{"uuid": p.uuid, "start_time": zoom_time(p.start_time)} for p in instances]
        return web.json_response({"meetings": listed})

    async def report_participants(self, request: web.Request) -> web.Response:
        """GET report/meetings/{uuid}/participants?page_size=&next_page_token=."""
        segments = raw_segments(request, "/v2/report/meetings/")
        if len(segments) != 2 or segments[1] != "participants":
            return error(404, 404, "Not found.")
        _, refusal = await self._rest_call(request, "participants")
        if refusal is not None:
            return refusal
        found = self.instance_at(segments[0])
        if found is None or found[1].report_missing:
            return error(404, 3001, f"Meeting {unquote(segments[0])} not found or has expired.")
        past = found[1]
        raw_size = request.query.get("page_size", str(DEFAULT_PAGE_SIZE))
        if not raw_size.isdigit() or not 1 <= int(raw_size) <= MAX_PAGE_SIZE:
            return error(400, 300, f"Invalid field: page_size {raw_size!r}.")
        page_size = int(raw_size)
        token = request.query.get("next_page_token", "")
        offset = 0
        if token:
            position = self.page_tokens.get(token)
            if position is None or position[0] != past.uuid:
                return error(400, 300, "The next page token is invalid or expired.")
            offset = position[1]
        records = past.participants[offset : offset + page_size]
        next_token = ""
        if offset + page_size < len(past.participants):
            next_token = secrets.token_urlsafe(24)
            self.page_tokens[next_token] = (past.uuid, offset + page_size)
        return web.json_response(
            {
                "page_count": -(-len(past.participants) // page_size),
                "page_size": page_size,
                "total_records": len(past.participants),
                "next_page_token": next_token,
                "participants": records,
            }
        )

    def instance_at(self, segment: str) -> tuple[str, PastInstance] | None:
        """The instance a raw path segment names, read as Zoom reads it.

        Decoded once, a segment is the uuid, unless that uuid begins with "/" or contains "//":
        Zoom loses such a uuid unless it is double-encoded. Decoded twice is always accepted.
        """
        once = unquote(segment)
        found = self.instance(once)
        if found is not None and not needs_double_encoding(once):
            return found
        return self.instance(unquote(once)) if once != unquote(once) else None


def raw_segments(request: web.Request, prefix: str) -> list[str]:
    """The still-encoded path segments after prefix."""
    raw = request.raw_path.partition("?")[0]
    return raw.removeprefix(prefix).split("/") if raw.startswith(prefix) else []


def error(
    status: int, code: int, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    """Zoom's error body: {"code": <Zoom code>, "message": <sentence>}."""
    return web.json_response({"code": code, "message": message}, status=status, headers=headers)


async def serve(
    host: str, port: int, fake: FakeZoom | None = None
) -> tuple[FakeZoom, web.AppRunner]:
    """Start a fake Zoom on host:port; the caller cleans the runner up."""
    fake = fake or FakeZoom()
    runner = web.AppRunner(fake.make_app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    fake.url = f"http://{host}:{port}"
    return fake, runner


def main(argv: list[str] | None = None) -> None:
    """python -m devtools.fake_zoom: serve the fake Zoom until interrupted (local development)."""
    parser = argparse.ArgumentParser(prog="python -m devtools.fake_zoom", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9090)
    args = parser.parse_args(argv)

    async def run() -> None:
        fake, runner = await serve(args.host, args.port)
        print(
            f"fake Zoom on {fake.url}: ZOOM_API_URL={fake.api_url} ZOOM_OAUTH_URL={fake.oauth_url}"
        )
        print(
            f"dev-only credentials: ZOOM_ACCOUNT_ID={ACCOUNT_ID} ZOOM_CLIENT_ID={CLIENT_ID} "
            f"ZOOM_CLIENT_SECRET={CLIENT_SECRET} ZOOM_HOST_USER={HOST_USER}"
        )
        try:
            await asyncio.Event().wait()
        finally:
            fake.release()
            await runner.cleanup()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
