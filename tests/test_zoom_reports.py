"""ZoomClient's past-meeting reads against the fake Zoom: paging, UUID encoding, 404, 429, 5xx."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from urllib.parse import unquote

import aiohttp
import pytest

from devtools.fake_zoom import FakeZoom, PastInstance, participant_record
from service.http.errors import BadGateway
from service.zoom_api.client import (
    ENDPOINT_PARTICIPANTS,
    RateLimitAllowance,
    ZoomClient,
    ZoomNotFound,
    ZoomRateLimited,
    encode_meeting_uuid,
)
from tests.conftest import zoom_config

START = datetime(2031, 1, 2, 9, 0, tzinfo=UTC)
END = START + timedelta(minutes=45)
MEETING_ID = "81000000001"


@pytest.fixture
async def zoom(fake_zoom: FakeZoom, database_url: str):
    calls: list[tuple[str, str]] = []
    config = zoom_config(database_url, fake_zoom, zoom_budget_seconds=8.0)
    async with aiohttp.ClientSession() as session:
        client = ZoomClient.from_config(session, config, lambda e, s: calls.append((e, s)))
        client.calls = calls  # type: ignore[attr-defined]
        yield client


def records(count: int) -> list[dict]:
    return [
        participant_record(
            name=f"Person {n}",
            user_id=str(16778240 + n),
            join_time=START + timedelta(seconds=n),
            leave_time=END,
        )
        for n in range(count)
    ]


def allowance(seconds: float = 10.0) -> RateLimitAllowance:
    return RateLimitAllowance(seconds)


async def report(zoom: ZoomClient, meeting_uuid: str, budget: RateLimitAllowance | None = None):
    return await zoom.meeting_participants_report(
        meeting_uuid, deadline=zoom.deadline(), allowance=budget or allowance()
    )


async def test_every_page_of_the_participant_report_is_read(zoom, fake_zoom):
    fake_zoom.add_past_meeting(MEETING_ID, PastInstance("abc==", START, END, records(650)))

    got = await report(zoom, "abc==")

    assert [r["name"] for r in got] == [f"Person {n}" for n in range(650)]
    pages = fake_zoom.calls_to("participants")
    assert [c.query.get("page_size") for c in pages] == ["300", "300", "300"]
    assert "next_page_token" not in pages[0].query and all(
        c.query["next_page_token"] for c in pages[1:]
    )
    assert zoom.calls.count((ENDPOINT_PARTICIPANTS, "200")) == 3


@pytest.mark.parametrize(
    ("meeting_uuid", "raw"),
    [
        ("/abc==", "%252Fabc%253D%253D"),
        ("ab//c==", "ab%252F%252Fc%253D%253D"),
        ("abc==", "abc%3D%3D"),
        ("ab/c==", "ab%2Fc%3D%3D"),
    ],
)
async def test_uuid_with_leading_or_double_slash_is_encoded_twice(
    zoom, fake_zoom, meeting_uuid, raw
):
    assert encode_meeting_uuid(meeting_uuid) == raw
    fake_zoom.add_past_meeting(MEETING_ID, PastInstance(meeting_uuid, START, END, records(2)))

    details = await zoom.past_meeting_details(
        meeting_uuid, deadline=zoom.deadline(), allowance=allowance()
    )

    assert details["uuid"] == meeting_uuid and details["end_time"] == "2031-01-02T09:45:00Z"
    assert len(await report(zoom, meeting_uuid)) == 2
    # Compared decoded once: the HTTP client may write "=" for "%3D", which means the same.
    sent = fake_zoom.calls_to("details")[0].raw_path
    assert unquote(sent) == unquote(f"/v2/past_meetings/{raw}")


async def test_meeting_that_never_ran_is_not_found(zoom):
    with pytest.raises(ZoomNotFound) as caught:
        await zoom.past_meeting_instances(
            MEETING_ID, deadline=zoom.deadline(), allowance=allowance()
        )
    assert "3001" in caught.value.message


async def test_instances_are_listed(zoom, fake_zoom):
    fake_zoom.add_past_meeting(
        MEETING_ID, PastInstance("one==", START, END), PastInstance("two==", END, None)
    )
    got = await zoom.past_meeting_instances(
        MEETING_ID, deadline=zoom.deadline(), allowance=allowance()
    )
    assert got == [
        {"uuid": "one==", "start_time": "2031-01-02T09:00:00Z"},
        {"uuid": "two==", "start_time": "2031-01-02T09:45:00Z"},
    ]


@pytest.mark.parametrize("as_date", [False, True])
async def test_429_is_waited_out_as_retry_after_says(zoom, fake_zoom, as_date):
    fake_zoom.add_past_meeting(MEETING_ID, PastInstance("abc==", START, END, records(1)))
    retry_after = "1"
    if as_date:
        retry_after = format_datetime(datetime.now(UTC) + timedelta(seconds=2), usegmt=True)
    fake_zoom.fail("rate_limited", target="participants", retry_after=retry_after)
    budget = allowance(10.0)

    began = time.monotonic()
    got = await report(zoom, "abc==", budget)

    assert len(got) == 1
    assert time.monotonic() - began >= 0.5
    assert 7.0 <= budget.seconds_left <= 9.5
    assert (ENDPOINT_PARTICIPANTS, "429") in zoom.calls


async def test_daily_rate_limit_ends_at_once(zoom, fake_zoom):
    fake_zoom.add_past_meeting(MEETING_ID, PastInstance("abc==", START, END, records(1)))
    fake_zoom.fail(
        "rate_limited", target="participants", retry_after="1", rate_limit_type="Daily-limit"
    )
    began = time.monotonic()
    with pytest.raises(ZoomRateLimited):
        await report(zoom, "abc==")
    assert time.monotonic() - began < 0.5
    assert len(fake_zoom.calls_to("participants")) == 1


async def test_rate_limit_longer_than_the_allowance_is_not_waited(zoom, fake_zoom):
    fake_zoom.add_past_meeting(MEETING_ID, PastInstance("abc==", START, END, records(1)))
    fake_zoom.fail("rate_limited", target="participants", retry_after="30")
    budget = allowance(20.0)
    began = time.monotonic()
    with pytest.raises(ZoomRateLimited) as caught:
        await report(zoom, "abc==", budget)
    assert time.monotonic() - began < 0.5
    assert budget.seconds_left == 20.0
    assert caught.value.status == 502


async def test_server_errors_are_retried_a_bounded_number_of_times(zoom, fake_zoom):
    fake_zoom.add_past_meeting(MEETING_ID, PastInstance("abc==", START, END, records(1)))
    fake_zoom.fail("server_error", target="details", times=2)
    details = await zoom.past_meeting_details(
        "abc==", deadline=zoom.deadline(), allowance=allowance()
    )
    assert details["uuid"] == "abc=="

    fake_zoom.fail("server_error", target="details", times=5)
    with pytest.raises(BadGateway) as caught:
        await zoom.past_meeting_details("abc==", deadline=zoom.deadline(), allowance=allowance())
    assert caught.value.code == "zoom_error"
    assert len(fake_zoom.calls_to("details")) == 3 + 3


async def test_rejected_token_is_renewed_once(zoom, fake_zoom):
    fake_zoom.add_past_meeting(MEETING_ID, PastInstance("abc==", START, END, records(1)))
    await report(zoom, "abc==")
    fake_zoom.fail("expired_token", target="participants")
    assert len(await report(zoom, "abc==")) == 1
    assert len(fake_zoom.token_requests) == 2


async def test_hanging_zoom_is_a_timeout(zoom, fake_zoom):
    fake_zoom.add_past_meeting(MEETING_ID, PastInstance("abc==", START, END, records(1)))
    fake_zoom.fail("hang", target="instances")
    began = time.monotonic()
    with pytest.raises(BadGateway) as caught:
        await zoom.past_meeting_instances(
            MEETING_ID, deadline=zoom.deadline(), allowance=allowance()
        )
    assert caught.value.code == "zoom_timeout"
    assert time.monotonic() - began < 3.0
