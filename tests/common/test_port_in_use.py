"""A port already in use is a clear start-up error: no SO_REUSEPORT sharing, a message naming host:port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from mlos_common.bootstrap import ServerParts, StartupError, build_server
from mlos_common.config import ServiceSettings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_second_server_on_the_same_port_fails_clearly() -> None:
    port = _free_port()
    first, bound = build_server(ServiceSettings(grpc_port=port), [], ServerParts())
    assert bound == port
    await first.start()
    try:
        with pytest.raises(StartupError, match=f"cannot listen on 127.0.0.1:{port}: the address is already in use"):
            build_server(ServiceSettings(grpc_port=port), [], ServerParts())
    finally:
        await first.stop(None)


@pytest.fixture
def busy_port() -> int:
    """A port held by a listening socket for the test's duration."""
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    yield holder.getsockname()[1]
    holder.close()


def test_service_process_exits_with_the_reason(busy_port: int, tmp_path: Path) -> None:
    env = {**os.environ, "MLOS_REGISTRY_GRPC_PORT": str(busy_port), "MLOS_REGISTRY_METRICS_PORT": "-1",
           "MLOS_REGISTRY_DATA_DIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "mlos_registry"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert f"cannot listen on 127.0.0.1:{busy_port}: the address is already in use" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_mlos_up_shows_the_port_error_and_exits_non_zero(busy_port: int, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mlos_cli", "up", "--home", str(tmp_path), "--no-demo",
         "--registry-port", str(busy_port), "--registry-metrics-port", "-1"],
        capture_output=True, text=True, timeout=90,
    )
    assert proc.returncode != 0
    assert "registry did not start" in proc.stderr, proc.stderr
    assert f"127.0.0.1:{busy_port}: the address is already in use" in proc.stderr, proc.stderr
