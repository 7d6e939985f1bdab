"""WorkLink: the scheduler's end of one executor's Execute stream.

One long-lived bidirectional stream per executor, multiplexed by work id. `submit()` is
synchronous and returns a future: work submitted in the same event-loop turn leaves in one
message (so a batch, or a group of requests of a model without a batch dimension, costs one
hop), and results that finish together come back in one reply.

The stream is a gRPC Execute call, or the same messages over the executor's Unix link when
`unix_name` is set (a co-located executor; see unix_link.py). It opens on first use. When it
breaks, every unfinished piece of work fails with Unavailable naming the executor, and the next
submit opens a new stream - over gRPC if the Unix link was the one that broke (a restarted
executor has a new socket name; the scheduler probes again on its next load). A piece of work whose
time runs out fails with DeadlineExceeded by its own timer; its late result is dropped.

Generations (`submit_stream`, a Work with `generate` set) share the stream: their results go, in
order, to a GenerationStream (link_stream.py) instead of a future; a cancelled or timed-out
generation's id leaves in the next message's `cancel` list (sent at once); a broken stream fails
every open generation with Unavailable, as it fails the futures. Tensor work pays nothing for
this: only a result whose id has no future is looked up among the generations.

Shared memory (when constructed with LinkShmSettings; see link_shm for the set-up): each stream
offers its own arena in its first message; until the executor's answer proves it shares this
host's /dev/shm, and for good if it does not, tensors travel in the message. Lifetimes:
- an input copied into the scheduler's arena is freed when the work's result arrives (also a
  late result of expired work) or the stream ends, never when the caller stops waiting;
- an input that is a client's window travels as a ref to it; the caller keeps its lease until
  the result arrives (then the executor no longer reads it) - a caller that gave up early only
  risks the executor reading or writing the client's bytes late, never memory that is gone;
- an output in the executor's arena is copied into the result's raw when the result arrives,
  then the work id goes back in `release` of the next message (sent at once if no work is
  waiting); the executor frees everything of a stream when the stream ends;
- both arenas' names leave /dev/shm as soon as both ends mapped them, and a closing link
  unmaps its arena; counters says how many tensor bytes went by shared memory and inline.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from functools import partial

from grpc import aio

from mlos.common.v1 import tensor_pb2
from mlos.executor.v1 import executor_pb2 as pb
from mlos.executor.v1 import executor_pb2_grpc as pbg
from mlos_common.errors import DeadlineExceeded, MlosError, Unavailable, error_for_code
from mlos_common.shm import ShmSpan
from mlos_executor.link_shm import LinkCounters, LinkShm, LinkShmSettings, LinkTensor, inline_pb
from mlos_executor.link_stream import GenerationStream
from mlos_executor.unix_link import UnixCall, probe

log = logging.getLogger(__name__)


class WorkLink:
    def __init__(self, stub: pbg.ExecutorStub, addr: str, max_message_bytes: int = 64 << 20,
                 shm: LinkShmSettings | None = None, stream_grace_s: float = 1.0) -> None:
        self._stub = stub
        self.addr = addr
        self.unix_name = ""  # the executor's Unix link, once known to be reachable from here
        self._max_bytes = max_message_bytes
        self._shm_settings = shm  # None = every tensor in the message
        self.shm: LinkShm | None = None  # this stream's
        self.counters = LinkCounters()
        self._releases: list[int] = []
        self._offer: pb.LinkOffer | None = None
        self._call: aio.StreamStreamCall | UnixCall | None = None
        self._pending: dict[int, asyncio.Future] = {}
        self._outbox: list[pb.Work] = []
        self._sending: asyncio.Queue[pb.ExecuteRequest] | None = None
        self._tasks: list[asyncio.Task] = []
        self._next_id = 0
        self._streams: dict[int, GenerationStream] = {}  # open generations by work id
        self._cancels: list[int] = []  # generations to stop, sent with the next message
        self.stream_grace_s = stream_grace_s  # a generation's wait beyond its limit, or after a cancel
        self.streams_opened = 0
        self.messages_sent = 0
        self.works_sent = 0

    async def prefer_unix(self, name: str) -> bool:
        """Uses the executor's Unix link `name` from the next stream on, if it is reachable here."""
        if not name or name == self.unix_name:
            return bool(name)
        if not await probe(name):
            log.info("executor %s: Unix link not reachable from here; keeping the gRPC stream", self.addr)
            return False
        log.info("executor %s: co-located, work goes over its Unix link", self.addr)
        self.unix_name = name
        return True

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    @property
    def open_streams(self) -> int:
        return len(self._streams)

    def submit(
        self, work: pb.Work, timeout_s: float | None, inputs: Sequence[LinkTensor] = (),
        output_windows: dict[str, ShmSpan] | None = None,
    ) -> asyncio.Future:
        """Queues `work` for the next message; the future resolves to its pb.WorkResult.

        `inputs` are added to work.inputs, by shared memory where the stream allows; outputs
        named in `output_windows` are written by the executor into those client windows when it
        can (their results then carry the ref, no raw), else they come back in raw.
        """
        loop = asyncio.get_running_loop()
        if self._call is None:
            self._open(loop)
        self._next_id += 1
        work.id = work_id = self._next_id
        shm = self.shm if self.shm is not None and self.shm.ready else None
        if shm is not None:
            work.inputs.extend([shm.input_pb(work_id, t) for t in inputs])
            work.outputs_by_shm = True
            for name, w in (output_windows or {}).items():
                work.output_windows[name].CopyFrom(tensor_pb2.ShmRef(key=w.key, offset=w.offset, byte_size=w.byte_size))
        elif inputs:
            work.inputs.extend([inline_pb(t, self.counters) for t in inputs])
        if timeout_s is not None:
            work.timeout_us = max(1, int(timeout_s * 1e6))
        future = loop.create_future()
        self._pending[work_id] = future
        if timeout_s is not None:
            timer = loop.call_later(timeout_s, self._expire, work_id)
            future.add_done_callback(partial(_cancel_timer, timer))
        self._schedule_flush(loop)
        self._outbox.append(work)
        return future

    def submit_stream(self, work: pb.Work, timeout_s: float | None) -> GenerationStream:
        """Queues a generation (`work.generate` set, no inputs) for the next message; its results
        come through the returned GenerationStream, in order, until the final chunk or an error.

        `timeout_s` bounds the whole generation (sent as work.timeout_us), and
        work.generate.first_token_timeout_us its first result; the local timer fires
        `stream_grace_s` after either (DeadlineExceeded, and a cancel to the executor).
        """
        loop = asyncio.get_running_loop()
        if self._call is None:
            self._open(loop)
        self._next_id += 1
        work.id = work_id = self._next_id
        if timeout_s is not None:
            work.timeout_us = max(1, int(timeout_s * 1e6))
        stream = GenerationStream(work_id, self.addr, self._cancel, self._forget, self.stream_grace_s)
        first_us = work.generate.first_token_timeout_us
        stream.arm(loop, timeout_s, first_us / 1e6 if first_us else None)
        self._streams[work_id] = stream
        self._schedule_flush(loop)
        self._outbox.append(work)
        return stream

    def _cancel(self, work_id: int) -> None:
        """Stops the generation `work_id` on the executor: its id leaves with the next message."""
        if self._call is None:
            return  # the stream is gone, and the generation with it
        self._schedule_flush(asyncio.get_running_loop())
        self._cancels.append(work_id)

    def _forget(self, work_id: int) -> None:
        self._streams.pop(work_id, None)

    def _schedule_flush(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self._outbox and not self._releases and self._offer is None and not self._cancels:
            loop.call_soon(self._flush)

    def _expire(self, work_id: int) -> None:
        future = self._pending.pop(work_id, None)
        if future is not None and not future.done():
            future.set_exception(DeadlineExceeded(f"executor {self.addr} did not answer within the deadline"))

    def _flush(self) -> None:
        if self._sending is None or not (self._outbox or self._releases or self._offer or self._cancels):
            return
        message = pb.ExecuteRequest(work=self._outbox, release=self._releases, offer=self._offer)
        if self._cancels:
            message.cancel.extend(self._cancels)
            self._cancels = []
        self._sending.put_nowait(message)
        self.messages_sent += 1
        self.works_sent += len(self._outbox)
        self._outbox, self._releases, self._offer = [], [], None

    def _open(self, loop: asyncio.AbstractEventLoop) -> None:
        sending: asyncio.Queue[pb.ExecuteRequest] = asyncio.Queue()
        call = UnixCall(self.unix_name, self._max_bytes) if self.unix_name else self._stub.Execute()
        self.streams_opened += 1
        self._call, self._sending = call, sending
        if self._shm_settings is not None:
            try:
                self.shm = LinkShm(self._shm_settings, self.counters)
            except OSError as exc:
                log.warning("no shared memory towards %s: cannot create an arena: %s", self.addr, exc)
            else:
                self._offer = self.shm.offer()  # leaves with the first message
                loop.call_soon(self._flush)
        self._tasks = [loop.create_task(self._write(call, sending)), loop.create_task(self._read(call))]

    async def _write(self, call: aio.StreamStreamCall | UnixCall, sending: asyncio.Queue) -> None:
        try:
            while True:
                await call.write(await sending.get())
        except (aio.AioRpcError, asyncio.InvalidStateError, OSError) as exc:
            log.debug("stream to %s stopped accepting work: %s", self.addr, exc)

    async def _read(self, call: aio.StreamStreamCall | UnixCall) -> None:
        error: MlosError = Unavailable(f"executor {self.addr} closed the work stream")
        try:
            while True:
                reply = await call.read()
                if reply is aio.EOF:
                    break
                if self.shm is not None and not self.shm.answered:
                    if reply.HasField("answer"):
                        self._accept(self.shm, reply.answer)
                    elif reply.results:  # it answers an offer before any work: it does not speak shm
                        self._accept(self.shm, pb.LinkAnswer(error="it ignored the offer (an executor without shared memory)"))
                for result in reply.results:
                    future = self._pending.pop(result.id, None)
                    if future is None and self._streams:
                        stream = self._streams.get(result.id)
                        if stream is not None:  # a generation's chunk (no tensors to free)
                            stream.deliver(result)
                            continue
                    wanted = future is not None and not future.done()
                    if self.shm is not None:
                        self._finished(self.shm, result, wanted)
                    if future is not None and wanted:
                        future.set_result(result)
        except aio.AioRpcError as exc:
            # Failures of single pieces of work travel inside replies; a failing stream is the
            # transport's (e.g. GOAWAY surfaces as INTERNAL): nothing is known of its work.
            error = Unavailable(f"executor {self.addr} unavailable: work stream broke ({exc.code().name}: {exc.details()})")
        except OSError as exc:  # the Unix link (LinkBroken is a ConnectionError)
            error = Unavailable(f"executor {self.addr} unavailable: Unix link broke ({exc})")
        except asyncio.CancelledError:
            error = Unavailable(f"the work stream to executor {self.addr} was closed")
            raise
        finally:
            self._broken(call, error)

    def _accept(self, shm: LinkShm, answer: pb.LinkAnswer) -> None:
        shm.accept(answer)
        if shm.ready:
            log.info("tensors of at least %d bytes go to executor %s by shared memory",
                     shm.settings.min_bytes, self.addr)
        else:
            log.info("tensors go to executor %s in the message: %s", self.addr, shm.error)

    def _finished(self, shm: LinkShm, result: pb.WorkResult, wanted: bool) -> None:
        try:
            release = shm.finished(result, wanted)
        except MlosError as exc:  # the executor's arena shrank under us: this work fails alone
            release, work_id = True, result.id
            result.Clear()
            result.id, result.error_code, result.error_message = work_id, exc.code, exc.message
        if release:
            self._schedule_flush(asyncio.get_running_loop())
            self._releases.append(result.id)

    def _broken(self, call: aio.StreamStreamCall | UnixCall, error: MlosError) -> None:
        current = self._call
        if current is None or current is not call:
            return
        if isinstance(call, UnixCall):
            self.unix_name = ""
        self._call = self._sending = None
        self._releases, self._offer = [], None
        if self.shm is not None:
            self.shm.close()
            self.shm = None
        for task in self._tasks:
            if task is not asyncio.current_task():
                task.cancel()
        self._tasks = []
        self._outbox, self._cancels = [], []
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(error_for_code(error.code, error.message))
        streams, self._streams = list(self._streams.values()), {}
        for stream in streams:
            stream.fail(error_for_code(error.code, error.message))
        call.cancel()

    async def close(self) -> None:
        call = self._call
        tasks = self._tasks
        if call is not None:
            self._broken(call, Unavailable(f"the work stream to executor {self.addr} was closed"))
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _cancel_timer(timer: asyncio.TimerHandle, _future: asyncio.Future) -> None:
    timer.cancel()
