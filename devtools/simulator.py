"""zoom-simulate: sign and send realistic Zoom meeting webhooks to any instance of the service.

    zoom-simulate [--url URL] [--secret S] validate
    zoom-simulate [--url URL] [--secret S] event meeting.started --meeting-id 123
    zoom-simulate [--url URL] [--secret S] session --meeting-id 123
    zoom-simulate session --meeting-id 123 --lose guest-rejoined,ended --report-to STANDIN_URL

The secret defaults to ZOOM_WEBHOOK_SECRET (the first one when it lists several), the URL to
ZOOM_SIMULATE_URL or http://127.0.0.1:8080. Each event is printed with the service's answer; the
exit code is 0 when every answer was 2xx.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import os
import secrets
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import orjson

from devtools.fake_zoom import participant_record
from service.webhook.signature import expected_signature, url_validation
from service.zoom_payload import (
    MEETING_ENDED,
    MEETING_STARTED,
    OCCURRED_AT_FIELD,
    PARTICIPANT_EVENTS,
    PARTICIPANT_JOINED,
    PARTICIPANT_LEFT,
    STORED_EVENTS,
    URL_VALIDATION,
    format_time,
)

WEBHOOK_PATH = "/api/zoom/webhook"
DEFAULT_URL = "http://127.0.0.1:8080"
ACCOUNT_ID = "SimulatedAccount01"


@dataclass(frozen=True)
class Meeting:
    """The meeting instance the simulated events belong to."""

    meeting_id: str
    uuid: str
    host_id: str
    start: datetime
    minutes: int
    topic: str = "TeachTape session (simulated)"


@dataclass(frozen=True)
class Person:
    name: str
    email: str
    stable_id: str  # Zoom's participant `id`: the same across rejoins (the host's is host_id)

    def participant(self, user_id: str, **times: str) -> dict[str, Any]:
        """The participant object as Zoom sends it; user_id changes with every join."""
        return {
            "user_id": user_id,
            "user_name": self.name,
            "id": self.stable_id,
            "participant_uuid": derived_id("participant-uuid", self.stable_id, user_id),
            "email": self.email,
            "registrant_id": "",
            "participant_user_id": self.stable_id,
            "customer_key": "",
            "phone_number": "",
            **times,
        }


def derived_id(*parts: str, length: int = 22) -> str:
    """A stable Zoom-looking id (base64 letters) derived from parts."""
    digest = hashlib.sha256("/".join(parts).encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().replace("-", "A").replace("_", "B")[:length]


def meeting_uuid(meeting_id: str) -> str:
    """The default instance uuid: one per meeting id, so separate runs describe one meeting."""
    return derived_id("uuid", meeting_id) + "=="


def time_field(event: str) -> str:
    """The payload field service.zoom_payload reads the event's time from (join_time, ...)."""
    return OCCURRED_AT_FIELD[event][1]


def epoch_ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def event_body(
    event: str, meeting: Meeting, at: datetime, participant: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One meeting event shaped like Zoom's examples; event_ts trails the event a little."""
    obj: dict[str, Any] = {
        "id": meeting.meeting_id,
        "uuid": meeting.uuid,
        "host_id": meeting.host_id,
        "topic": meeting.topic,
        "type": 2,
        "start_time": format_time(meeting.start),
        "timezone": "UTC",
        "duration": meeting.minutes,
    }
    if event == MEETING_ENDED:
        obj[time_field(MEETING_ENDED)] = format_time(at)
    if participant is not None:
        obj["participant"] = participant
    return {
        "event": event,
        "event_ts": epoch_ms(at) + 350,
        "payload": {"account_id": ACCOUNT_ID, "object": obj},
    }


# The steps of a played session, in order; `--lose` names the ones Zoom never delivers.
SESSION_STEPS = (
    "started",
    "host-joined",
    "guest-joined",
    "guest-dropped",
    "guest-rejoined",
    "guest-left",
    "host-left",
    "ended",
)
DEFAULT_LATE = timedelta(minutes=2, seconds=13)


@dataclass(frozen=True)
class Visit:
    """One join of a person, until their leave: a webhook pair, and one record of Zoom's report."""

    person: Person
    user_id: str  # Zoom's per-join id: a rejoin gets a new one
    joined: datetime
    left: datetime
    reason: str  # why the leave happened, as Zoom words it
    steps: tuple[str, str]  # the SESSION_STEPS names of the join and the leave


def session_visits(
    meeting: Meeting, host: Person, guest: Person, late: timedelta = DEFAULT_LATE
) -> list[Visit]:
    """The host in from the start; the guest joins late, drops out, rejoins, leaves near the end."""
    t0, end = meeting.start, meeting.start + timedelta(minutes=meeting.minutes)
    guest_joins = t0 + late
    drop = max(t0 + timedelta(minutes=meeting.minutes * 0.4), guest_joins + timedelta(minutes=1))
    rejoin = drop + timedelta(seconds=75)
    guest_leaves = end - timedelta(seconds=40)
    return [
        Visit(host, "16778240", t0 + timedelta(seconds=4), end, "Host ended the meeting.",
              ("host-joined", "host-left")),
        Visit(guest, "16779264", guest_joins, drop, "Network connection error.",
              ("guest-joined", "guest-dropped")),
        Visit(guest, "16780288", rejoin, guest_leaves, "left the meeting.",
              ("guest-rejoined", "guest-left")),
    ]  # fmt: skip


def session_steps(meeting: Meeting, visits: Sequence[Visit]) -> dict[str, dict[str, Any]]:
    """Each step of the session (SESSION_STEPS) and the webhook body Zoom sends for it."""
    end = meeting.start + timedelta(minutes=meeting.minutes)
    steps = {
        "started": event_body(MEETING_STARTED, meeting, meeting.start),
        "ended": event_body(MEETING_ENDED, meeting, end),
    }
    for visit in visits:
        joined = visit.person.participant(
            visit.user_id, **{time_field(PARTICIPANT_JOINED): format_time(visit.joined)}
        )
        left = visit.person.participant(
            visit.user_id,
            **{time_field(PARTICIPANT_LEFT): format_time(visit.left)},
            leave_reason=f"{visit.person.name} left the meeting.<br>Reason: {visit.reason}",
        )
        steps[visit.steps[0]] = event_body(PARTICIPANT_JOINED, meeting, visit.joined, joined)
        steps[visit.steps[1]] = event_body(PARTICIPANT_LEFT, meeting, visit.left, left)
    return {name: steps[name] for name in SESSION_STEPS}


def session_events(
    meeting: Meeting, host: Person, guest: Person, late: timedelta = DEFAULT_LATE
) -> list[dict[str, Any]]:
    """A whole session: start, host and guest join, a guest drop-out and rejoin, leaves, end."""
    return list(session_steps(meeting, session_visits(meeting, host, guest, late)).values())


def session_report(meeting: Meeting, visits: Sequence[Visit]) -> dict[str, Any]:
    """The whole truth of the session as Zoom's API reports it once the meeting has ended.

    The body devtools/zoom_standin.py loads: the instance (uuid, start, end, host) and its
    participant report, one record per join, shaped by the fake Zoom's participant_record.
    """
    end = meeting.start + timedelta(minutes=meeting.minutes)
    records = [
        participant_record(
            name=visit.person.name,
            email=visit.person.email,
            join_time=visit.joined,
            leave_time=visit.left,
            user_id=visit.user_id,
            participant_user_id=visit.person.stable_id,
        )
        for visit in visits
    ]
    return {
        "uuid": meeting.uuid,
        "host_id": meeting.host_id,
        "topic": meeting.topic,
        "start_time": format_time(meeting.start),
        "end_time": format_time(end),
        "participants": records,
    }


def signed_headers(body: bytes, secret: str, now: float | None = None) -> dict[str, str]:
    """The headers Zoom sends: its timestamp (epoch seconds) and v0 signature."""
    timestamp = str(int(time.time() if now is None else now))
    return {
        "content-type": "application/json; charset=utf-8",
        "user-agent": "zoom-simulate (Zoom Marketplace/1.0a look-alike)",
        "x-zm-request-timestamp": timestamp,
        "x-zm-signature": expected_signature(secret, timestamp, body),
    }


def webhook_url(url: str) -> str:
    """Accept a base URL (http://host:port) or the full webhook URL."""
    parts = urlsplit(url)
    if parts.path in ("", "/"):
        parts = parts._replace(path=WEBHOOK_PATH)
    return urlunsplit(parts)


@dataclass(frozen=True)
class Answer:
    status: int
    body: str

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


async def deliver(
    session: aiohttp.ClientSession, url: str, secret: str, payload: dict[str, Any]
) -> Answer:
    """Sign payload as compact JSON (as Zoom sends it) and POST it."""
    body = orjson.dumps(payload)
    async with session.post(url, data=body, headers=signed_headers(body, secret)) as response:
        return Answer(response.status, (await response.text()).strip())


def delivery_label(payload: dict[str, Any]) -> str:
    """Name a payload on the simulator's output line: its event, participant and meeting."""
    obj = payload["payload"]["object"]
    person = obj.get("participant")
    who = f" {person.get('user_name')}" if isinstance(person, dict) else ""
    return f"{payload['event']}{who} meeting={obj.get('id')}"


async def send_all(
    session: aiohttp.ClientSession,
    url: str,
    secret: str,
    payloads: Sequence[dict[str, Any]],
    out: TextIO,
) -> bool:
    """Deliver payloads one after the other, printing each answer; True when all were 2xx."""
    ok = True
    for payload in payloads:
        answer = await deliver(session, url, secret, payload)
        ok &= answer.ok
        print(f"{delivery_label(payload)} -> {answer.status} {answer.body}", file=out)
    return ok


async def validate(session: aiohttp.ClientSession, url: str, secret: str, out: TextIO) -> bool:
    """Play Zoom's endpoint.url_validation challenge and check the encryptedToken."""
    plain_token = secrets.token_urlsafe(16)
    payload = {
        "payload": {"plainToken": plain_token},
        "event_ts": epoch_ms(datetime.now(UTC)),
        "event": URL_VALIDATION,
    }
    answer = await deliver(session, url, secret, payload)
    matches = False
    if answer.ok:
        try:
            matches = orjson.loads(answer.body) == url_validation(secret, plain_token)
        except orjson.JSONDecodeError:
            matches = False
    verdict = "encryptedToken matches" if matches else "encryptedToken does NOT match"
    print(f"{URL_VALIDATION} -> {answer.status} {answer.body} ({verdict})", file=out)
    return matches


def cli_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zoom-simulate",
        description="Sign and send realistic Zoom meeting webhooks to the service.",
    )
    parser.add_argument(
        "--url",
        default=os.environ.get("ZOOM_SIMULATE_URL", DEFAULT_URL),
        help="the service's base URL or its webhook URL (env ZOOM_SIMULATE_URL; "
        f"default {DEFAULT_URL})",
    )
    parser.add_argument(
        "--secret",
        default=None,
        help="the Secret Token to sign with (default: env ZOOM_WEBHOOK_SECRET, its first token)",
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("validate", help="play Zoom's URL validation (CRC) challenge")

    def meeting_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--meeting-id", required=True, help="Zoom meeting id (digits)")
        sub.add_argument("--uuid", help="meeting instance uuid (default: derived from the id)")
        sub.add_argument("--host-id", help="host's Zoom user id (default: derived from the id)")
        sub.add_argument("--topic", default=Meeting.topic)
        sub.add_argument("--minutes", type=int, default=60, help="meeting length (default 60)")
        sub.add_argument("--start", type=cli_time, help="when the meeting started, ISO 8601")

    event = commands.add_parser("event", help="send one meeting event")
    event.add_argument("event_type", choices=sorted(STORED_EVENTS))
    meeting_options(event)
    event.add_argument("--at", type=cli_time, help="when it happened, ISO 8601 (default now)")
    event.add_argument("--name", default="Athlete Alex", help="participant name")
    event.add_argument("--email", default="athlete@example.com", help="participant email")
    event.add_argument("--participant-id", help="participant's stable Zoom id")
    event.add_argument("--user-id", default="16779264", help="participant's per-join user_id")
    event.add_argument("--host", action="store_true", help="the participant is the host")

    session = commands.add_parser(
        "session", help="send a whole meeting, start to end (by default it has just ended)"
    )
    meeting_options(session)
    session.add_argument("--host-name", default="Coach Casey")
    session.add_argument("--host-email", default="coach@example.com")
    session.add_argument("--guest-name", default="Athlete Alex")
    session.add_argument("--guest-email", default="athlete@example.com")
    session.add_argument(
        "--late",
        type=float,
        help="minutes after the start the guest first joins (default 2.2: 2 min 13 s)",
    )
    session.add_argument(
        "--lose",
        type=lost_steps,
        default=frozenset(),
        help="steps Zoom never delivers, comma-separated, of: " + ", ".join(SESSION_STEPS),
    )
    session.add_argument(
        "--report-to",
        metavar="STANDIN_URL",
        help="also load the whole session, lost steps included, into the local Zoom stand-in "
        "(make run's, e.g. http://127.0.0.1:9090) as the report reconciliation reads",
    )
    return parser


def lost_steps(value: str) -> frozenset[str]:
    """Parse --lose: step names from SESSION_STEPS, comma-separated."""
    names = frozenset(name.strip() for name in value.split(",") if name.strip())
    unknown = sorted(names - set(SESSION_STEPS))
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown step(s) {', '.join(unknown)}; choose from {', '.join(SESSION_STEPS)}"
        )
    return names


def meeting_from_args(args: argparse.Namespace, start: datetime) -> Meeting:
    """The meeting the command line names, starting at start."""
    return Meeting(
        meeting_id=args.meeting_id,
        uuid=args.uuid or meeting_uuid(args.meeting_id),
        host_id=args.host_id or derived_id("host", args.meeting_id),
        start=start,
        minutes=args.minutes,
        topic=args.topic,
    )


def session_from_args(args: argparse.Namespace, now: datetime) -> tuple[Meeting, list[Visit]]:
    """The meeting and visits of the session a command line asks for."""
    start = args.start or now - timedelta(minutes=args.minutes)
    meeting = meeting_from_args(args, start)
    host = Person(args.host_name, args.host_email, meeting.host_id)
    guest = Person(args.guest_name, args.guest_email, derived_id("guest", args.guest_email))
    late = DEFAULT_LATE if args.late is None else timedelta(minutes=args.late)
    return meeting, session_visits(meeting, host, guest, late)


def payloads_for(args: argparse.Namespace, now: datetime) -> list[dict[str, Any]]:
    """The events a command line asks for (a session's lost steps left out)."""
    if args.command == "session":
        meeting, visits = session_from_args(args, now)
        steps = session_steps(meeting, visits)
        return [body for name, body in steps.items() if name not in args.lose]
    at = args.at or now
    if args.start is not None:
        start = args.start
    elif args.event_type == MEETING_STARTED:
        start = at
    else:
        start = at - timedelta(minutes=args.minutes)
    meeting = meeting_from_args(args, start)
    if args.event_type not in PARTICIPANT_EVENTS:
        return [event_body(args.event_type, meeting, at)]
    if args.host:
        stable_id = meeting.host_id
    else:
        stable_id = args.participant_id or derived_id("guest", args.email)
    person = Person(args.name, args.email, stable_id)
    details = person.participant(args.user_id, **{time_field(args.event_type): format_time(at)})
    return [event_body(args.event_type, meeting, at, details)]


class StandInError(Exception):
    """The Zoom stand-in refused the session's report, or could not be reached."""


async def play_session(
    session: aiohttp.ClientSession, url: str, secret: str, args: argparse.Namespace, out: TextIO
) -> bool:
    """Deliver a session's steps but the lost ones; load Zoom's report of it if asked."""
    meeting, visits = session_from_args(args, datetime.now(UTC).replace(microsecond=0))
    ok = True
    for name, payload in session_steps(meeting, visits).items():
        if name in args.lose:
            print(f"{delivery_label(payload)} -> LOST ({name}: never delivered)", file=out)
            continue
        answer = await deliver(session, url, secret, payload)
        ok &= answer.ok
        print(f"{delivery_label(payload)} -> {answer.status} {answer.body}", file=out)
    if args.report_to:
        await load_report(session, args.report_to, meeting, visits)
        print(
            f"Zoom's report of meeting {meeting.meeting_id} (instance {meeting.uuid}, "
            f"{len(visits)} participant records) loaded into the stand-in at {args.report_to}",
            file=out,
        )
    return ok


async def load_report(
    session: aiohttp.ClientSession, standin: str, meeting: Meeting, visits: Sequence[Visit]
) -> None:
    """Give the Zoom stand-in the session's whole truth, as Zoom's API will report it."""
    target = f"{standin.rstrip('/')}/dev/past_meetings/{meeting.meeting_id}"
    body = orjson.dumps(session_report(meeting, visits))
    try:
        async with session.post(
            target, data=body, headers={"content-type": "application/json"}
        ) as response:
            if response.status != 201:
                raise StandInError(
                    f"the Zoom stand-in at {standin} answered {response.status}: "
                    f"{(await response.text()).strip()}"
                )
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise StandInError(
            f"could not reach the Zoom stand-in at {standin} (is `make run` using it?): "
            f"{exc or type(exc).__name__}"
        ) from exc


def secret_from(args: argparse.Namespace, environ: Mapping[str, str]) -> str | None:
    raw = args.secret or environ.get("ZOOM_WEBHOOK_SECRET", "")
    first = raw.split(",")[0].strip()
    return first or None


async def run(argv: Sequence[str], out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Run the command line; 0 when every answer was 2xx (and validation matched)."""
    args = build_parser().parse_args(argv)
    secret = secret_from(args, os.environ)
    if secret is None:
        print("error: pass --secret or set ZOOM_WEBHOOK_SECRET", file=err)
        return 2
    url = webhook_url(args.url)
    timeout = aiohttp.ClientTimeout(total=args.timeout)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            if args.command == "validate":
                ok = await validate(session, url, secret, out)
            elif args.command == "session":
                ok = await play_session(session, url, secret, args, out)
            else:
                payloads = payloads_for(args, datetime.now(UTC).replace(microsecond=0))
                ok = await send_all(session, url, secret, payloads, out)
    except (aiohttp.ClientError, TimeoutError) as exc:
        print(f"error: could not reach {url}: {exc or type(exc).__name__}", file=err)
        return 1
    except StandInError as exc:
        print(f"error: {exc}", file=err)
        return 1
    return 0 if ok else 1


def main() -> None:
    sys.exit(asyncio.run(run(sys.argv[1:])))


if __name__ == "__main__":
    main()
