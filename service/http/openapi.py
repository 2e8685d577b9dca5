"""The OpenAPI 3 document of the whole HTTP interface, served at GET /openapi.json (no auth).

The document is data: service/http/openapi.yaml, read once when this module is imported.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

import orjson
import yaml
from aiohttp import web

routes = web.RouteTableDef()

JSON = "application/json"
# The C loader where PyYAML was built with libyaml: the pure-Python one is much slower.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_document() -> dict[str, Any]:
    """Read the document from openapi.yaml beside this module."""
    text = files(__package__).joinpath("openapi.yaml").read_text(encoding="utf-8")
    document = yaml.load(text, Loader=_Loader)  # noqa: S506 - a safe loader
    if not isinstance(document, dict):
        raise ValueError("openapi.yaml must hold a mapping")
    return document


DOCUMENT = load_document()
DOCUMENT_BYTES = orjson.dumps(DOCUMENT)


@routes.get("/openapi.json")
async def openapi_document(request: web.Request) -> web.Response:
    return web.Response(body=DOCUMENT_BYTES, content_type=JSON)
