"""Health, readiness, metrics, and a database outage that heals without a restart."""

from __future__ import annotations

from dataclasses import replace

import pytest

from service.app import create_app
from service.jobs.migrate import apply_migrations
from tests.db_proxy import DatabaseProxy
from tests.test_webhook import assert_error
from tests.zoom_payloads import meeting_event, post_signed


async def test_healthz_answers_200(client):
    resp = await client.get("/healthz")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok"}


async def test_readyz_answers_200_when_migrated(client):
    resp = await client.get("/readyz")
    assert resp.status == 200
    assert await resp.json() == {"status": "ready"}


async def test_readyz_is_503_until_migrations_are_applied(
    aiohttp_client, config, empty_database_url
):
    client = await aiohttp_client(create_app(replace(config, database_url=empty_database_url)))
    body = await assert_error(await client.get("/readyz"), 503, "migrations_pending")
    assert "032_webhook_event_dedupe_and_linking" in body["message"]
    apply_migrations(empty_database_url)
    resp = await client.get("/readyz")
    assert resp.status == 200


@pytest.fixture
async def proxy(database_url):
    proxy = DatabaseProxy(database_url)
    proxy.url = await proxy.start()
    yield proxy
    await proxy.close()


@pytest.fixture
async def proxied_client(aiohttp_client, config, proxy, clean_database):
    return await aiohttp_client(create_app(replace(config, database_url=proxy.url)))


async def test_database_outage_is_503_everywhere_and_heals_without_restart(
    proxied_client, proxy, db
):
    client = proxied_client
    assert (await post_signed(client, meeting_event("meeting.started", event_ts=1))).status == 200
    assert (await client.get("/readyz")).status == 200

    proxy.cut()
    resp = await post_signed(client, meeting_event("meeting.started", event_ts=2), expect=503)
    body = await assert_error(resp, 503, "database_unavailable")
    assert "database" in body["message"]
    await assert_error(await client.get("/readyz"), 503, "database_unavailable")
    assert (await client.get("/healthz")).status == 200

    proxy.restore()
    resp = await post_signed(client, meeting_event("meeting.started", event_ts=2))
    assert resp.status == 200
    assert (await client.get("/readyz")).status == 200
    stored = await db.fetchval("SELECT count(*) FROM zoom_webhook_events")
    assert stored == 2


async def test_event_refused_during_an_outage_is_stored_when_zoom_retries(
    proxied_client, proxy, db
):
    payload = meeting_event("meeting.ended")
    proxy.cut()
    await post_signed(proxied_client, payload, expect=503)
    assert await db.fetchval("SELECT count(*) FROM zoom_webhook_events") == 0
    proxy.restore()
    assert (await post_signed(proxied_client, payload)).status == 200
    assert await db.fetchval("SELECT count(*) FROM zoom_webhook_events") == 1


async def test_metrics_count_webhook_deliveries_by_outcome(client):
    await post_signed(client, meeting_event("meeting.started"))
    await post_signed(client, meeting_event("meeting.started"))
    await post_signed(client, meeting_event("meeting.started"), secret="wrong", expect=401)
    await post_signed(client, {"event": "recording.completed"})
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.content_type == "text/plain"
    text = await resp.text()
    assert 'zoom_webhook_deliveries_total{outcome="stored"} 1.0' in text
    assert 'zoom_webhook_deliveries_total{outcome="duplicate"} 1.0' in text
    assert 'zoom_webhook_deliveries_total{outcome="rejected_signature"} 1.0' in text
    assert 'zoom_webhook_deliveries_total{outcome="ignored"} 1.0' in text


async def test_a_database_that_refuses_writes_is_503_for_webhooks_and_readyz(
    aiohttp_client, config, db
):
    """A failover that lands on a read-only server: reads work, ingest cannot write."""
    name = await db.fetchval("SELECT current_database()")
    await db.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
    try:
        client = await aiohttp_client(create_app(config))
        resp = await post_signed(client, meeting_event("meeting.started"), expect=503)
        await assert_error(resp, 503, "database_unavailable")
        assert resp.headers["Retry-After"]
        body = await assert_error(await client.get("/readyz"), 503, "ingest_unavailable")
        assert "25006" in body["message"]  # read_only_sql_transaction
    finally:
        await db.execute(f'ALTER DATABASE "{name}" RESET default_transaction_read_only')
    assert await db.fetchval("SELECT count(*) FROM zoom_webhook_events") == 0
