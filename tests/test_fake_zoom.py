"""The fake Zoom's past-meeting endpoints behave as Zoom documents them (reconcile relies on it)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import aiohttp
import pytest
from yarl import URL

from devtools.fake_zoom import BASIC, FakeZoom, PastInstance, participant_record

START = datetime(2031, 1, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
async def http(fake_zoom: FakeZoom):
    async with aiohttp.ClientSession() as session:
        token = await session.post(
            fake_zoom.oauth_url,
            params={"grant_type": "account_credentials", "account_id": "test-zoom-account"},
            headers={"Authorization": BASIC},
        )
        bearer = (await token.json())["access_token"]
        session.headers["Authorization"] = f"Bearer {bearer}"
        yield session


def records(count: int) -> list[dict]:
    return [
        participant_record(
            name=f"Person {n}",
            user_id=str(16778240 + n),
            join_time=START + timedelta(seconds=n),
            leave_time=START + timedelta(minutes=30),
        )
        for n in range(count)
    ]


async def get(http: aiohttp.ClientSession, url: str) -> tuple[int, dict]:
    async with http.get(URL(url, encoded=True)) as resp:
        return resp.status, await resp.json()


async def test_participant_report_is_served_page_by_page(fake_zoom, http):
    fake_zoom.add_past_meeting(
        "81000000001", PastInstance("abc==", START, START + timedelta(minutes=31), records(7))
    )
    url = f"{fake_zoom.api_url}/report/meetings/abc%3D%3D/participants?page_size=3"
    seen, token = [], None
    while token != "":
        status, page = await get(http, url + (f"&next_page_token={token}" if token else ""))
        assert status == 200 and page["total_records"] == 7
        seen += page["participants"]
        token = page["next_page_token"]
    assert [r["name"] for r in seen] == [f"Person {n}" for n in range(7)]
    assert len(fake_zoom.calls_to("participants")) == 3


async def test_uuid_with_slashes_is_found_only_double_encoded(fake_zoom, http):
    fake_zoom.add_past_meeting("81000000001", PastInstance("/ab//c==", START, None))
    once, twice = quote("/ab//c==", safe=""), quote(quote("/ab//c==", safe=""), safe="")
    status, body = await get(http, f"{fake_zoom.api_url}/past_meetings/{once}")
    assert (status, body["code"]) == (404, 3001)
    status, body = await get(http, f"{fake_zoom.api_url}/past_meetings/{twice}")
    assert status == 200 and body["uuid"] == "/ab//c==" and "end_time" not in body


async def test_instances_of_an_unknown_meeting_are_404_with_code_3001(fake_zoom, http):
    status, body = await get(http, f"{fake_zoom.api_url}/past_meetings/123/instances")
    assert (status, body["code"]) == (404, 3001)


async def test_daily_rate_limit_says_so_in_its_headers(fake_zoom, http):
    fake_zoom.add_past_meeting("123", PastInstance("abc==", START, START + timedelta(hours=1)))
    fake_zoom.fail(
        "rate_limited", target="instances", retry_after="3600", rate_limit_type="Daily-limit"
    )
    async with http.get(f"{fake_zoom.api_url}/past_meetings/123/instances") as resp:
        assert resp.status == 429
        assert resp.headers["X-RateLimit-Type"] == "Daily-limit"
        assert resp.headers["Retry-After"] == "3600"
    status, body = await get(http, f"{fake_zoom.api_url}/past_meetings/123/instances")
    assert status == 200 and body == {
        "meetings": [{"uuid": "abc==", "start_time": "2031-01-02T09:00:00Z"}]
    }
