"""GET /metrics: every webhook outcome, and the ingest figures, move when they happen."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from service.app import create_app
from tests.conftest import test_config
from tests.test_ingest import blocked_service, unreachable_database_url  # noqa: F401
from tests.zoom_payloads import meeting_event, post_signed, sign

STARTED = "meeting.started"


async def samples(client) -> dict[tuple[str, tuple], float]:
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.content_type == "text/plain"
    found = {}
    for family in text_string_to_metric_families(await resp.text()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


async def deliveries(client, outcome: str) -> float:
    key = ("zoom_webhook_deliveries_total", (("outcome", outcome),))
    return (await samples(client)).get(key, 0.0)


async def post_raw(client, body: bytes, headers: dict[str, str]):
    return await client.post("/api/zoom/webhook", data=body, headers=headers)


async def store_once(client, expect: int = 200):
    return await post_signed(client, meeting_event(STARTED), expect=expect)


async def store_twice(client):
    await post_signed(client, meeting_event(STARTED))
    return await post_signed(client, meeting_event(STARTED))


async def ignored(client):
    return await post_signed(client, {"event": "meeting.created", "payload": {}})


async def url_validation(client):
    return await post_signed(
        client, {"event": "endpoint.url_validation", "payload": {"plainToken": "abc"}}
    )


async def bad_signature(client):
    body = b'{"event": "meeting.started"}'
    return await post_raw(client, body, sign(body, secret="not-the-secret"))


async def stale_timestamp(client):
    body = b'{"event": "meeting.started"}'
    return await post_raw(client, body, sign(body, ts=1_000_000_000))


async def bad_body(client):
    body = b"{not json"
    return await post_raw(client, body, sign(body))


@pytest.mark.parametrize(
    ("deliver", "outcome", "status"),
    [
        (store_once, "stored", 200),
        (store_twice, "duplicate", 200),
        (ignored, "ignored", 200),
        (url_validation, "url_validation", 200),
        (bad_signature, "rejected_signature", 401),
        (stale_timestamp, "rejected_timestamp", 401),
        (bad_body, "rejected_body", 400),
    ],
)
async def test_each_delivery_outcome_is_counted(client, db, deliver, outcome, status):
    before = await deliveries(client, outcome)
    resp = await deliver(client)
    assert resp.status == status
    assert await deliveries(client, outcome) == before + 1


async def test_every_outcome_is_exported_at_zero_before_it_happens(client):
    found = await samples(client)
    outcomes = {
        dict(labels)["outcome"]: value
        for (name, labels), value in found.items()
        if name == "zoom_webhook_deliveries_total"
    }
    assert outcomes == {
        "stored": 0,
        "duplicate": 0,
        "ignored": 0,
        "url_validation": 0,
        "rejected_signature": 0,
        "rejected_timestamp": 0,
        "rejected_body": 0,
        "rejected_overload": 0,
        "unavailable": 0,
    }


async def test_database_outage_counts_unavailable_and_a_database_error(
    aiohttp_client, clean_database
):
    client = await aiohttp_client(create_app(test_config(unreachable_database_url())))
    await store_once(client, expect=503)
    assert await deliveries(client, "unavailable") == 1
    assert (await samples(client))[("zoom_webhook_database_errors_total", ())] == 1


async def test_full_queue_counts_rejected_overload_and_shows_the_queue_depth(
    blocked_service,  # noqa: F811 (the fixture imported above)
    db,
):
    client, in_flight, queued = blocked_service
    found = await samples(client)
    assert found[("zoom_webhook_ingest_queue_depth", ())] == 1
    await post_signed(client, meeting_event(STARTED, meeting_id="79", uuid="shed=="), expect=503)
    assert await deliveries(client, "rejected_overload") == 1
    await db.execute("SELECT pg_advisory_unlock_all()")
    assert [(await in_flight).status, (await queued).status] == [200, 200]
    assert (await samples(client))[("zoom_webhook_ingest_queue_depth", ())] == 0


async def test_stored_events_show_in_the_latency_and_batch_size_histograms(client, db):
    for event_ts in (10**12, 10**12 + 1, 10**12 + 2):
        assert (await post_signed(client, meeting_event(STARTED, event_ts=event_ts))).status == 200
    found = await samples(client)
    assert found[("zoom_webhook_ingest_seconds_count", ())] == 3
    assert found[("zoom_webhook_ingest_seconds_sum", ())] > 0
    assert found[("zoom_webhook_ingest_batch_size_sum", ())] == 3
    assert found[("zoom_webhook_ingest_batch_size_bucket", (("le", "+Inf"),))] >= 1
