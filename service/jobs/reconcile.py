"""Reconciliation: recover from Zoom's REST API the evidence its webhooks never delivered.

For one booking: list the meeting's ended instances, read each instance's details and every
page of its participant report, turn them into the facts a delivery would have recorded
(`recovered_rows`), keep those no stored event already records (`missing_rows`), and store
them with `source = 'zoom_api'` under the per-meeting lock ingest takes; the outcome goes to
`zoom_reconciliation_runs`. `python -m service reconcile` runs it for every due booking and
`POST /api/bookings/{id}/reconcile` for one; a per-booking advisory lock keeps two of them from
reconciling one booking at once, in any process or replica.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

import aiohttp
import asyncpg
import orjson

from service.bookings.attendance import RECOVERED_SOURCE, ZoomFact, fact_from_row, same_person
from service.config import Config
from service.db import Connection, Queries, _init_connection, load_queries
from service.http.errors import ApiError, BadGateway
from service.http.metrics import Metrics
from service.webhook.ingest import new_event_ids
from service.zoom_api.client import RateLimitAllowance, ZoomClient, ZoomNotFound, ZoomRateLimited
from service.zoom_payload import (
    MEETING_ENDED,
    MEETING_STARTED,
    PARTICIPANT_EVENTS,
    PARTICIPANT_JOINED,
    PARTICIPANT_LEFT,
    REPORT_FIELDS,
    parse_time,
    read_participant,
    text,
)

log = logging.getLogger(__name__)

RECOVERED = "recovered"
COMPLETE = "complete"
NO_MEETING = "no_meeting"
PENDING = "pending"
FAILED = "failed"
# Outcomes after which the booking is not due any more (Zoom is not asked again by the job).
FINAL_OUTCOMES = frozenset({RECOVERED, COMPLETE, NO_MEETING})
# A report record of someone waiting to be admitted: not attendance.
WAITING_ROOM = "in_waiting_room"
# How long 429s may be waited out: in all, per command run and per route call.
RUN_RATE_LIMIT_SECONDS = 60.0
ROUTE_RATE_LIMIT_SECONDS = 20.0
# How often a caller retries a booking lock another reconciliation holds.
LOCK_POLL_SECONDS = 0.2
DEFAULT_DAYS = 30


@dataclass(frozen=True)
class InstanceReport:
    """What Zoom says about one ended instance: its details and its attendance records."""

    uuid: str
    details: Mapping[str, Any]
    records: Sequence[Mapping[str, Any]]  # waiting-room rows left out
    # Why Zoom's report is not finished yet (nothing of this instance is stored), else None.
    unfinished: str | None = None


@dataclass(frozen=True)
class Reconciliation:
    """How reconciling one booking ended."""

    booking_id: uuid.UUID
    zoom_meeting_id: str
    outcome: str
    instances: int = 0
    recovered: int = 0
    detail: str | None = None
    # The Zoom failure behind a `failed` outcome (the route answers with it).
    error: BadGateway | None = field(default=None, compare=False)

    @property
    def final(self) -> bool:
        return self.outcome in FINAL_OUTCOMES

    def line(self) -> str:
        """One line for the command's output."""
        text = (
            f"{self.booking_id} meeting {self.zoom_meeting_id}: {self.outcome}, "
            f"{self.instances} instance(s), {self.recovered} event(s) recovered"
        )
        return f"{text} ({self.detail})" if self.detail else text


class ReconciliationBusy(Exception):
    """Another process is reconciling this booking and did not finish in time."""


async def fetch_instances(
    zoom: ZoomClient, meeting_id: str, *, deadline: float, allowance: RateLimitAllowance
) -> list[InstanceReport]:
    """Ask Zoom about every ended instance of the meeting; ZoomNotFound if it never ran."""
    listed = await zoom.past_meeting_instances(meeting_id, deadline=deadline, allowance=allowance)
    # Each instance once, with the start_time the list gives it.
    listed_starts = {text(item.get("uuid")): item.get("start_time") for item in listed}
    reports = []
    for meeting_uuid, listed_start in listed_starts.items():
        if meeting_uuid is None:
            raise BadGateway("zoom_bad_response", "Zoom listed an instance without a uuid.")
        try:
            details = await zoom.past_meeting_details(
                meeting_uuid, deadline=deadline, allowance=allowance
            )
        except ZoomNotFound as exc:
            # Only the instance list's 404 means "never ran"; a listed instance must exist.
            raise BadGateway("zoom_error", exc.message) from None
        if parse_time(details.get("start_time")) is None and parse_time(listed_start):
            details = {**details, "start_time": listed_start}
        if parse_time(details.get("start_time")) is None:
            raise BadGateway("zoom_bad_response", "Zoom's instance details have no start_time.")
        if parse_time(details.get("end_time")) is None:
            reports.append(InstanceReport(meeting_uuid, details, [], "no end_time yet"))
            continue
        try:
            records = await zoom.meeting_participants_report(
                meeting_uuid, deadline=deadline, allowance=allowance
            )
        except ZoomNotFound:
            # Zoom keeps no participant report for a meeting only one person attended.
            records = []
        attended = [r for r in records if r.get("status") != WAITING_ROOM]
        unfinished = None
        if any(r.get("duration") == 0 for r in attended):
            unfinished = "a participant record with duration 0"
        reports.append(InstanceReport(meeting_uuid, details, attended, unfinished))
    return reports


def recovered_rows(meeting_id: str, report: InstanceReport) -> list[dict[str, Any]]:
    """The zoom_webhook_events rows a finished instance's report stands for.

    meeting.started / meeting.ended at the details' start_time / end_time (raw_data: the
    details), and per attendance record a participant_joined at join_time and a
    participant_left at leave_time (raw_data: the record), the participant columns filled as
    for deliveries.
    """
    rows = []
    for event_type, name in ((MEETING_STARTED, "start_time"), (MEETING_ENDED, "end_time")):
        moment = parse_time(report.details.get(name))
        if moment is not None:
            rows.append(_row(event_type, meeting_id, report.uuid, moment, report.details, None))
    for record in report.records:
        for event_type, name in (
            (PARTICIPANT_JOINED, "join_time"),
            (PARTICIPANT_LEFT, "leave_time"),
        ):
            moment = parse_time(record.get(name))
            if moment is not None:
                rows.append(_row(event_type, meeting_id, report.uuid, moment, record, record))
    return rows


def _row(
    event_type: str,
    meeting_id: str,
    meeting_uuid: str,
    occurred_at: datetime,
    raw_data: Mapping[str, Any],
    record: Mapping[str, Any] | None,
) -> dict[str, Any]:
    person = read_participant(record or {}, REPORT_FIELDS)
    identity = [person.join_user_id, person.stable_id, person.email, person.name]
    # Distinct from any delivery's key (those hash event_ts); the same fact twice collides.
    material = [
        RECOVERED_SOURCE,
        event_type,
        meeting_id,
        meeting_uuid,
        _second(occurred_at),
        identity,
    ]
    return {
        "event_type": event_type,
        "zoom_meeting_id": meeting_id,
        "meeting_uuid": meeting_uuid,
        "occurred_at": occurred_at,
        "participant_name": person.name,
        "participant_email": person.email,
        "participant_user_id": person.stored_id,
        "raw_data": raw_data,
        "source": RECOVERED_SOURCE,
        "dedupe_key": hashlib.sha256(orjson.dumps(material)).digest(),
    }


def _second(moment: datetime) -> int:
    return int(moment.timestamp() // 1)


def already_recorded(fact: ZoomFact, stored: Iterable[ZoomFact]) -> bool:
    """Tell whether a stored event records the fact.

    Same type and meeting instance (a stored event that names no instance matches any), the
    same occurred_at to the second, and for participant events the same person: the same
    per-join user_id, or one person by attendance's rule (stable id, email, name).
    """
    for other in stored:
        if other.event_type != fact.event_type:
            continue
        if other.meeting_uuid and other.meeting_uuid != fact.meeting_uuid:
            continue
        if _second(other.occurred_at) != _second(fact.occurred_at):
            continue
        if fact.event_type not in PARTICIPANT_EVENTS:
            return True
        if fact.join_user_id and fact.join_user_id == other.join_user_id:
            return True
        if same_person(fact, other):
            return True
    return False


def missing_rows(
    candidates: Iterable[dict[str, Any]], stored: Iterable[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """The candidate rows no stored row records (read both the way attendance reads them).

    Candidates are compared with the stored rows only: two records of Zoom's report are two
    joins even in one second (their per-join user_ids differ); one listed twice is one key.
    """
    known = [fact_from_row(row) for row in stored]
    missing: dict[bytes, dict[str, Any]] = {}
    for row in candidates:
        if row["dedupe_key"] not in missing and not already_recorded(fact_from_row(row), known):
            missing[row["dedupe_key"]] = row
    return list(missing.values())


def still_running(stored: Iterable[Mapping[str, Any]]) -> bool:
    """Tell whether the stored events show the meeting started after its last end."""
    starts = [r["occurred_at"] for r in stored if r["event_type"] == MEETING_STARTED]
    ends = [r["occurred_at"] for r in stored if r["event_type"] == MEETING_ENDED]
    return bool(starts) and (not ends or max(starts) > max(ends))


def rows_json(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as insert_recovered_events reads them, each with a time-ordered id."""
    return orjson.dumps(
        [
            {
                "id": event_id,
                "event_type": row["event_type"],
                "meeting_uuid": row["meeting_uuid"],
                "occurred_at": row["occurred_at"].isoformat(),
                "participant_name": row["participant_name"],
                "participant_email": row["participant_email"],
                "participant_user_id": row["participant_user_id"],
                "dedupe_key": row["dedupe_key"].hex(),
                "raw_data": row["raw_data"],
            }
            for row, event_id in zip(rows, new_event_ids(len(rows)), strict=True)
        ]
    ).decode()


@asynccontextmanager
async def booking_lock(
    conn: Connection, q: Queries, booking_id: uuid.UUID, *, wait_until: float
) -> AsyncIterator[None]:
    """Run the block in one transaction holding the booking's reconciliation lock.

    Another holder is waited for until wait_until (loop time), then ReconciliationBusy. The
    transaction stays open while Zoom is asked (no snapshot is held between statements at READ
    COMMITTED, and nothing is written until the end); it commits when the block ends.
    """
    loop = asyncio.get_running_loop()
    async with conn.transaction():
        while not await conn.fetchval(q.try_lock_booking_reconciliation, booking_id):
            if loop.time() + LOCK_POLL_SECONDS > wait_until:
                raise ReconciliationBusy(f"booking {booking_id} is being reconciled elsewhere")
            await asyncio.sleep(LOCK_POLL_SECONDS)
        yield


async def reconcile_booking(
    conn: Connection,
    q: Queries,
    zoom: ZoomClient,
    metrics: Metrics,
    booking_id: uuid.UUID,
    meeting_id: str,
    *,
    deadline: float,
    allowance: RateLimitAllowance,
) -> Reconciliation:
    """Reconcile one booking (inside its booking_lock) and record the run.

    A failure of Zoom's is returned as a `failed` result carrying the error (a ZoomRateLimited
    one tells a command run to stop), so that the run's record commits with the lock.
    """
    started_at = datetime.now(UTC)
    try:
        reports = await fetch_instances(zoom, meeting_id, deadline=deadline, allowance=allowance)
    except ZoomNotFound:
        result = Reconciliation(booking_id, meeting_id, NO_MEETING, detail="Zoom: never ran")
    except BadGateway as exc:
        result = Reconciliation(booking_id, meeting_id, FAILED, detail=exc.message, error=exc)
    else:
        result = await store_reports(conn, q, booking_id, meeting_id, reports, started_at)
        _count(metrics, result)
        return result
    await conn.fetchrow(
        q.insert_reconciliation_run,
        booking_id,
        meeting_id,
        started_at,
        result.outcome,
        0,
        0,
        result.detail,
    )
    _count(metrics, result)
    return result


def _count(metrics: Metrics, result: Reconciliation) -> None:
    metrics.reconciliations.labels(result.outcome).inc()
    metrics.events_recovered.inc(result.recovered)


async def store_reports(
    conn: Connection,
    q: Queries,
    booking_id: uuid.UUID,
    meeting_id: str,
    reports: Sequence[InstanceReport],
    started_at: datetime,
) -> Reconciliation:
    """Store what the finished instances add, link it to the booking, and record the run."""
    candidates = [
        row for r in reports if r.unfinished is None for row in recovered_rows(meeting_id, r)
    ]
    unfinished = [f"instance {r.uuid}: {r.unfinished}" for r in reports if r.unfinished]
    async with conn.transaction():
        await conn.execute(q.lock_zoom_meeting, meeting_id)
        stored = await conn.fetch(q.select_meeting_events, meeting_id)
        new = missing_rows(candidates, [dict(r) for r in stored])
        recovered = 0
        if new:
            done = await conn.fetchrow(
                q.insert_recovered_events, booking_id, meeting_id, rows_json(new)
            )
            recovered = done["recovered"] if done is not None else 0
        if not reports and still_running([dict(r) for r in stored]):
            # Zoom lists only ended instances: a delivered start and no end means it still runs.
            unfinished.append("Zoom lists no ended instance, and the meeting started")
        if unfinished:
            outcome = PENDING
        else:
            outcome = RECOVERED if recovered else COMPLETE
        detail = "; ".join(unfinished) or None
        await conn.fetchrow(
            q.insert_reconciliation_run,
            booking_id,
            meeting_id,
            started_at,
            outcome,
            len(reports),
            recovered,
            detail,
        )
    return Reconciliation(booking_id, meeting_id, outcome, len(reports), recovered, detail)


@dataclass
class RunSummary:
    """What one command run did: the results, and the bookings it left for the next run."""

    results: list[Reconciliation] = field(default_factory=list)
    left: int = 0
    stopped: str | None = None

    @property
    def exit_status(self) -> int:
        """0 when every due booking reached a final outcome, else 1."""
        return 0 if self.left == 0 and all(r.final for r in self.results) else 1

    def line(self) -> str:
        counts = Counter(r.outcome for r in self.results)
        parts = ", ".join(f"{counts[o]} {o}" for o in sorted(counts)) or "nothing due"
        left = self.left + sum(not r.final for r in self.results)
        text = f"reconciled {len(self.results)} booking(s): {parts}; {left} left for the next run"
        return f"{text}; stopped early: {self.stopped}" if self.stopped else text


class UnknownBooking(Exception):
    """--booking names no booking, or one without a Zoom meeting."""


async def run_reconcile(
    config: Config, *, booking_id: uuid.UUID | None, days: int, out: TextIO
) -> RunSummary:
    """Reconcile the booking named, or every due one; print a line per booking and a summary."""
    q = load_queries()
    metrics = Metrics.create()
    conn = await asyncpg.connect(
        config.database_url,
        timeout=config.db_connect_timeout_seconds,
        statement_cache_size=config.db_statement_cache_size,  # 0 behind PgBouncer
    )
    try:
        await _init_connection(conn)
        if booking_id is not None:
            booking = await conn.fetchrow(q.select_booking, booking_id)
            if booking is None:
                raise UnknownBooking(f"no booking with id {booking_id}")
            if not booking["zoom_meeting_id"]:
                raise UnknownBooking(f"booking {booking_id} has no Zoom meeting")
            due: list[asyncpg.Record] = [booking]
        else:
            due = list(await conn.fetch(q.select_due_reconciliations, days))
        async with aiohttp.ClientSession() as session:
            zoom = ZoomClient.from_config(session, config, metrics.count_zoom_call)
            summary = await _reconcile_all(
                conn, q, zoom, metrics, due, forced=booking_id is not None, out=out
            )
    finally:
        await conn.close()
    print(summary.line(), file=out)
    return summary


async def _reconcile_all(
    conn: Connection,
    q: Queries,
    zoom: ZoomClient,
    metrics: Metrics,
    due: Sequence[asyncpg.Record],
    *,
    forced: bool,
    out: TextIO,
) -> RunSummary:
    summary = RunSummary()
    allowance = RateLimitAllowance(RUN_RATE_LIMIT_SECONDS)
    loop = asyncio.get_running_loop()
    for index, booking in enumerate(due):
        booking_id, meeting_id = booking["id"], booking["zoom_meeting_id"]
        # Zoom's own budget for the booking, plus what may still be spent waiting out 429s.
        deadline = zoom.deadline() + allowance.seconds_left
        try:
            async with booking_lock(conn, q, booking_id, wait_until=loop.time() + zoom.budget):
                if not forced and await conn.fetchval(q.select_reconciled_at, booking_id):
                    continue  # another process finished it while we waited for the lock
                result = await reconcile_booking(
                    conn,
                    q,
                    zoom,
                    metrics,
                    booking_id,
                    meeting_id,
                    deadline=deadline,
                    allowance=allowance,
                )
        except ReconciliationBusy as exc:
            print(f"{booking_id} meeting {meeting_id}: left, {exc}", file=out)
            summary.left += 1
            continue
        print(result.line(), file=out)
        summary.results.append(result)
        if isinstance(result.error, ZoomRateLimited):
            summary.left += len(due) - index - 1
            summary.stopped = "Zoom's rate limit; the rest stays due"
            return summary
    return summary


def route_failure(result: Reconciliation) -> ApiError | None:
    """The error the route answers a failed reconciliation with (502), else None."""
    if result.outcome != FAILED:
        return None
    return result.error or BadGateway("zoom_error", result.detail or "Zoom failed.")
