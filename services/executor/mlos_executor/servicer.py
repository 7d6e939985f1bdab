"""Thin gRPC servicer: protobuf <-> domain, then await the core."""

from __future__ import annotations

import asyncio
import logging
import os

import onnxruntime as ort
from opentelemetry import propagate, trace
from opentelemetry.trace import Tracer

from mlos.executor.v1 import executor_pb2 as pb
from mlos.executor.v1 import executor_pb2_grpc as pbg
from mlos_common.arena import host_id
from mlos_common.errors import Internal, MlosError
from mlos_common.shm import SHM_DIR, Window
from mlos_common.streams import serve_concurrently
from mlos_executor import convert, unix_link
from mlos_executor.core import ExecutorCore
from mlos_executor.memory import rss_bytes
from mlos_executor.stream_generations import StreamGenerations
from mlos_executor.stream_shm import StreamShm

log = logging.getLogger(__name__)


class ExecutorServicer(pbg.ExecutorServicer):
    def __init__(self, core: ExecutorCore, tracer: Tracer | None = None, shm_arena_bytes: int = 0) -> None:
        self._core = core
        self._tracer = tracer  # None when nothing exports traces
        self._shm_arena_bytes = shm_arena_bytes  # 0 = refuse shared memory offers
        self._host_id = host_id()
        self.link_socket = ""  # set when the Unix link serves Execute too
        self._unix_server: unix_link.LinkServer | None = None

    async def open_unix_link(self, name: str, max_message_bytes: int) -> None:
        """Serves Execute on the abstract Unix socket `name` as well (see unix_link.py)."""
        self._unix_server = await unix_link.serve(name, self.Execute, max_message_bytes)
        self.link_socket = name

    async def close_unix_link(self) -> None:
        if self._unix_server is not None:
            self._unix_server.close()
            self.link_socket = ""

    async def LoadModel(self, request: pb.LoadModelRequest, context) -> pb.LoadModelResponse:
        max_batch_size = request.config.max_batch_size if request.HasField("config") else None
        config = request.config
        loaded = await self._core.load(request.model.name, request.model.version, request.sha256, max_batch_size,
                                       request.task, convert.llama_settings(config),
                                       instances=config.instance_count, threads=config.threads,
                                       warmup_plan=tuple(config.warmup_batch_sizes))
        return pb.LoadModelResponse(model=convert.loaded_pb(loaded), warmup=convert.warmup_pb(loaded.warmup))

    async def UnloadModel(self, request: pb.UnloadModelRequest, context) -> pb.UnloadModelResponse:
        return pb.UnloadModelResponse(unloaded=self._core.unload(request.model.name, request.model.version))

    async def ExecuteBatch(self, request: pb.ExecuteBatchRequest, context) -> pb.ExecuteBatchResponse:
        outputs, compute_ns = await self._core.execute(
            request.model.name, request.model.version, convert.feeds(request.inputs), list(request.output_names)
        )
        return pb.ExecuteBatchResponse(outputs=convert.outputs_pb(outputs), compute_ns=compute_ns)

    async def Execute(self, request_iterator, context):
        """Work arrives in batches of messages; each model's share of a message runs in one
        worker-thread hop (or inline); results that finish together leave in one reply. Shared
        memory offered by the scheduler lives as long as the stream (see stream_shm); the offer,
        in the first message, is answered before any of that message's results."""
        loop = asyncio.get_running_loop()
        shm = StreamShm(self._shm_arena_bytes, self._host_id)
        replies: asyncio.Queue[pb.ExecuteReply] = asyncio.Queue()
        ready: list[pb.WorkResult] = []
        generations = StreamGenerations(self._core)

        def flush() -> None:
            replies.put_nowait(pb.ExecuteReply(results=ready[:]))
            ready.clear()

        def send(result: pb.WorkResult) -> None:
            if not ready:
                loop.call_soon(flush)
            ready.append(result)

        async def run(message: pb.ExecuteRequest) -> None:
            if message.HasField("offer"):
                replies.put_nowait(pb.ExecuteReply(answer=shm.answer(message.offer)))
            shm.release(message.release)
            generations.cancel(message.cancel)
            works = generations.start(message.work, send)
            groups = convert.group_work(works).items()
            for results in await asyncio.gather(*(self._run_group(key, works, shm) for key, works in groups)):
                if not ready:
                    loop.call_soon(flush)
                ready.extend(results)

        try:
            async for reply in serve_concurrently(request_iterator, run, replies):
                yield reply
        finally:
            generations.close()
            shm.close()

    async def _run_group(self, key: tuple[str, int], works: list[pb.Work], shm: StreamShm) -> list[pb.WorkResult]:
        traceparent = works[0].traceparent
        if self._tracer is None or not traceparent:
            return await self._run_works(key, works, shm)
        # One span per group, child of the first piece of work's trace (the batch's dispatcher).
        context = propagate.extract({"traceparent": traceparent})
        with self._tracer.start_as_current_span(
            "mlos.executor/execute", context=context, kind=trace.SpanKind.SERVER,
            attributes={"mlos.model": key[0], "mlos.model_version": key[1], "mlos.works": len(works)},
        ):
            return await self._run_works(key, works, shm)

    async def _run_works(self, key: tuple[str, int], works: list[pb.Work], shm: StreamShm) -> list[pb.WorkResult]:
        """Every work gets a result; nothing raised here may end the stream. Client windows mapped
        for the works are closed before returning."""
        opened: list[Window] = []
        try:
            return await self._run_mapped(key, works, shm, opened)
        finally:
            for window in opened:
                window.close()

    async def _run_mapped(self, key: tuple[str, int], works: list[pb.Work], shm: StreamShm,
                          opened: list[Window]) -> list[pb.WorkResult]:
        results: dict[int, pb.WorkResult] = {}
        items, accepted = [], []
        for work in works:
            try:
                items.append(convert.work_item(work, shm, opened))
                accepted.append(work)
            except MlosError as exc:
                results[work.id] = convert.failed_result(work.id, exc)
        ids = [w.id for w in accepted]
        try:
            if items:
                outcomes = await self._core.execute_group(key[0], key[1], items)
                for work, outcome in zip(accepted, outcomes, strict=True):
                    results[work.id] = convert.result_pb(work, outcome, shm, opened)
        except MlosError as exc:
            results.update((i, convert.failed_result(i, exc)) for i in ids)
        except Exception as exc:  # noqa: BLE001 - one group's failure must not end the stream
            log.exception("work for %s v%d failed", *key)
            error = Internal(f"executor failed on model {key[0]!r}: {type(exc).__name__}")
            results.update((i, convert.failed_result(i, error)) for i in ids)
        return list(results.values())

    async def Status(self, request: pb.StatusRequest, context) -> pb.StatusResponse:
        core = self._core
        return pb.StatusResponse(
            executor_id=core.executor_id,
            available_providers=ort.get_available_providers(),
            models=[convert.loaded_pb(m) for m in core.models.values()],
            in_flight=core.in_flight,
            intra_op_threads=core.intra_op_threads,
            execution_slots=core.execution_slots,
            link_socket=self.link_socket,
            host_id=self._host_id,
            shm_usable=self._shm_arena_bytes > 0 and os.access(SHM_DIR, os.W_OK),
            rss_bytes=rss_bytes(),
            **convert.hardware_status(core),
        )
