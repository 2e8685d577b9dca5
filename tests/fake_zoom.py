"""A fake Zoom: a real aiohttp server on 127.0.0.1 with S2S OAuth and the Meeting API.

It checks the Basic credentials and the bearer token, records every call, and can be told to
fail the next calls: an expired token (401, code 124), 429 with Retry-After, 500, a refusal
(400 with a Zoom code), malformed JSON, or a hang until the test ends.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import orjson
from aiohttp import web

ACCOUNT_ID = "test-zoom-account"
CLIENT_ID = "test-zoom-client-id"
CLIENT_SECRET = "test-zoom-client-secret-never-logged"
HOST_USER = "coach-host@example.com"
BASIC = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
START_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
FAILURE_KINDS = frozenset(
    {"expired_token", "rate_limited", "server_error", "refused", "malformed", "hang"}
)
# Which calls a failure applies to: any REST call, or one kind of call.
TARGETS = frozenset({"oauth", "api", "create", "get", "delete"})


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


@dataclass
class FakeZoom:
    url: str = ""
    expires_in: int = 3600
    # Seconds every meeting creation takes (Zoom is not instant; racing accepts overlap it).
    create_latency: float = 0.0
    calls: list[Call] = field(default_factory=list)
    meetings: dict[str, dict[str, Any]] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)
    valid_tokens: set[str] = field(default_factory=set)
    failures: deque[Failure] = field(default_factory=deque)
    released: asyncio.Event = field(default_factory=asyncio.Event)
    # The id the next created meeting gets.
    next_meeting_id: int = 81000000001
    _serial: itertools.count = field(default_factory=lambda: itertools.count(1))

    @property
    def api_url(self) -> str:
        return f"{self.url}/v2"

    @property
    def oauth_url(self) -> str:
        return f"{self.url}/oauth/token"

    def fail(
        self, kind: str, *, target: str = "api", times: int = 1, retry_after: str | None = None
    ) -> None:
        """Answer the next `times` calls of `target` with the failure `kind`."""
        assert kind in FAILURE_KINDS and target in TARGETS
        self.failures.extend(Failure(kind, target, retry_after) for _ in range(times))

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
            message = "You have reached the maximum per-second rate limit for this API."
            return error(429, 429, message, headers)
        if failure.kind == "server_error":
            return error(500, 500, "Internal error.", headers)
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
            "host_id": "fake-host-id",
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


def error(
    status: int, code: int, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    """Zoom's error body: {"code": <Zoom code>, "message": <sentence>}."""
    return web.json_response({"code": code, "message": message}, status=status, headers=headers)
