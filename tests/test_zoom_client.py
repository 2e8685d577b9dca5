"""ZoomClient against the fake Zoom: the token cache, its renewal, and Retry-After parsing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import aiohttp
import pytest

from devtools.fake_zoom import ACCOUNT_ID
from service.http.errors import BadGateway
from service.zoom_api.client import ZoomClient, retry_after_seconds
from tests.conftest import zoom_config

NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)
START = datetime(2031, 1, 2, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def zoom(fake_zoom, database_url):
    clock = Clock()
    config = zoom_config(database_url, fake_zoom)
    async with aiohttp.ClientSession() as session:
        client = ZoomClient.from_config(session, config)
        client.clock = clock
        yield client


async def test_token_is_kept_until_a_minute_before_it_expires(zoom, fake_zoom):
    await zoom.create_meeting(topic="t", start_time=START, duration_minutes=30)
    zoom.clock.now += 3600 - 61
    await zoom.create_meeting(topic="t", start_time=START, duration_minutes=30)
    assert len(fake_zoom.token_requests) == 1

    zoom.clock.now += 2
    await zoom.create_meeting(topic="t", start_time=START, duration_minutes=30)

    assert len(fake_zoom.token_requests) == 2
    bearers = [c.headers["Authorization"] for c in fake_zoom.calls_to("create")]
    assert bearers[0] == bearers[1] != bearers[2]


async def test_token_request_carries_its_parameters_in_the_query_and_the_body(zoom, fake_zoom):
    await zoom.create_meeting(topic="t", start_time=START, duration_minutes=30)
    (call,) = fake_zoom.token_requests
    expected = {"grant_type": "account_credentials", "account_id": ACCOUNT_ID}
    assert call.query == expected  # Zoom's own Python sample sends the query
    assert call.body == expected  # its SDK sends a form body
    assert call.headers["Content-Type"] == "application/x-www-form-urlencoded"


async def test_concurrent_callers_fetch_one_token(zoom, fake_zoom):
    await asyncio.gather(
        *(zoom.create_meeting(topic="t", start_time=START, duration_minutes=30) for _ in range(5))
    )

    assert len(fake_zoom.token_requests) == 1
    assert len(fake_zoom.meetings) == 5


async def test_concurrent_callers_with_a_rejected_token_renew_it_once(zoom, fake_zoom):
    meeting = await zoom.create_meeting(topic="t", start_time=START, duration_minutes=30)
    fake_zoom.valid_tokens.clear()  # the token expired at Zoom

    got = await asyncio.gather(*(zoom.get_meeting(meeting.id) for _ in range(5)))

    assert {m.id for m in got} == {meeting.id}
    assert len(fake_zoom.token_requests) == 2


async def test_meeting_id_is_zooms_number_as_text(zoom, fake_zoom):
    expected = fake_zoom.next_meeting_id

    meeting = await zoom.create_meeting(topic="t", start_time=START, duration_minutes=30)

    assert meeting.id == str(expected)
    assert (await zoom.get_meeting(meeting.id)).join_url == meeting.join_url


async def test_delete_meeting_removes_it(zoom, fake_zoom):
    meeting = await zoom.create_meeting(topic="t", start_time=START, duration_minutes=30)

    await zoom.delete_meeting(meeting.id)

    assert fake_zoom.meetings == {}
    assert fake_zoom.deleted == [meeting.id]


async def test_unknown_meeting_is_a_bad_gateway_naming_zooms_code(zoom):
    with pytest.raises(BadGateway) as caught:
        await zoom.get_meeting("123")

    assert "3001" in caught.value.message


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("3", 3.0),
        ("0.5", 0.5),
        ("-4", 0.0),
        ("Thu, 26 Nov 2026 12:00:10 GMT", 10.0),
        ("2026-11-26T12:01:00Z", 60.0),
        ("2026-11-26T12:00:30+00:00", 30.0),
        ("2026-11-26T12:00:20", 20.0),
        ("2026-11-26T11:00:00Z", 0.0),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_is_read_as_seconds_or_a_date(value, seconds):
    assert retry_after_seconds(value, NOW) == seconds
