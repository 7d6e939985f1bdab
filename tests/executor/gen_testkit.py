"""Helpers for generation tests: GGUF files fetched from disk and a raw Execute stream."""

from __future__ import annotations

import asyncio

# GGUF files fetched from disk: shared with the scheduler's tests (tests/generation_testkit.py).
from generation_testkit import file_fetcher  # noqa: F401 - re-exported for the executor's tests
from grpc import aio

from mlos.executor.v1 import executor_pb2 as pb
from mlos.executor.v1 import executor_pb2_grpc as pbg


class GenStream:
    """One Execute stream to an executor, for generations: start, cancel, and read results by id."""

    def __init__(self, addr: str) -> None:
        self._channel = aio.insecure_channel(addr)
        self.stub = pbg.ExecutorStub(self._channel)
        self.call = self.stub.Execute()
        self.results: dict[int, list[pb.WorkResult]] = {}
        self.order: list[tuple[int, bool]] = []  # (id, ended) of every result, in arrival order
        self._done: dict[int, asyncio.Event] = {}
        self._first: dict[int, asyncio.Event] = {}
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def start(self, work_id: int, model: str, timeout_us: int = 0, version: int = 1, **generate) -> None:
        generate.setdefault("stream", True)
        self._done[work_id] = asyncio.Event()
        work = pb.Work(id=work_id, model=pb.ModelKey(name=model, version=version), timeout_us=timeout_us,
                       generate=pb.Generate(**generate))
        await self.call.write(pb.ExecuteRequest(work=[work]))

    async def send(self, request: pb.ExecuteRequest, ids: list[int] = ()) -> None:
        for work_id in ids:
            self._done[work_id] = asyncio.Event()
        await self.call.write(request)

    async def cancel(self, *ids: int) -> None:
        await self.call.write(pb.ExecuteRequest(cancel=list(ids)))

    async def finished(self, work_id: int, timeout_s: float = 30.0) -> list[pb.WorkResult]:
        await asyncio.wait_for(self._done[work_id].wait(), timeout_s)
        return self.results[work_id]

    async def first(self, work_id: int, timeout_s: float = 30.0) -> pb.WorkResult:
        await asyncio.wait_for(self._first.setdefault(work_id, asyncio.Event()).wait(), timeout_s)
        return self.results[work_id][0]

    async def _read(self) -> None:
        async for reply in self.call:
            for result in reply.results:
                self.results.setdefault(result.id, []).append(result)
                self.order.append((result.id, bool(result.error_code or result.chunk.final)))
                self._first.setdefault(result.id, asyncio.Event()).set()
                if result.error_code or result.chunk.final:
                    self._done.setdefault(result.id, asyncio.Event()).set()

    async def close(self) -> None:
        self.call.cancel()
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)
        await self._channel.close()


def text_of(results: list[pb.WorkResult]) -> bytes:
    return b"".join(r.chunk.text for r in results)


def tokens_of(results: list[pb.WorkResult]) -> int:
    return sum(r.chunk.tokens for r in results)
