"""Fixtures for the deploy checks: the ops tools, found by deploy_testkit.find_tool."""

from __future__ import annotations

from pathlib import Path

import pytest
from deploy_testkit import VENV_BIN, find_tool


@pytest.fixture(scope="session")
def helm() -> Path:
    return find_tool("helm")


@pytest.fixture(scope="session")
def compose() -> Path:
    return find_tool("docker-compose", VENV_BIN.parent / "compose" / "bin")


@pytest.fixture(scope="session")
def hadolint() -> Path:
    return find_tool("hadolint")


@pytest.fixture(scope="session")
def kubernetes_validate() -> Path:
    return find_tool("kubernetes-validate")
