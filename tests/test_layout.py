"""The service package is the product alone: development tools stay outside it."""

from __future__ import annotations

import subprocess
import sys

# Every module of the service, imported in a fresh interpreter; then what came along with them.
PROBE = """
import importlib, pkgutil, sys
import service
for module in pkgutil.walk_packages(service.__path__, "service."):
    importlib.import_module(module.name)
loaded = {name.split(".")[0] for name in sys.modules}
print(" ".join(sorted(loaded & {"devtools", "tests", "bench", "pgserver", "pytest"})))
"""


def test_no_service_module_imports_the_development_tools():
    """Nothing under service/ starts PostgreSQL (devtools.devdb, pgserver) or fakes Zoom."""
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == ""
