"""Database faults against a real `python -m service` under load.

Under each fault (a blackholed path, reset connections, a refusing server, a PostgreSQL
restart, pg_terminate_backend of every backend, one meeting locked for long) every delivery is
answered within Zoom's 3 s, 200 (stored) or 503 with Retry-After; once the fault ends deliveries
are 200 again within 10 s and stay so; and every event ends up stored exactly once.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import orjson
import psycopg
import pytest

from devtools.devdb import FAST_SETTINGS, Cluster
from service.jobs.migrate import apply_migrations
from tests.db_proxy import ThreadedProxy, threaded_proxy
from tests.processes import Service, running_service
from tests.zoom_payloads import meeting_event, participant, sign

JOINED = "meeting.participant_joined"
MEETINGS = 5  # the load spreads over these, so that batches hold several meetings
SENDERS = 6
PAUSE = 0.01  # between one sender's deliveries: load, without starving a 2-core machine
ANSWER_WITHIN = 3.0  # Zoom's timeout
HEALED_WITHIN = 10.0


def event(n: int, meeting: int | None = None) -> dict:
    """The n-th distinct participant_joined of the load."""
    meeting = n % MEETINGS if meeting is None else meeting
    person = participant(f"Person {n}", stable_id=f"p{n}", email=f"p{n}@example.com")
    return meeting_event(
        JOINED,
        meeting_id=str(7_000 + meeting),
        uuid=f"faults-{meeting}==",
        event_ts=10**12 + n,
        participant=person,
    )


@dataclass
class Answer:
    n: int
    meeting: int
    status: int
    error: str | None
    retry_after: str | None
    sent: float
    answered: float

    @property
    def seconds(self) -> float:
        return self.answered - self.sent


class Load:
    """Senders posting distinct signed events to a service, every answer kept."""

    def __init__(self, session: aiohttp.ClientSession, service: Service):
        self.session = session
        self.url = f"{service.url}/api/zoom/webhook"
        self.answers: list[Answer] = []
        self._next = 0
        self._running = False
        self._tasks: list[asyncio.Task[None]] = []
        self.skip_meeting: int | None = None

    async def deliver(self, n: int, meeting: int | None = None) -> Answer:
        meeting = n % MEETINGS if meeting is None else meeting
        body = orjson.dumps(event(n, meeting))
        sent = time.monotonic()
        timeout = aiohttp.ClientTimeout(total=ANSWER_WITHIN + 7)
        async with self.session.post(self.url, data=body, headers=sign(body), timeout=timeout) as r:
            data = await r.json()
        answer = Answer(
            n, meeting, r.status, data.get("error"), r.headers.get("Retry-After"), sent, 0.0
        )
        answer.answered = time.monotonic()
        self.answers.append(answer)
        return answer

    def start(self) -> None:
        self._running = True
        self._tasks = [asyncio.create_task(self._sender()) for _ in range(SENDERS)]

    async def stop(self) -> None:
        self._running = False
        await asyncio.gather(*self._tasks)

    async def _sender(self) -> None:
        while self._running:
            n = self._next
            self._next += 1
            if self.skip_meeting is not None and n % MEETINGS == self.skip_meeting:
                continue
            await self.deliver(n)
            await asyncio.sleep(PAUSE)

    def since(self, moment: float) -> list[Answer]:
        return [a for a in self.answers if a.sent >= moment]

    async def healed(self, ended: float) -> float:
        """Seconds from the fault's end to the first 200 for a delivery sent after it."""
        while time.monotonic() - ended < HEALED_WITHIN + ANSWER_WITHIN:
            ok = [a.answered for a in self.since(ended) if a.status == 200]
            if ok:
                return min(ok) - ended
            await asyncio.sleep(0.05)
        raise AssertionError(f"no 200 within {HEALED_WITHIN} s of the fault's end")

    async def steady(self, seconds: float) -> None:
        """Every delivery sent during the next seconds is answered 200."""
        began = time.monotonic()
        await asyncio.sleep(seconds)
        await asyncio.sleep(0)  # let the answers to deliveries of this window arrive
        window = [a for a in self.since(began) if a.sent < began + seconds]
        assert window, "no delivery in the window"
        assert {a.status for a in window} == {200}, [(a.status, a.error) for a in window]

    async def fault(self, begin: Callable[[], object], end: Callable[[], object], seconds: float):
        """Hold a fault for seconds under load; end it; wait until deliveries are 200 again."""
        begin()
        await asyncio.sleep(seconds)
        end()
        ended = time.monotonic()
        assert await self.healed(ended) < HEALED_WITHIN

    def assert_every_answer_in_time(self) -> None:
        assert self.answers
        for a in self.answers:
            assert a.status in (200, 503), (a.status, a.error)
            if a.status == 503:
                assert a.retry_after, a
            assert a.seconds < ANSWER_WITHIN, a

    async def redeliver_refused(self) -> None:
        """Zoom's retries: deliver each event answered 503 again until it is 200."""
        answered = {a.n for a in self.answers if a.status == 200}
        refused = {a.n: a.meeting for a in self.answers if a.status == 503}
        for n, meeting in refused.items():
            if n in answered:
                continue
            answer = await self.deliver(n, meeting)
            assert answer.status == 200, answer

    def assert_each_stored_exactly_once(self, database_url: str) -> None:
        sent = {a.n for a in self.answers}
        with psycopg.connect(database_url) as conn:
            rows = conn.execute(
                "SELECT (raw_data ->> 'event_ts')::bigint - 1000000000000, count(*) "
                "FROM zoom_webhook_events GROUP BY 1"
            ).fetchall()
        assert {n: count for n, count in rows if count != 1} == {}
        assert {n for n, _ in rows} == sent


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def proxy(database_url: str) -> Iterator[ThreadedProxy]:
    with threaded_proxy(database_url) as proxy:
        yield proxy


async def assert_no_writer_lost(session: aiohttp.ClientSession, service: Service) -> None:
    async with session.get(f"{service.url}/readyz") as resp:
        assert resp.status == 200, await resp.text()
    async with session.get(f"{service.url}/metrics") as resp:
        text = await resp.text()
    assert "zoom_webhook_ingest_writer_restarts_total 0.0" in text
    assert "Traceback" not in service.logs()


async def test_ingest_under_load_through_a_blackhole_resets_and_refusals(
    database_url, clean_database, proxy, session
):
    with running_service(proxy.url) as service:
        load = Load(session, service)
        load.start()
        try:
            await load.steady(1.0)
            # A blackhole outlasting every timeout: max_wait, connect, acquire, lock.
            await load.fault(proxy.freeze, proxy.restore, 4.0)
            await load.steady(1.0)
            await load.fault(proxy.reset, lambda: None, 0.0)
            await load.steady(1.0)
            proxy.cut()
            await asyncio.sleep(0.5)
            async with session.get(f"{service.url}/readyz") as resp:
                assert resp.status == 503  # ingest cannot write: out of the load balancer
            await load.fault(lambda: None, proxy.restore, 1.5)
            await load.steady(1.0)
        finally:
            await load.stop()
        load.assert_every_answer_in_time()
        assert any(a.status == 503 for a in load.answers)  # the faults were felt
        await load.redeliver_refused()
        await assert_no_writer_lost(session, service)
    load.assert_each_stored_exactly_once(database_url)


@pytest.fixture(scope="module")
def own_cluster() -> Iterator[tuple[Cluster, str]]:
    """A PostgreSQL server of this module's own, which a test may restart."""
    with tempfile.TemporaryDirectory(prefix="faults-") as tmp:
        cluster = Cluster(Path(tmp) / "pg", dict(FAST_SETTINGS))
        cluster.start()
        try:
            cluster.create_database("faults")
            url = cluster.url("faults")
            apply_migrations(url)
            yield cluster, url
        finally:
            cluster.stop()


def terminate_backends(database_url: str) -> int:
    """pg_terminate_backend every other client connection to the database; how many there were."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        return len(
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND backend_type = 'client backend'"
            ).fetchall()
        )


async def test_ingest_under_load_through_a_restart_terminated_backends_and_a_locked_meeting(
    own_cluster, session
):
    cluster, url = own_cluster
    with running_service(url) as service:
        load = Load(session, service)
        load.start()
        try:
            await load.steady(1.0)
            # A real restart: the server goes away (fast shutdown) and comes back.
            await asyncio.to_thread(cluster.stop)
            await asyncio.sleep(0.5)
            await asyncio.to_thread(cluster.start)
            assert await load.healed(time.monotonic()) < HEALED_WITHIN
            await load.steady(1.0)

            # One meeting locked by a long transaction: only its events wait, and get 503.
            locked = 3
            load.skip_meeting = locked  # its events come from one sender of their own
            with psycopg.connect(url) as holder:
                lock = "SELECT pg_advisory_xact_lock(zoom_meeting_lock_key(%s))"
                holder.execute(lock, (str(7_000 + locked),))
                held_from = time.monotonic()
                for n in range(2 * 10**6, 2 * 10**6 + 3):
                    answer = await load.deliver(n, locked)
                    assert (answer.status, answer.error) == (503, "meeting_busy")
                    assert answer.retry_after
                held_until = time.monotonic()
            during = [a for a in load.since(held_from) if a.answered < held_until]
            assert {a.status for a in during if a.meeting != locked} == {200}
            load.skip_meeting = None
            await load.steady(1.0)
        finally:
            await load.stop()

        # Every backend of the service terminated while idle: the very next delivery is 200.
        for n in (10**6, 10**6 + 1):
            assert terminate_backends(url) >= 1
            await asyncio.sleep(0.2)  # the service reads the server's goodbye
            assert (await load.deliver(n)).status == 200

        load.assert_every_answer_in_time()
        await load.redeliver_refused()
        await assert_no_writer_lost(session, service)
    load.assert_each_stored_exactly_once(url)
