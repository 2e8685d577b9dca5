"""The Dockerfile's runtime stage laid out on disk, for tests on a machine without an engine.

`build_image(dest)` does what the runtime stage does, instruction by instruction, into a
directory standing for the image's `/`: the files each `COPY` takes from the build context (the
repository filtered by `.dockerignore`), `ENV`, `WORKDIR`, `USER`, `CMD` and `HEALTHCHECK`. The
builder's venv is the one thing it cannot rebuild offline: it stands in with a venv that sees
the test venv's packages but not the editable install of this checkout, so the image's code is
only what the `COPY`s put there.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from dockerfile_parse import DockerfileParser

ROOT = Path(__file__).resolve().parent.parent
NEVER_CONTEXT = {".git", ".venv", "var"}  # never in a build context worth walking


@dataclass
class Image:
    root: Path  # the image's /
    workdir: Path
    env: dict[str, str]
    cmd: list[str]
    healthcheck: list[str]
    user: tuple[int, int]

    @property
    def runs_as_user(self) -> bool:
        """Whether tests can run the image's commands as its USER: as root, and when the
        stand-in venv's interpreter is one that user may run."""
        python = (self.root / "opt" / "venv" / "bin" / "python").resolve()
        return os.geteuid() == 0 and others_can_run(python)

    def argv(self, argv: list[str]) -> list[str]:
        """Resolve the command's program on the image's PATH, as the container would."""
        program = shutil.which(argv[0], path=self.env["PATH"])
        assert program is not None, f"{argv[0]} is not on the image's PATH"
        return [program, *argv[1:]]

    def files(self) -> set[str]:
        """Every file under the working directory, relative to it."""
        return {str(p.relative_to(self.workdir)) for p in self.workdir.rglob("*") if p.is_file()}


def runtime_stage() -> list[dict]:
    """The instructions of the Dockerfile's last stage, FROM first."""
    stage: list[dict] = []
    for instruction in DockerfileParser(path=str(ROOT / "Dockerfile")).structure:
        if instruction["instruction"] == "FROM":
            stage = []
        stage.append(instruction)
    return stage


def ignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    """.dockerignore as (excludes, pattern) pairs; the last rule matching a path decides."""
    rules = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line.lstrip("!").strip("/")
        rules.append((not negated, re.compile(glob_regex(pattern))))
    return rules


def glob_regex(pattern: str) -> str:
    """Docker's pattern syntax: * and ? stay within a path segment, ** crosses segments."""
    out = ""
    for token in re.split(r"(\*\*/|\*\*|\*|\?)", pattern):
        out += {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(
            token, re.escape(token)
        )
    return f"^{out}$"


def in_context(relative: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Whether .dockerignore lets relative (a file's path) into the build context."""
    parts = relative.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for excludes, pattern in rules:
        if any(pattern.match(prefix) for prefix in prefixes):
            excluded = excludes
    return not excluded


def build_context() -> set[str]:
    """The files (relative paths) the build context holds."""
    rules = ignore_rules()
    found = set()
    for directory, subdirs, names in os.walk(ROOT):
        here = Path(directory).relative_to(ROOT)
        subdirs[:] = [d for d in subdirs if not (here == Path(".") and d in NEVER_CONTEXT)]
        for name in names:
            relative = str(here / name) if here != Path(".") else name
            if in_context(relative, rules):
                found.add(relative)
    return found


def others_can_run(program: Path) -> bool:
    """Whether a user other than the owner can run program (its directories and itself o+x)."""
    return all(p.stat().st_mode & stat.S_IXOTH for p in [program, *program.parents])


def stand_in_python() -> Path:
    """A Python 3.11 the image's user can run: this one, else another on PATH (e.g. /usr/bin)."""
    candidates = [Path(sys._base_executable)]
    candidates += [Path(p) for p in (shutil.which("python3.11"),) if p]
    candidates.append(Path("/usr/bin/python3.11"))
    for candidate in candidates:
        program = candidate.resolve()
        if program.exists() and others_can_run(program):
            return program
    return Path(sys._base_executable)  # only its owner can run it: see Image.runs_as_user


def stand_in_venv(path: Path) -> None:
    """A venv seeing the test venv's packages through a .pth line (no editable install)."""
    python = stand_in_python()
    subprocess.run([str(python), "-m", "venv", "--without-pip", str(path)], check=True)
    purelib = Path(sysconfig.get_paths()["purelib"])
    site = path / "lib" / "python3.11" / "site-packages"
    # A path listed in a .pth file is searched, but .pth files in it are not run: the editable
    # finder of this checkout (a .pth in the test venv) stays out.
    (site / "dependencies.pth").write_text(f"{purelib}\n")


def build_image(dest: Path) -> Image:
    """Lay out the Dockerfile's runtime stage under dest (the image's /)."""
    context = build_context()
    image_path = lambda value: dest / value.lstrip("/")  # noqa: E731
    workdir = dest
    env: dict[str, str] = {}
    user: tuple[int, int] | None = None
    cmd: list[str] = []
    healthcheck: list[str] = []
    for instruction in runtime_stage():
        kind, value = instruction["instruction"], instruction["value"]
        if kind == "WORKDIR":
            workdir = image_path(value) if value.startswith("/") else workdir / value
            workdir.mkdir(parents=True, exist_ok=True)
        elif kind == "ENV":
            for pair in shlex.split(value):
                name, _, setting = pair.partition("=")
                env[name] = setting
        elif kind == "COPY" and "--from=builder" in value:
            *_, target = shlex.split(value)
            stand_in_venv(image_path(target))
        elif kind == "COPY":
            *sources, target = shlex.split(value)
            for source in sources:
                copy_from_context(context, source.strip("/"), workdir / target)
        elif kind == "RUN" and "useradd" in value:
            # No /etc/passwd entry can be made here; LOGNAME gives getpass.getuser() (which yoyo
            # calls) the name the useradd gives that uid in the image.
            env["LOGNAME"] = shlex.split(value.split("useradd", 1)[1].split("&&")[0])[-1]
        elif kind == "USER":
            uid, _, gid = value.partition(":")
            assert uid.isdigit(), f"USER {value}: use numeric ids, the image has no passwd entry"
            user = (int(uid), int(gid or uid))
        elif kind == "CMD":
            cmd = json.loads(value)
        elif kind == "HEALTHCHECK":
            healthcheck = json.loads(value.partition("CMD ")[2])
    assert user is not None, "the runtime stage sets no USER: it would run as root"
    return Image(dest, workdir, image_env(env, dest), cmd, healthcheck, user)


def copy_from_context(context: set[str], source: str, target: Path) -> None:
    """COPY source target: a file, or a directory's contents; fails when the context lacks it."""
    files = [f for f in context if f == source or f.startswith(f"{source}/")]
    assert files, f"COPY {source}: not in the build context (.dockerignore)"
    for name in files:
        relative = Path(name).relative_to(source) if name != source else Path(Path(name).name)
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, destination)


def image_env(env: dict[str, str], root: Path) -> dict[str, str]:
    """The image's ENV with its absolute paths moved under root, and the host's PATH after."""
    result = {}
    for name, value in env.items():
        parts = value.replace("$PATH", "").split(":")
        moved = [str(root / p.lstrip("/")) if p.startswith("/") else p for p in parts]
        result[name] = ":".join(p for p in moved if p)
    result["PATH"] = f"{result.get('PATH', '')}:{os.environ['PATH']}".strip(":")
    return result
