"""Headless Chromium for development: open a picture, screenshot it, read back its DOM.

Debian's `chromium` package; `ensure_chromium()` installs it with apt-get when it is missing and
we are root (the browser test and `make demo` call it). Every run gets a fresh profile and the
flags that keep Chromium off the network: it only ever opens a local file.

    python -m devtools.browser PICTURE.svg OUT.png     # screenshot an SVG at its own size
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

PACKAGES = ("chromium", "fonts-dejavu-core")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)
APT_TIMEOUT_SECONDS = 900
RUN_TIMEOUT_SECONDS = 90
SVG_SIZE = re.compile(rb'<svg[^>]*\swidth="(\d+)"[^>]*\sheight="(\d+)"')


class BrowserUnavailable(Exception):
    """Chromium is not installed and cannot be installed here; the message says why."""


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


def ensure_chromium() -> str:
    """Return Chromium's path, installing Debian's package (as root, with apt-get) if missing."""
    path = find_chromium()
    if path:
        return path
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise BrowserUnavailable(
            "headless Chromium is not installed, and installing it needs root and apt-get: "
            f"run `apt-get install {' '.join(PACKAGES)}` as root"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES]
    try:
        first = subprocess.run(install, env=env, capture_output=True, timeout=APT_TIMEOUT_SECONDS)
        if first.returncode != 0:  # an old or missing package list: refresh it once
            subprocess.run(
                ["apt-get", "update", "-q"], env=env, capture_output=True,
                timeout=APT_TIMEOUT_SECONDS, check=True,
            )  # fmt: skip
            subprocess.run(
                install, env=env, capture_output=True, timeout=APT_TIMEOUT_SECONDS, check=True
            )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        raise BrowserUnavailable(f"apt-get could not install {', '.join(PACKAGES)}: {exc}") from exc
    path = find_chromium()
    if not path:
        raise BrowserUnavailable("apt-get installed chromium, yet no chromium is on PATH")
    return path


@dataclass(frozen=True)
class Rendered:
    dom: str  # the document as Chromium parsed it (a parse error shows as <parsererror>)
    log: str  # what Chromium wrote on stderr


def run_chromium(chromium: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    """Run headless Chromium with a fresh, throwaway profile."""
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        return subprocess.run(
            [chromium, *FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            timeout=RUN_TIMEOUT_SECONDS,
            cwd=profile,
            check=False,
        )


def svg_size(svg: bytes) -> tuple[int, int]:
    """The width and height an SVG document declares on its root."""
    match = SVG_SIZE.search(svg)
    if match is None:
        raise ValueError("the SVG declares no width and height on its root")
    return int(match.group(1)), int(match.group(2))


def screenshot(
    chromium: str, picture: Path, out: Path, *, margin: int = 0, url: str | None = None
) -> Rendered:
    """Open picture in Chromium and save a PNG screenshot to out.

    The window is the picture's size plus margin, with a transparent background, so the
    opaque pixels of the screenshot show exactly where, and how large, the picture was drawn.
    url, when given, is where Chromium fetches the same picture (served with its headers).
    """
    width, height = svg_size(picture.read_bytes())
    url = url or picture.resolve().as_uri()
    shot = run_chromium(
        chromium,
        "--default-background-color=00000000",
        f"--window-size={width + margin},{height + margin}",
        f"--screenshot={out.resolve()}",
        url,
    )
    if shot.returncode != 0 or not out.exists():
        raise RuntimeError(f"chromium failed ({shot.returncode}): {shot.stderr.decode()[-2000:]}")
    dom = run_chromium(chromium, "--dump-dom", url)
    if dom.returncode != 0:
        raise RuntimeError(f"chromium failed ({dom.returncode}): {dom.stderr.decode()[-2000:]}")
    return Rendered(dom.stdout.decode(), shot.stderr.decode() + dom.stderr.decode())


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m devtools.browser PICTURE.svg OUT.png", file=sys.stderr)
        return 2
    try:
        chromium = ensure_chromium()
    except BrowserUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    rendered = screenshot(chromium, Path(argv[0]), Path(argv[1]))
    if "parsererror" in rendered.dom:
        print("error: Chromium could not parse the picture", file=sys.stderr)
        return 1
    print(f"screenshot written to {argv[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
