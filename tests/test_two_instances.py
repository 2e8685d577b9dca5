"""Two instances of the service (real processes on two ports) against one database.

One of them runs two worker processes (WEB_CONCURRENCY=2), so three processes in all share the
work. Every test runs straight to PostgreSQL and again through PgBouncer in transaction mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import aiohttp
import orjson
import pytest

from devtools.fake_zoom import ACCOUNT_ID, CLIENT_ID, CLIENT_SECRET, HOST_USER, FakeZoom
from tests.conftest import INTERNAL_TOKEN, DatabaseRoute
from tests.factories import make_booking_request
from tests.processes import Service, running_service
from tests.zoom_payloads import meeting_event, participant, sign

pytestmark = pytest.mark.pgbouncer_too
EVENT_TS = 1626230691572


@dataclass
class Pair:
    first: Service
    second: Service
    http: aiohttp.ClientSession

    def urls(self) -> Iterator[str]:
        """first, second, first, ...: spread requests over both instances."""
        return itertools.cycle([self.first.url, self.second.url])


@pytest.fixture
async def pair(
    database_route: DatabaseRoute, fake_zoom: FakeZoom, clean_database
) -> AsyncIterator[Pair]:
    env = {
        "DB_STATEMENT_CACHE_SIZE": str(database_route.statement_cache_size),
        "ZOOM_API_URL": fake_zoom.api_url,
        "ZOOM_OAUTH_URL": fake_zoom.oauth_url,
        "ZOOM_ACCOUNT_ID": ACCOUNT_ID,
        "ZOOM_CLIENT_ID": CLIENT_ID,
        "ZOOM_CLIENT_SECRET": CLIENT_SECRET,
        "ZOOM_HOST_USER": HOST_USER,
    }
    with contextlib.ExitStack() as stack:
        first = stack.enter_context(running_service(database_route.url, WEB_CONCURRENCY="2", **env))
        second = stack.enter_context(running_service(database_route.url, **env))
        # No keep-alive: each request is a new connection, which the kernel hands to either
        # worker of the first instance.
        connector = aiohttp.TCPConnector(force_close=True, limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            yield Pair(first, second, session)


async def deliver(pair: Pair, url: str, payload: dict) -> tuple[int, str]:
    body = orjson.dumps(payload)
    headers = {**sign(body), "Content-Type": "application/json"}
    async with pair.http.post(f"{url}/api/zoom/webhook", data=body, headers=headers) as resp:
        return resp.status, (await resp.json()).get("status", "")


async def accept(pair: Pair, url: str, request_id, coach_id) -> tuple[int, dict]:
    async with pair.http.post(
        f"{url}/api/requests/{request_id}/accept",
        json={"coach_id": str(coach_id)},
        headers={"Authorization": f"Bearer {INTERNAL_TOKEN}"},
    ) as resp:
        return resp.status, await resp.json()


def meeting_events(meeting_id: int) -> list[dict]:
    """A meeting's whole story: started, three people joining and leaving, ended."""
    uuid = f"two-instances-{meeting_id}=="
    started = EVENT_TS
    events = [meeting_event("meeting.started", meeting_id=meeting_id, uuid=uuid, event_ts=started)]
    for person in range(3):
        for n, kind in enumerate(("joined", "left")):
            events.append(
                meeting_event(
                    f"meeting.participant_{kind}",
                    meeting_id=meeting_id,
                    uuid=uuid,
                    event_ts=started + 10 + person * 2 + n,
                    participant=participant(
                        f"Athlete {person}",
                        email=f"athlete{person}@example.com",
                        stable_id=f"stable-{person}",
                        user_id=str(1000 + person * 2 + n),
                    ),
                )
            )
    events.append(
        meeting_event(
            "meeting.ended",
            meeting_id=meeting_id,
            uuid=uuid,
            event_ts=started + 99,
            end_time="2021-07-13T22:44:51Z",
        )
    )
    return events


async def test_an_event_delivered_to_both_instances_at_once_is_stored_once(pair, db):
    events = [e for m in range(5) for e in meeting_events(85_000_000_000 + m)]
    copies = 6  # each event three times to each instance, all at once
    urls = pair.urls()
    deliveries = [(event, next(urls)) for event in events for _ in range(copies)]
    random.Random(7).shuffle(deliveries)

    answers = await asyncio.gather(*(deliver(pair, url, event) for event, url in deliveries))

    assert {status for status, _ in answers} == {200}
    outcomes = Counter(outcome for _, outcome in answers)
    assert outcomes == {"stored": len(events), "duplicate": len(events) * (copies - 1)}
    rows, keys = await db.fetchrow(
        "SELECT count(*), count(DISTINCT dedupe_key) FROM zoom_webhook_events"
    )
    assert rows == keys == len(events)


async def test_racing_accepts_on_both_instances_create_one_meeting(pair, fake_zoom, db):
    fake_zoom.create_latency = 0.3  # the accepts overlap Zoom's answer
    req = await make_booking_request(db)
    urls = pair.urls()

    answers = await asyncio.gather(
        *(accept(pair, next(urls), req["id"], req["coach_id"]) for _ in range(10))
    )

    assert sorted(status for status, _ in answers) == [200] * 9 + [201]
    assert len({body["id"] for _, body in answers}) == 1
    assert len(fake_zoom.calls_to("create")) == 1
    assert await db.fetchval("SELECT count(*) FROM bookings") == 1


async def test_events_racing_their_accept_on_the_other_instance_are_linked_and_complete_it(
    pair, fake_zoom, db
):
    first_meeting = fake_zoom.next_meeting_id
    fake_zoom.create_latency = 0.4  # events arrive before, during and after each accept
    requests = [await make_booking_request(db) for _ in range(3)]
    meetings = [first_meeting + n for n in range(len(requests))]

    async def deliver_story(meeting_id: int) -> list[int]:
        statuses = []
        for event, url in zip(meeting_events(meeting_id), pair.urls(), strict=False):
            statuses.append((await deliver(pair, url, event))[0])
            await asyncio.sleep(0.05)
        return statuses

    accepts = [
        accept(pair, pair.second.url if n % 2 else pair.first.url, r["id"], r["coach_id"])
        for n, r in enumerate(requests)
    ]
    results = await asyncio.gather(*accepts, *(deliver_story(m) for m in meetings))

    assert [status for status, _ in results[: len(requests)]] == [201] * len(requests)
    assert all(status == 200 for statuses in results[len(requests) :] for status in statuses)
    bookings = await db.fetch("SELECT id, zoom_meeting_id, status FROM bookings")
    assert sorted(int(b["zoom_meeting_id"]) for b in bookings) == meetings
    assert {b["status"] for b in bookings} == {"completed"}
    unlinked = await db.fetchval(
        "SELECT count(*) FROM zoom_webhook_events AS e "
        "LEFT JOIN bookings AS b ON b.zoom_meeting_id = e.zoom_meeting_id "
        "WHERE e.booking_id IS DISTINCT FROM b.id"
    )
    assert unlinked == 0
    stored = await db.fetchval("SELECT count(*) FROM zoom_webhook_events")
    assert stored == len(meetings) * len(meeting_events(0))
