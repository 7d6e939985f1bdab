"""GenerationStream: the scheduler's end of one generation on a WorkLink.

A generation (a Work with `generate` set) is answered by several WorkResults with its id, each
carrying a chunk; the last has chunk.final set, or error_code set (then it failed). The link
hands each result to the stream as it is read; the consumer iterates the stream.

Contract:
- results come in the order the executor sent them; iteration ends after the result with
  chunk.final or error_code set (that result is yielded);
- `fail(error)` (the link broke: Unavailable) and the local timer (DeadlineExceeded) raise after
  the results received before them; the timer also sends a cancel, so the executor stops;
- `cancel()` sends the id in the next message's `cancel` list; the executor's final
  "cancelled" chunk then ends the iteration, or, if it has not come within `grace_s`, the
  iteration ends without it (late results are dropped by the link);
- a finished stream is forgotten by its link (its `forget` callback), and its timer stops.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from mlos.executor.v1 import executor_pb2 as pb
from mlos_common.errors import DeadlineExceeded, MlosError, error_for_code


class GenerationStream:
    def __init__(
        self, work_id: int, addr: str, send_cancel: Callable[[int], None], forget: Callable[[int], None],
        grace_s: float,
    ) -> None:
        self.work_id = work_id
        self.cancelled = False          # cancel() was called (by the consumer or the local timer)
        self.done = False               # nothing more will be delivered
        self.results = 0                # results delivered so far
        self._addr = addr
        self._send_cancel = send_cancel
        self._forget = forget
        self._grace_s = grace_s
        self._queue: deque[pb.WorkResult] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._error: MlosError | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._rest_at: float | None = None  # the whole generation's limit while the first-token one is armed

    # ---- the link's side ----

    def arm(self, loop: asyncio.AbstractEventLoop, timeout_s: float | None, first_timeout_s: float | None) -> None:
        """Starts the local timer: the whole generation must end within `timeout_s` seconds and
        its first result come within `first_timeout_s` (None = no limit), each plus the grace."""
        now = loop.time()
        until = None if timeout_s is None else now + timeout_s + self._grace_s
        first = None if first_timeout_s is None else now + first_timeout_s + self._grace_s
        if first is not None and (until is None or first < until):
            self._rest_at = until
            self._timer = loop.call_at(first, self._expire, "its first token")
        elif until is not None:
            self._timer = loop.call_at(until, self._expire, "the whole generation")

    def deliver(self, result: pb.WorkResult) -> None:
        """One result of this generation, in the executor's order."""
        if self.done:
            return
        if self.results == 0 and self._timer is not None:  # the first token came: only the whole limit now
            self._timer.cancel()
            self._timer = None
            if self._rest_at is not None:
                loop = asyncio.get_running_loop()
                self._timer = loop.call_at(self._rest_at, self._expire, "the whole generation")
        self.results += 1
        self._queue.append(result)
        if result.error_code or result.chunk.final:
            self._finish()
        else:
            self._wake()

    def fail(self, error: MlosError) -> None:
        """Ends the stream: `error` is raised after the results already delivered."""
        if not self.done:
            self._error = error
            self._finish()

    # ---- the consumer's side ----

    def cancel(self) -> None:
        """Asks the executor to stop this generation (sent at once); the iteration ends with its
        final "cancelled" chunk, or after the grace time. No effect on a finished stream."""
        if self.done or self.cancelled:
            return
        self.cancelled = True
        self._send_cancel(self.work_id)
        if self._timer is not None:
            self._timer.cancel()
        self._rest_at = None
        self._timer = asyncio.get_running_loop().call_later(self._grace_s, self._finish)

    def __aiter__(self) -> GenerationStream:
        return self

    async def __anext__(self) -> pb.WorkResult:
        while not self._queue:
            if self.done:
                if self._error is not None:
                    raise error_for_code(self._error.code, self._error.message)
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._queue.popleft()

    # ---- inside ----

    def _expire(self, what: str) -> None:
        self._timer = None
        if self.done:
            return
        self.fail(DeadlineExceeded(f"executor {self._addr} did not deliver {what} within the deadline; generation cancelled"))
        self.cancelled = True
        self._send_cancel(self.work_id)

    def _finish(self) -> None:
        self.done = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._forget(self.work_id)
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
