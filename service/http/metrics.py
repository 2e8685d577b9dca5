"""Prometheus metrics, one registry per app so that tests and replicas count on their own."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from service.keys import METRICS

# Zoom gives up after 3 s; the buckets resolve the milliseconds that matter below that.
LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
# Every outcome of a webhook delivery; each is exported from the start, at 0 until it happens.
DeliveryOutcome = Literal[
    "stored",
    "duplicate",
    "ignored",
    "url_validation",
    "rejected_signature",
    "rejected_timestamp",
    "rejected_body",
    "rejected_overload",
    "unavailable",
]
DELIVERY_OUTCOMES: tuple[DeliveryOutcome, ...] = get_args(DeliveryOutcome)
# Every outcome of reconciling one booking (service/jobs/reconcile.py).
RECONCILE_OUTCOMES = ("recovered", "complete", "no_meeting", "pending", "failed")


@dataclass
class Metrics:
    registry: CollectorRegistry
    # zoom_webhook_deliveries_total, one counter per outcome, looked up once: labels() per
    # delivery costs a lock and a dict of label values each time.
    delivered: dict[DeliveryOutcome, Counter]
    ingest_seconds: Histogram
    ingest_batch_size: Histogram
    ingest_queue_depth: Gauge
    database_errors: Counter
    ingest_writer_restarts: Counter
    # zoom_reconciliations_total by outcome, zoom_reconcile_events_recovered_total, and
    # zoom_api_calls_total by endpoint and status (HTTP status, "timeout" or "unreachable").
    reconciliations: Counter
    events_recovered: Counter
    zoom_api_calls: Counter

    def count_zoom_call(self, endpoint: str, status: str) -> None:
        """Count one exchange with Zoom's API."""
        self.zoom_api_calls.labels(endpoint, status).inc()

    @classmethod
    def create(cls) -> Metrics:
        registry = CollectorRegistry()
        deliveries = Counter(
            "zoom_webhook_deliveries",
            "Zoom webhook deliveries received, by outcome.",
            ["outcome"],
            registry=registry,
        )
        reconciliations = Counter(
            "zoom_reconciliations",
            "Bookings reconciled with Zoom's API, by outcome.",
            ["outcome"],
            registry=registry,
        )
        for outcome in RECONCILE_OUTCOMES:
            reconciliations.labels(outcome)
        return cls(
            registry=registry,
            delivered={outcome: deliveries.labels(outcome) for outcome in DELIVERY_OUTCOMES},
            ingest_seconds=Histogram(
                "zoom_webhook_ingest_seconds",
                "Time from queueing a webhook event to its commit (or failure).",
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            ingest_batch_size=Histogram(
                "zoom_webhook_ingest_batch_size",
                "Events stored per group-commit transaction.",
                buckets=BATCH_BUCKETS,
                registry=registry,
            ),
            ingest_queue_depth=Gauge(
                "zoom_webhook_ingest_queue_depth",
                "Webhook events waiting for a writer.",
                registry=registry,
            ),
            database_errors=Counter(
                "zoom_webhook_database_errors",
                "Group-commit transactions that failed (each waiter of the batch got 503).",
                registry=registry,
            ),
            ingest_writer_restarts=Counter(
                "zoom_webhook_ingest_writer_restarts",
                "Ingest writers that failed unexpectedly and were started again (logged).",
                registry=registry,
            ),
            reconciliations=reconciliations,
            events_recovered=Counter(
                "zoom_reconcile_events_recovered",
                "Events stored from Zoom's API that no webhook delivery had recorded.",
                registry=registry,
            ),
            zoom_api_calls=Counter(
                "zoom_api_calls",
                "Exchanges with Zoom's REST API and OAuth endpoint, by endpoint and status.",
                ["endpoint", "status"],
                registry=registry,
            ),
        )


routes = web.RouteTableDef()


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS].registry)
    response = web.Response(body=body)
    response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    response.charset = "utf-8"
    return response
