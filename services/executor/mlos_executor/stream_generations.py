"""The generations of one Execute stream: started from Work.generate, cancelled by id, ended with it.

Work ids are unique among a stream's unfinished work, so cancellation is by (stream, id). When the
stream ends (the scheduler went away), its generations are cancelled: nobody would read their text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from mlos.executor.v1 import executor_pb2 as pb
from mlos_common.errors import MlosError
from mlos_executor import convert
from mlos_executor.core import ExecutorCore
from mlos_executor.generation import ChunkOut, Generation


class StreamGenerations:
    def __init__(self, core: ExecutorCore) -> None:
        self._core = core
        self._open: dict[int, Generation] = {}

    def start(self, works: Iterable[pb.Work], send: Callable[[pb.WorkResult], None]) -> list[pb.Work]:
        """Starts the generations among `works`; returns the other (tensor) works. A generation
        that cannot start is answered at once with its error."""
        rest = []
        for work in works:
            if not work.HasField("generate"):
                rest.append(work)
                continue
            try:
                spec = convert.generation_spec(work)
                self._open[work.id] = self._core.generate(
                    work.model.name, work.model.version, spec, self._emitter(work.id, send)
                )
            except MlosError as exc:
                send(convert.failed_result(work.id, exc))
        return rest

    def _emitter(self, work_id: int, send: Callable[[pb.WorkResult], None]) -> Callable[[ChunkOut | MlosError], None]:
        def emit(out: ChunkOut | MlosError) -> None:
            if isinstance(out, MlosError) or out.final:
                self._open.pop(work_id, None)
            send(convert.chunk_result(work_id, out))

        return emit

    def cancel(self, ids: Iterable[int]) -> None:
        for work_id in ids:
            generation = self._open.get(work_id)
            if generation is not None:
                self._core.cancel(generation)

    def close(self) -> None:
        for generation in list(self._open.values()):
            self._core.cancel(generation)
        self._open.clear()
