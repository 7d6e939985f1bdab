"""The deploy checks' paths and tools: the repository's deploy/ folder and where the ops tools are.

hadolint and kubernetes-validate are pip dependencies (the `ops` extra); helm and docker-compose
come from scripts/install_ops_tools.py (`make ops-tools`, which `make test` runs). A missing tool
skips its tests on a developer's machine and fails them in CI (CI=true), so CI never passes
without running them.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
VENV_BIN = Path(sys.executable).parent


def find_tool(name: str, *places: Path) -> Path:
    """The tool's path: beside this Python, in `places`, or on PATH."""
    for candidate in (VENV_BIN / name, *(p / name for p in places)):
        if candidate.is_file():
            return candidate
    found = shutil.which(name)
    if found:
        return Path(found)
    why = f"{name} is not installed: run `make ops-tools` (scripts/install_ops_tools.py)"
    if os.environ.get("CI"):
        pytest.fail(why)
    pytest.skip(why)
