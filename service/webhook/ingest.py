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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

import asyncpg
import orjson

from service.db import Connection, Queries
from service.http.errors import is_database_unavailable
from service.http.metrics import Metrics
from service.webhook.events import WebhookEvent

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

log = logging.getLogger(__name__)

# A writer's connection: the pool's proxy, which asyncpg detaches when the server closes it.
WriterConnection: TypeAlias = "PoolConnectionProxy[asyncpg.Record]"


# How often waiting events are checked against max_wait: one timer for all, because arming
# and cancelling one per event weighed on the hot path (README, Performance).
EXPIRY_CHECK_SECONDS = 0.05


@dataclass(slots=True)
class Waiter:
    """A queued event: what to store, the future its delivery awaits, and when it was queued."""

    event: WebhookEvent
    future: asyncio.Future[bool]
    queued_at: float  # loop time


class NotStored(Exception):
    """The event was not stored this time: answer 503 with Retry-After so that Zoom retries."""

    code = "database_unavailable"


class Overloaded(NotStored):
    """The ingest queue is full (or the event waited too long): answer 503 so that Zoom retries."""

    code = "overloaded"


class MeetingBusy(NotStored):
    """Another transaction held the meeting's lock longer than the batch may wait for it."""

    code = "meeting_busy"


# What PostgreSQL says about one event it cannot store, whenever it is tried: a value out of
# range, too large to index, or against a constraint. Only that event is refused (400).
REFUSED_BY_DATABASE = (
    asyncpg.DataError,
    asyncpg.exceptions.ProgramLimitExceededError,
    asyncpg.exceptions.IntegrityConstraintViolationError,
)
# A lock the batch could not get in time: the batch is stored again, meeting by meeting.
LOCK_WAIT_ERRORS = (asyncpg.LockNotAvailableError, asyncpg.exceptions.DeadlockDetectedError)
# A statement never gets less than this, even for a batch whose waiters are about to expire.
MIN_STATEMENT_SECONDS = 0.1
# A writer that failed starts again after this pause, so a persistent bug cannot spin the CPU.
WRITER_RESTART_SECONDS = 0.1
# Meetings remembered as busy at most (a bound on memory, whatever the database does).
MAX_BUSY_MEETINGS = 1000
# Giving a healthy connection back to the pool (its reset query) may take this long at most.
RELEASE_SECONDS = 1.0


async def store_events(
    conn: Connection,
    q: Queries,
    events: Sequence[WebhookEvent],
    *,
    lock_timeout_ms: int,
    timeout: float | None = None,  # noqa: ASYNC109 - asyncpg's own timeout cancels the query
) -> set[bytes]:
    """Store events atomically in one statement; return the dedupe keys that were new."""
    rows = await conn.fetch(
        q.store_webhook_events, batch_json(events), str(lock_timeout_ms), timeout=timeout
    )
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
    duplicate. Every waiter is answered, whatever happens to its batch: a result, NotStored
    (503), or the database's refusal of that one event (400); nothing is reported as stored
    that was not committed.
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
        lock_timeout: float = 0.5,
        gather_rounds: int = 0,
    ):
        self.pool = pool
        self.queries = queries
        self.acquire_timeout = acquire_timeout
        self.queue_size = queue_size
        self.max_batch = max_batch
        self.writers = writers
        # Zoom waits 3 s for an answer; an event not stored after max_wait gets 503 instead.
        self.max_wait = max_wait
        self.lock_timeout_ms = max(1, round(lock_timeout * 1000))
        # Loop passes a writer may wait for more events before it takes a batch (_gather).
        self.gather_rounds = gather_rounds
        # Meetings whose lock a batch last waited for in vain: their events go in a statement
        # of their own, after the rest of the batch, until one is stored again.
        self._busy_meetings: set[str] = set()
        self._queue: collections.deque[Waiter] = collections.deque()
        # The batch each writer is storing, by writer index, for the expiry check.
        self._in_flight: dict[int, list[Waiter]] = {}
        # When each writer's current batch went to the database (loop time), for /readyz.
        self._in_flight_since: dict[int, float] = {}
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
        self._writer_restarts = metrics.ingest_writer_restarts
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

    def stalled(self) -> str | None:
        """Why ingest cannot write at the moment (a sentence for /readyz), or None."""
        if self._closing:
            return "The service is shutting down."
        if any(task.done() for task in self._tasks):
            return "An ingest writer is not running."
        loop = self._loop or asyncio.get_running_loop()
        since = min(self._in_flight_since.values(), default=None)
        if since is not None and loop.time() - since > self.max_wait:
            return "A batch of webhook events has been waiting on the database for too long."
        return None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._tasks = [
            asyncio.create_task(self._run_writer(n), name=f"ingest-writer-{n}")
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
        _fail(list(self._queue), Overloaded("The service is shutting down."))

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

    async def _run_writer(self, index: int) -> None:
        """Run writer index until the store closes; one that fails is logged and started again."""
        while True:
            try:
                await self._write_loop(index)
                return
            except Exception:
                self._writer_restarts.inc()
                log.exception("ingest writer %d failed; starting it again", index)
                await asyncio.sleep(WRITER_RESTART_SECONDS)

    async def _write_loop(self, index: int) -> None:
        # Each writer keeps its pool connection between batches (no acquire, no reset query),
        # and checks before each batch that the server has not closed it meanwhile.
        conn: WriterConnection | None = None
        loop = asyncio.get_running_loop()
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
                await self._gather()
                batch = self._take_batch()
                if not batch:
                    continue
                self._in_flight[index] = batch
                self._in_flight_since[index] = loop.time()
                try:
                    conn = await self._store_batch(conn, batch)
                finally:
                    del self._in_flight[index]
                    del self._in_flight_since[index]
                    # Whatever went wrong above, no waiter of the batch is left unanswered.
                    _fail(batch, NotStored("The event could not be stored."))
        finally:
            if conn is not None:
                await self._give_back(conn)

    async def _gather(self) -> None:
        """Let the event loop read the requests already waiting, while they keep coming.

        Each round is one pass of the loop: the deliveries whose bytes have arrived are parsed
        and queued, and go in this batch rather than in a transaction of their own later. It
        stops at the first round that adds nothing, so a lone event waits for no one.
        """
        for _ in range(self.gather_rounds):
            queued = len(self._queue)
            if queued >= self.max_batch or self._closing:
                return
            await asyncio.sleep(0)
            if len(self._queue) == queued:
                return

    def _take_batch(self) -> list[Waiter]:
        """Pop up to max_batch waiting events, skipping those whose waiter has given up."""
        queue = self._queue
        batch: list[Waiter] = []
        while queue and len(batch) < self.max_batch:
            waiter = queue.popleft()
            if not waiter.future.done():  # expired (already answered 503) or cancelled
                batch.append(waiter)
        return batch

    async def _store_batch(
        self, conn: WriterConnection | None, batch: list[Waiter]
    ) -> WriterConnection | None:
        """Store the batch; return the connection to keep for the next one (None: get a new one).

        A batch whose connection fails is sent once more on a fresh connection: the server may
        have closed it while idle (a restart, pg_terminate_backend, a pooler's idle timeout),
        and since storing is idempotent a second try never stores an event twice.
        """
        for attempt in (1, 2):
            waiting = [w for w in batch if not w.future.done()]
            if not waiting:
                return conn
            deadline = waiting[-1].queued_at + self.max_wait  # the youngest waiter's
            if conn is None or not _is_open(conn):
                _discard(conn)
                conn = None
                try:
                    conn = await self.pool.acquire(
                        timeout=min(self.acquire_timeout, self._time_left(deadline))
                    )
                except Exception as exc:
                    self._db_errors.inc()
                    _fail(waiting, _not_stored(exc))
                    return None
            try:
                await self._commit(conn, waiting, deadline)
                return conn
            except Exception as exc:
                if not is_database_unavailable(exc):
                    raise
                self._db_errors.inc()
                _discard(conn)  # in an unknown state: never handed to anyone again
                conn = None
                if attempt == 2:
                    _fail(batch, _not_stored(exc))
                    return None
                log.warning(
                    "storing a batch of %d webhook events lost its connection (%s); "
                    "trying once more on a fresh one",
                    len(waiting),
                    type(exc).__name__,
                )
        return conn

    def _time_left(self, deadline: float) -> float:
        loop = self._loop or asyncio.get_running_loop()
        return max(MIN_STATEMENT_SECONDS, deadline - loop.time())

    async def _commit(self, conn: Connection, batch: list[Waiter], deadline: float) -> None:
        """Store the batch and answer its waiters; raise when the connection failed.

        A batch held up by one meeting's lock is stored again meeting by meeting, and one the
        database refuses event by event, so that neither sinks its neighbours.
        """
        batch = [w for w in batch if not w.future.done()]
        if not batch:
            return
        if self._busy_meetings:
            busy = [w for w in batch if w.event.zoom_meeting_id in self._busy_meetings]
            if busy and len(busy) < len(batch):
                await self._commit(conn, [w for w in batch if w not in busy], deadline)
                for items in _groups(busy, _meeting_id):
                    await self._commit(conn, items, deadline)
                return
        # One row per dedupe key; sorted so that concurrent batches insert keys in one order.
        unique = sorted({w.event.dedupe_key: w.event for w in batch}.values(), key=_by_dedupe_key)
        self._batch_size.observe(len(unique))
        try:
            new_keys = await store_events(
                conn,
                self.queries,
                unique,
                lock_timeout_ms=self.lock_timeout_ms,
                timeout=self._time_left(deadline),
            )
        except asyncio.CancelledError:
            _fail(batch, Overloaded("The service is shutting down."))
            raise
        except LOCK_WAIT_ERRORS as exc:
            by_meeting = _groups(batch, _meeting_id)
            if len(by_meeting) == 1:
                if len(self._busy_meetings) >= MAX_BUSY_MEETINGS:
                    self._busy_meetings.clear()
                self._busy_meetings.add(batch[0].event.zoom_meeting_id)
                log.warning(
                    "%d webhook events of one meeting waited too long for a lock (SQLSTATE %s)",
                    len(unique),
                    exc.sqlstate,
                )
                _fail(batch, MeetingBusy("Another transaction holds this meeting's events."))
                return
            for items in by_meeting:
                await self._commit(conn, items, deadline)
            return
        except REFUSED_BY_DATABASE as exc:
            # Its message may quote a stored value (a participant's name): the code only.
            log.warning(
                "storing a batch of %d webhook events failed: %s (SQLSTATE %s)",
                len(unique),
                type(exc).__name__,
                exc.sqlstate,
            )
            if len(unique) == 1:
                _fail(batch, exc)
                return
            for items in _groups(batch, _by_dedupe_key):
                await self._commit(conn, items, deadline)
            return
        except asyncpg.PostgresError as exc:
            if is_database_unavailable(exc):
                raise
            # A refusal of the whole batch (a read-only server after a failover, a bug in the
            # function): Zoom retries a 503, and the events are stored once the cause is gone.
            self._db_errors.inc()
            log.warning(
                "storing a batch of %d webhook events failed: %s (SQLSTATE %s)",
                len(unique),
                type(exc).__name__,
                exc.sqlstate,
            )
            _fail(batch, NotStored("The database could not store the event."))
            return
        if self._busy_meetings:
            self._busy_meetings.difference_update(e.zoom_meeting_id for e in unique)
        for waiter in batch:
            if not waiter.future.done():
                key = waiter.event.dedupe_key
                is_new = key in new_keys
                new_keys.discard(key)  # a second delivery of it in this batch is a duplicate
                waiter.future.set_result(is_new)

    async def _give_back(self, conn: WriterConnection) -> None:
        """Return a writer's connection to the pool, or close it when that fails."""
        if not _is_open(conn):
            _discard(conn)
            return
        try:
            await self.pool.release(conn, timeout=RELEASE_SECONDS)
        except Exception as exc:
            log.warning("could not reset an ingest connection (%s): closed it", type(exc).__name__)
            _discard(conn)


def _by_dedupe_key(event: WebhookEvent) -> bytes:
    return event.dedupe_key


def _meeting_id(event: WebhookEvent) -> str:
    return event.zoom_meeting_id


def _groups(batch: list[Waiter], key: Callable[[WebhookEvent], object]) -> list[list[Waiter]]:
    """The batch's waiters grouped by key(event), in first-seen order."""
    groups: dict[object, list[Waiter]] = {}
    for waiter in batch:
        groups.setdefault(key(waiter.event), []).append(waiter)
    return list(groups.values())


def _is_open(conn: WriterConnection) -> bool:
    try:
        return not conn.is_closed()
    except asyncpg.InterfaceError:
        return False  # asyncpg gave it back to the pool when the server closed it


def _discard(conn: WriterConnection | None) -> None:
    """Close a connection at once, without a round trip; the pool opens a new one when needed."""
    if conn is None:
        return
    try:
        conn.terminate()
    except asyncpg.InterfaceError:
        pass  # already closed and back in the pool


def _not_stored(exc: BaseException) -> NotStored:
    """The 503 for waiters whose batch could not reach the database."""
    log.warning("storing webhook events failed: the database is unavailable (%r)", exc)
    return NotStored("The database is not reachable.")


def _fail(batch: list[Waiter], exc: BaseException) -> None:
    for waiter in batch:
        if not waiter.future.done():
            waiter.future.set_exception(exc)
