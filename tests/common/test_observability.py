"""Observability proven on the four real services in this process, each started by its own
`start()` (the code `python -m mlos_<svc>` runs) with a tracer provider exporting to one
InMemorySpanExporter and its /metrics served on a free port.

The predictor is not on an inference's path (by design: the data path calls nothing else
synchronously; telemetry flows to it in the background). It is on a model load's path: the
executor asks it for the model's memory footprint before admitting the load. So the one trace
spanning client -> scheduler -> executor -> predictor is a RepositoryModelLoad; an inference's
trace spans client -> scheduler -> executor.
"""

from __future__ import annotations

import re
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from mlos.inference import grpc_service_pb2 as pb
from mlos.inference import grpc_service_pb2_grpc as pbg
from mlos_cli.demo import prepare_demo_models
from mlos_common.bootstrap import ServerParts, client_channel, wait_for_serving
from mlos_common.metrics import GrpcMetrics, start_metrics_server
from mlos_common.tensors import array_to_raw
from mlos_common.tracing import build_tracer_provider
from mlos_executor import server as executor_server
from mlos_executor.config import ExecutorSettings
from mlos_predictor import server as predictor_server
from mlos_predictor.config import PredictorSettings
from mlos_registry import server as registry_server
from mlos_registry.client import RegistryClient
from mlos_registry.config import RegistrySettings
from mlos_scheduler import server as scheduler_server
from mlos_scheduler.config import SchedulerSettings

pytestmark = pytest.mark.asyncio(loop_scope="session")
README = Path(__file__).resolve().parents[2] / "README.md"


@dataclass
class Suite:
    exporter: InMemorySpanExporter
    addrs: dict[str, str] = field(default_factory=dict)
    metrics_urls: dict[str, str] = field(default_factory=dict)
    client_provider: TracerProvider | None = None


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def suite(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Suite]:
    root = tmp_path_factory.mktemp("observed")
    exporter = InMemorySpanExporter()
    result = Suite(exporter, client_provider=build_tracer_provider("client", "", SimpleSpanProcessor(exporter)))
    closers, http_servers, servers = [], [], []

    async def run(name: str, module, settings) -> str:  # noqa: ANN001 - a service's server module and settings
        registry = CollectorRegistry()
        provider = build_tracer_provider(name, "", SimpleSpanProcessor(exporter))
        parts = ServerParts(tracer_provider=provider, metrics=GrpcMetrics(registry))
        server, port, service_closers = await module.start(settings, parts, registry)
        await server.start()
        servers.append(server)
        closers.extend(service_closers)
        http, metrics_port = start_metrics_server(registry, "127.0.0.1", 0)
        http_servers.append(http)
        result.metrics_urls[name] = f"http://127.0.0.1:{metrics_port}/metrics"
        result.addrs[name] = f"127.0.0.1:{port}"
        return result.addrs[name]

    try:
        reg = await run("registry", registry_server, RegistrySettings(grpc_port=0, data_dir=root / "registry"))
        pred = await run("predictor", predictor_server, PredictorSettings(
            grpc_port=0, http_port=-1, registry_addr=reg, data_dir=root / "predictor", train_interval_s=0,
        ))  # fmt: skip
        ex = await run("executor", executor_server, ExecutorSettings(
            grpc_port=0, registry_addr=reg, predictor_addr=pred, cache_dir=root / "executor",
            memory_predict_timeout_ms=30_000, prefetch_interval_s=0,
        ))  # fmt: skip
        iris = next(d for d in prepare_demo_models(root / "demo") if d.name == "iris")
        async with RegistryClient(reg) as registry:
            await registry.register("iris", iris.path)
        sched = await run("scheduler", scheduler_server, SchedulerSettings(
            grpc_port=0, http_port=-1, registry_addr=reg, executor_addrs=ex, predictor_addr=pred,
        ))  # fmt: skip
        await wait_for_serving(sched, 60)
        yield result
    finally:
        for server in reversed(servers):
            await server.stop(None)
        for close in closers:
            await close()
        for http in http_servers:
            http.shutdown()


def _service(span: ReadableSpan) -> str:
    return str(span.resource.attributes.get("service.name", ""))


async def _traced(suite: Suite, name: str, call) -> list[ReadableSpan]:  # noqa: ANN001 - async (stub) -> None
    """Runs `call` inside a client span; every finished span of that trace."""
    assert suite.client_provider is not None
    tracer = suite.client_provider.get_tracer("test")
    with tracer.start_as_current_span(name) as root:
        async with client_channel(suite.addrs["scheduler"], tracer_provider=suite.client_provider) as channel:
            await call(pbg.GRPCInferenceServiceStub(channel))
    trace_id = root.get_span_context().trace_id
    return [s for s in suite.exporter.get_finished_spans() if s.context.trace_id == trace_id]


def _chain(spans: list[ReadableSpan], leaf: ReadableSpan) -> list[str]:
    """The services from the trace's root down to `leaf`, following parent links."""
    by_id = {s.context.span_id: s for s in spans}
    chain, span = [], leaf
    while span is not None:
        if not chain or chain[-1] != _service(span):
            chain.append(_service(span))
        span = by_id.get(span.parent.span_id) if span.parent is not None else None
    return chain[::-1]


async def test_one_trace_spans_client_scheduler_executor_predictor(suite: Suite) -> None:
    async def load(stub: pbg.GRPCInferenceServiceStub) -> None:
        await stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="iris"), timeout=60)

    spans = await _traced(suite, "client load", load)
    predict = [s for s in spans if _service(s) == "mlos-predictor" and s.name.endswith("/Predict")]
    assert predict, sorted((_service(s), s.name) for s in spans)
    assert _chain(spans, predict[0]) == ["mlos-client", "mlos-scheduler", "mlos-executor", "mlos-predictor"]


async def test_an_inference_trace_spans_client_scheduler_executor(suite: Suite) -> None:
    async def infer(stub: pbg.GRPCInferenceServiceStub) -> None:
        await stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="iris"), timeout=60)
        rows = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], dtype=np.float32)
        request = pb.ModelInferRequest(model_name="iris", raw_input_contents=[array_to_raw(rows)])
        request.inputs.add(name="X", datatype="FP32", shape=list(rows.shape))
        await stub.ModelInfer(request, timeout=60)

    spans = await _traced(suite, "client infer", infer)
    services = {_service(s) for s in spans}
    assert {"mlos-client", "mlos-scheduler", "mlos-executor"} <= services, sorted((_service(s), s.name) for s in spans)
    executor_spans = [s for s in spans if _service(s) == "mlos-executor"]
    assert any(_chain(spans, s)[:3] == ["mlos-client", "mlos-scheduler", "mlos-executor"] for s in executor_spans)


def documented_metrics() -> dict[str, list[str]]:
    """The README's metric list (the section between the `metrics:` markers): service -> names."""
    text = README.read_text()
    section = text.split("<!-- metrics:begin -->", 1)[1].split("<!-- metrics:end -->", 1)[0]
    found: dict[str, list[str]] = {}
    for line in section.splitlines():
        match = re.match(r"\| (registry|predictor|executor|scheduler) \| (.+) \|$", line.strip())
        if match:
            found[match.group(1)] = re.findall(r"`(mlos_[a-z0-9_]+)`", match.group(2))
    return found


async def test_every_documented_metric_is_scraped(suite: Suite) -> None:
    documented = documented_metrics()
    assert sorted(documented) == ["executor", "predictor", "registry", "scheduler"]
    missing = {}
    for service, names in documented.items():
        with urllib.request.urlopen(suite.metrics_urls[service], timeout=10) as reply:
            exposition = reply.read().decode()
        declared = set(re.findall(r"^# TYPE (\S+) ", exposition, re.MULTILINE))
        absent = [n for n in names if n not in declared]
        if absent:
            missing[service] = absent
    assert not missing, f"documented in README but not exposed: {missing}"
