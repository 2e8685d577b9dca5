"""Signing helpers and Zoom meeting event bodies shaped like the examples in shared/zoom."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from service.webhook.signature import expected_signature
from tests.conftest import WEBHOOK_SECRET

EXAMPLES = Path(__file__).parent / "zoom_examples"


def sign(body: bytes, ts: int | str | None = None, secret: str = WEBHOOK_SECRET) -> dict[str, str]:
    """Headers Zoom would send with body."""
    timestamp = str(int(time.time()) if ts is None else ts)
    return {
        "content-type": "application/json; charset=utf-8",
        "x-zm-request-timestamp": timestamp,
        "x-zm-signature": expected_signature(secret, timestamp, body),
    }


def encode(payload: dict[str, Any] | bytes) -> bytes:
    return payload if isinstance(payload, bytes) else orjson.dumps(payload)


async def post_signed(
    client: TestClient,
    payload: dict[str, Any] | bytes,
    *,
    expect: int | None = 200,
    **sign_overrides: Any,
) -> ClientResponse:
    """POST payload signed as Zoom would, and check the status is expect (None: any status)."""
    body = encode(payload)
    resp = await client.post("/api/zoom/webhook", data=body, headers=sign(body, **sign_overrides))
    if expect is not None and resp.status != expect:
        raise AssertionError(
            f"the webhook answered {resp.status}, not {expect}: {await resp.text()}"
        )
    return resp


def example(name: str) -> bytes:
    """A stored example body, byte for byte."""
    return (EXAMPLES / name).read_bytes()


def meeting_event(
    event: str,
    *,
    meeting_id: str | int = "85746065432",
    uuid: str = "4444AAAiAAAAAiAiAiiAii==",
    host_id: str = "x1yCzABCDEfg23HiJKl4mN",
    event_ts: int = 1626230691572,
    participant: dict[str, Any] | None = None,
    **object_fields: Any,
) -> dict[str, Any]:
    meeting: dict[str, Any] = {
        "id": meeting_id,
        "uuid": uuid,
        "host_id": host_id,
        "topic": "TeachTape session",
        "type": 2,
        "start_time": "2021-07-13T21:44:51Z",
        "timezone": "UTC",
        "duration": 60,
    }
    meeting.update(object_fields)
    if participant is not None:
        meeting["participant"] = participant
    return {
        "event": event,
        "event_ts": event_ts,
        "payload": {"account_id": "AAAAAABBBB", "object": meeting},
    }


def participant(
    name: str = "Jill Chill",
    *,
    email: str = "jchill@example.com",
    stable_id: str = "iFxeBPYun6SAiWUzBcEkX",
    user_id: str = "16778240",
    participant_uuid: str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    value = {
        "user_id": user_id,
        "user_name": name,
        "id": stable_id,
        "participant_uuid": participant_uuid or f"uuid-{stable_id}",
        "email": email,
        "participant_user_id": stable_id,
    }
    value.update(fields)
    return value
