"""ZoomClient: Server-to-Server OAuth token cache and the Meeting API calls the service makes.

Accept creates, reads and deletes meetings; reconciliation reads what happened in past ones
(instances, an instance's details, its paged participant report).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
from aiohttp import web

from service.config import Config, ZoomApiCredentials
from service.http.errors import BadGateway, Unavailable
from service.keys import CONFIG, METRICS, ZOOM

log = logging.getLogger(__name__)

# Renew the token this long before Zoom says it expires, so a call never carries a dying token.
TOKEN_REFRESH_MARGIN_SECONDS = 60.0
# Zoom's "Invalid access token." (sent with 401, e.g. after another token replaced ours).
INVALID_TOKEN_CODE = 124
# Below this much time left, another attempt cannot finish: give up with 502 at once.
MIN_ATTEMPT_SECONDS = 0.05
MAX_MESSAGE_CHARS = 300
# The participant report's largest page (Zoom's default is 30).
REPORT_PAGE_SIZE = 300
# More 429s than this on one call end it even when Zoom asks for no wait at all.
MAX_RATE_LIMITED_ATTEMPTS = 10
# What the metrics call each endpoint (the path with its ids left out).
ENDPOINT_INSTANCES = "GET /past_meetings/{meetingId}/instances"
ENDPOINT_DETAILS = "GET /past_meetings/{meetingUUID}"
ENDPOINT_PARTICIPANTS = "GET /report/meetings/{meetingUUID}/participants"


class ZoomNotFound(BadGateway):
    """Zoom answered 404 (code 3001 and the like): it knows no such meeting or instance."""


class ZoomRateLimited(BadGateway):
    """Zoom's rate limit outlasts what the caller may wait: the rest waits for the next run."""


@dataclass
class RateLimitAllowance:
    """How long a run may still spend waiting out 429s, shared by all of its calls."""

    seconds_left: float


@dataclass(frozen=True)
class ZoomMeeting:
    """The parts of a Zoom meeting the service keeps; `id` is Zoom's numeric id as text."""

    id: str
    join_url: str
    start_url: str


@dataclass(frozen=True)
class Reply:
    """One HTTP exchange with Zoom, read in full."""

    status: int
    body: bytes
    headers: Mapping[str, str]

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        """The body as JSON, or None when it is not JSON."""
        try:
            return orjson.loads(self.body) if self.body else None
        except orjson.JSONDecodeError:
            return None

    def zoom_error(self) -> tuple[Any, str | None]:
        """Zoom's error `code` and `message` (or the OAuth endpoint's `error` and `reason`)."""
        body = self.json()
        if not isinstance(body, dict):
            return None, None
        code = body.get("code", body.get("error"))
        message = body.get("message", body.get("reason"))
        return code, str(message)[:MAX_MESSAGE_CHARS] if message is not None else None

    @property
    def token_rejected(self) -> bool:
        return self.status == 401 or self.zoom_error()[0] == INVALID_TOKEN_CODE

    @property
    def retryable(self) -> bool:
        return self.status == 429 or self.status >= 500

    @property
    def tracking_id(self) -> str | None:
        return self.headers.get("x-zm-trackingid")


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """Parse Retry-After given as seconds, an HTTP date or an ISO 8601 date; None if unusable."""
    if not value or not value.strip():
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    when: datetime | None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def encode_meeting_uuid(meeting_uuid: str) -> str:
    """A meeting UUID as a path segment: encoded twice when it begins with "/" or holds "//".

    Zoom decodes such a path once more itself; encoded only once, the UUID loses its slashes
    and Zoom answers 404.
    """
    once = quote(meeting_uuid, safe="")
    if meeting_uuid.startswith("/") or "//" in meeting_uuid:
        return quote(once, safe="")
    return once


def zoom_error_sentence(reply: Reply) -> str:
    """A sentence naming Zoom's HTTP status, code and message (never our request's secrets)."""
    code, message = reply.zoom_error()
    text = f"Zoom answered HTTP {reply.status}"
    if code is not None:
        text += f" with code {code}"
    return f"{text}: {message}" if message else f"{text}."


class ZoomClient:
    """Zoom's REST API under Server-to-Server OAuth, with bounded time, retries and one token."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        credentials: ZoomApiCredentials,
        *,
        api_url: str,
        oauth_url: str,
        connect_timeout: float,
        request_timeout: float,
        budget: float,
        max_attempts: int,
        retry_backoff: float,
        clock: Callable[[], float] = time.monotonic,
        count_call: Callable[[str, str], None] | None = None,
    ):
        self.session = session
        self.credentials = credentials
        self.api_url = api_url.rstrip("/")
        self.oauth_url = oauth_url
        self.connect_timeout = connect_timeout
        self.request_timeout = request_timeout
        self.budget = budget
        self.max_attempts = max(1, max_attempts)
        self.retry_backoff = retry_backoff
        self.clock = clock
        # Called with (endpoint, HTTP status or "timeout"/"unreachable") for every exchange.
        self.count_call = count_call or _count_nothing
        self._token: str | None = None
        self._token_renew_at = 0.0
        # Per-process cache guard: concurrent callers wait for one token fetch, not one each.
        self._token_lock = asyncio.Lock()

    @classmethod
    def from_config(
        cls,
        session: aiohttp.ClientSession,
        config: Config,
        count_call: Callable[[str, str], None] | None = None,
    ) -> ZoomClient:
        assert config.zoom_api is not None
        return cls(
            session,
            config.zoom_api,
            api_url=config.zoom_api_url,
            oauth_url=config.zoom_oauth_url,
            connect_timeout=config.zoom_connect_timeout_seconds,
            request_timeout=config.zoom_request_timeout_seconds,
            budget=config.zoom_budget_seconds,
            max_attempts=config.zoom_max_attempts,
            retry_backoff=config.zoom_retry_backoff_seconds,
            count_call=count_call,
        )

    def deadline(self) -> float:
        """The clock reading by which an operation starting now must have its answer."""
        return self.clock() + self.budget

    async def create_meeting(
        self,
        *,
        topic: str,
        start_time: datetime,
        duration_minutes: int,
        agenda: str = "",
        deadline: float | None = None,
    ) -> ZoomMeeting:
        """Schedule a meeting (type 2) under the host user; use_pmi off so webhooks carry its id."""
        body = {
            "topic": topic[:200],
            "type": 2,
            "start_time": start_time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "duration": duration_minutes,
            "timezone": "UTC",
            "agenda": agenda[:2000],
            "settings": {"use_pmi": False},
        }
        # "@" is legal in a path segment: an email host user stays readable in the URL.
        user = quote(self.credentials.host_user, safe="@")
        data = await self._api("POST", f"/users/{user}/meetings", body=body, deadline=deadline)
        return meeting_from_zoom(data)

    async def get_meeting(self, meeting_id: str, *, deadline: float | None = None) -> ZoomMeeting:
        """Read a meeting; its `start_url` is freshly signed (the stored one expires in ~2 h)."""
        path = f"/meetings/{quote(meeting_id, safe='')}"
        return meeting_from_zoom(await self._api("GET", path, deadline=deadline))

    async def delete_meeting(self, meeting_id: str, *, deadline: float | None = None) -> None:
        """Delete a meeting; no notification mail goes to the host."""
        path = f"/meetings/{quote(meeting_id, safe='')}?schedule_for_reminder=false"
        await self._api("DELETE", path, deadline=deadline)

    async def past_meeting_instances(
        self, meeting_id: str, *, deadline: float, allowance: RateLimitAllowance
    ) -> list[dict[str, Any]]:
        """The meeting's ended instances (uuid, start_time); ZoomNotFound if it never ran."""
        path = f"/past_meetings/{quote(meeting_id, safe='')}/instances"
        data = await self._api(
            "GET", path, deadline=deadline, allowance=allowance, endpoint=ENDPOINT_INSTANCES
        )
        meetings = data.get("meetings") if isinstance(data, dict) else None
        if not isinstance(meetings, list):
            raise BadGateway("zoom_bad_response", "Zoom's list of instances has no meetings.")
        return [m for m in meetings if isinstance(m, dict)]

    async def past_meeting_details(
        self, meeting_uuid: str, *, deadline: float, allowance: RateLimitAllowance
    ) -> dict[str, Any]:
        """One instance's details: start_time, end_time (once ended), host_id and more."""
        path = f"/past_meetings/{encode_meeting_uuid(meeting_uuid)}"
        data = await self._api(
            "GET", path, deadline=deadline, allowance=allowance, endpoint=ENDPOINT_DETAILS
        )
        if not isinstance(data, dict):
            raise BadGateway("zoom_bad_response", "Zoom's meeting details were empty.")
        return data

    async def meeting_participants_report(
        self, meeting_uuid: str, *, deadline: float, allowance: RateLimitAllowance
    ) -> list[dict[str, Any]]:
        """Every record (one per join) of an instance's participant report, all pages read."""
        base = f"/report/meetings/{encode_meeting_uuid(meeting_uuid)}/participants"
        records: list[dict[str, Any]] = []
        token = ""
        while True:
            path = f"{base}?page_size={REPORT_PAGE_SIZE}"
            if token:
                path += f"&next_page_token={quote(token, safe='')}"
            data = await self._api(
                "GET", path, deadline=deadline, allowance=allowance, endpoint=ENDPOINT_PARTICIPANTS
            )
            page = data.get("participants") if isinstance(data, dict) else None
            if not isinstance(page, list):
                raise BadGateway("zoom_bad_response", "Zoom's report page has no participants.")
            records += [r for r in page if isinstance(r, dict)]
            token = data.get("next_page_token") or ""
            if not isinstance(token, str) or not token:
                return records

    async def _api(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        deadline: float | None = None,
        allowance: RateLimitAllowance | None = None,
        endpoint: str | None = None,
    ) -> Any:
        """Call the REST API; on a rejected token fetch one fresh token and try once more.

        With an allowance, 429s are waited out as Retry-After says while the allowance lasts.
        """
        deadline = self.deadline() if deadline is None else deadline
        endpoint = endpoint or f"{method} {path.partition('?')[0]}"
        token = await self._access_token(deadline)
        reply = await self._bearer_request(method, path, token, body, deadline, endpoint, allowance)
        if reply.token_rejected:
            token = await self._access_token(deadline, rejected=token)
            reply = await self._bearer_request(
                method, path, token, body, deadline, endpoint, allowance
            )
        if not reply.ok:
            self._log_failure(method, path, reply)
            if reply.status == 404:
                raise ZoomNotFound("zoom_not_found", zoom_error_sentence(reply))
            code = "zoom_rate_limited" if reply.status == 429 else "zoom_error"
            raise BadGateway(code, zoom_error_sentence(reply))
        if reply.status == 204 or not reply.body:
            return None
        data = reply.json()
        if not isinstance(data, dict):
            self._log_failure(method, path, reply)
            raise BadGateway("zoom_bad_response", "Zoom answered with a body that is not JSON.")
        return data

    async def _bearer_request(
        self,
        method: str,
        path: str,
        token: str,
        body: Any,
        deadline: float,
        endpoint: str,
        allowance: RateLimitAllowance | None,
    ) -> Reply:
        headers = {"Authorization": f"Bearer {token}"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        data = orjson.dumps(body) if body is not None else None
        return await self._request(
            method, self.api_url + path, headers, data, deadline, path, endpoint, allowance
        )

    async def _access_token(self, deadline: float, *, rejected: str | None = None) -> str:
        """The cached token, fetched when absent, about to expire, or just rejected by Zoom."""
        if self._token_fresh(rejected):
            return self._token  # type: ignore[return-value]
        async with self._token_lock:
            # Whoever held the lock before us may have fetched a token already.
            if self._token_fresh(rejected):
                return self._token  # type: ignore[return-value]
            self._token = None
            token, expires_in = await self._fetch_token(deadline)
            self._token = token
            self._token_renew_at = self.clock() + expires_in - TOKEN_REFRESH_MARGIN_SECONDS
            return token

    def _token_fresh(self, rejected: str | None) -> bool:
        return (
            self._token is not None
            and self._token != rejected
            and self.clock() < self._token_renew_at
        )

    async def _fetch_token(self, deadline: float) -> tuple[str, float]:
        creds = self.credentials
        basic = base64.b64encode(f"{creds.client_id}:{creds.client_secret}".encode()).decode()
        headers = {
            "Authorization": f"Basic {basic}",
            "Content-Type": "application/x-www-form-urlencoded",
        }
        form = f"grant_type=account_credentials&account_id={quote(creds.account_id, safe='')}"
        # Zoom takes these "either as query parameters or in the request body"; its own Python
        # sample uses the query, its SDK the body. Sending both suits a server reading either.
        separator = "&" if "?" in self.oauth_url else "?"
        reply = await self._request(
            "POST",
            f"{self.oauth_url}{separator}{form}",
            headers,
            form.encode(),
            deadline,
            "oauth token",
            "POST /oauth/token",
        )
        data = reply.json()
        if not reply.ok:
            self._log_failure("POST", "oauth token", reply)
            refusal = f"Zoom refused the Server-to-Server OAuth token: {zoom_error_sentence(reply)}"
            raise BadGateway("zoom_auth_failed", refusal)
        token = data.get("access_token") if isinstance(data, dict) else None
        expires_in = data.get("expires_in") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token or not isinstance(expires_in, int | float):
            self._log_failure("POST", "oauth token", reply)
            raise BadGateway("zoom_bad_response", "Zoom's OAuth token answer was not understood.")
        return token, float(expires_in)

    async def _request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        data: bytes | None,
        deadline: float,
        what: str,
        endpoint: str,
        allowance: RateLimitAllowance | None = None,
    ) -> Reply:
        """One exchange, repeated on 429, 5xx and refused connections, all within the deadline.

        A timeout is not repeated, nor a 5xx to a POST of the REST API: a create that timed out
        or failed on Zoom's side may have created the meeting, and repeating it could create a
        second one. A refused connection (nothing was sent) and a 429 (Zoom did nothing) are. With
        an allowance, a 429 is waited out apart from the attempts, as long as the allowance
        and the deadline last; past that, or on a daily limit, ZoomRateLimited.
        """
        attempt = 1
        rate_limited = 0
        creates = method == "POST" and url.startswith(self.api_url)
        while True:
            remaining = deadline - self.clock()
            if remaining < MIN_ATTEMPT_SECONDS:
                log.warning("Zoom %s %s: out of time after %d attempt(s)", method, what, attempt)
                raise BadGateway("zoom_timeout", "Zoom did not answer in time.")
            timeout = aiohttp.ClientTimeout(
                total=min(self.request_timeout, remaining),
                connect=min(self.connect_timeout, remaining),
            )
            retry_after: str | None = None
            try:
                async with self.session.request(
                    method, url, headers=headers, data=data, timeout=timeout
                ) as resp:
                    reply = Reply(resp.status, await resp.read(), resp.headers)
            except TimeoutError:
                self.count_call(endpoint, "timeout")
                log.warning("Zoom %s %s: no answer within %.1f s", method, what, timeout.total)
                raise BadGateway("zoom_timeout", "Zoom did not answer in time.") from None
            except aiohttp.ClientConnectorError as exc:
                self.count_call(endpoint, "unreachable")
                # Nothing was sent, so trying again cannot create anything twice.
                log.warning("Zoom %s %s: cannot connect (%s)", method, what, exc.os_error)
                failure = BadGateway("zoom_unreachable", "Zoom cannot be reached.")
            except (aiohttp.ClientError, OSError) as exc:
                self.count_call(endpoint, "unreachable")
                log.warning("Zoom %s %s: %s", method, what, type(exc).__name__)
                raise BadGateway("zoom_unreachable", "The connection to Zoom failed.") from None
            else:
                self.count_call(endpoint, str(reply.status))
                if not reply.retryable or (creates and reply.status != 429):
                    return reply
                self._log_failure(method, what, reply)
                retry_after = reply.headers.get("Retry-After")
                if reply.status == 429 and allowance is not None:
                    rate_limited += 1
                    await self._wait_out_rate_limit(reply, deadline, allowance, rate_limited)
                    continue
                code = "zoom_rate_limited" if reply.status == 429 else "zoom_error"
                failure = BadGateway(code, zoom_error_sentence(reply))
            if attempt >= self.max_attempts:
                raise failure
            wait = retry_after_seconds(retry_after, datetime.now(UTC))
            if wait is None:
                wait = self.retry_backoff * 2 ** (attempt - 1) * random.uniform(0.5, 1.0)
            if self.clock() + wait + MIN_ATTEMPT_SECONDS > deadline:
                # Waiting as long as Zoom asks would break our own time budget: fail now.
                raise failure
            await asyncio.sleep(wait)
            attempt += 1

    async def _wait_out_rate_limit(
        self, reply: Reply, deadline: float, allowance: RateLimitAllowance, times: int
    ) -> None:
        """Sleep as long as the 429 asks, or raise ZoomRateLimited when that is not allowed."""
        described = zoom_error_sentence(reply)
        if reply.headers.get("X-RateLimit-Type", "").casefold() == "daily-limit":
            raise ZoomRateLimited("zoom_rate_limited", f"Zoom's daily rate limit: {described}")
        wait = retry_after_seconds(reply.headers.get("Retry-After"), datetime.now(UTC))
        if wait is None:
            wait = self.retry_backoff * 2 ** min(times - 1, 6) * random.uniform(0.5, 1.0)
        too_long = (
            wait > allowance.seconds_left or self.clock() + wait + MIN_ATTEMPT_SECONDS > deadline
        )
        if too_long or times >= MAX_RATE_LIMITED_ATTEMPTS:
            raise ZoomRateLimited(
                "zoom_rate_limited", f"{described} (it asks for a wait of {wait:.0f} s)"
            )
        allowance.seconds_left -= wait
        await asyncio.sleep(wait)

    @staticmethod
    def _log_failure(method: str, what: str, reply: Reply) -> None:
        code, _ = reply.zoom_error()
        log.warning(
            "Zoom %s %s failed: HTTP %s, Zoom code %s, x-zm-trackingid %s",
            method,
            what.partition("?")[0],
            reply.status,
            code,
            reply.tracking_id,
        )


def meeting_from_zoom(data: Any) -> ZoomMeeting:
    """Take id, join_url and start_url from Zoom's meeting object, or 502 when they are missing."""
    meeting_id = data.get("id") if isinstance(data, dict) else None
    if isinstance(meeting_id, bool) or not isinstance(meeting_id, int | str) or not meeting_id:
        raise BadGateway("zoom_bad_response", "Zoom's meeting has no id.")
    join_url, start_url = data.get("join_url"), data.get("start_url")
    if not isinstance(join_url, str) or not isinstance(start_url, str):
        raise BadGateway("zoom_bad_response", "Zoom's meeting has no join_url or start_url.")
    return ZoomMeeting(id=str(meeting_id), join_url=join_url, start_url=start_url)


def _count_nothing(endpoint: str, status: str) -> None:
    """The default call counter of a client built without metrics."""


def require_zoom(app: web.Application) -> ZoomClient:
    """The Zoom client, or 503 naming the variables to set when its credentials are missing."""
    zoom = app[ZOOM]
    if zoom is None:
        missing = ", ".join(app[CONFIG].missing_zoom_api_variables) or "the Zoom API credentials"
        raise Unavailable("zoom_not_configured", f"The Zoom API is not configured: set {missing}.")
    return zoom


async def zoom_ctx(app: web.Application) -> AsyncIterator[None]:
    """One shared HTTP session for Zoom, and the client when credentials are configured."""
    config = app[CONFIG]
    async with aiohttp.ClientSession(raise_for_status=False) as session:
        count_call = app[METRICS].count_zoom_call
        zoom = ZoomClient.from_config(session, config, count_call) if config.zoom_api else None
        app[ZOOM] = zoom
        yield
