"""Prometheus metrics, one registry per app so that tests and replicas count on their own."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from service.keys import METRICS


@dataclass
class Metrics:
    registry: CollectorRegistry
    webhook_deliveries: Counter

    @classmethod
    def create(cls) -> Metrics:
        registry = CollectorRegistry()
        return cls(
            registry=registry,
            webhook_deliveries=Counter(
                "zoom_webhook_deliveries",
                "Zoom webhook deliveries received, by outcome.",
                ["outcome"],
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
