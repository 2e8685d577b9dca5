"""The OpenAPI document: served without auth; schemathesis against the app finds no 5xx."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, settings
from schemathesis import checks

from devtools.fake_zoom import FakeZoom
from service.app import create_app
from service.bookings.attendance import DELIVERED_SOURCE, RECOVERED_SOURCE, evidence
from service.bookings.clicks import SESSION_ACTIONS
from service.bookings.reads import INCLUDE_RAW
from service.bookings.timeline import CLICK_KIND, ZOOM_EVENT_KIND
from service.http.metrics import DELIVERY_OUTCOMES
from service.http.openapi import DOCUMENT
from service.jobs.reconcile import FAILED, FINAL_OUTCOMES, PENDING
from service.zoom_payload import STORED_EVENTS
from tests.conftest import APP_TABLES, INTERNAL_TOKEN, zoom_config
from tests.processes import free_port
from tests.zoom_payloads import sign

schema = schemathesis.openapi.from_dict(DOCUMENT)
# The booking, request and coach id, and the meeting id, that the document's examples use.
EXAMPLE_ID = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
EXAMPLE_MEETING_ID = "85746065432"
WEBHOOK = "/api/zoom/webhook"
# No 5xx, and every answer as documented (status, content type, body schema). The negative-data
# checks are left out: webhook requests are signed here, which repairs the headers they drop.
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]


@dataclass
class LiveApp:
    url: str


@contextlib.contextmanager
def live_app(database_url: str) -> Iterator[LiveApp]:
    """The real app and a fake Zoom, served from a thread of their own on 127.0.0.1."""
    loop = asyncio.new_event_loop()
    port, zoom_port = free_port(), free_port()
    runners: list[web.AppRunner] = []

    async def start() -> None:
        fake = FakeZoom(url=f"http://127.0.0.1:{zoom_port}")
        # The booking in the document's examples has a meeting that Zoom knows.
        fake.meetings[EXAMPLE_MEETING_ID] = {
            "id": int(EXAMPLE_MEETING_ID),
            "join_url": f"https://zoom.example/j/{EXAMPLE_MEETING_ID}",
        }
        service = create_app(zoom_config(database_url, fake))
        for app, at in ((fake.make_app(), zoom_port), (service, port)):
            runner = web.AppRunner(app)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", at).start()
            runners.append(runner)

    async def stop() -> None:
        for runner in reversed(runners):
            await runner.cleanup()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=30)
    try:
        yield LiveApp(f"http://127.0.0.1:{port}")
    finally:
        asyncio.run_coroutine_threadsafe(stop(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


def seed_examples(database_url: str) -> None:
    """The booking, booking request and coach that the document's examples name."""
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO bookings (id, coach_id, athlete_id, status, zoom_meeting_id)"
            " VALUES (%s, %s, gen_random_uuid(), 'paid', %s)",
            (EXAMPLE_ID, EXAMPLE_ID, EXAMPLE_MEETING_ID),
        )
        conn.execute(
            "INSERT INTO booking_requests (id, coach_id, athlete_id, starts_at, duration_minutes,"
            " status) VALUES (%s, %s, gen_random_uuid(), now() + interval '1 day', 45, 'pending')",
            (EXAMPLE_ID, EXAMPLE_ID),
        )


@pytest.fixture(scope="module")
def live(database_url: str) -> Iterator[LiveApp]:
    seed_examples(database_url)
    try:
        with live_app(database_url) as app:
            yield app
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(f"TRUNCATE {', '.join(APP_TABLES)} RESTART IDENTITY CASCADE")


def test_openapi_json_is_served_without_auth(live: LiveApp):
    response = requests.get(f"{live.url}/openapi.json", timeout=10)

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    document = response.json()
    assert document["openapi"].startswith("3.")
    assert set(document["paths"]) >= {
        "/api/zoom/webhook",
        "/api/zoom-logs",
        "/api/requests/{request_id}/accept",
        "/api/bookings/{id}/zoom-events",
        "/api/bookings/{id}/zoom-logs",
        "/api/bookings/{id}/attendance",
        "/api/bookings/{id}/timeline",
        "/api/bookings/{id}/start-url",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
    }


def test_every_documented_route_is_served(live: LiveApp):
    app_routes = {
        (route.method, route.resource.canonical)
        for route in create_app(zoom_config("postgresql://unused/db", FakeZoom())).router.routes()
        if route.resource is not None and route.method != "HEAD"
    }
    documented = {
        (method.upper(), path) for path, item in DOCUMENT["paths"].items() for method in item
    }
    normalised = {(m, p.replace("{request_id}", "{id}")) for m, p in documented}
    assert normalised == {(m, p.replace("{request_id}", "{id}")) for m, p in app_routes}


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_operation_answers_a_server_error(case, live: LiveApp):
    kwargs = case.as_transport_kwargs(
        base_url=live.url, headers={"Authorization": f"Bearer {INTERNAL_TOKEN}"}
    )
    if case.path == WEBHOOK:
        # Sign what is sent, as Zoom does, so that the run gets past the signature check.
        # json, not orjson: generated bodies hold integers beyond 64 bits.
        body = json.dumps(kwargs.pop("json", None), separators=(",", ":")).encode()
        kwargs["data"] = body
        kwargs["headers"] = {**kwargs.get("headers", {}), **sign(body)}
    response = requests.request(**kwargs, timeout=30)
    case.validate_response(response, checks=CHECKS)


def enums(node: object, path: str = "") -> Iterator[tuple[str, list[object]]]:
    """Every enum in the document, with the path of the schema that holds it."""
    if isinstance(node, dict):
        if "enum" in node:
            yield path, node["enum"]
        for key, value in node.items():
            yield from enums(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            name = value.get("name") if isinstance(value, dict) else None
            yield from enums(value, f"{path}/{name or index}")


async def booking_statuses(db) -> set[str]:
    """The statuses the bookings table's check constraint allows."""
    definition = await db.fetchval(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = $1",
        "bookings_status_check",
    )
    return set(re.findall(r"'([^']+)'", definition))


# Events from nowhere, from deliveries, from Zoom's API, and from both.
EVIDENCE_CASES = ([], [DELIVERED_SOURCE], [RECOVERED_SOURCE], [DELIVERED_SOURCE, RECOVERED_SOURCE])


async def test_every_enum_in_the_document_is_the_codes_own(db):
    """Each enum matches the constant the code checks or answers with; a new enum needs one."""
    expected = {
        "status": {
            "/components/schemas/Booking": await booking_statuses(db),
            "/components/schemas/WebhookAnswer": None,  # checked below: delivery outcomes
        },
        "action_type": SESSION_ACTIONS,
        "event_type": STORED_EVENTS,
        "kind": {CLICK_KIND, ZOOM_EVENT_KIND},
        "include": {INCLUDE_RAW},
        "source": {DELIVERED_SOURCE, RECOVERED_SOURCE},
        "evidence": {evidence(sources) for sources in EVIDENCE_CASES},
        # The route answers these; a failed reconciliation is an error (502), not an outcome.
        "outcome": FINAL_OUTCOMES | {PENDING},
    }
    assert FAILED not in expected["outcome"]
    found = list(enums(DOCUMENT))
    assert found, "the document has no enums: the walk is broken"
    for path, values in found:
        field = path.rsplit("/", 2)[-2] if path.endswith("/schema") else path.rsplit("/", 1)[-1]
        assert field in expected, f"{path}: which constant of the code is this enum?"
        want = expected[field]
        if isinstance(want, dict):
            owner = path.removesuffix(f"/properties/{field}")
            assert owner in want, f"{path}: which constant of the code is this enum?"
            want = want[owner]
        if want is None:
            assert set(values) <= set(DELIVERY_OUTCOMES), path
            assert {"stored", "duplicate", "ignored"} <= set(values), path
        else:
            assert {v for v in values if v is not None} == set(want), path  # null: nullable
        assert len(values) == len(set(values)), f"{path}: a value is listed twice"


def test_the_examples_name_the_seeded_booking_and_meeting():
    text = json.dumps(DOCUMENT)
    assert EXAMPLE_ID in text
    assert EXAMPLE_MEETING_ID in text
