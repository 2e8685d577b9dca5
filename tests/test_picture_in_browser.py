"""The attendance picture opened in a real browser: headless Chromium renders it, we look."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from aiohttp import web
from PIL import Image

from devtools.browser import BrowserUnavailable, ensure_chromium, screenshot, svg_size
from service.bookings.picture import DELIVERED, RECOVERED, attendance_svg
from service.bookings.reads import PICTURE_HEADERS
from tests.test_attendance_picture import (
    SCHEDULE,
    assert_standalone,
    booked,
    drawn,
    person,
    summary,
)
from tests.test_reading_attendance import click, deliver, session

# The screenshot's window is larger than the picture: the transparent rest shows its real size.
MARGIN = 100


@pytest.fixture(scope="session")
def chromium() -> Iterator[str]:
    """Chromium's path; installed here when missing. In CI a missing browser is a failure."""
    try:
        yield ensure_chromium()
    except BrowserUnavailable as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the browser test: {exc}")
        pytest.skip(f"browser test skipped: {exc}")


def rgb(hex_colour: str) -> tuple[int, int, int]:
    value = int(hex_colour.lstrip("#"), 16)
    return value >> 16, value >> 8 & 0xFF, value & 0xFF


def near(pixel: tuple[int, ...], colour: tuple[int, int, int], tolerance: int = 12) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel[:3], colour, strict=True))


def answering(body: bytes, headers: Mapping[str, str]) -> web.Application:
    """An app that answers GET /picture with body and the picture route's own headers."""
    kept = {name: headers[name] for name in ("Content-Type", "Content-Security-Policy")}
    kept["X-Content-Type-Options"] = headers["X-Content-Type-Options"]

    async def picture(request: web.Request) -> web.Response:
        return web.Response(body=body, headers=kept)

    app = web.Application()
    app.router.add_get("/picture", picture)
    return app


async def test_chromium_draws_a_session_at_its_size(
    chromium: str, client, db, auth_headers, tmp_path: Path, aiohttp_server
):
    booking = await booked(db, "111")
    await click(db, booking, "start_meeting", "2026-09-21T14:59:30Z")
    await click(db, booking, "join_meeting", "2026-09-21T15:01:40Z")
    await deliver(client, session("111"))
    resp = await client.get(f"/api/bookings/{booking['id']}/attendance.svg", headers=auth_headers)
    assert resp.status == 200
    body = await resp.read()
    svg = assert_standalone(body)
    picture, png = tmp_path / "attendance.svg", tmp_path / "attendance.png"
    picture.write_bytes(body)
    # Chromium cannot send the bearer token: it fetches the route's answer, body and headers
    # (content type, Content-Security-Policy) as they were, from a server of the test's own.
    served = await aiohttp_server(answering(body, resp.headers))

    rendered = await asyncio.to_thread(
        screenshot, chromium, picture, png, margin=MARGIN, url=str(served.make_url("/picture"))
    )

    assert "parsererror" not in rendered.dom, rendered.dom[:2000]
    assert rendered.dom.lstrip().startswith("<svg")
    assert "Jill Chill" in rendered.dom
    width, height = svg_size(body)
    image = Image.open(png).convert("RGBA")
    assert image.size == (width + MARGIN, height + MARGIN)
    # Drawn at its own size: opaque exactly over the picture, transparent around it.
    assert image.getchannel("A").getbbox() == (0, 0, width, height)
    # The bars are there, in the colour of delivered evidence, where the SVG puts them.
    for bar in drawn(svg, "bar"):
        x = float(bar.get("x", "")) + float(bar.get("width", "")) / 2
        y = float(bar.get("y", "")) + float(bar.get("height", "")) / 2
        assert near(image.getpixel((round(x), round(y))), rgb(DELIVERED)), (x, y)
    colours = image.crop((0, 0, width, height)).getcolors(maxcolors=1 << 16)
    assert colours is not None and len(colours) > 20  # text, bars, lanes: not a blank page


async def test_chromium_shows_recovered_evidence_hatched(
    chromium: str, tmp_path: Path, aiohttp_server
):
    body = attendance_svg(summary([person(0, source="zoom_api")], ended=True), SCHEDULE)
    picture, png = tmp_path / "recovered.svg", tmp_path / "recovered.png"
    picture.write_bytes(body)
    # Served as the route serves it: the hatching is a pattern the CSP must not stop.
    headers = {"Content-Type": "image/svg+xml", **PICTURE_HEADERS}
    served = await aiohttp_server(answering(body, headers))
    url = str(served.make_url("/picture"))
    await asyncio.to_thread(screenshot, chromium, picture, png, url=url)
    [bar] = drawn(assert_standalone(body), "bar")
    x0, y0 = float(bar.get("x", "")), float(bar.get("y", ""))
    box = (round(x0) + 4, round(y0) + 4, round(x0) + 40, round(y0) + 10)
    strip = Image.open(png).convert("RGB").crop(box)
    pixels = [strip.getpixel((x, y)) for x in range(strip.width) for y in range(strip.height)]
    # Stripes: both the hatching's colour and white, so it reads without colour too.
    assert any(near(p, rgb(RECOVERED), 40) for p in pixels)
    assert any(near(p, (255, 255, 255), 40) for p in pixels)
