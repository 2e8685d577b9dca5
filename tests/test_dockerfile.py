"""The Dockerfile, checked without a container engine: its shape, and the commands it names run."""

from __future__ import annotations

import fnmatch
import importlib.metadata
import json
import shlex
import subprocess
from pathlib import Path

import psycopg
from dockerfile_parse import DockerfileParser
from packaging.requirements import Requirement

from service.db import migration_ids
from tests.processes import ROOT, python_argv, running_service, service_env

BASE_IMAGE = "python:3.11-slim"


def instructions() -> list[dict]:
    parser = DockerfileParser(path=str(ROOT / "Dockerfile"))
    return parser.structure


def stages() -> list[list[dict]]:
    """The instructions of each build stage, FROM first."""
    found: list[list[dict]] = []
    for instruction in instructions():
        if instruction["instruction"] == "FROM":
            found.append([])
        if found:
            found[-1].append(instruction)
    return found


def values(stage: list[dict], name: str) -> list[str]:
    return [i["value"] for i in stage if i["instruction"] == name]


def exec_form(value: str) -> list[str]:
    argv = json.loads(value)
    assert isinstance(argv, list) and all(isinstance(a, str) for a in argv)
    return argv


def healthcheck_argv() -> list[str]:
    (value,) = values(stages()[-1], "HEALTHCHECK")
    _options, _, command = value.partition("CMD ")
    return exec_form(command.strip())


def copy_sources(value: str) -> list[str]:
    words = [w for w in shlex.split(value) if not w.startswith("--")]
    return words[:-1]


def test_two_stages_both_on_python_slim():
    froms = [stage[0]["value"].split() for stage in stages()]
    assert len(froms) == 2
    assert all(words[0] == BASE_IMAGE for words in froms)


def test_dependencies_are_installed_before_the_code_is_copied():
    builder = stages()[0]
    steps = [(i["instruction"], i["value"]) for i in builder]
    install = next(n for n, (kind, v) in enumerate(steps) if kind == "RUN" and "pip install" in v)
    copied_before = [
        src for kind, v in steps[:install] if kind == "COPY" for src in copy_sources(v)
    ]
    assert copied_before == ["setup.cfg"]
    assert "-r requirements.txt" in steps[install][1]


def test_requirements_derived_in_the_builder_match_the_package_metadata(tmp_path: Path):
    builder = stages()[0]
    run = next(v for v in values(builder, "RUN") if "requirements.txt" in v)
    derive = run.split(">", 1)[0].strip()  # python -c "..." > requirements.txt
    (tmp_path / "setup.cfg").write_text((ROOT / "setup.cfg").read_text())
    out = subprocess.run(
        python_argv(shlex.split(derive)), cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout
    derived = {canonical(line) for line in out.splitlines() if line.strip()}
    metadata = importlib.metadata.requires("zoom-session-logs") or []
    assert derived == {canonical(r) for r in metadata if "extra ==" not in r}


def canonical(requirement: str) -> tuple[str, str, str]:
    parsed = Requirement(requirement)
    return parsed.name, str(parsed.specifier), str(parsed.marker)


def test_runtime_copies_venv_code_sql_and_migrations_and_runs_unprivileged():
    runtime = stages()[-1]
    copies = values(runtime, "COPY")
    assert any("--from=builder" in c and "/opt/venv" in c for c in copies)
    sources = {s.rstrip("/") for c in copies if "--from" not in c for s in copy_sources(c)}
    assert sources == {"service", "sql", "migrations"}
    (user,) = values(runtime, "USER")
    assert user.split(":")[0] not in {"root", "0"}
    assert values(runtime, "EXPOSE") == ["8080"]
    assert exec_form(values(runtime, "CMD")[-1]) == ["python", "-m", "service"]


def test_healthcheck_asks_healthz_with_python():
    argv = healthcheck_argv()
    assert argv[0] == "python"
    assert "/healthz" in " ".join(argv)


def test_dockerignore_is_an_allow_list_covering_every_copy():
    lines = [
        ln.strip()
        for ln in (ROOT / ".dockerignore").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    assert lines[0] == "*"
    allowed = [ln[1:].rstrip("/") for ln in lines if ln.startswith("!")]
    for stage in stages():
        for value in values(stage, "COPY"):
            if "--from" in value:
                continue
            for source in copy_sources(value):
                source = source.rstrip("/")
                assert any(fnmatch.fnmatch(source, pattern) for pattern in allowed), source


def test_migrate_one_off_command_applies_every_migration(empty_database_url: str):
    argv = python_argv(["python", "-m", "service", "migrate"])
    env = service_env(empty_database_url, port=0)
    first = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert f"applied {len(migration_ids())} migration(s)" in first.stdout
    with psycopg.connect(empty_database_url) as conn:
        applied = {r[0] for r in conn.execute("SELECT migration_id FROM _yoyo_migration")}
    assert applied == migration_ids()
    again = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
    assert again.returncode == 0
    assert "applied 0 migration(s)" in again.stdout


def test_cmd_serves_and_the_healthcheck_passes_then_fails_once_it_is_gone(database_url: str):
    (cmd,) = values(stages()[-1], "CMD")
    with running_service(database_url, argv=exec_form(cmd)) as service:
        healthy = subprocess.run(python_argv(healthcheck_argv()), env=service.env, timeout=10)
        assert healthy.returncode == 0
        assert service.terminate() == 0
    gone = subprocess.run(
        python_argv(healthcheck_argv()), env=service.env, capture_output=True, timeout=10
    )
    assert gone.returncode != 0
