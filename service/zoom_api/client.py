"""ZoomClient: Server-to-Server OAuth token cache and the Meeting API calls the service makes."""

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
from service.keys import CONFIG, ZOOM

log = logging.getLogger(__name__)

# Renew the token this long before Zoom says it expires, so a call never carries a dying token.
TOKEN_REFRESH_MARGIN_SECONDS = 60.0
# Zoom's "Invalid access token." (sent with 401, e.g. after another token replaced ours).
INVALID_TOKEN_CODE = 124
# Below this much time left, another attempt cannot finish: give up with 502 at once.
MIN_ATTEMPT_SECONDS = 0.05
MAX_MESSAGE_CHARS = 300


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


def describe(reply: Reply) -> str:
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
        self._token: str | None = None
        self._token_renew_at = 0.0
        # Per-process cache guard: concurrent callers wait for one token fetch, not one each.
        self._token_lock = asyncio.Lock()

    @classmethod
    def from_config(cls, session: aiohttp.ClientSession, config: Config) -> ZoomClient:
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
        return meeting_from(data)

    async def get_meeting(self, meeting_id: str, *, deadline: float | None = None) -> ZoomMeeting:
        """Read a meeting; its `start_url` is freshly signed (the stored one expires in ~2 h)."""
        path = f"/meetings/{quote(meeting_id, safe='')}"
        return meeting_from(await self._api("GET", path, deadline=deadline))

    async def delete_meeting(self, meeting_id: str, *, deadline: float | None = None) -> None:
        """Delete a meeting; no notification mail goes to the host."""
        path = f"/meetings/{quote(meeting_id, safe='')}?schedule_for_reminder=false"
        await self._api("DELETE", path, deadline=deadline)

    async def _api(
        self, method: str, path: str, *, body: Any = None, deadline: float | None = None
    ) -> Any:
        """Call the REST API; on a rejected token fetch one fresh token and try once more."""
        deadline = self.deadline() if deadline is None else deadline
        token = await self._access_token(deadline)
        reply = await self._bearer_request(method, path, token, body, deadline)
        if reply.token_rejected:
            token = await self._access_token(deadline, rejected=token)
            reply = await self._bearer_request(method, path, token, body, deadline)
        if not reply.ok:
            self._log_failure(method, path, reply)
            code = "zoom_rate_limited" if reply.status == 429 else "zoom_error"
            raise BadGateway(code, describe(reply))
        if reply.status == 204 or not reply.body:
            return None
        data = reply.json()
        if not isinstance(data, dict):
            self._log_failure(method, path, reply)
            raise BadGateway("zoom_bad_response", "Zoom answered with a body that is not JSON.")
        return data

    async def _bearer_request(
        self, method: str, path: str, token: str, body: Any, deadline: float
    ) -> Reply:
        headers = {"Authorization": f"Bearer {token}"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        data = orjson.dumps(body) if body is not None else None
        return await self._request(method, self.api_url + path, headers, data, deadline, path)

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
        )
        data = reply.json()
        if not reply.ok:
            self._log_failure("POST", "oauth token", reply)
            refusal = f"Zoom refused the Server-to-Server OAuth token: {describe(reply)}"
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
    ) -> Reply:
        """One exchange, repeated on 429, 5xx and refused connections, all within the deadline.

        A timeout is not repeated: a POST that timed out may have created the meeting, and
        repeating it could create a second one.
        """
        attempt = 1
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
                log.warning("Zoom %s %s: no answer within %.1f s", method, what, timeout.total)
                raise BadGateway("zoom_timeout", "Zoom did not answer in time.") from None
            except aiohttp.ClientConnectorError as exc:
                # Nothing was sent, so trying again cannot create anything twice.
                log.warning("Zoom %s %s: cannot connect (%s)", method, what, exc.os_error)
                failure = BadGateway("zoom_unreachable", "Zoom cannot be reached.")
            except (aiohttp.ClientError, OSError) as exc:
                log.warning("Zoom %s %s: %s", method, what, type(exc).__name__)
                raise BadGateway("zoom_unreachable", "The connection to Zoom failed.") from None
            else:
                if not reply.retryable:
                    return reply
                self._log_failure(method, what, reply)
                retry_after = reply.headers.get("Retry-After")
                code = "zoom_rate_limited" if reply.status == 429 else "zoom_error"
                failure = BadGateway(code, describe(reply))
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


def meeting_from(data: Any) -> ZoomMeeting:
    """Take id, join_url and start_url from Zoom's meeting object, or 502 when they are missing."""
    meeting_id = data.get("id") if isinstance(data, dict) else None
    if isinstance(meeting_id, bool) or not isinstance(meeting_id, int | str) or not meeting_id:
        raise BadGateway("zoom_bad_response", "Zoom's meeting has no id.")
    join_url, start_url = data.get("join_url"), data.get("start_url")
    if not isinstance(join_url, str) or not isinstance(start_url, str):
        raise BadGateway("zoom_bad_response", "Zoom's meeting has no join_url or start_url.")
    return ZoomMeeting(id=str(meeting_id), join_url=join_url, start_url=start_url)


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
        app[ZOOM] = ZoomClient.from_config(session, config) if config.zoom_api else None
        yield
