"""Shared memory on one Execute stream, executor side (protobuf messages, no grpc).

The scheduler may offer its arena in a stream's first message (pb.LinkOffer). `answer` maps it
through mlos_common.shm.map_window (only a single name directly in /dev/shm, bounds-checked),
reads back the nonce the scheduler wrote there and creates this stream's own output arena; any
failure is an answer with `error` and the stream stays inline.

Inputs: a tensor with an `shm` ref is read in place, zero copy: from the scheduler's arena when
the key is that arena's, else from a client's object mapped for the duration of the work.
Outputs: one copy from the runtime's array, into the client's window named in
`Work.output_windows` (which must be big enough, else INVALID_ARGUMENT; outputs under the
offer's min_bytes come back inline and the scheduler writes them), or, for work sent with
`outputs_by_shm`, into this stream's arena when at least the offer's min_bytes and there is room;
else inline. Arena outputs stay held until the scheduler lists the work id in `release` or the
stream ends; `close` unmaps the peer's arena and unlinks and unmaps ours (a view a worker thread
still holds keeps its mapping alive until dropped, so nothing is unmapped under a reader).
"""

from __future__ import annotations

import numpy as np

from mlos.common.v1 import tensor_pb2
from mlos.executor.v1 import executor_pb2 as pb
from mlos_common.arena import Arena, host_id
from mlos_common.errors import InvalidArgument, MlosError
from mlos_common.shm import Window, map_window
from mlos_common.signatures import TensorSpec
from mlos_common.tensors import array_from_raw, array_to_raw, encode_bytes

NONCE_BYTES = 16


class StreamShm:
    def __init__(self, arena_bytes: int, host: str | None = None) -> None:
        self._arena_bytes = arena_bytes
        self.host_id = host if host is not None else host_id()
        self.peer: Window | None = None     # the scheduler's arena
        self.arena: Arena | None = None     # ours, for outputs
        self.min_bytes = 0
        self._held: dict[int, list[int]] = {}

    def answer(self, offer: pb.LinkOffer) -> pb.LinkAnswer:
        answer = pb.LinkAnswer(host_id=self.host_id)
        if self._arena_bytes <= 0:
            answer.error = "shared memory is off on this executor (shm_arena_bytes = 0)"
            return answer
        if self.peer is not None:
            answer.error = "shared memory was already set up on this stream"
            return answer
        try:
            peer = map_window(offer.arena.key, offer.arena.offset, offer.arena.byte_size)
        except MlosError as exc:
            answer.error = f"cannot map the scheduler's arena: {exc.message}"
            return answer
        try:
            nonce = bytes(peer.read(0, NONCE_BYTES, "the link nonce"))
            arena = Arena("exec", self._arena_bytes)
        except (MlosError, OSError) as exc:
            peer.close()
            answer.error = f"cannot set up shared memory: {getattr(exc, 'message', exc)}"
            return answer
        self.peer, self.arena, self.min_bytes = peer, arena, offer.min_bytes
        answer.nonce = nonce
        answer.arena.CopyFrom(tensor_pb2.ShmRef(key=arena.key, offset=0, byte_size=arena.size_bytes))
        return answer

    def release(self, work_ids) -> None:
        arena = self.arena
        for work_id in work_ids:
            for offset in self._held.pop(work_id, ()):
                if arena is not None:
                    arena.free(offset)

    def input_array(self, t: tensor_pb2.Tensor, opened: list[Window]) -> np.ndarray:
        """The input's bytes in place; windows this opens go into `opened` (closed after the work)."""
        ref, what = t.shm, f"input {t.name!r}"
        if t.raw:
            raise InvalidArgument(f"{what} carries both raw bytes and a shared memory ref; send one")
        if self.peer is not None and ref.key == self.peer.key:
            view = self.peer.read(ref.offset, ref.byte_size, what)
        else:
            window = map_window(ref.key, ref.offset, ref.byte_size)
            opened.append(window)
            view = window.read(0, ref.byte_size, what)
        return array_from_raw(t.name, t.datatype, t.shape, view)

    def outputs_pb(self, work: pb.Work, outputs: list[tuple[TensorSpec, np.ndarray]],
                   opened: list[Window]) -> list[tensor_pb2.Tensor]:
        """Output tensors placed as the work asks; INVALID_ARGUMENT when a client window is too small."""
        placed = []
        for spec, array in outputs:
            t = tensor_pb2.Tensor(name=spec.name, datatype=spec.datatype, shape=array.shape)
            data = encode_bytes(array) if array.dtype.kind in ("O", "S", "U") else None
            nbytes = len(data) if data is not None else array.nbytes
            ref = work.output_windows[spec.name] if spec.name in work.output_windows else None
            if ref is not None and nbytes > ref.byte_size:
                raise InvalidArgument(
                    f"shared memory size specified with the request for output {spec.name!r} "
                    f"({ref.byte_size} bytes) should be at least {nbytes} bytes to hold the results"
                )
            if ref is not None and nbytes >= self.min_bytes:  # small ones: inline, the scheduler writes
                window = map_window(ref.key, ref.offset, ref.byte_size)
                opened.append(window)
                _copy_into(window.read(0, nbytes, f"output {spec.name!r}"), array, data)
                t.shm.CopyFrom(tensor_pb2.ShmRef(key=ref.key, offset=ref.offset, byte_size=nbytes))
            elif self.arena is not None and (offset := self._arena_slot(work, nbytes)) is not None:
                _copy_into(self.arena.view(offset, nbytes), array, data)
                t.shm.CopyFrom(tensor_pb2.ShmRef(key=self.arena.key, offset=offset, byte_size=nbytes))
            else:
                t.raw = data if data is not None else array_to_raw(array)
            placed.append(t)
        return placed

    def _arena_slot(self, work: pb.Work, nbytes: int) -> int | None:
        if not work.outputs_by_shm or self.arena is None or nbytes < max(1, self.min_bytes):
            return None
        offset = self.arena.alloc(nbytes)
        if offset is not None:
            self._held.setdefault(work.id, []).append(offset)
        return offset

    def drop(self, work_id: int) -> None:
        """Frees what a work holds when its result will not carry the refs (it failed)."""
        self.release((work_id,))

    def close(self) -> None:
        self._held.clear()
        if self.peer is not None:
            self.peer.close()
        if self.arena is not None:
            self.arena.close()


def _copy_into(view: memoryview, array: np.ndarray, data: bytes | None) -> None:
    """One copy of the runtime's array (or encoded BYTES) into mapped memory."""
    if data is not None:
        view[:] = data
        return
    np.copyto(np.frombuffer(view, dtype=array.dtype, count=array.size).reshape(array.shape), array)
