"""The servers under test, each started fresh on loopback and stopped afterwards.

- ``mlos``: ``mlos up --json --ephemeral-ports --no-demo --home TMP``, then every model registered
  and loaded with ``mlos models register``. Processes: the launcher and its four services.
  ``mlos-2w``: the same with ``--scheduler-workers 2`` (the scheduler's supervisor and workers
  are all counted as ``scheduler``).
- ``mlserver-inproc`` / ``mlserver``: MLServer 1.7.1 from its own virtualenv, started through
  ``mlserver_pa_compat.py`` (adds Triton's ModelConfig for perf_analyzer) on free ports, ready
  once ServerReady and every ModelReady answer true. Processes: the main one and its workers.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from suite_process import SuiteStartError, log_tail, running_suite, stop_process_group

from mlos.inference import grpc_service_pb2 as pb
from mlos.inference import grpc_service_pb2_grpc as pbg
from peers.models import PeerModel, prepare_mlserver_repo
from peers.procstat import cmdline, descendants

PEERS_DIR = Path(__file__).resolve().parent
MLSERVER_PYTHON = PEERS_DIR.parent / ".peers" / "mlserver" / "bin" / "python"
READY_POLL_S = 0.25


@dataclass
class Server:
    """A running server: its gRPC address and its processes by label (for CPU accounting)."""

    name: str
    addr: str
    procs: dict[str, list[int]]
    info: dict = field(default_factory=dict)


def _label_by_module(root: int, root_label: str) -> dict[str, list[int]]:
    """The root process and its descendants, labelled by ``-m mlos_<name>`` (or 'other')."""
    procs: dict[str, list[int]] = {root_label: [root]}
    for pid in descendants(root):
        args = cmdline(pid)
        module = args[args.index("-m") + 1] if "-m" in args[:-1] else ""
        label = module.removeprefix("mlos_") if module.startswith("mlos_") else "other"
        procs.setdefault(label, []).append(pid)
    return procs


@contextlib.contextmanager
def mlos_server(home: Path, models: list[PeerModel], startup_timeout_s: float, workers: int = 1) -> Iterator[Server]:
    home.mkdir(parents=True, exist_ok=True)
    extra = ("--scheduler-workers", str(workers)) if workers > 1 else ()  # older suites lack the flag
    with running_suite(home, startup_timeout_s, ("--no-demo", *extra)) as suite:
        registry = suite.ready_event["registry_addr"]
        for model in models:
            cmd = [sys.executable, "-m", "mlos_cli", "models", "register", model.name,
                   str(model.path()), "--registry", registry, "--addr", suite.scheduler_addr]  # fmt: skip
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=startup_timeout_s)
            if done.returncode != 0:
                raise SuiteStartError(f"registering {model.name} in MLOS failed: {done.stderr}")
        info = {**suite.ready_event, "registered": [m.name for m in models]}
        yield Server("mlos", suite.scheduler_addr, _label_by_module(suite.pid, "mlos-up"), info)


def _free_ports(count: int) -> list[int]:
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


def _wait_mlserver(proc: subprocess.Popen, addr: str, names: list[str], timeout_s: float,
                   log_path: Path) -> None:  # fmt: skip
    deadline = time.monotonic() + timeout_s
    with grpc.insecure_channel(addr) as channel:
        stub = pbg.GRPCInferenceServiceStub(channel)
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SuiteStartError(f"MLServer exited with {proc.returncode}:\n{log_tail(log_path)}")
            with contextlib.suppress(grpc.RpcError):
                if stub.ServerReady(pb.ServerReadyRequest(), timeout=2).ready and all(
                    stub.ModelReady(pb.ModelReadyRequest(name=n), timeout=2).ready for n in names
                ):
                    return
            time.sleep(READY_POLL_S)  # polling a starting server, not synchronising a test
    raise SuiteStartError(f"MLServer not ready within {timeout_s:.0f} s:\n{log_tail(log_path)}")


@contextlib.contextmanager
def mlserver_server(
    name: str, home: Path, models: list[PeerModel], startup_timeout_s: float
) -> Iterator[Server]:
    """``name`` is 'mlserver-inproc' (parallel_workers 0) or 'mlserver' (the default: 1 worker)."""
    if not MLSERVER_PYTHON.is_file():
        raise SuiteStartError(f"{MLSERVER_PYTHON} missing: run bench/peers/setup.sh")
    repo = prepare_mlserver_repo(home / name, models, in_process=name == "mlserver-inproc")
    grpc_port, http_port, metrics_port = _free_ports(3)
    env = {**os.environ, "PYTHONPATH": str(PEERS_DIR), "MLSERVER_GRPC_PORT": str(grpc_port),
           "MLSERVER_HTTP_PORT": str(http_port), "MLSERVER_METRICS_PORT": str(metrics_port)}  # fmt: skip
    addr = f"127.0.0.1:{grpc_port}"
    log_path = home / f"{name}.log"
    cmd = [str(MLSERVER_PYTHON), str(PEERS_DIR / "mlserver_pa_compat.py"), str(repo)]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    try:
        _wait_mlserver(proc, addr, [m.name for m in models], startup_timeout_s, log_path)
        procs: dict[str, list[int]] = {"mlserver": [proc.pid]}
        for pid in descendants(proc.pid):
            kind = "resource-tracker" if "resource_tracker" in " ".join(cmdline(pid)) else "worker"
            procs.setdefault(f"mlserver-{kind}", []).append(pid)
        yield Server(name, addr, procs, {"repo": str(repo), "log": str(log_path)})
    finally:
        stop_process_group(proc, name)


def start(name: str, home: Path, models: list[PeerModel], startup_timeout_s: float):
    """The context manager for server ``name`` (mlos, mlos-2w, mlserver-inproc or mlserver)."""
    if name == "mlos":
        return mlos_server(home / "mlos", models, startup_timeout_s)
    if name == "mlos-2w":  # MLOS with two scheduler workers behind its ports
        return mlos_server(home / "mlos-2w", models, startup_timeout_s, workers=2)
    return mlserver_server(name, home, models, startup_timeout_s)
