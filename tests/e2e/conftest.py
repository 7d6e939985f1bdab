"""Whole-suite tests: `mlos up` as a user runs it, driven by the unmodified tritonclient.

tritonclient ships its own generated `inference.*` protobufs; ours (`mlos.inference`) define the
same wire names, and both cannot live in one process. So this directory runs in its own pytest
invocation (`make test-e2e`) and never imports `mlos.inference` (nor mlos_scheduler or
mlos_cli.frontdoor, which import it); the suite runs in child processes.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from proc_testkit import alive, children_of

_OUR_PROTOS = "mlos.inference.grpc_service_pb2"
_SEPARATE = (
    "tests/e2e imports tritonclient, whose generated `inference` protobufs collide with "
    f"{_OUR_PROTOS}, which is already imported in this process: "
    "run tests/e2e in its own pytest invocation: make test-e2e "
    "(or `pytest tests --ignore=tests/e2e` and then `pytest tests/e2e`)"
)

if _OUR_PROTOS in sys.modules:
    raise pytest.UsageError(_SEPARATE)

READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0
E2E_DIR = Path(__file__).resolve().parent


def pytest_collectstart(collector) -> None:
    """Fails before importing an e2e test module into a process that already holds our protos."""
    path = getattr(collector, "path", None)
    if path is not None and (Path(path).resolve() == E2E_DIR or E2E_DIR in Path(path).resolve().parents):
        if _OUR_PROTOS in sys.modules:
            raise pytest.UsageError(_SEPARATE)


def pytest_collection_modifyitems(config, items) -> None:
    """Refuse a mixed run in either order, and give the e2e tests room for the suite start-up."""
    e2e = [i for i in items if E2E_DIR in Path(str(i.path)).resolve().parents]
    if e2e and (len(e2e) != len(items) or _OUR_PROTOS in sys.modules):
        raise pytest.UsageError(_SEPARATE)
    for item in e2e:
        item.add_marker(pytest.mark.e2e)
        if item.get_closest_marker("timeout") is None:
            # The first test also pays for the session fixture: start-up is bounded by READY_TIMEOUT_S.
            item.add_marker(pytest.mark.timeout(READY_TIMEOUT_S + 60))


@dataclass
class Suite:
    """A running `mlos up --json`: its ready line and where it keeps things."""

    info: dict
    home: Path
    process: subprocess.Popen
    lines: queue.Queue | None = None  # stdout lines after the ready line (supervisor events); None at EOF

    def next_event(self, kind: str, timeout_s: float) -> dict:
        """The next JSON line on stdout whose "event" is `kind` (other lines are skipped)."""
        assert self.lines is not None
        deadline = time.monotonic() + timeout_s
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                break
            assert line is not None, "mlos up closed its stdout (exited)"
            event = json.loads(line)
            if event.get("event") == kind:
                return event
        pytest.fail(f"no {kind!r} event from mlos up within {timeout_s:.0f}s")

    @property
    def scheduler_addr(self) -> str:
        return self.info["scheduler_addr"]


def _log_tail(home: Path, stderr_path: Path, lines: int = 40) -> str:
    parts = []
    for path in [stderr_path, *sorted((home / "logs").glob("*.log"))]:
        try:
            text = path.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            continue
        parts.append(f"--- {path} (last {len(text)} lines) ---\n" + "\n".join(text))
    return "\n".join(parts) or "(no logs)"


def mlos_up_process(home: Path, extra_args: tuple[str, ...] = (), env: dict[str, str] | None = None) -> Iterator[Suite]:
    """Start `python -m mlos_cli up --json --ephemeral-ports --home HOME` (with `env` added to
    this process's environment); yield once ready.

    Fails with the tail of the logs when the ready line does not come within READY_TIMEOUT_S or
    the launcher exits first. On exit sends SIGTERM and requires a clean stop (exit code 0 within
    STOP_TIMEOUT_S, no service process left behind).
    """
    home.mkdir(parents=True, exist_ok=True)
    stderr_path = home / "mlos-up.stderr"
    with stderr_path.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "mlos_cli", "up", "--json", "--ephemeral-ports", "--home", str(home), *extra_args],
            stdout=subprocess.PIPE, stderr=stderr, stdin=subprocess.DEVNULL, text=True,
            env={**os.environ, **(env or {})},
        )
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:  # keeps draining stdout after the ready line so the pipe never fills
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, name="mlos-up-stdout", daemon=True).start()
    try:
        info = _wait_ready(process, lines, home, stderr_path)
        children = children_of(process.pid)
        if Path("/proc/self/stat").is_file():
            assert len(children) >= 4, f"expected the four services as children of mlos up, found {children}"
        yield Suite(info=info, home=home, process=process, lines=lines)
    except BaseException:
        if process.poll() is None:
            process.kill()
            process.wait()
        raise
    process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        pytest.fail(f"mlos up did not stop within {STOP_TIMEOUT_S:.0f}s of SIGTERM\n{_log_tail(home, stderr_path)}")
    assert code == 0, f"mlos up exited with {code} after SIGTERM\n{_log_tail(home, stderr_path)}"
    assert "mlos: stopped" in stderr_path.read_text(errors="replace"), _log_tail(home, stderr_path)
    left = [pid for pid in children if alive(pid)]
    assert not left, f"service processes still running after mlos up stopped: {left}"


def _wait_ready(process: subprocess.Popen, lines: queue.Queue, home: Path, stderr_path: Path) -> dict:
    deadline = time.monotonic() + READY_TIMEOUT_S
    seen = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            pytest.fail(f"mlos up not ready within {READY_TIMEOUT_S:.0f}s; stdout: {seen}\n{_log_tail(home, stderr_path)}")
        try:
            line = lines.get(timeout=remaining)
        except queue.Empty:
            continue
        if line is None:
            code = process.wait()
            pytest.fail(f"mlos up exited with {code} before ready; stdout: {seen}\n{_log_tail(home, stderr_path)}")
        seen.append(line.rstrip())
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("event") == "ready":
            return event


@pytest.fixture(scope="session")
def suite(tmp_path_factory) -> Iterator[Suite]:
    yield from mlos_up_process(tmp_path_factory.mktemp("mlos-home"))


@pytest.fixture(scope="session")
def demo_models(suite):
    """name -> DemoModel; the same files `mlos up` registered (mlos_cli.demo needs only numpy)."""
    from mlos_cli.demo import prepare_demo_models

    return {m.name: m for m in prepare_demo_models(suite.home / "demo")}


@pytest.fixture(scope="session")
def ort_sessions(demo_models):
    """name -> in-process onnxruntime session on the demo model's file: the reference answers."""
    import onnxruntime

    return {name: onnxruntime.InferenceSession(str(m.path), providers=["CPUExecutionProvider"])
            for name, m in demo_models.items()}


@pytest.fixture(scope="session")
def client(suite):
    import tritonclient.grpc as grpcclient

    c = grpcclient.InferenceServerClient(url=suite.scheduler_addr)
    yield c
    c.close()


@pytest.fixture
def good_infer(client, demo_models, ort_sessions):
    """One known-good iris request, checked against ONNX Runtime."""
    import numpy as np
    from e2e_testkit import make_inputs

    def run() -> None:
        arrays = demo_models["iris"].sample_inputs(batch=2, seed=75)
        result = client.infer("iris", make_inputs(arrays))
        want = ort_sessions["iris"].run(["label"], arrays)[0]
        np.testing.assert_array_equal(result.as_numpy("label"), want)

    return run
