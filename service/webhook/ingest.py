"""Durable storage of verified webhook events: one transaction, committed before Zoom hears 200.

Group commit: concurrent deliveries wait in one bounded queue; a writer task takes what has
gathered, stores it with `store_events` (one statement, so one transaction and one round
trip), and wakes every waiter of that batch only after the commit, or hands all of them the
error. One fsync then covers dozens of events instead of one, which is what lets a durable
database keep up. Helper writers join while a backlog waits; a full queue answers 503.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import asyncpg
import orjson

from service.db import Connection, Queries
from service.http.errors import is_database_unavailable
from service.http.metrics import Metrics
from service.webhook.events import WebhookEvent

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

log = logging.getLogger(__name__)


# How often waiting events are checked against max_wait: one timer for all, because arming
# and cancelling one per event weighed on the hot path (README, Performance).
EXPIRY_CHECK_SECONDS = 0.05


@dataclass(slots=True)
class Waiter:
    """A queued event: what to store, the future its delivery awaits, and when it was queued."""

    event: WebhookEvent
    future: asyncio.Future[bool]
    queued_at: float  # loop time


class Overloaded(Exception):
    """The ingest queue is full (or the event waited too long): answer 503 so that Zoom retries."""


async def store_events(conn: Connection, q: Queries, events: Sequence[WebhookEvent]) -> set[bytes]:
    """Store events atomically in one statement; return the dedupe keys that were new."""
    rows = await conn.fetch(q.store_webhook_events, batch_json(events))
    return {bytes(r[0]) for r in rows}


# What each event's array holds, position by position: the order in which the function
# (sql/functions/store_zoom_webhook_events.sql) reads `e ->> 0` to `e ->> 9`.
BATCH_FIELDS = (
    "event_type",
    "zoom_meeting_id",
    "meeting_uuid",
    "occurred_at",
    "participant_name",
    "participant_email",
    "participant_user_id",
    "dedupe_key",
    "raw_data",
    "id",
)


def batch_json(events: Sequence[WebhookEvent]) -> str:
    """The batch as store_zoom_webhook_events reads it: an array per event, in BATCH_FIELDS order.

    Each raw body goes in as it came (a Fragment is not re-serialised): it was parsed once to
    verify it, and PostgreSQL parses it once more as part of this document.
    """
    return orjson.dumps(
        [
            (
                e.event_type,
                e.zoom_meeting_id,
                e.meeting_uuid,
                e.occurred_at,
                e.participant_name,
                e.participant_email,
                e.participant_user_id,
                e.dedupe_key.hex(),
                orjson.Fragment(e.raw_data),
                event_id,
            )
            for e, event_id in zip(events, new_event_ids(len(events)), strict=True)
        ]
    ).decode()


def new_event_ids(count: int) -> list[str]:
    """UUIDv7s (RFC 9562) as 32 hex digits: the current millisecond, then random bits counting up.

    Time-ordered ids go to the right-hand edge of the primary key's b-tree (migration 090). One
    random 74-bit value per batch, counted up per event (as in RFC 9562 6.2, method 2), keeps
    the ids of a batch distinct and in order, and costs one format per event instead of
    big-integer work on fresh random bits for each (README, Performance).
    """
    noise = int.from_bytes(os.urandom(10))  # one system call for the whole batch
    # version 7 | 12 random bits (rand_a): the first 16 hex digits, shared by the batch
    head = f"{time.time_ns() // 1_000_000:012x}7{noise >> 68:03x}"
    # variant 0b10 | 62 bits (rand_b), kept below 2**62 - count so that counting up never carries
    first = 0b10 << 62 | (noise & RAND_B_MASK) % (RAND_B_MASK + 1 - count)
    return [f"{head}{first + n:016x}" for n in range(count)]


RAND_B_MASK = (1 << 62) - 1


class EventStore:
    """Group commit: batches the events of concurrent deliveries into one transaction each.

    `store(event)` returns only after the transaction holding the event committed: True when
    the event was new, False when it was already stored. Two deliveries of one event in the same
    batch behave as if they had come one after the other: the first is new, the second a
    duplicate. When the batch fails, every waiter of it gets the error; nothing is reported as
    stored that was not committed.
    """

    def __init__(
        self,
        pool: asyncpg.Pool[asyncpg.Record],
        queries: Queries,
        metrics: Metrics,
        *,
        acquire_timeout: float,
        queue_size: int = 1024,
        max_batch: int = 512,
        writers: int = 4,
        max_wait: float = 2.0,
    ) -> None:
        self.pool = pool
        self.queries = queries
        self.acquire_timeout = acquire_timeout
        self.queue_size = queue_size
        self.max_batch = max_batch
        self.writers = writers
        # Zoom waits 3 s for an answer; an event not stored after max_wait gets 503 instead.
        self.max_wait = max_wait
        self._queue: collections.deque[Waiter] = collections.deque()
        # The batch each writer is storing, by writer index, for the expiry check.
        self._in_flight: dict[int, list[Waiter]] = {}
        # Writer 0 takes every batch; the others join only while a backlog waits, because
        # concurrent transactions compete for the same CPUs and the WAL flush: one writer with
        # bigger batches stores more (README, Performance), and helpers are for bursts and stalls.
        self.backlog = max(1, max_batch // 4)
        self._work = asyncio.Event()
        self._backlog = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._expiry: asyncio.Task[None] | None = None
        # Set by start(): asyncio.get_running_loop() makes a getpid() system call on every call
        # (CPython 3.11 checks for a fork), which the hot path need not repeat per event.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = False
        self._latency = metrics.ingest_seconds
        self._batch_size = metrics.ingest_batch_size
        self._db_errors = metrics.database_errors
        metrics.ingest_queue_depth.set_function(lambda: len(self._queue))

    @property
    def depth(self) -> int:
        return len(self._queue)

    @property
    def full(self) -> bool:
        """True while store() would refuse: the queue is full or the service is stopping."""
        return self._closing or len(self._queue) >= self.queue_size

    @property
    def refusal(self) -> str:
        return "The service is shutting down." if self._closing else "The ingest queue is full."

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._tasks = [
            asyncio.create_task(self._write_loop(n), name=f"ingest-writer-{n}")
            for n in range(self.writers)
        ]
        self._expiry = asyncio.create_task(self._expire_loop(), name="ingest-expiry")

    async def close(self) -> None:
        """Refuse new events, store what is queued or in flight, then stop the writers."""
        self._closing = True
        self._work.set()
        self._backlog.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._expiry is not None:
            self._expiry.cancel()
            await asyncio.gather(self._expiry, return_exceptions=True)
            self._expiry = None

    async def store(self, event: WebhookEvent) -> bool:
        """Store the event; True when new, False when it was a redelivery."""
        if self.full:
            raise Overloaded(self.refusal)
        loop = self._loop or asyncio.get_running_loop()
        queued_at = loop.time()
        future: asyncio.Future[bool] = loop.create_future()
        self._queue.append(Waiter(event, future, queued_at))
        self._work.set()
        if len(self._queue) >= self.backlog:
            self._backlog.set()
        try:
            return await future
        finally:
            self._latency.observe(loop.time() - queued_at)

    async def _expire_loop(self) -> None:
        """Answer 503 to every event not stored within max_wait, queued or in flight."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(EXPIRY_CHECK_SECONDS)
            cutoff = loop.time() - self.max_wait
            for waiters in (self._queue, *self._in_flight.values()):
                for waiter in waiters:
                    if waiter.queued_at > cutoff:
                        break  # oldest first: the rest are younger
                    if not waiter.future.done():
                        waiter.future.set_exception(
                            Overloaded("The event waited too long to be stored.")
                        )

    async def _write_loop(self, index: int) -> None:
        # Each writer keeps its pool connection between batches: no acquire, no reset query.
        conn: PoolConnectionProxy[asyncpg.Record] | None = None
        wakeup = self._work if index == 0 else self._backlog
        threshold = 1 if index == 0 else self.backlog
        try:
            while True:
                if len(self._queue) < threshold:
                    if self._closing and (index > 0 or not self._queue):
                        return  # writer 0 stores what is left
                    wakeup.clear()
                    await wakeup.wait()
                    continue
                batch = self._take_batch()
                if not batch:
                    continue
                self._in_flight[index] = batch
                try:
                    if conn is None:
                        try:
                            conn = await self.pool.acquire(timeout=self.acquire_timeout)
                        except Exception as exc:
                            self._db_errors.inc()
                            _fail(batch, exc)
                            continue
                    if not await self._commit(conn, batch):
                        await self.pool.release(conn)  # broken: the next batch gets a fresh one
                        conn = None
                finally:
                    del self._in_flight[index]
        finally:
            if conn is not None:
                await self.pool.release(conn)

    def _take_batch(self) -> list[Waiter]:
        """Pop up to max_batch waiting events, skipping those whose waiter has given up."""
        queue = self._queue
        batch: list[Waiter] = []
        while queue and len(batch) < self.max_batch:
            waiter = queue.popleft()
            if not waiter.future.done():  # expired (already answered 503) or cancelled
                batch.append(waiter)
        return batch

    async def _commit(self, conn: Connection, batch: list[Waiter]) -> bool:
        """Store the batch and answer its waiters; False when the connection is unusable."""
        # One row per dedupe key; sorted so that concurrent batches insert keys in one order.
        unique = sorted({w.event.dedupe_key: w.event for w in batch}.values(), key=_by_dedupe_key)
        self._batch_size.observe(len(unique))
        try:
            new_keys = await store_events(conn, self.queries, unique)
        except asyncio.CancelledError:
            _fail(batch, Overloaded("The service is shutting down."))
            raise
        except Exception as exc:
            self._db_errors.inc()
            if is_database_unavailable(exc):
                _fail(batch, exc)
                return False
            if isinstance(exc, asyncpg.PostgresError):
                # Its message may quote a stored value (a participant's name): the code only.
                log.warning(
                    "storing a batch of %d webhook events failed: %s (SQLSTATE %s)",
                    len(unique),
                    type(exc).__name__,
                    exc.sqlstate,
                )
            else:
                log.exception("storing a batch of %d webhook events failed", len(unique))
            if len(unique) == 1:
                _fail(batch, exc)
                return True
            # A bad event must not sink its neighbours: store each on its own.
            groups: dict[bytes, list[Waiter]] = {}
            for waiter in batch:
                groups.setdefault(waiter.event.dedupe_key, []).append(waiter)
            for same_event in groups.values():
                if not await self._commit(conn, same_event):
                    return False
            return True
        for waiter in batch:
            if not waiter.future.done():
                key = waiter.event.dedupe_key
                is_new = key in new_keys
                new_keys.discard(key)  # a second delivery of it in this batch is a duplicate
                waiter.future.set_result(is_new)
        return True


def _by_dedupe_key(event: WebhookEvent) -> bytes:
    return event.dedupe_key


def _fail(batch: list[Waiter], exc: BaseException) -> None:
    for waiter in batch:
        if not waiter.future.done():
            waiter.future.set_exception(exc)
