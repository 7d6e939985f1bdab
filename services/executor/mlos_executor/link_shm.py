"""Shared memory of one WorkLink stream, scheduler side (protobuf messages, no grpc).

Set-up: a new stream creates this link's arena (see mlos_common.arena), writes a random nonce
into its first bytes and offers it in the stream's first message. The executor maps it, reads
the nonce back and answers with its own output arena. Only when the answer names our host, echoes
the nonce and its arena maps here does the link turn `ready`; then both names are unlinked from
/dev/shm at once (both mappings stay valid), so a crash of either side from then on leaves no
segment behind. Until then, and for good after a failed answer, every tensor travels inline.

When ready: an input of at least `min_bytes` that lies in a client's registered region travels
as a ref to the client's own window (no copy); other inputs of at least `min_bytes` are copied
once into the arena; smaller ones stay inline. Arena space of a work's inputs is freed when its
result arrives (even a late one whose caller gave up) or the stream ends - never earlier, since
the executor may still be reading it. Outputs the executor put in its arena are copied out when
the result arrives and the work id is handed back for release on the next message.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from prometheus_client.core import CounterMetricFamily

from mlos.common.v1 import tensor_pb2
from mlos.executor.v1 import executor_pb2 as pb
from mlos_common.arena import Arena, host_id
from mlos_common.errors import MlosError
from mlos_common.shm import ShmSpan, Window, map_window, shm_path

NONCE_BYTES = 16
EXECUTOR_ARENA_PREFIX = "/mlos-exec-"


@dataclass(frozen=True, slots=True)
class LinkShmSettings:
    min_bytes: int = 64 << 10       # smaller tensors stay in the message
    arena_bytes: int = 256 << 20    # virtual size; memory is reserved as it is used


class LinkTensor(Protocol):
    """An input as the scheduler holds it: raw bytes (or a view of a client's region) and, when it
    lies in a client's registered region, that window."""

    @property
    def name(self) -> str: ...
    @property
    def datatype(self) -> str: ...
    @property
    def shape(self) -> Sequence[int]: ...
    @property
    def raw(self) -> bytes | memoryview: ...
    @property
    def window(self) -> ShmSpan | None: ...


@dataclass
class LinkCounters:
    bytes_by_shm_sent: int = 0
    bytes_inline_sent: int = 0
    bytes_by_shm_received: int = 0
    bytes_inline_received: int = 0


class LinkCollector:
    """mlos_executor_link_bytes_total{executor, path="shm"|"inline", direction="sent"|"received"}:
    tensor bytes on each executor link, read at scrape time (nothing is paid per request)."""

    def __init__(self, links: dict[str, LinkCounters]) -> None:
        self._links = links  # executor address -> its link's counters

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "mlos_executor_link_bytes", "Tensor bytes between the scheduler and each executor, by path.",
            labels=["executor", "path", "direction"],
        )
        for addr, c in self._links.items():
            family.add_metric([addr, "shm", "sent"], c.bytes_by_shm_sent)
            family.add_metric([addr, "inline", "sent"], c.bytes_inline_sent)
            family.add_metric([addr, "shm", "received"], c.bytes_by_shm_received)
            family.add_metric([addr, "inline", "received"], c.bytes_inline_received)
        yield family


def inline_pb(t: LinkTensor, counters: LinkCounters) -> tensor_pb2.Tensor:
    raw = t.raw if isinstance(t.raw, bytes) else bytes(t.raw)
    counters.bytes_inline_sent += len(raw)
    return tensor_pb2.Tensor(name=t.name, datatype=t.datatype, shape=t.shape, raw=raw)


class LinkShm:
    def __init__(self, settings: LinkShmSettings, counters: LinkCounters) -> None:
        self.settings = settings
        self.counters = counters
        self.arena = Arena("sched", settings.arena_bytes)
        self._nonce = secrets.token_bytes(NONCE_BYTES)
        self.arena.view(0, NONCE_BYTES)[:] = self._nonce
        self._host = host_id()
        self.peer: Window | None = None
        self.ready = False
        self.answered = False
        self.error = ""
        self._held: dict[int, list[int]] = {}

    def offer(self) -> pb.LinkOffer:
        return pb.LinkOffer(
            arena=tensor_pb2.ShmRef(key=self.arena.key, offset=0, byte_size=self.arena.size_bytes),
            host_id=self._host, min_bytes=self.settings.min_bytes,
        )

    def accept(self, answer: pb.LinkAnswer) -> None:
        """Turns ready, or records why not in `error` and frees the arena."""
        self.answered = True
        try:
            self._check(answer)
            self.peer = map_window(answer.arena.key, 0, answer.arena.byte_size)
        except MlosError as exc:
            self.error = exc.message
        else:
            self.ready = True
        finally:
            self.arena.unlink()
        if answer.nonce == self._nonce and answer.arena.key.startswith(EXECUTOR_ARENA_PREFIX):
            # proven the same /dev/shm, and an MLOS arena: its name is ours to drop
            try:
                os.unlink(shm_path(answer.arena.key))
            except (OSError, MlosError):
                pass
        if not self.ready:
            self.close()

    def _check(self, answer: pb.LinkAnswer) -> None:
        if answer.error:
            raise MlosError(f"the executor declined: {answer.error}")
        if answer.host_id.split(":")[0] != self._host.split(":")[0]:  # boot ids: containers differ in machine id
            raise MlosError(f"the executor runs on another host (boot id {answer.host_id[:13]}…)")
        if answer.nonce != self._nonce:
            raise MlosError("the executor read another nonce from the arena: not the same /dev/shm")
        if not answer.arena.key.startswith(EXECUTOR_ARENA_PREFIX):
            raise MlosError(f"the executor's arena key {answer.arena.key[:40]!r} is not an MLOS arena")

    def input_pb(self, work_id: int, t: LinkTensor) -> tensor_pb2.Tensor:
        nbytes = len(t.raw)
        if not self.ready or nbytes < self.settings.min_bytes:
            return inline_pb(t, self.counters)
        w = t.window
        if w is not None:
            ref = tensor_pb2.ShmRef(key=w.key, offset=w.offset, byte_size=w.byte_size)
        else:
            offset = self.arena.alloc(nbytes)
            if offset is None:
                return inline_pb(t, self.counters)  # arena full: this one travels in the message
            self.arena.view(offset, nbytes)[:] = t.raw
            self._held.setdefault(work_id, []).append(offset)
            ref = tensor_pb2.ShmRef(key=self.arena.key, offset=offset, byte_size=nbytes)
        self.counters.bytes_by_shm_sent += nbytes
        return tensor_pb2.Tensor(name=t.name, datatype=t.datatype, shape=t.shape, shm=ref)

    def finished(self, result: pb.WorkResult, wanted: bool) -> bool:
        """Frees the work's inputs; copies arena outputs into raw when `wanted`. True when the
        executor holds outputs of this work to release."""
        for offset in self._held.pop(result.id, ()):
            self.arena.free(offset)
        in_arena = False
        for t in result.outputs:
            if not t.HasField("shm"):
                self.counters.bytes_inline_received += len(t.raw)
                continue
            self.counters.bytes_by_shm_received += t.shm.byte_size
            if self.peer is None or t.shm.key != self.peer.key:
                continue  # a client's window: the bytes are already where the client wants them
            in_arena = True
            if wanted:
                t.raw = bytes(self.peer.read(t.shm.offset, t.shm.byte_size, f"output {t.name!r}"))
                t.ClearField("shm")
        return in_arena

    def close(self) -> None:
        self.ready = False
        self._held.clear()
        self.arena.close()
        if self.peer is not None:
            self.peer.close()
