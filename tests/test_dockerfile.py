"""The image, without a container engine: its runtime stage laid out on disk and run for real.

tests/image.py builds what the Dockerfile's runtime stage builds (only the files its COPYs take
from the .dockerignore'd context, its ENV, WORKDIR and USER); these tests then run the image's
CMD, HEALTHCHECK and migrate command from there, as the image's user, against the test database.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import psycopg
import pytest
from dockerfile_parse import DockerfileParser
from packaging.requirements import Requirement

from service.db import migration_ids
from tests.conftest import INTERNAL_TOKEN, WEBHOOK_SECRET
from tests.db_proxy import DatabaseProxy
from tests.image import ROOT, Image, build_image
from tests.processes import free_port, python_argv
from tests.zoom_payloads import encode, meeting_event, sign


@pytest.fixture(scope="module")
def image() -> Iterator[Image]:
    root = Path(tempfile.mkdtemp(prefix="image-"))
    root.chmod(0o755)  # the image's user must reach it
    try:
        yield build_image(root)
    finally:
        shutil.rmtree(root)


@contextlib.asynccontextmanager
async def via_tcp(database_url: str) -> AsyncIterator[str]:
    """The database on 127.0.0.1, which the image's user can reach (the Unix socket it cannot)."""
    proxy = DatabaseProxy(database_url)
    try:
        yield await proxy.start()
    finally:
        await proxy.close()


def as_image_user(image: Image) -> dict:
    """subprocess arguments that run a command as the image's USER (when we may switch)."""
    if not image.runs_as_user:
        return {}
    uid, gid = image.user
    return {"user": uid, "group": gid, "extra_groups": []}


async def run_in_image(image: Image, argv: list[str], **env: str) -> tuple[int, str]:
    """Run a command in the image (its cwd, env and user); return the exit code and output."""
    process = await asyncio.create_subprocess_exec(
        *image.argv(argv),
        cwd=image.workdir,
        env={**image.env, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        **as_image_user(image),
    )
    out, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    return process.returncode or 0, out.decode()


async def wait_for_healthz(session: aiohttp.ClientSession, url: str, process) -> None:
    for _ in range(400):
        if process.returncode is not None:
            raise AssertionError(f"the image's CMD exited with {process.returncode}")
        try:
            async with session.get(f"{url}/healthz") as resp:
                if resp.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.05)
    raise AssertionError("the image's CMD never answered /healthz")


def test_the_image_runs_as_an_unprivileged_user(image: Image):
    assert image.user[0] != 0


async def test_the_images_cmd_serves_stores_and_passes_its_healthcheck(
    image: Image, database_url: str, clean_database, db
):
    port = free_port()
    async with via_tcp(database_url) as tcp_url:
        process = await asyncio.create_subprocess_exec(
            *image.argv(image.cmd),
            cwd=image.workdir,
            env={**image.env, **container_env(tcp_url, port)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            **as_image_user(image),
        )
        await check_serving(image, process, port, db)
    gone, _ = await run_in_image(image, image.healthcheck, PORT=str(port))
    assert gone != 0


def container_env(database_url: str, port: int) -> dict[str, str]:
    """What `docker run -e ...` would add: the service's settings (dev-only secrets)."""
    return {
        "DATABASE_URL": database_url,
        "ZOOM_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "INTERNAL_API_TOKENS": INTERNAL_TOKEN,
        "HOST": "127.0.0.1",
        "PORT": str(port),
    }


async def check_serving(image: Image, process, port: int, db) -> None:
    """/healthz, /readyz, a stored event and the HEALTHCHECK; then SIGTERM stops it cleanly."""
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            await wait_for_healthz(session, url, process)
            async with session.get(f"{url}/readyz") as resp:
                assert resp.status == 200  # the migrations it ships match the database
            body = encode(meeting_event("meeting.started", meeting_id="31337"))
            async with session.post(f"{url}/api/zoom/webhook", data=body, headers=sign(body)) as r:
                assert (r.status, (await r.json())["status"]) == (200, "stored")
        stored = await db.fetchval(
            "SELECT count(*) FROM zoom_webhook_events WHERE zoom_meeting_id = '31337'"
        )
        assert stored == 1
        healthy, output = await run_in_image(image, image.healthcheck, PORT=str(port))
        assert healthy == 0, output
    finally:
        process.terminate()
        assert await asyncio.wait_for(process.wait(), timeout=30) == 0


async def test_the_image_ships_the_service_but_no_development_tools(image: Image):
    probe = "import service.app, service.zoom_payload; import {}"
    for module in ("devtools", "devtools.devdb", "tests", "bench"):
        code, output = await run_in_image(image, ["python", "-c", probe.format(module)])
        assert code != 0 and "ModuleNotFoundError" in output, (module, output)
    shipped = {name.split("/")[0] for name in image.files()}
    assert shipped == {"service", "sql", "migrations"}


async def test_the_images_migrate_command_applies_every_migration_once(
    image: Image, empty_database_url: str
):
    argv = ["python", "-m", "service", "migrate"]
    async with via_tcp(empty_database_url) as url:
        code, output = await run_in_image(image, argv, DATABASE_URL=url)
        assert code == 0, output
        assert f"applied {len(migration_ids())} migration(s)" in output
        again, output = await run_in_image(image, argv, DATABASE_URL=url)
        assert (again, "applied 0 migration(s)" in output) == (0, True)
    with psycopg.connect(empty_database_url) as conn:
        applied = {r[0] for r in conn.execute("SELECT migration_id FROM _yoyo_migration")}
    assert applied == migration_ids()


# ---- the builder stage: what only the file can show (no engine to build it) ---------------


def builder_stage() -> list[dict]:
    """The instructions of the Dockerfile's first stage, FROM first."""
    stage: list[dict] = []
    for instruction in DockerfileParser(path=str(ROOT / "Dockerfile")).structure:
        if instruction["instruction"] == "FROM":
            if stage:
                break
            stage = [instruction]
        elif stage:
            stage.append(instruction)
    return stage


def test_dependencies_are_installed_before_the_code_is_copied():
    """The dependency layer stays cached until setup.cfg changes, not on every code change."""
    steps = [(i["instruction"], i["value"]) for i in builder_stage()]
    install = next(n for n, (kind, v) in enumerate(steps) if kind == "RUN" and "pip install" in v)
    copied = [w for kind, v in steps[:install] if kind == "COPY" for w in shlex.split(v)[:-1]]
    assert copied == ["setup.cfg"]


def test_requirements_derived_in_the_builder_match_the_package_metadata(tmp_path: Path):
    run = next(v for k, v in ((i["instruction"], i["value"]) for i in builder_stage())
               if k == "RUN" and "requirements.txt" in v)  # fmt: skip
    derive = run.split(">", 1)[0].strip()  # python -c "..." > requirements.txt
    shutil.copy(ROOT / "setup.cfg", tmp_path / "setup.cfg")
    out = subprocess.run(
        python_argv(shlex.split(derive)),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    derived = {canonical(line) for line in out.splitlines() if line.strip()}
    metadata = importlib.metadata.requires("zoom-session-logs") or []
    assert derived == {canonical(r) for r in metadata if "extra ==" not in r}


def canonical(requirement: str) -> tuple[str, str, str]:
    parsed = Requirement(requirement)
    return parsed.name, str(parsed.specifier), str(parsed.marker)
