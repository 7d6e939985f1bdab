"""Arenas: POSIX shared memory segments a process owns, with a first-fit allocator. No grpc here.

An arena is one object in /dev/shm named "mlos-<role>-<pid>-<random>" (so a person can tell whose
it is), created 0600 with O_EXCL, mapped once. Its size is virtual: memory is reserved with
posix_fallocate up to the highest allocation so far, so a full /dev/shm makes `alloc` answer None
(the caller sends the bytes inline) instead of a SIGBUS on the first write.

Lifetime: `unlink()` takes the name away (the mapping, and any peer's, stays valid); `close()`
unlinks and unmaps. The name is also unlinked when the object is collected or the interpreter
exits (weakref.finalize), so only a killed process can leave a name behind, and the links unlink
names as soon as both ends have mapped them (see mlos_executor.link).
"""

from __future__ import annotations

import mmap
import os
import secrets
import weakref

from mlos_common.shm import SHM_DIR

ALIGN_BYTES = 64
HEADER_BYTES = 64  # the first bytes of an arena: the link's nonce; never allocated


def host_id() -> str:
    """Boot id + machine id: two processes that report the same value run on the same host."""
    parts = []
    for path in ("/proc/sys/kernel/random/boot_id", "/etc/machine-id"):
        try:
            with open(path) as f:
                parts.append(f.read().strip())
        except OSError:
            parts.append("")
    return ":".join(parts)


class FreeList:
    """First-fit allocator over [start, end): `alloc` returns an offset or None when full."""

    def __init__(self, start: int, end: int, align: int = ALIGN_BYTES) -> None:
        self._align = align
        self._free: list[tuple[int, int]] = [(start, end)] if end > start else []  # sorted, coalesced
        self._used: dict[int, int] = {}
        self.used_bytes = 0

    def alloc(self, byte_size: int) -> int | None:
        size = max(self._align, -(-byte_size // self._align) * self._align)
        for i, (begin, end) in enumerate(self._free):
            if end - begin >= size:
                if end - begin == size:
                    del self._free[i]
                else:
                    self._free[i] = (begin + size, end)
                self._used[begin] = size
                self.used_bytes += size
                return begin
        return None

    def free(self, offset: int) -> None:
        size = self._used.pop(offset)  # KeyError on a double free: a bug, never silent
        self.used_bytes -= size
        begin, end = offset, offset + size
        free = self._free
        i = 0
        while i < len(free) and free[i][0] < begin:
            i += 1
        if i < len(free) and free[i][0] == end:
            end = free.pop(i)[1]
        if i > 0 and free[i - 1][1] == begin:
            begin = free[i - 1][0]
            i -= 1
            free.pop(i)
        free.insert(i, (begin, end))


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class Arena:
    """A shared memory segment this process created; `key` is what a peer passes to map_window."""

    def __init__(self, role: str, size_bytes: int) -> None:
        name = f"mlos-{role}-{os.getpid()}-{secrets.token_hex(6)}"
        self.key = "/" + name
        self.size_bytes = size_bytes
        self._path = os.path.join(SHM_DIR, name)
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        self._finalizer = weakref.finalize(self, _unlink, self._path)
        try:
            os.ftruncate(fd, size_bytes)
            self._mm = mmap.mmap(fd, size_bytes)
            self._fd = fd
        except BaseException:
            os.close(fd)
            self._finalizer()
            raise
        self._reserved = 0
        self._free = FreeList(HEADER_BYTES, size_bytes)
        self.closed = False

    @property
    def used_bytes(self) -> int:
        return self._free.used_bytes

    def alloc(self, byte_size: int) -> int | None:
        """An offset of `byte_size` bytes backed by memory, or None when the arena (or /dev/shm) is full."""
        if self.closed:
            return None
        offset = self._free.alloc(byte_size)
        if offset is None or offset + byte_size <= self._reserved:
            return offset
        try:
            os.posix_fallocate(self._fd, self._reserved, offset + byte_size - self._reserved)
        except OSError:
            self._free.free(offset)
            return None
        self._reserved = offset + byte_size
        return offset

    def free(self, offset: int) -> None:
        self._free.free(offset)

    def view(self, offset: int, byte_size: int) -> memoryview:
        """A writable view of allocated bytes; the caller drops it before `close`."""
        return memoryview(self._mm)[offset : offset + byte_size]

    def unlink(self) -> None:
        """The name goes now; mappings (ours and the peer's) stay valid."""
        self._finalizer()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._finalizer()
        os.close(self._fd)
        try:
            self._mm.close()
        except BufferError:
            pass  # a view is still referenced: the mapping goes when it is dropped
