"""A real MLOS stack in-process (registry + executor + scheduler on port 0), and helpers."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import httpx
import numpy as np
import onnxruntime as ort
import pytest
from generation_testkit import file_fetcher
from grpc import aio
from prometheus_client import CollectorRegistry

from mlos.inference import grpc_service_pb2 as pb
from mlos.inference import grpc_service_pb2_grpc as pbg
from mlos.scheduler.v1 import scheduler_pb2_grpc as spbg
from mlos_cli.demo import DemoModel, prepare_demo_models
from mlos_common.bootstrap import ServerParts, client_channel, set_serving
from mlos_common.config import ServiceSettings
from mlos_common.shm import ShmRegistry
from mlos_common.tensors import array_from_raw, array_to_raw
from mlos_executor.config import ExecutorSettings
from mlos_executor.core import ExecutorCore
from mlos_executor.server import build_core as build_executor_core
from mlos_executor.server import create_server as create_executor_server
from mlos_executor.server import make_servicer, registry_fetcher
from mlos_executor.servicer import ExecutorServicer
from mlos_executor.unix_link import socket_name
from mlos_registry.client import RegistryClient
from mlos_registry.config import RegistrySettings
from mlos_registry.core import Registry
from mlos_registry.server import create_server as create_registry_server
from mlos_scheduler.catalog import RegistryCatalog
from mlos_scheduler.config import SchedulerSettings
from mlos_scheduler.core import Scheduler
from mlos_scheduler.peers import PeerMonitor
from mlos_scheduler.predictor_link import PredictorLink
from mlos_scheduler.server import build_core, peer_monitor, services, shm_registry
from mlos_scheduler.server import create_server as create_scheduler_server

NP_TO_OIP = {
    np.dtype(np.float32): "FP32", np.dtype(np.int64): "INT64", np.dtype(np.float64): "FP64", np.dtype(object): "BYTES",
}


@dataclass
class InProcessExecutor:
    """An executor server in this process; `restart` brings a fresh one (no model loaded) back on
    the same port, as a restarted executor process would be."""

    executor_id: str
    cache_dir: Path
    registry_addr: str
    port: int = 0
    server: aio.Server | None = None
    servicer: ExecutorServicer | None = None
    core: ExecutorCore | None = None
    restarts: int = 0
    overrides: dict = field(default_factory=dict)  # more ExecutorSettings (e.g. memory_budget_mb)
    servicer_factory: Callable[..., ExecutorServicer] = make_servicer  # (core, parts, shm_arena_bytes)
    files: dict[str, Path] = field(default_factory=dict)  # models fetched from disk by name, not the registry

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        settings = ExecutorSettings(
            registry_addr=self.registry_addr, grpc_port=self.port, metrics_port=-1, cache_dir=self.cache_dir,
            executor_id=self.executor_id, **self.overrides,
        )
        parts = ServerParts()
        self.core = build_executor_core(settings, file_fetcher(self.files, registry_fetcher(settings, parts)))
        self.servicer = self.servicer_factory(self.core, parts, settings.shm_arena_bytes)
        self.server, self.port = create_executor_server(settings, self.core, parts, self.servicer)
        await self.server.start()
        await self.servicer.open_unix_link(socket_name(f"{self.executor_id}-{self.restarts}"), settings.max_message_bytes)

    async def stop(self) -> None:
        if self.server is None:
            return
        server, self.server = self.server, None
        await self.servicer.close_unix_link()
        await server.stop(None)
        await self.core.close()

    async def restart(self) -> None:
        await self.stop()
        self.restarts += 1
        await self.start()


@dataclass
class Stack:
    stub: pbg.GRPCInferenceServiceStub
    admin: spbg.SchedulerAdminStub
    channel: aio.Channel
    addr: str
    core: Scheduler
    monitor: PeerMonitor
    registry: RegistryClient
    settings: SchedulerSettings
    executors: list[InProcessExecutor]
    shm: ShmRegistry
    metrics: CollectorRegistry
    models: dict[str, DemoModel] = field(default_factory=dict)
    link: PredictorLink | None = None  # with a predictor_addr: profiles and scores in, telemetry out
    catalog: RegistryCatalog | None = None  # the scheduler's model lookups (its registry view when watching)

    @property
    def executor_server(self) -> aio.Server:
        return self.executors[0].server

    @property
    def executor_servicer(self) -> ExecutorServicer:
        return self.executors[0].servicer

    @property
    def executor_core(self) -> ExecutorCore:
        return self.executors[0].core

    async def stop_executor(self) -> None:
        await self.executors[0].stop()


@contextlib.asynccontextmanager
async def running_stack(
    root: Path,
    demo: dict[str, DemoModel],
    load: tuple[str, ...] = ("iris", "ocr_cls", "silero_vad"),
    extra: dict[str, Path] | None = None,
    executors: int = 1,
    executor_settings: list[dict] | None = None,
    start_link: bool = True,
    servicer_factory: Callable[..., ExecutorServicer] = make_servicer,
    executor_files: dict[str, Path] | None = None,
    executor_addrs: Callable[[list[str]], str] = ",".join,
    security: dict | None = None,
    client_token: str | None = None,
    **overrides,
) -> AsyncIterator[Stack]:
    """Registers every demo model and the `extra` model files (name -> path), loads `load`
    through the front door, yields a Stack with `executors` executor servers (executor i with the
    ExecutorSettings in `executor_settings[i]`, if given, and the servicer `servicer_factory` makes;
    the models named in `executor_files` come from those files, not the registry);
    `overrides` are SchedulerSettings; `executor_addrs` makes the scheduler's setting from the
    running executors' addresses (e.g. to name them through DNS, or add ones not started). With
    a `predictor_addr` override the scheduler's PredictorLink runs too (short reconnect backoff),
    unless `start_link` is false (then the front door and the score table exist, unfed).
    `security`: ServiceSettings fields (tokens, TLS files) of every service; the test's own
    clients use its TLS files with `client_token`."""
    security = security or {}
    client_settings = ServiceSettings(**{**security, "token": client_token})
    async with contextlib.AsyncExitStack() as stack:
        reg_settings = RegistrySettings(data_dir=root / "registry", grpc_port=0, metrics_port=-1, **security)
        reg_core = await Registry.open(reg_settings)
        stack.push_async_callback(reg_core.close)
        reg_server, reg_port = create_registry_server(reg_settings, reg_core)
        await reg_server.start()
        stack.push_async_callback(reg_server.stop, None)
        reg_addr = f"127.0.0.1:{reg_port}"

        running = []
        for i in range(executors):
            ex = InProcessExecutor("executor-test" if executors == 1 else f"executor-test{i}", root / f"executor{i}", reg_addr,
                                   overrides={**security, **(executor_settings or [{}] * executors)[i]},
                                   servicer_factory=servicer_factory,
                                   files=executor_files or {})
            await ex.start()
            stack.push_async_callback(ex.stop)
            running.append(ex)
        ex_addr = executor_addrs([ex.addr for ex in running])

        settings = SchedulerSettings(
            registry_addr=reg_addr, executor_addrs=ex_addr, grpc_port=0, metrics_port=-1, **security, **overrides
        )
        parts = ServerParts()
        metrics = CollectorRegistry()
        core, catalog = build_core(settings, parts, metrics)
        stack.push_async_callback(catalog.close)
        stack.push_async_callback(core.close)
        link = None
        if settings.predictor_addr and start_link:
            link = PredictorLink(settings, core, metrics, initial_backoff_s=0.05, max_backoff_s=0.5)
            link.start()
            stack.push_async_callback(link.close)
        shm = shm_registry(metrics)
        stack.callback(shm.close)
        svcs = services(core, shm)
        server, port = create_scheduler_server(settings, core, parts, shm)
        await server.start()
        stack.push_async_callback(server.stop, None)
        await set_serving(parts, svcs, False)
        monitor = peer_monitor(settings, core, parts, svcs)
        stack.push_async_callback(monitor.close)
        await monitor.check_all()
        assert core.peers_ready, "peers did not answer SERVING"

        registry = RegistryClient(reg_addr, settings=client_settings)
        stack.push_async_callback(registry.close)
        for m in demo.values():
            await registry.register(m.name, m.path)
        for name, path in (extra or {}).items():
            await registry.register(name, path)

        addr = f"127.0.0.1:{port}"
        channel = client_channel(
            addr, client_settings,
            options=[("grpc.max_receive_message_length", 256 << 20), ("grpc.max_send_message_length", 256 << 20)],
        )
        stack.push_async_callback(channel.close)
        stub = pbg.GRPCInferenceServiceStub(channel)
        for name in load:
            await stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name=name), timeout=60)
        yield Stack(
            stub=stub, admin=spbg.SchedulerAdminStub(channel), channel=channel, addr=addr, core=core,
            monitor=monitor, registry=registry, settings=settings, executors=running, shm=shm, metrics=metrics, models=dict(demo),
            link=link, catalog=catalog,
        )


def demo_models(home: Path) -> dict[str, DemoModel]:
    models = {m.name: m for m in prepare_demo_models(home)}
    missing = {"iris", "ocr_cls", "silero_vad"} - set(models)
    assert not missing, f"demo models missing: {missing}"
    return models


_SESSIONS: dict[Path, ort.InferenceSession] = {}


def ort_run(model: DemoModel, feeds: dict[str, np.ndarray], outputs: list[str] | None = None) -> dict[str, np.ndarray]:
    """The same model run in-process by onnxruntime: the reference answer."""
    sess = _SESSIONS.get(model.path)
    if sess is None:
        sess = _SESSIONS[model.path] = ort.InferenceSession(str(model.path), providers=["CPUExecutionProvider"])
    names = outputs or [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, feeds)))


def infer_request(
    model: str, feeds: dict[str, np.ndarray], *, outputs: list[str] | None = None, id: str = "", version: str = ""
) -> pb.ModelInferRequest:
    req = pb.ModelInferRequest(model_name=model, model_version=version, id=id)
    for name, array in feeds.items():
        req.inputs.add(name=name, datatype=NP_TO_OIP[array.dtype], shape=list(array.shape))
        req.raw_input_contents.append(array_to_raw(array))
    for o in outputs or []:
        req.outputs.add(name=o)
    return req


def response_arrays(resp: pb.ModelInferResponse) -> dict[str, np.ndarray]:
    assert len(resp.outputs) == len(resp.raw_output_contents)
    return {
        o.name: array_from_raw(o.name, o.datatype, tuple(o.shape), raw)
        for o, raw in zip(resp.outputs, resp.raw_output_contents)
    }


def assert_matches(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert set(got) == set(want), (sorted(got), sorted(want))
    for name, ref in want.items():
        assert got[name].shape == ref.shape, (name, got[name].shape, ref.shape)
        if ref.dtype.kind == "f":
            assert np.allclose(got[name], ref, atol=1e-5), name
        else:
            assert np.array_equal(got[name], ref), name


async def expect_error(stack: Stack, request: pb.ModelInferRequest, code: grpc.StatusCode, *, timeout=30) -> str:
    with pytest.raises(aio.AioRpcError) as err:
        await stack.stub.ModelInfer(request, timeout=timeout)
    assert err.value.code() == code, err.value.details()
    return err.value.details()


async def still_serves(stack: Stack) -> None:
    iris = stack.models["iris"]
    feeds = iris.sample_inputs(batch=2, seed=11)
    resp = await stack.stub.ModelInfer(infer_request("iris", feeds), timeout=30)
    assert_matches(response_arrays(resp), ort_run(iris, feeds))


@contextlib.asynccontextmanager
async def rest_client(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client on a KServe v2 REST server over `stack`'s core and shared memory registry
    (port 0), closed at exit."""
    from mlos_scheduler.rest import start_rest

    port, close = await start_rest(stack.settings.model_copy(update={"http_port": 0}), stack.core, shm=stack.shm)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            yield client
    finally:
        await close()
