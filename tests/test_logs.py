"""Structured logs: one JSON line per request, a request id, and no secrets or participant PII."""

from __future__ import annotations

import asyncio
import io
import logging
import re
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from service.http.access_log import (
    ACCESS_LOGGER,
    AccessLines,
    JsonFormatter,
    configure_logging,
    request_id_var,
)
from tests.conftest import INTERNAL_TOKEN, WEBHOOK_SECRET
from tests.processes import http, running_service
from tests.zoom_payloads import meeting_event, participant, post_signed, sign


@pytest.fixture
def access_lines(caplog):
    """The access log records, each formatted as the JSON line the service writes."""
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    formatter = JsonFormatter()

    def lines() -> list[dict]:
        return [
            orjson.loads(formatter.format(r)) for r in caplog.records if r.name == ACCESS_LOGGER
        ]

    return lines


async def test_each_request_is_one_line_with_the_callers_request_id(client, access_lines):
    response = await client.get("/healthz", headers={"X-Request-Id": "req-42.abc"})

    assert response.status == 200
    assert response.headers["X-Request-Id"] == "req-42.abc"
    (line,) = access_lines()
    assert line["level"] == "info"
    assert line["msg"] == "request"
    assert (line["method"], line["path"], line["status"]) == ("GET", "/healthz", 200)
    assert line["request_id"] == "req-42.abc"
    assert isinstance(line["latency_ms"], float) and line["latency_ms"] >= 0


async def test_a_request_id_is_made_when_none_or_an_odd_one_is_sent(client, access_lines):
    plain = await client.get("/healthz")
    odd = await client.get("/healthz", headers={"X-Request-Id": "two words\tand a tab"})

    made = [plain.headers["X-Request-Id"], odd.headers["X-Request-Id"]]
    assert all(len(rid) == 32 and int(rid, 16) >= 0 for rid in made)
    assert made[0] != made[1]
    assert [line["request_id"] for line in access_lines()] == made


async def test_errors_are_logged_with_their_status_and_carry_the_request_id(client, access_lines):
    missing = await client.get("/nowhere", headers={"X-Request-Id": "r-404"})
    no_token = await client.post("/api/zoom-logs", json={}, headers={"X-Request-Id": "r-401"})

    assert missing.status == 404 and missing.headers["X-Request-Id"] == "r-404"
    assert no_token.headers["X-Request-Id"] == "r-401"
    statuses = {line["request_id"]: line["status"] for line in access_lines()}
    assert statuses["r-404"] == 404
    assert statuses["r-401"] == 401


async def test_webhook_line_has_event_and_meeting_but_no_participant_or_secret(
    client, db, access_lines
):
    person = participant("Jill Chill", email="jchill@example.com")
    payload = meeting_event("meeting.participant_joined", meeting_id=98765, participant=person)

    response = await post_signed(client, payload)

    assert response.status == 200
    (line,) = access_lines()
    assert line["event"] == "meeting.participant_joined"
    assert line["meeting_id"] == "98765"
    assert line["status"] == 200
    text = orjson.dumps(line).decode()
    for secret_or_pii in ("Jill", "jchill@example.com", WEBHOOK_SECRET, "v0="):
        assert secret_or_pii not in text


async def test_a_refused_webhook_is_logged_without_its_signature(client, access_lines):
    body = orjson.dumps(meeting_event("meeting.started"))
    headers = sign(body, secret="not-the-secret")

    response = await client.post("/api/zoom/webhook", data=body, headers=headers)

    assert response.status == 401
    (line,) = access_lines()
    assert (line["status"], line["path"]) == (401, "/api/zoom/webhook")
    # An unverified body is not parsed, not even for the log line: its contents are unknown.
    assert "event" not in line
    assert headers["x-zm-signature"] not in orjson.dumps(line).decode()


def test_formatter_writes_exceptions_and_the_current_request_id():
    stream = io.StringIO()
    configure_logging("INFO", stream=stream)
    token = request_id_var.set("rid-1")
    try:
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("service.test").exception("it failed for %s", "a reason")
    finally:
        request_id_var.reset(token)
        logging.getLogger().handlers.clear()
    (line,) = [orjson.loads(text) for text in stream.getvalue().splitlines()]
    assert line["msg"] == "it failed for a reason"
    assert line["level"] == "error"
    assert line["request_id"] == "rid-1"
    assert "ValueError: boom" in line["exc"]


def test_the_running_service_writes_json_lines_without_secrets_or_pii(database_url, clean_database):
    person = participant("Jill Chill", email="jchill@example.com")
    body = orjson.dumps(meeting_event("meeting.participant_left", participant=person))
    with running_service(database_url) as service:
        status, headers, _ = http(
            f"{service.url}/readyz",
            headers={"X-Request-Id": "from-test", "Authorization": f"Bearer {INTERNAL_TOKEN}"},
        )
        assert (status, headers["X-Request-Id"]) == (200, "from-test")
        status, _, _ = http(f"{service.url}/api/zoom/webhook", data=body, headers=sign(body))
        assert status == 200
        assert service.terminate() == 0
        output = service.logs()
    lines = [orjson.loads(text) for text in output.splitlines()]
    access = [line for line in lines if line["logger"] == ACCESS_LOGGER]
    assert [(a["path"], a["status"]) for a in access if a["request_id"] == "from-test"] == [
        ("/readyz", 200)
    ]
    assert access[-1]["event"] == "meeting.participant_left"
    for secret_or_pii in (WEBHOOK_SECRET, INTERNAL_TOKEN, "Jill", "jchill@example.com"):
        assert secret_or_pii not in output


async def test_access_lines_reach_the_stream_in_one_batch_within_a_tenth_of_a_second():
    lines = AccessLines()
    lines.stream = io.BytesIO()
    for n in range(3):
        lines.write({"method": "GET", "path": "/healthz", "status": 200, "request_id": f"r{n}"})
    assert lines.stream.getvalue() == b""  # not one write per request

    await asyncio.sleep(AccessLines.FLUSH_SECONDS * 2)

    written = [orjson.loads(text) for text in lines.stream.getvalue().splitlines()]
    assert [line["request_id"] for line in written] == ["r0", "r1", "r2"]
    assert {(line["logger"], line["level"], line["msg"]) for line in written} == {
        (ACCESS_LOGGER, "info", "request")
    }


async def test_access_line_times_are_utc_with_milliseconds_like_other_lines():
    lines = AccessLines()
    lines.stream = io.BytesIO()
    before = datetime.now(UTC)
    lines.write({"path": "/healthz", "status": 200})
    lines.flush()
    after = datetime.now(UTC)

    shown = orjson.loads(lines.stream.getvalue())["ts"]
    other = orjson.loads(JsonFormatter().format(logging.makeLogRecord({"msg": "x"})))["ts"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", shown)
    assert len(shown) == len(other) and shown[-6:] == other[-6:]
    assert before - timedelta(milliseconds=1) <= datetime.fromisoformat(shown) <= after


async def test_a_full_access_line_buffer_is_written_at_once():
    lines = AccessLines()
    lines.stream = io.BytesIO()
    padding = "x" * 1000
    for n in range(AccessLines.MAX_BUFFER // 1000 + 1):
        lines.write({"path": "/healthz", "status": 200, "request_id": f"r{n}", "pad": padding})
    assert len(lines.stream.getvalue()) >= AccessLines.MAX_BUFFER
    lines.flush()
