"""A generating executor for the scheduler's protocol tests, until the llama.cpp backend lands.

ScriptedGenerations is the real ExecutorServicer (loads and tensor work go to a real executor
core and ONNX Runtime) that also answers Work.generate on the same Execute stream, from a
script instead of a model: the peer's side of the generation protocol, so the scheduler's side
(WorkLink streams, RemoteExecutor.generate, Scheduler.generate) is tested through real gRPC and
the real Unix link. The models named in GENERATION_MODELS are generation models: "loaded"
without a fetch (the registry cannot hold GGUF files yet); `generation_model` is their ModelInfo
and `with_models` adds them to a scheduler's registry lookup.

What a generation does depends on its prompt:
- anything else: tokens "w0 ", "w1 ", ... up to max_tokens, `chunk_tokens` per result (one
  result with all of them when generate.stream is false); final chunk with reason "length";
- b"hold": one chunk, then nothing until it is cancelled: a final "cancelled" chunk;
- b"silent": nothing until it is cancelled (then a final "cancelled" chunk);
- b"deaf": one chunk, then nothing, whatever comes (a cancel is recorded, not answered);
- b"fail": one chunk, then an error result (INTERNAL);
- b"wait": nothing until `release()`, then as "anything else".
Every cancel id that arrives is recorded in `cancels` (wait for one with `cancelled(id)`).
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

from mlos.executor.v1 import executor_pb2 as pb
from mlos_common.bootstrap import ServerParts
from mlos_common.signatures import TensorSpec
from mlos_executor.core import ExecutorCore, Fetcher
from mlos_executor.errors import ModelNotLoaded
from mlos_executor.servicer import ExecutorServicer
from mlos_scheduler.core import Lookup
from mlos_scheduler.domain import ModelInfo

EXECUTOR_ID = "scripted"
GENERATION_MODELS = ("gen", "gen2", "gen3", "small")


def file_fetcher(files: dict[str, Path], fallback: Fetcher | None = None) -> Fetcher:
    """A Fetcher serving model files from disk by name, others from `fallback` (the executor's
    artifact source is injected; the registry's GGUF registration is tested with the registry)."""

    async def fetch(name: str, version: int, dest: Path) -> tuple[Path, str]:
        if name not in files and fallback is not None:
            return await fallback(name, version, dest)
        target = dest / f".incoming-{name}-{version}"
        shutil.copyfile(files[name], target)
        return target, hashlib.sha256(target.read_bytes()).hexdigest()

    return fetch


def generation_model(name: str = "gen", version: int = 1, **fields) -> ModelInfo:
    """A generation model's ModelInfo as the registry will give it for a GGUF file."""
    model = ModelInfo(
        name, version, "", (TensorSpec("text_input", "BYTES", (1,)),), (TensorSpec("text_output", "BYTES", (-1,)),),
        max_batch_size=0, max_queue_delay_us=0, instance_count=1, device="cpu", platform="llama_cpp_gguf",
        task="generate", context_length=64,
    )
    return replace(model, **fields)


def with_models(lookup: Lookup, models: list[ModelInfo]) -> Lookup:
    """`lookup`, answering for `models` itself (version 0 = theirs)."""
    by_name = {m.name: m for m in models}

    async def find(name: str, version: int) -> ModelInfo:
        model = by_name.get(name)
        if model is not None and version in (0, model.version):
            return model
        return await lookup(name, version)

    return find


def words(n: int, start: int = 0) -> bytes:
    return "".join(f"w{i} " for i in range(start, start + n)).encode()


def scripted(core: ExecutorCore, parts: ServerParts | None = None, shm_arena_bytes: int = 0) -> ScriptedGenerations:
    """A servicer factory (make_servicer's signature) for the executor test fixtures."""
    return ScriptedGenerations(core, shm_arena_bytes)


class ScriptedGenerations(ExecutorServicer):
    def __init__(self, core: ExecutorCore, shm_arena_bytes: int = 0, chunk_tokens: int = 2) -> None:
        super().__init__(core, None, shm_arena_bytes)
        self.chunk_tokens = chunk_tokens
        self.generators: set[tuple[str, int]] = set()  # generation models "loaded" here
        self.loads: list[pb.LoadModelRequest] = []     # generation loads, in order
        self.received: list[pb.Work] = []              # generation works, in arrival order
        self.cancels: list[int] = []
        self._changed = asyncio.Event()                # set on every cancel
        self._cancelled: dict[int, asyncio.Event] = {}
        self._released = asyncio.Event()

    # ---- the test's controls ----

    async def cancelled(self, work_id: int, timeout_s: float = 10.0) -> None:
        """Returns once a cancel of `work_id` arrived (TimeoutError after `timeout_s`)."""
        async with asyncio.timeout(timeout_s):
            while work_id not in self.cancels:
                self._changed.clear()
                await self._changed.wait()

    async def received_work(self, count: int, timeout_s: float = 10.0) -> None:
        """Returns once `count` generation works arrived."""
        async with asyncio.timeout(timeout_s):
            while len(self.received) < count:
                self._changed.clear()
                await self._changed.wait()

    def release(self) -> None:
        self._released.set()

    def forget(self, name: str, version: int) -> None:
        """Drops a generation model, as a restarted executor would have."""
        self.generators.discard((name, version))

    # ---- the peer ----

    async def LoadModel(self, request: pb.LoadModelRequest, context) -> pb.LoadModelResponse:
        if request.model.name not in GENERATION_MODELS:
            return await super().LoadModel(request, context)
        self.loads.append(request)
        self.generators.add((request.model.name, request.model.version))
        generation = pb.GenerationStats(context_length=request.config.context_length, chunk_tokens=self.chunk_tokens)
        return pb.LoadModelResponse(model=pb.LoadedModel(
            model=request.model, runtime="scripted", task="generate", generation=generation,
        ))

    async def Execute(self, request_iterator, context):
        """Generations run here as tasks; every other piece of a message goes to the real
        servicer's Execute; both answer on this one stream."""
        loop = asyncio.get_running_loop()
        replies: asyncio.Queue[pb.ExecuteReply | None] = asyncio.Queue()
        running: set[asyncio.Task] = set()

        async def tensor_messages() -> AsyncIterator[pb.ExecuteRequest]:
            async for message in request_iterator:
                for work_id in message.cancel:
                    self._cancel(work_id)
                rest = [w for w in message.work if not w.HasField("generate")]
                for work in message.work:
                    if work.HasField("generate"):
                        self.received.append(work)
                        self._changed.set()
                        task = loop.create_task(self._generate(work, replies))
                        running.add(task)
                        task.add_done_callback(running.discard)
                if rest or message.HasField("offer") or message.release:
                    del message.work[:]
                    message.work.extend(rest)
                    yield message

        async def tensors() -> None:
            try:
                async for reply in ExecutorServicer.Execute(self, tensor_messages(), context):
                    replies.put_nowait(reply)
            finally:
                replies.put_nowait(None)

        pump = loop.create_task(tensors())
        try:
            while (reply := await replies.get()) is not None:
                yield reply
            await pump
        finally:
            pump.cancel()
            for task in list(running):
                task.cancel()

    def _cancel(self, work_id: int) -> None:
        self.cancels.append(work_id)
        self._changed.set()
        self._cancelled.setdefault(work_id, asyncio.Event()).set()

    async def _generate(self, work: pb.Work, replies: asyncio.Queue) -> None:
        def send(**chunk) -> None:
            replies.put_nowait(pb.ExecuteReply(results=[pb.WorkResult(id=work.id, chunk=pb.GenerationChunk(**chunk))]))

        g = work.generate
        if (work.model.name, work.model.version) not in self.generators:
            error = ModelNotLoaded(work.model.name, work.model.version, EXECUTOR_ID)
            replies.put_nowait(pb.ExecuteReply(results=[pb.WorkResult(
                id=work.id, error_code=error.code, error_message=error.message)]))
            return
        cancelled = self._cancelled.setdefault(work.id, asyncio.Event())
        prompt_tokens = len(g.prompt.split())
        if g.prompt == b"wait":
            await self._released.wait()
        if g.prompt == b"silent":
            await cancelled.wait()
            send(final=True, finish_reason="cancelled", prompt_tokens=prompt_tokens)
            return
        if g.prompt in (b"hold", b"deaf", b"fail"):
            send(text=words(1), tokens=1, prompt_tokens=prompt_tokens, first_token_ns=1000)
            if g.prompt == b"fail":
                replies.put_nowait(pb.ExecuteReply(results=[pb.WorkResult(
                    id=work.id, error_code="INTERNAL", error_message="scripted failure after one token")]))
            elif g.prompt == b"hold":
                await cancelled.wait()
                send(final=True, finish_reason="cancelled", preemptions=0)
            else:
                await asyncio.Event().wait()  # deaf: never answers again
            return
        step = self.chunk_tokens if g.stream else g.max_tokens
        for start in range(0, g.max_tokens, step):
            n = min(step, g.max_tokens - start)
            last = start + n >= g.max_tokens
            first = {"prompt_tokens": prompt_tokens, "first_token_ns": 1000} if start == 0 else {}
            send(text=words(n, start), tokens=n, final=last, finish_reason="length" if last else "", **first)
            await asyncio.sleep(0)  # a token step: other work on the stream goes on
            if cancelled.is_set() and not last:
                send(final=True, finish_reason="cancelled")
                return
