"""A real predictor server in-process, real ONNX models for the five kinds' contract, and bounded
polling (shared by predictor and scheduler tests)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from grpc import aio
from onnx import TensorProto, helper, numpy_helper
from prometheus_client import CollectorRegistry

from mlos_common.bootstrap import ServerParts
from mlos_predictor.config import PredictorSettings
from mlos_predictor.engine import Engine
from mlos_predictor.intake import Intake
from mlos_predictor.kinds import KindSpec
from mlos_predictor.latency import LatencyBook
from mlos_predictor.loop import Learner
from mlos_predictor.models import INPUT_NAME, ServedModel
from mlos_predictor.rows import sample_rows
from mlos_predictor.server import create_server, start
from mlos_registry.client import RegistryClient
from mlos_registry.config import RegistrySettings
from mlos_registry.core import Registry
from mlos_registry.server import create_server as create_registry_server

__all__ = ["sample_rows"]  # re-exported for the tests


@dataclass
class Running:
    server: aio.Server
    port: int
    registry: CollectorRegistry
    closers: Sequence[Callable[[], Awaitable[None]]] = field(default_factory=list)

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def stop(self) -> None:
        """Stops the server, then the service's background work (learning loop, registry link)."""
        await self.server.stop(None)
        for close in self.closers:
            await close()


async def start_predictor(port: int = 0, window: int = 4096, **settings: object) -> Running:
    """The predictor as its process starts it (`server.start`), without its HTTP API; `settings`
    override PredictorSettings fields. Scheduled training is off unless train_interval_s is given
    (tests train with the Train RPC)."""
    registry = CollectorRegistry()
    settings.setdefault("train_interval_s", 0)
    config = PredictorSettings(grpc_port=port, metrics_port=-1, http_port=-1, window=window, **settings)  # type: ignore[arg-type]
    server, bound, closers = await start(config, ServerParts(), registry)
    await server.start()
    return Running(server, bound, registry, closers)


@dataclass
class RunningRegistry:
    server: aio.Server
    core: Registry
    client: RegistryClient
    addr: str

    async def stop(self) -> None:
        await self.client.close()
        await self.server.stop(None)
        await self.core.close()


async def start_registry(data_dir: Path) -> RunningRegistry:
    """A real registry server on port 0 keeping its data in `data_dir`."""
    settings = RegistrySettings(grpc_port=0, metrics_port=-1, data_dir=data_dir)
    core = await Registry.open(settings)
    server, port = create_registry_server(settings, core)
    await server.start()
    addr = f"127.0.0.1:{port}"
    return RunningRegistry(server, core, RegistryClient(addr), addr)


async def serve_engine(engine: Engine, intake: Intake | None = None, learner: Learner | None = None) -> Running:
    """A started predictor answering the five kinds from `engine` (the test keeps a handle on it);
    `intake` holds the books' rows (ModelInfo.rows_available); `learner` trains them (Train; the
    test closes it)."""
    settings = PredictorSettings(grpc_port=0, metrics_port=-1)
    server, port = create_server(settings, LatencyBook(), engine=engine, intake=intake, learner=learner)
    await server.start()
    return Running(server, port, CollectorRegistry())


def linear_onnx(spec: KindSpec, weights: list[float], bias: float = 0.0, sigmoid: bool = False) -> bytes:
    """A real ONNX model of the serving contract (models.py): `features` float32 [N, F] ->
    `<spec.output>` float32 [N] = features @ weights + bias (through a sigmoid if asked)."""
    w = numpy_helper.from_array(np.asarray(weights, np.float32).reshape(spec.width, 1), "w")
    b = numpy_helper.from_array(np.asarray([bias], np.float32), "b")
    flat = numpy_helper.from_array(np.asarray([-1], np.int64), "flat")
    nodes = [helper.make_node("MatMul", [INPUT_NAME, "w"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["lin"])]
    if sigmoid:
        nodes.append(helper.make_node("Sigmoid", ["lin"], ["act"]))
    nodes.append(helper.make_node("Reshape", ["act" if sigmoid else "lin", "flat"], [spec.output]))
    graph = helper.make_graph(
        nodes, f"{spec.kind}_linear",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", spec.width])],
        [helper.make_tensor_value_info(spec.output, TensorProto.FLOAT, ["N"])],
        initializer=[w, b, flat],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model.SerializeToString()


class CountingModel:
    """A real served model (e.g. the prior) that also counts the calls and rows it got."""

    def __init__(self, inner: ServedModel) -> None:
        self.inner = inner
        self.calls: list[int] = []  # rows per call

    def predict(self, rows: np.ndarray) -> np.ndarray:
        self.calls.append(len(rows))
        return self.inner.predict(rows)


class ManualClock:
    """Seconds that move only when the test says so (clock.now += 1.5)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def poll(condition: Callable[[], Awaitable[bool]], timeout_s: float = 5.0, what: str = "condition") -> None:
    """Bounded polling of a condition (never a bare sleep to synchronise)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not await condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(0.01)
