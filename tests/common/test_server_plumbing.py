"""mlos_common.bootstrap/interceptors/metrics/tracing against a real grpc.aio server.

The service under test is the generated SchedulerAdmin with a tiny servicer whose behaviour is
chosen by `model_name`, so every path through the interceptor chain is exercised over the wire.
"""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client import CollectorRegistry

from mlos.inference import grpc_service_pb2 as inference_pb2
from mlos.inference import grpc_service_pb2_grpc as inference_pb2_grpc
from mlos.scheduler.v1 import scheduler_pb2, scheduler_pb2_grpc
from mlos_common.bootstrap import (
    GrpcService,
    ServerParts,
    build_server,
    client_channel,
    set_serving,
    wait_for_serving,
)
from mlos_common.config import ServiceSettings
from mlos_common.errors import InvalidArgument, NotFound
from mlos_common.metrics import GrpcMetrics, start_metrics_server
from mlos_common.tracing import build_tracer_provider

SERVICE = "mlos.scheduler.v1.SchedulerAdmin"
METHOD = f"/{SERVICE}/GetQueueStats"
SECRET = "secret-internal-detail-xyz"
HANGING = asyncio.Event()


class Scheduler(scheduler_pb2_grpc.SchedulerAdminServicer):
    async def GetQueueStats(self, request, context):
        if request.model_name == "missing":
            raise NotFound("model 'missing' is not in the repository")
        if request.model_name == "bad":
            raise InvalidArgument("model_name 'bad' is not allowed")
        if request.model_name == "boom":
            raise RuntimeError(SECRET)
        if request.model_name == "hang":
            HANGING.set()
            await asyncio.Event().wait()  # until the client cancels
        return scheduler_pb2.GetQueueStatsResponse(
            queues=[scheduler_pb2.QueueStats(model_name=request.model_name, pending=3)]
        )


SCHEDULER = GrpcService(
    SERVICE, lambda server: scheduler_pb2_grpc.add_SchedulerAdminServicer_to_server(Scheduler(), server)
)


class Inference(inference_pb2_grpc.GRPCInferenceServiceServicer):
    """ModelStreamInfer as an async generator: echoes names, fails on "missing"/"boom"."""

    async def ModelStreamInfer(self, request_iterator, context):
        async for request in request_iterator:
            if request.model_name == "missing":
                raise NotFound("model 'missing' is not in the repository")
            if request.model_name == "boom":
                raise RuntimeError(SECRET)
            yield inference_pb2.ModelStreamInferResponse(
                infer_response=inference_pb2.ModelInferResponse(model_name=request.model_name)
            )


INFERENCE_SERVICE = "inference.GRPCInferenceService"
STREAM_METHOD = f"/{INFERENCE_SERVICE}/ModelStreamInfer"
INFERENCE = GrpcService(
    INFERENCE_SERVICE,
    lambda server: inference_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(Inference(), server),
)


class Running:
    def __init__(self, server: aio.Server, port: int, parts: ServerParts) -> None:
        self.server, self.port, self.parts = server, port, parts
        self.addr = f"127.0.0.1:{port}"


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
async def running(registry: CollectorRegistry, exporter: InMemorySpanExporter) -> AsyncIterator[Running]:
    parts = ServerParts(
        metrics=GrpcMetrics(registry),
        tracer_provider=build_tracer_provider("test", "", SimpleSpanProcessor(exporter)),
    )
    settings = ServiceSettings(host="127.0.0.1", grpc_port=0, max_message_bytes=1024)
    server, port = build_server(settings, [SCHEDULER, INFERENCE], parts)
    assert port > 0
    await server.start()
    try:
        yield Running(server, port, parts)
    finally:
        await server.stop(None)


async def _stats(addr: str, model: str, **kw) -> scheduler_pb2.GetQueueStatsResponse:
    async with aio.insecure_channel(addr) as channel:
        stub = scheduler_pb2_grpc.SchedulerAdminStub(channel)
        return await stub.GetQueueStats(scheduler_pb2.GetQueueStatsRequest(model_name=model), timeout=5, **kw)


async def _status_of(addr: str, model: str) -> aio.AioRpcError:
    with pytest.raises(aio.AioRpcError) as info:
        await _stats(addr, model)
    return info.value


# ---- error mapping ----


async def test_ok_call(running: Running) -> None:
    reply = await _stats(running.addr, "resnet")
    assert [(q.model_name, q.pending) for q in reply.queues] == [("resnet", 3)]


@pytest.mark.parametrize(
    ("model", "code", "details"),
    [
        ("missing", grpc.StatusCode.NOT_FOUND, "model 'missing' is not in the repository"),
        ("bad", grpc.StatusCode.INVALID_ARGUMENT, "model_name 'bad' is not allowed"),
    ],
)
async def test_typed_errors_map_to_status(running: Running, model: str, code, details: str) -> None:
    err = await _status_of(running.addr, model)
    assert err.code() == code
    assert err.details() == details


async def test_unexpected_error_is_generic_internal(running: Running) -> None:
    err = await _status_of(running.addr, "boom")
    assert err.code() == grpc.StatusCode.INTERNAL
    assert SECRET not in err.details()
    assert "Traceback" not in err.details() and "File " not in err.details()
    assert err.details() == f"internal error in {METHOD}: RuntimeError"
    # The server survives and keeps serving.
    assert (await _stats(running.addr, "after")).queues[0].model_name == "after"


async def _stream(addr: str, models: list[str]) -> list[str]:
    async with aio.insecure_channel(addr) as channel:
        stub = inference_pb2_grpc.GRPCInferenceServiceStub(channel)
        requests = [inference_pb2.ModelInferRequest(model_name=m) for m in models]
        call = stub.ModelStreamInfer(iter(requests), timeout=5)
        return [reply.infer_response.model_name async for reply in call]


async def test_streaming_ok_and_errors(running: Running, registry: CollectorRegistry) -> None:
    assert await _stream(running.addr, ["a", "b"]) == ["a", "b"]
    with pytest.raises(aio.AioRpcError) as info:
        await _stream(running.addr, ["a", "missing"])
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert info.value.details() == "model 'missing' is not in the repository"
    with pytest.raises(aio.AioRpcError) as info:
        await _stream(running.addr, ["boom"])
    assert info.value.code() == grpc.StatusCode.INTERNAL
    assert SECRET not in info.value.details()
    for code, count in (("OK", 1), ("NOT_FOUND", 1), ("INTERNAL", 1)):
        labels = {"grpc_method": STREAM_METHOD, "grpc_code": code}
        assert registry.get_sample_value("mlos_grpc_server_handled_total", labels) == count, code


async def test_health_watch_through_interceptor_chain(running: Running) -> None:
    """grpc_health's Watch streams via context.write (not an async generator)."""
    await set_serving(running.parts, [SCHEDULER], True)
    async with aio.insecure_channel(running.addr) as channel:
        call = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=SERVICE))
        assert (await asyncio.wait_for(call.read(), 5)).status == health_pb2.HealthCheckResponse.SERVING
        await set_serving(running.parts, [SCHEDULER], False)
        assert (await asyncio.wait_for(call.read(), 5)).status == health_pb2.HealthCheckResponse.NOT_SERVING
        call.cancel()


# ---- metrics ----


async def test_handled_counter_by_method_and_code(running: Running, registry: CollectorRegistry) -> None:
    for model in ("a", "b", "missing", "bad", "boom", "boom"):
        try:
            await _stats(running.addr, model)
        except aio.AioRpcError:
            pass

    def handled(code: str) -> float | None:
        return registry.get_sample_value(
            "mlos_grpc_server_handled_total", {"grpc_method": METHOD, "grpc_code": code}
        )

    assert handled("OK") == 2
    assert handled("NOT_FOUND") == 1
    assert handled("INVALID_ARGUMENT") == 1
    assert handled("INTERNAL") == 2
    assert handled("UNKNOWN") is None
    assert registry.get_sample_value(
        "mlos_grpc_server_handling_seconds_count", {"grpc_method": METHOD}
    ) == 6


async def test_metrics_http_endpoint(running: Running, registry: CollectorRegistry) -> None:
    await _stats(running.addr, "m")
    http, port = start_metrics_server(registry, "127.0.0.1", 0)
    try:
        assert port > 0

        def fetch() -> str:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
                assert resp.status == 200
                return resp.read().decode()

        body = await asyncio.to_thread(fetch)
    finally:
        http.shutdown()
        http.server_close()
    assert "mlos_grpc_server_handled_total" in body
    assert "mlos_grpc_server_handling_seconds_bucket" in body
    assert f'grpc_method="{METHOD}"' in body and 'grpc_code="OK"' in body


# ---- tracing ----


async def _spans_named(exporter: InMemorySpanExporter, name: str, kind: SpanKind, count: int = 1):
    for _ in range(500):  # the server span may end just after the client sees the reply
        spans = [s for s in exporter.get_finished_spans() if s.name == name and s.kind == kind]
        if len(spans) >= count:
            return spans
        await asyncio.sleep(0.01)
    raise AssertionError(f"no {kind} span {name!r}; have {[s.name for s in exporter.get_finished_spans()]}")


async def test_server_span_for_rpc(running: Running, exporter: InMemorySpanExporter) -> None:
    await _stats(running.addr, "traced")
    (span,) = await _spans_named(exporter, METHOD, SpanKind.SERVER)
    assert span.resource.attributes["service.name"] == "mlos-test"
    # Health checks are filtered out of tracing.
    await wait_for_serving_after_set(running)
    assert not [s for s in exporter.get_finished_spans() if "grpc.health" in s.name]


async def wait_for_serving_after_set(running: Running) -> None:
    await set_serving(running.parts, [SCHEDULER], True)
    await wait_for_serving(running.addr, 2.0)


@pytest.mark.parametrize(("model", "code"), [("missing", grpc.StatusCode.NOT_FOUND), ("boom", grpc.StatusCode.INTERNAL)])
async def test_server_span_records_status(running: Running, exporter: InMemorySpanExporter, model: str, code) -> None:
    await _status_of(running.addr, model)
    (span,) = await _spans_named(exporter, METHOD, SpanKind.SERVER)
    assert span.attributes["rpc.grpc.status_code"] == code.value[0]


async def test_trace_context_propagates_from_client_channel(running: Running, exporter: InMemorySpanExporter) -> None:
    client_exporter = InMemorySpanExporter()
    client_provider = build_tracer_provider("client", "", SimpleSpanProcessor(client_exporter))
    tracer = client_provider.get_tracer("test")
    with tracer.start_as_current_span("caller") as parent:
        async with client_channel(running.addr, tracer_provider=client_provider) as channel:
            stub = scheduler_pb2_grpc.SchedulerAdminStub(channel)
            await stub.GetQueueStats(scheduler_pb2.GetQueueStatsRequest(model_name="p"), timeout=5)
    trace_id = parent.get_span_context().trace_id

    (client_span,) = await _spans_named(client_exporter, METHOD, SpanKind.CLIENT)
    (server_span,) = await _spans_named(exporter, METHOD, SpanKind.SERVER)
    assert client_span.context.trace_id == trace_id
    assert server_span.context.trace_id == trace_id
    assert server_span.parent is not None and server_span.parent.span_id == client_span.context.span_id


async def test_plain_channel_starts_a_new_trace(running: Running, exporter: InMemorySpanExporter) -> None:
    client_provider = build_tracer_provider("client", "", SimpleSpanProcessor(InMemorySpanExporter()))
    with client_provider.get_tracer("test").start_as_current_span("caller") as parent:
        await _stats(running.addr, "np")  # no tracing interceptors on this channel
    (server_span,) = await _spans_named(exporter, METHOD, SpanKind.SERVER)
    assert server_span.context.trace_id != parent.get_span_context().trace_id


# ---- health ----


async def _check(addr: str, service: str = "") -> int:
    async with aio.insecure_channel(addr) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=5
        )
        return reply.status


async def test_health_serving_then_graceful_shutdown(running: Running) -> None:
    await set_serving(running.parts, [SCHEDULER], True)
    assert await _check(running.addr) == health_pb2.HealthCheckResponse.SERVING
    assert await _check(running.addr, SERVICE) == health_pb2.HealthCheckResponse.SERVING
    await set_serving(running.parts, [SCHEDULER], False)
    assert await _check(running.addr) == health_pb2.HealthCheckResponse.NOT_SERVING
    await set_serving(running.parts, [SCHEDULER], True)
    await running.parts.health.enter_graceful_shutdown()
    assert await _check(running.addr) == health_pb2.HealthCheckResponse.NOT_SERVING
    assert await _check(running.addr, SERVICE) == health_pb2.HealthCheckResponse.NOT_SERVING


async def test_wait_for_serving_ok(running: Running) -> None:
    await set_serving(running.parts, [SCHEDULER], True)
    await asyncio.wait_for(wait_for_serving(running.addr, 2.0), 5)
    await asyncio.wait_for(wait_for_serving(running.addr, 2.0, service=SERVICE), 5)


async def test_wait_for_serving_times_out_when_not_serving(running: Running) -> None:
    await set_serving(running.parts, [SCHEDULER], False)
    with pytest.raises(TimeoutError, match="NOT_SERVING"):
        await asyncio.wait_for(wait_for_serving(running.addr, 0.3), 5)


async def test_wait_for_serving_times_out_on_closed_port() -> None:
    # Bind then stop a server so the port is known to be closed.
    server, port = build_server(ServiceSettings(grpc_port=0), [], ServerParts())
    await server.start()
    await server.stop(None)
    addr = f"127.0.0.1:{port}"
    loop = asyncio.get_running_loop()
    start = loop.time()
    with pytest.raises(TimeoutError) as info:
        await asyncio.wait_for(wait_for_serving(addr, 0.3), 5)
    assert addr in str(info.value)
    assert "not serving after 0.3s" in str(info.value)
    assert "UNAVAILABLE" in str(info.value)
    assert loop.time() - start < 3.0


# ---- reflection ----


async def test_reflection_lists_services(running: Running) -> None:
    async with aio.insecure_channel(running.addr) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        call = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
        names = set()
        async for reply in call:
            names |= {s.name for s in reply.list_services_response.service}
    assert {SERVICE, INFERENCE_SERVICE, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= names


# ---- message limits ----


async def test_oversized_message_rejected_and_server_survives(running: Running, registry: CollectorRegistry) -> None:
    err = await _status_of(running.addr, "x" * 2048)
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert (await _stats(running.addr, "small")).queues[0].model_name == "small"


async def test_client_channel_applies_message_limit(running: Running) -> None:
    settings = ServiceSettings(max_message_bytes=512)
    async with client_channel(running.addr, settings) as channel:
        stub = scheduler_pb2_grpc.SchedulerAdminStub(channel)
        with pytest.raises(aio.AioRpcError) as info:
            await stub.GetQueueStats(scheduler_pb2.GetQueueStatsRequest(model_name="y" * 800), timeout=5)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_a_cancelled_call_is_counted_as_cancelled_not_unknown(running: Running, registry: CollectorRegistry) -> None:
    HANGING.clear()
    async with aio.insecure_channel(running.addr) as channel:
        stub = scheduler_pb2_grpc.SchedulerAdminStub(channel)
        call = stub.GetQueueStats(scheduler_pb2.GetQueueStatsRequest(model_name="hang"), timeout=30)
        await asyncio.wait_for(HANGING.wait(), 5)
        call.cancel()
    labels = {"grpc_method": METHOD, "grpc_code": "CANCELLED"}
    for _ in range(500):  # the server notices the cancellation asynchronously
        if registry.get_sample_value("mlos_grpc_server_handled_total", labels):
            break
        await asyncio.sleep(0.01)
    assert registry.get_sample_value("mlos_grpc_server_handled_total", labels) == 1
    assert registry.get_sample_value("mlos_grpc_server_handled_total", {"grpc_method": METHOD, "grpc_code": "UNKNOWN"}) is None
