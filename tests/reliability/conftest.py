"""A whole suite as real processes (the launcher `mlos up` uses, ephemeral ports, the demo models),
shared by the reliability tests of one module, and what they read off it: each service's address,
pid, open file descriptors and resident memory."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from mlos_cli.launcher import Suite, SuiteConfig

SERVICES = ("registry", "predictor", "executor", "scheduler")


@dataclass
class Running:
    suite: Suite
    home: Path

    def addr(self, name: str) -> str:
        return self.suite.addr(name)

    def pid(self, name: str) -> int:
        return self.suite.children[name].process.pid

    def alive(self) -> dict[str, bool]:
        return {n: self.suite.children[n].process.returncode is None for n in SERVICES}

    def open_fds(self, name: str) -> int:
        return len(os.listdir(f"/proc/{self.pid(name)}/fd"))

    def rss_bytes(self, name: str) -> int:
        pages = int(Path(f"/proc/{self.pid(name)}/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def running(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Running]:
    home = tmp_path_factory.mktemp("suite")
    suite = Suite(SuiteConfig(home=home, ephemeral_ports=True, http_port=-1, predictor_http_port=-1))
    await suite.start()
    try:
        yield Running(suite, home)
    finally:
        await suite.stop()
