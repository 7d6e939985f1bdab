"""Thin servicers: the Open Inference Protocol front door and the MLOS admin extension."""

from __future__ import annotations

import asyncio
import logging

from mlos.inference import grpc_service_pb2 as pb
from mlos.inference import grpc_service_pb2_grpc as pbg
from mlos.scheduler.v1 import scheduler_pb2 as spb
from mlos.scheduler.v1 import scheduler_pb2_grpc as spbg
from mlos_common.errors import MlosError
from mlos_common.shm import ShmRegistry
from mlos_common.streams import serve_concurrently
from mlos_scheduler import admin_convert, convert, generation_convert, generation_door, shm_convert
from mlos_scheduler.core import Scheduler, parse_version
from mlos_scheduler.domain import InferResult
from mlos_scheduler.front_door import NOT_SEEN, header_of
from mlos_scheduler.stats import Duration

log = logging.getLogger(__name__)

SERVER_NAME = "mlos"
SERVER_VERSION = "0.1.0"
EXTENSIONS = ["model_repository", "model_configuration", "statistics", "system_shared_memory"]


def _dur(d: Duration) -> pb.StatisticDuration:
    return pb.StatisticDuration(count=d.count, ns=d.ns)


def _caller(context) -> tuple[str | None, str]:
    """(x-mlos-client metadata or None, the peer's address) of a call, for the front door."""
    return header_of(context.invocation_metadata()), context.peer()


class InferenceServicer(pbg.GRPCInferenceServiceServicer):
    def __init__(self, core: Scheduler, shm: ShmRegistry | None = None) -> None:
        self._core = core
        self._shm = shm if shm is not None else ShmRegistry()

    async def ServerLive(self, request, context) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request, context) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self._core.server_ready)

    async def ModelReady(self, request, context) -> pb.ModelReadyResponse:
        return pb.ModelReadyResponse(ready=self._core.model_ready(request.name, request.version))

    async def ServerMetadata(self, request, context) -> pb.ServerMetadataResponse:
        return pb.ServerMetadataResponse(name=SERVER_NAME, version=SERVER_VERSION, extensions=EXTENSIONS)

    async def ModelMetadata(self, request, context) -> pb.ModelMetadataResponse:
        return convert.model_metadata(await self._core.describe(request.name, request.version))

    async def ModelConfig(self, request, context) -> pb.ModelConfigResponse:
        return pb.ModelConfigResponse(config=convert.model_config(await self._core.describe(request.name, request.version)))

    async def ModelInfer(self, request, context) -> pb.ModelInferResponse:
        door = self._core.door
        seen = door.enter(*_caller(context), request.model_name) if door.active else NOT_SEEN
        with seen, shm_convert.ShmRequest(self._shm, request) as shm:
            now = asyncio.get_running_loop().time()
            req = convert.infer_request(request, context.time_remaining(), now, shm.input_tensor)
            seen.decoded(req)
            req.output_windows = shm.output_windows()
            answer = await generation_door.infer_or_model(self._core, req)
            if isinstance(answer, InferResult):
                return shm.respond(answer)
            return convert.infer_response(await generation_door.whole_result(self._core, answer, req, request.parameters))

    async def ModelStreamInfer(self, request_iterator, context):
        """Requests are served concurrently; responses (with their ids) come as each finishes.
        A generation model's request answers with its chunks as they come (generation_convert.
        stream). Any failure of one request (typed or not) becomes that request's error_message
        and the stream goes on; a broken request stream ends the call with its status; a client
        that cancels the call stops its generations."""
        out: asyncio.Queue = asyncio.Queue()
        loop = asyncio.get_running_loop()
        door = self._core.door
        caller = _caller(context) if door.active else None

        def put(response: pb.ModelInferResponse) -> None:  # a generation's responses, as they come
            out.put_nowait(pb.ModelStreamInferResponse(infer_response=response))

        async def one(msg: pb.ModelInferRequest) -> None:
            try:
                seen = door.enter(*caller, msg.model_name) if caller is not None else NOT_SEEN
                with seen, shm_convert.ShmRequest(self._shm, msg) as shm:
                    req = convert.infer_request(msg, None, loop.time(), shm.input_tensor)
                    seen.decoded(req)
                    req.output_windows = shm.output_windows()
                    answer = await generation_door.infer_or_model(self._core, req)
                    if not isinstance(answer, InferResult):
                        await generation_convert.stream(self._core, answer, req, msg.parameters, put)
                        return
                    reply = pb.ModelStreamInferResponse(infer_response=shm.respond(answer))
            except Exception as exc:  # noqa: BLE001 - one request's failure must not end the stream
                reply = pb.ModelStreamInferResponse(
                    error_message=convert.stream_error(exc),
                    infer_response=pb.ModelInferResponse(model_name=msg.model_name, id=msg.id),
                )
                if not isinstance(exc, MlosError):
                    log.exception("unhandled error in ModelStreamInfer request %r", msg.id, exc_info=exc)
            await out.put(reply)

        async for reply in serve_concurrently(request_iterator, one, out):
            yield reply

    async def ModelStatistics(self, request, context) -> pb.ModelStatisticsResponse:
        version = parse_version(request.version)
        stats = []
        for (name, v), s in sorted(self._core.stats.models.items()):
            if (request.name and name != request.name) or (version and v != version):
                continue
            stats.append(
                pb.ModelStatistics(
                    name=name, version=str(v), last_inference=s.last_inference_ms,
                    inference_count=s.inference_count, execution_count=s.execution_count,
                    inference_stats=pb.InferStatistics(
                        success=_dur(s.success), fail=_dur(s.fail), queue=_dur(s.queue),
                        compute_input=_dur(s.compute_input), compute_infer=_dur(s.compute_infer),
                        compute_output=_dur(s.compute_output),
                    ),
                    batch_stats=[
                        pb.InferBatchStatistics(
                            batch_size=rows, compute_input=_dur(b.compute_input),
                            compute_infer=_dur(b.compute_infer), compute_output=_dur(b.compute_output),
                        )
                        for rows, b in sorted(s.batches.items())
                    ],
                    response_stats={
                        key: pb.InferResponseStatistics(success=_dur(r.success), fail=_dur(r.fail), cancel=_dur(r.cancel))
                        for key, r in s.responses.items()
                    },
                )
            )
        if request.name and not stats:
            await self._core.describe(request.name, request.version)  # NOT_FOUND for unknown models
        return pb.ModelStatisticsResponse(model_stats=stats)

    async def RepositoryIndex(self, request, context) -> pb.RepositoryIndexResponse:
        entries = await self._core.index(request.ready)
        mi = pb.RepositoryIndexResponse.ModelIndex
        return pb.RepositoryIndexResponse(
            models=[mi(name=e.name, version=str(e.version), state=e.state, reason=e.reason) for e in entries]
        )

    async def RepositoryModelLoad(self, request, context) -> pb.RepositoryModelLoadResponse:
        override = convert.load_override(request)
        await self._core.load(request.model_name, 0, context.time_remaining(), override.apply if override else None)
        return pb.RepositoryModelLoadResponse()

    async def RepositoryModelUnload(self, request, context) -> pb.RepositoryModelUnloadResponse:
        await self._core.unload(request.model_name)
        return pb.RepositoryModelUnloadResponse()

    async def SystemSharedMemoryStatus(self, request, context) -> pb.SystemSharedMemoryStatusResponse:
        return shm_convert.system_status(self._shm.status(request.name))

    async def SystemSharedMemoryRegister(self, request, context) -> pb.SystemSharedMemoryRegisterResponse:
        self._shm.register(request.name, request.key, request.offset, request.byte_size)
        return pb.SystemSharedMemoryRegisterResponse()

    async def SystemSharedMemoryUnregister(self, request, context) -> pb.SystemSharedMemoryUnregisterResponse:
        self._shm.unregister(request.name)
        return pb.SystemSharedMemoryUnregisterResponse()

    async def CudaSharedMemoryStatus(self, request, context) -> pb.CudaSharedMemoryStatusResponse:
        raise shm_convert.cuda_unsupported()

    async def CudaSharedMemoryRegister(self, request, context) -> pb.CudaSharedMemoryRegisterResponse:
        raise shm_convert.cuda_unsupported()

    async def CudaSharedMemoryUnregister(self, request, context) -> pb.CudaSharedMemoryUnregisterResponse:
        raise shm_convert.cuda_unsupported()


class AdminServicer(spbg.SchedulerAdminServicer):
    def __init__(self, core: Scheduler) -> None:
        self._core = core

    async def GetQueueStats(self, request, context) -> spb.GetQueueStatsResponse:
        return spb.GetQueueStatsResponse(queues=[
            admin_convert.queue_stats(s.model, s.batcher)
            for s in list(self._core.served.values())
            if not request.model_name or s.model.name == request.model_name
        ])

    async def PredictDeadline(self, request, context) -> spb.PredictDeadlineResponse:
        _, priority, prediction = await self._core.predict_deadline(
            request.model_name, request.model_version, request.priority, request.timeout_us, request.batch_rows or 1
        )
        policy = self._core.policy
        return admin_convert.prediction(prediction, policy.admits_by_prediction, policy.threshold(priority))

    async def GetAdmissionStats(self, request, context) -> spb.GetAdmissionStatsResponse:
        records = self._core.admission.snapshot(request.model_name)
        return spb.GetAdmissionStatsResponse(stats=[admin_convert.admission_stats(r) for r in records])
