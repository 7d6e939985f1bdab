"""deploy/Dockerfile, checked without a Docker engine (none exists on these machines; the image
itself is not built here): hadolint passes, every file it COPYs exists and the .dockerignore lets
it through, the runtime stage runs as a non-root user, and every service it can start imports and
has a health check the image's `mlos health` can run."""

from __future__ import annotations

import fnmatch
import importlib
import inspect
import re
import shlex
import subprocess
from pathlib import Path

import pytest
from deploy_testkit import DEPLOY, ROOT

from mlos_cli.health_cmd import SERVICES
from mlos_common.service_main import run_service

DOCKERFILE = DEPLOY / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def copied_sources() -> list[str]:
    sources = []
    for word, args in instructions():
        if word == "COPY" and "--from=" not in args:
            sources += [a for a in shlex.split(args) if not a.startswith("--")][:-1]
    return sources


def test_hadolint_passes(hadolint: Path) -> None:
    result = subprocess.run([str(hadolint), str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_would_catch_a_bad_line(hadolint: Path, tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text(DOCKERFILE.read_text() + "\nRUN cd /tmp && apt-get install curl\n")
    result = subprocess.run([str(hadolint), str(bad)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "DL3003" in result.stdout, result.stdout


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore rule: the last matching pattern wins; `!` re-includes."""
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern.lstrip("!").rstrip("/")
        if body == "**" or fnmatch.fnmatch(path, body) or path.startswith(body + "/"):
            ignored = not negate
    return ignored


def test_every_copied_file_exists_and_is_in_the_build_context() -> None:
    patterns = [p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines() if p.strip() and not p.startswith("#")]
    sources = copied_sources()
    assert {"pyproject.toml", "protos", "services", "cli", "scripts/install_llama.sh"} <= set(sources), sources
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
        assert not _ignored(source, patterns), f"COPY {source}: excluded by .dockerignore"
    assert _ignored(".venv/bin/python", patterns) and _ignored("tests/conftest.py", patterns)


def test_runtime_runs_as_a_non_root_user_with_a_health_check() -> None:
    steps = instructions()
    runtime = steps[max(i for i, (w, a) in enumerate(steps) if w == "FROM" and a.endswith("AS runtime")):]
    users = [a for w, a in runtime if w == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), users
    assert any(w == "HEALTHCHECK" and '["mlos", "health"]' in a for w, a in runtime)
    assert any(w == "VOLUME" and "/var/lib/mlos" in a for w, a in runtime)
    env = " ".join(a for w, a in runtime if w == "ENV")
    for setting in ("MLOS_REGISTRY_DATA_DIR=/var/lib/mlos/", "MLOS_EXECUTOR_CACHE_DIR=/var/lib/mlos/",
                    "MLOS_PREDICTOR_DATA_DIR=/var/lib/mlos/", "MLOS_SERVICE="):
        assert setting in env, setting
    cmd = [a for w, a in runtime if w == "CMD"][-1]
    assert "mlos_${MLOS_SERVICE}" in cmd


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_each_service_entrypoint_imports(service: str) -> None:
    """What `python -m mlos_<svc>` runs in the image, and the settings `mlos health` reads."""
    module = importlib.import_module(f"mlos_{service}.__main__")  # its body runs only as __main__
    assert module.run_service is run_service and inspect.iscoroutinefunction(module.start)
    settings_module, settings_class = SERVICES[service]
    assert getattr(importlib.import_module(settings_module), settings_class)().grpc_port > 0
