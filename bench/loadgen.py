"""Closed-loop load at fixed concurrency: the in-process ONNX Runtime floor and our gRPC front door.

Both loops work the same way: C workers each send a request, wait for its answer, and send the
next one at once. Requests that complete during the warm-up are discarded; the measured window is
the ``duration`` seconds after it. Latency is taken with ``time.perf_counter`` around each call.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import grpc
import numpy as np
import onnxruntime as ort

from mlos.inference import grpc_service_pb2 as pb
from mlos.inference import grpc_service_pb2_grpc as pbg
from mlos_common.tensors import array_to_raw

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
CHANNEL_OPTIONS = (
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
)
RPC_TIMEOUT_S = 60.0
CONNECT_TIMEOUT_S = 30.0
NUMPY_TO_V2 = {
    np.dtype(np.bool_): "BOOL",
    np.dtype(np.uint8): "UINT8",
    np.dtype(np.uint16): "UINT16",
    np.dtype(np.uint32): "UINT32",
    np.dtype(np.uint64): "UINT64",
    np.dtype(np.int8): "INT8",
    np.dtype(np.int16): "INT16",
    np.dtype(np.int32): "INT32",
    np.dtype(np.int64): "INT64",
    np.dtype(np.float16): "FP16",
    np.dtype(np.float32): "FP32",
    np.dtype(np.float64): "FP64",
}
V2_TO_NUMPY = {v: k for k, v in NUMPY_TO_V2.items()}
TYPED_CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
}


@dataclass
class Window:
    """When the measured window opens and closes (perf_counter seconds)."""

    start: float
    end: float

    @classmethod
    def after(cls, warmup_s: float, duration_s: float) -> Window:
        start = time.perf_counter() + warmup_s
        return cls(start=start, end=start + duration_s)


@dataclass
class Recorder:
    """Latencies of requests completed inside the window, errors by kind."""

    window: Window
    latencies_s: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)

    def done(self, started: float, finished: float, error: str | None = None) -> bool:
        """Record one completed request; False once the window has closed."""
        if self.window.start <= finished <= self.window.end:
            if error is None:
                self.latencies_s.append(finished - started)
            else:
                self.errors[error] += 1
        return finished < self.window.end


@dataclass(frozen=True)
class LoadResult:
    concurrency: int
    duration_s: float
    completed: int
    throughput_rps: float
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    mean_ms: float | None
    errors: dict[str, int]

    @classmethod
    def from_recorders(cls, concurrency: int, recorders: list[Recorder]) -> LoadResult:
        window = recorders[0].window
        duration = window.end - window.start
        latencies = np.array([x for r in recorders for x in r.latencies_s], dtype=np.float64)
        errors: Counter[str] = Counter()
        for r in recorders:
            errors.update(r.errors)
        p50, p90, p99 = (
            (float(v) for v in np.percentile(latencies, [50, 90, 99]) * 1e3)
            if latencies.size
            else (None, None, None)
        )
        return cls(
            concurrency=concurrency,
            duration_s=duration,
            completed=int(latencies.size),
            throughput_rps=latencies.size / duration,
            p50_ms=p50,
            p90_ms=p90,
            p99_ms=p99,
            mean_ms=float(latencies.mean() * 1e3) if latencies.size else None,
            errors=dict(errors),
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# --- the floor: threads sharing one in-process session --------------------------------------


def open_floor_session(model_path: str) -> ort.InferenceSession:
    """Default session options, CPU provider: what a user gets with no tuning."""
    return ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])


def floor_outputs(
    session: ort.InferenceSession, inputs: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, inputs), strict=True))


def run_floor(
    session: ort.InferenceSession,
    inputs: dict[str, np.ndarray],
    concurrency: int,
    warmup_s: float,
    duration_s: float,
) -> LoadResult:
    return run_threads(lambda: session.run(None, inputs), concurrency, warmup_s, duration_s)


def run_threads(
    call: Callable[[], object], concurrency: int, warmup_s: float, duration_s: float
) -> LoadResult:
    """``concurrency`` Python threads calling ``call()`` back to back (any in-process runtime:
    an onnxruntime session, a llama_cpp.Llama behind its lock)."""
    window = Window.after(warmup_s, duration_s)
    recorders = [Recorder(window) for _ in range(concurrency)]
    threads = [
        threading.Thread(target=_thread_worker, args=(call, r), daemon=True) for r in recorders
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return LoadResult.from_recorders(concurrency, recorders)


def _thread_worker(call: Callable[[], object], recorder: Recorder) -> None:
    running = True
    while running:
        started = time.perf_counter()
        error = None
        try:
            call()
        except Exception as exc:  # noqa: BLE001 - counted, the loop goes on
            error = type(exc).__name__
        running = recorder.done(started, time.perf_counter(), error)


# --- ours: asyncio tasks on one grpc.aio channel to the scheduler ---------------------------


def build_request(model_name: str, inputs: dict[str, np.ndarray]) -> pb.ModelInferRequest:
    """Raw bytes only (raw_input_contents), no typed contents; the same bytes as the floor.
    Object arrays (texts) go as BYTES in Triton's length-prefixed layout."""
    request = pb.ModelInferRequest(model_name=model_name)
    for name, array in inputs.items():
        datatype = "BYTES" if array.dtype == np.object_ else NUMPY_TO_V2[array.dtype]
        # shape first: ascontiguousarray turns a 0-d scalar (silero_vad's `sr`) into shape [1]
        request.inputs.add(name=name, datatype=datatype, shape=list(array.shape))
        request.raw_input_contents.append(array_to_raw(array))
    return request


def decode_response(response: pb.ModelInferResponse) -> dict[str, np.ndarray]:
    """Output tensors by name, from raw_output_contents (or typed contents if a server uses them)."""
    outputs: dict[str, np.ndarray] = {}
    for i, tensor in enumerate(response.outputs):
        dtype = V2_TO_NUMPY[tensor.datatype]
        if i < len(response.raw_output_contents):
            flat = np.frombuffer(response.raw_output_contents[i], dtype=dtype)
        else:
            typed = getattr(tensor.contents, TYPED_CONTENTS_FIELD[tensor.datatype])
            flat = np.array(typed, dtype=dtype)
        outputs[tensor.name] = flat.reshape(tuple(tensor.shape))
    return outputs


def open_channel(addr: str) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(addr, options=CHANNEL_OPTIONS)


async def infer_once(addr: str, request: pb.ModelInferRequest) -> dict[str, np.ndarray]:
    async with open_channel(addr) as channel:
        stub = pbg.GRPCInferenceServiceStub(channel)
        response = await stub.ModelInfer(request, timeout=RPC_TIMEOUT_S)
    return decode_response(response)


async def run_ours(
    addr: str,
    request: pb.ModelInferRequest,
    concurrency: int,
    warmup_s: float,
    duration_s: float,
) -> LoadResult:
    async with open_channel(addr) as channel:
        await asyncio.wait_for(channel.channel_ready(), CONNECT_TIMEOUT_S)
        stub = pbg.GRPCInferenceServiceStub(channel)
        window = Window.after(warmup_s, duration_s)
        recorders = [Recorder(window) for _ in range(concurrency)]
        await asyncio.gather(*(_ours_worker(stub, request, r) for r in recorders))
    return LoadResult.from_recorders(concurrency, recorders)


async def _ours_worker(
    stub: pbg.GRPCInferenceServiceStub, request: pb.ModelInferRequest, recorder: Recorder
) -> None:
    running = True
    while running:
        started = time.perf_counter()
        error = None
        try:
            await stub.ModelInfer(request, timeout=RPC_TIMEOUT_S)
        except grpc.aio.AioRpcError as exc:
            error = exc.code().name
        running = recorder.done(started, time.perf_counter(), error)
