"""`mlos up`: the four services as local processes on loopback, with the demo models loaded.

Services start in dependency order (registry, predictor, executor, scheduler). Each child
prints one JSON "listening" line with its bound ports; the launcher reads it, waits for the
standard health check, then starts the next one with the addresses it needs. On SIGTERM or
Ctrl-C everything stops in reverse order (each service drains its in-flight RPCs). A child that
dies is restarted on its old ports (`restart`; the policy is in supervise.py).

`executors` > 1 starts that many executor processes ("executor", "executor-1", ...), executor i
on the executor ports + 2*i (gRPC 8201, 8203, ...; metrics 8202, 8204, ...), each with its own
artifact cache and id, and hands the scheduler every address. The cores are shared out: unless
MLOS_EXECUTOR_INTRA_OP_THREADS is set, each executor's runs get cpus // (executors * slots)
ONNX Runtime threads (at least 1), so N executors do not oversubscribe a small host.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

from mlos_cli.up_auth import OUTGOING, SuiteAuth, suite_auth
from mlos_common.bootstrap import read_announcement, wait_for_serving
from mlos_executor.budget import DEFAULT_BUDGET_FRACTION
from mlos_executor.memory import mem_total_bytes

log = logging.getLogger(__name__)

DEFAULT_PORTS = {  # grpc, metrics; the scheduler takes Triton's 8001/8002
    "registry": (8101, 8102),
    "predictor": (8301, 8302),
    "executor": (8201, 8202),
    "scheduler": (8001, 8002),
}
ORDER = ["registry", "predictor", "executor", "scheduler"]
DEFAULT_HTTP_PORT = 8080  # the scheduler's KServe v2 REST (MLServer's port)
DEFAULT_PREDICTOR_HTTP_PORT = 9005  # the predictor's seed ML daemon API (the seed's port)


@dataclass
class SuiteConfig:
    home: Path
    host: str = "127.0.0.1"
    ephemeral_ports: bool = False
    demo: bool = True
    startup_timeout_s: float = 60.0
    ports: dict[str, tuple[int, int]] = field(default_factory=lambda: dict(DEFAULT_PORTS))
    http_port: int = DEFAULT_HTTP_PORT  # -1 = no REST
    predictor_http_port: int = DEFAULT_PREDICTOR_HTTP_PORT  # -1 = no predictor HTTP API
    scheduler_workers: int = 1  # > 1: a supervisor and this many workers behind the scheduler's ports
    executors: int = 1  # executor processes, on consecutive port pairs


@dataclass
class Child:
    name: str
    process: asyncio.subprocess.Process
    grpc_port: int
    metrics_port: int | None
    http_port: int | None = None

    def addr(self, host: str) -> str:
        return f"{host}:{self.grpc_port}"


class SuiteError(RuntimeError):
    pass


def _last_error(log_path: Path) -> str:
    """The last ERROR line a service logged (e.g. "cannot start: ... already in use"), or ""."""
    try:
        lines = log_path.read_text(errors="replace").splitlines()[-200:]
    except OSError:
        return ""
    errors = [line for line in lines if " ERROR " in line]
    return errors[-1].split(": ", 1)[-1] if errors else ""


class Suite:
    def __init__(self, config: SuiteConfig) -> None:
        self.config = config
        self.children: dict[str, Child] = {}
        self.models: list[str] = []
        self.log_dir = config.home / "logs"
        self.pinned: dict[str, Child] = {}  # restarted children keep the ports they had (see restart)
        self.auth = SuiteAuth()

    def addr(self, name: str) -> str:
        return self.children[name].addr(self.config.host)

    def executor_names(self) -> list[str]:
        return ["executor", *(f"executor-{i}" for i in range(1, self.config.executors))]

    def _env(self, name: str, index: int = 0) -> dict[str, str]:
        """Environment of service `name`; `index` numbers the executors (ports + 2*index)."""
        c = self.config
        grpc_port, metrics_port = (0, 0) if c.ephemeral_ports else (p + 2 * index for p in c.ports[name])
        prefix = f"MLOS_{name.upper()}_"
        env = {k: v for k, v in os.environ.items() if not (self.auth.env() and k in OUTGOING)}
        env.update(self.auth.env())
        env.update({f"{prefix}HOST": c.host, f"{prefix}GRPC_PORT": str(grpc_port), f"{prefix}METRICS_PORT": str(metrics_port)})
        if name == "registry":
            env[f"{prefix}DATA_DIR"] = str(c.home / "registry")
        if name == "predictor":  # learned models: ONNX files in its data dir, registered as mlos-predictor-<kind>
            http = c.predictor_http_port
            env[f"{prefix}HTTP_PORT"] = str(0 if c.ephemeral_ports and http >= 0 else http)
            env[f"{prefix}DATA_DIR"] = str(c.home / "predictor")
            env[f"{prefix}REGISTRY_ADDR"] = self.addr("registry")
        if name == "executor":
            child = self.executor_names()[index]
            env[f"{prefix}CACHE_DIR"] = str(c.home / child)
            env[f"{prefix}EXECUTOR_ID"] = f"executor-{index}"
            env[f"{prefix}REGISTRY_ADDR"] = self.addr("registry")
            env[f"{prefix}PREDICTOR_ADDR"] = self.addr("predictor")
            if c.executors > 1 and f"{prefix}INTRA_OP_THREADS" not in os.environ:
                slots = int(os.environ.get(f"{prefix}EXECUTION_SLOTS", "2"))
                env[f"{prefix}INTRA_OP_THREADS"] = str(max(1, len(os.sched_getaffinity(0)) // (c.executors * slots)))
            if c.executors > 1 and f"{prefix}MEMORY_BUDGET_MB" not in os.environ:
                # N executors on one host share its memory: each gets its share of the default budget
                share_mb = mem_total_bytes() * DEFAULT_BUDGET_FRACTION / c.executors / (1 << 20)
                if share_mb > 0:
                    env[f"{prefix}MEMORY_BUDGET_MB"] = f"{share_mb:.0f}"
        if name == "scheduler":
            env[f"{prefix}REGISTRY_ADDR"] = self.addr("registry")
            env[f"{prefix}EXECUTOR_ADDRS"] = ",".join(self.addr(n) for n in self.executor_names())
            env[f"{prefix}PREDICTOR_ADDR"] = self.addr("predictor")  # latency profiles
            env[f"{prefix}HTTP_PORT"] = str(0 if c.ephemeral_ports and c.http_port >= 0 else c.http_port)
            env[f"{prefix}STARTUP_MODELS"] = ",".join(self.models)
            env[f"{prefix}WORKERS"] = str(c.scheduler_workers)
        return self._pin_ports(env, prefix, self.executor_names()[index] if name == "executor" else name)

    def _pin_ports(self, env: dict[str, str], prefix: str, child_name: str) -> dict[str, str]:
        """A restarted child listens where it did before, so its peers' addresses stay right."""
        old = self.pinned.get(child_name)
        if old is not None:
            for setting, port in (("GRPC_PORT", old.grpc_port), ("METRICS_PORT", old.metrics_port),
                                  ("HTTP_PORT", old.http_port)):
                if port:
                    env[prefix + setting] = str(port)
        return env

    async def restart(self, child_name: str) -> Child:
        """Starts `child_name` (e.g. "executor-1") again on the ports it had; returns it once it
        answers SERVING. Raises SuiteError like start() when it does not come up."""
        old = self.children.pop(child_name)
        self.pinned[child_name] = old
        if child_name.startswith("executor"):
            return await self._spawn("executor", self.executor_names().index(child_name))
        return await self._spawn(child_name)

    async def _spawn(self, name: str, index: int = 0) -> Child:
        child_name = self.executor_names()[index] if name == "executor" else name
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_file = (self.log_dir / f"{child_name}.log").open("ab")
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", f"mlos_{name}",
            env=self._env(name, index), stdout=asyncio.subprocess.PIPE, stderr=log_file, stdin=asyncio.subprocess.DEVNULL,
        )
        log_file.close()
        try:
            line = await asyncio.wait_for(self._listening_line(process), self._listen_timeout_s(name))
        except (TimeoutError, SuiteError) as exc:
            if process.returncode is None:  # still running (timed out); an exited child cannot be killed
                process.kill()
            await process.wait()
            raise self._failure(child_name, f"did not start: {exc or 'timed out'}") from None
        child = Child(child_name, process, line["grpc_port"], line.get("metrics_port"), line.get("http_port"))
        self.children[child_name] = child
        try:
            await wait_for_serving(child.addr(self.config.host), self.config.startup_timeout_s, settings=self.auth.settings())
        except TimeoutError as exc:
            raise self._failure(child_name, f"not ready: {exc}") from None
        return child

    def _listen_timeout_s(self, name: str) -> float:
        """A multi-worker scheduler announces only once every worker is ready (models loaded), so it
        gets the listening wait and the readiness wait together."""
        several = name == "scheduler" and self.config.scheduler_workers > 1
        return self.config.startup_timeout_s * (2 if several else 1)

    def _failure(self, name: str, what: str) -> SuiteError:
        """A start-up failure with the service's last logged error (its reason) and log path."""
        log_path = self.log_dir / f"{name}.log"
        reason = _last_error(log_path)
        return SuiteError(f"{name} {what}{': ' + reason if reason else ''}; see {log_path}")

    @staticmethod
    async def _listening_line(process: asyncio.subprocess.Process) -> dict:
        assert process.stdout is not None
        line = await read_announcement(process.stdout)
        if line is None:
            raise SuiteError(f"exited with code {await process.wait()}")
        return line

    async def start(self) -> None:
        """Starts every service; the demo models are registered before the scheduler starts and
        are its start-up models, so the scheduler turns SERVING only once they are loaded."""
        try:
            self.auth = suite_auth(self.config.home)
            for name in ORDER:
                if name == "scheduler" and self.config.demo:
                    await self._register_demo_models()
                for index in range(self.config.executors if name == "executor" else 1):
                    await self._spawn(name, index)
        except BaseException:
            await self.stop()
            raise

    async def _register_demo_models(self) -> None:
        """Registers the demo models (the GGUF ones too when llama.cpp is installed); they become the
        scheduler's start-up models. A GGUF model the registry refuses (one without GGUF support) is
        left out with a warning; an ONNX demo model refused is a start-up failure."""
        from mlos_cli.demo import prepare_demo_models
        from mlos_common.errors import InvalidArgument
        from mlos_registry.client import RegistryClient

        demos = await asyncio.to_thread(prepare_demo_models, self.config.home / "demo", True)
        async with RegistryClient(self.addr("registry"), settings=self.auth.settings()) as registry:
            for demo in demos:
                try:
                    await registry.register(demo.name, str(demo.path), labels={"source": demo.source})
                except InvalidArgument as exc:
                    if demo.task == "infer":
                        raise
                    log.warning("demo model %s (%s, GGUF) left out: the registry refused it: %s", demo.name, demo.task, exc)
                    continue
                self.models.append(demo.name)

    async def stop(self, grace_s: float = 15.0) -> None:
        for name in reversed([n for s in ORDER for n in (self.executor_names() if s == "executor" else [s])]):
            child = self.children.pop(name, None)
            if child is None or child.process.returncode is not None:
                continue
            child.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(child.process.wait(), grace_s)
            except TimeoutError:
                log.warning("%s did not stop within %.0fs; killing it", name, grace_s)
                child.process.kill()
                await child.process.wait()

    def endpoints(self) -> dict:
        host = self.config.host
        info: dict = {f"{n}_addr": c.addr(host) for n, c in self.children.items()}
        http = self.children.get("scheduler")
        if http is not None and http.http_port:
            info["scheduler_http"] = f"http://{host}:{http.http_port}"
        predictor = self.children.get("predictor")
        if predictor is not None and predictor.http_port:
            info["predictor_http"] = f"http://{host}:{predictor.http_port}"
        info["metrics"] = {n: f"http://{host}:{c.metrics_port}/metrics" for n, c in self.children.items() if c.metrics_port}
        info["models"] = list(self.models)
        info["logs"] = str(self.log_dir)
        info["auth"] = self.auth.line(host)
        return info
