"""POSIX system shared memory regions (Triton's system-shared-memory extension). No grpc here.

Two layers, each usable on its own:

- `map_window(key, offset, byte_size)` maps `byte_size` bytes at `offset` of the POSIX shared
  memory object `key` (as a client passes it to shm_open, e.g. "/input_data"), i.e. of the file
  /dev/shm/input_data, and returns a `Window`. Only a single file name directly inside /dev/shm is
  ever opened: no "..", no further slashes, no NUL, no symbolic link, regular files only. A
  co-located executor given (key, offset, byte_size) in a descriptor maps the client's bytes with
  it directly, so a large tensor crosses no socket: `with map_window(k, o, n) as w: w.read(0, n)`.
- `ShmRegistry` holds the regions a client registered by name (Triton's register / status /
  unregister) and hands out `Lease`s: a request leases the regions it names and reads or writes
  tensors inside each region's window only. Unregistering a region in use takes the name away at
  once; its mapping stays open until the last lease is released.

Contracts: reads return memoryviews of the mapping (zero copy) that the caller must not keep past
its lease; writes copy into the mapping. Before each read or write the object's current size is
checked (a client that shrinks the object after registering gets FAILED_PRECONDITION instead of
a SIGBUS; a shrink racing with the copy itself cannot be excluded, as in Triton). The registry is
guarded by a lock, so threads may share it; its byte counters are exact under one event loop.
"""

from __future__ import annotations

import mmap
import os
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from mlos_common.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound

SHM_DIR = "/dev/shm"
NAME_MAX_BYTES = 255
_OPEN_FLAGS = os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


def shm_path(key: str) -> str:
    """The file behind a POSIX shared memory key: one optional leading "/", then a single name."""
    name = key[1:] if key.startswith("/") else key
    if not name or "/" in name or "\0" in name or name in (".", ".."):
        raise InvalidArgument(
            f"shared memory key {key!r} must be one name like '/input_data' (no '..', no further "
            "'/', no NUL): only objects directly in /dev/shm can be registered"
        )
    if len(name.encode("utf-8", "surrogateescape")) > NAME_MAX_BYTES:
        raise InvalidArgument(f"shared memory key {key[:40]!r}... is longer than {NAME_MAX_BYTES} bytes")
    return os.path.join(SHM_DIR, name)


def _check_span(what: str, offset: int, byte_size: int, limit: int, limit_what: str) -> None:
    if offset < 0 or byte_size < 0:
        raise InvalidArgument(f"{what}: offset {offset} and byte size {byte_size} must not be negative")
    if offset + byte_size > limit:
        raise InvalidArgument(
            f"{what}: offset {offset} + byte size {byte_size} = {offset + byte_size} bytes "
            f"exceeds {limit_what} of {limit} bytes"
        )


class Window:
    """A mapped window of a POSIX shared memory object; offsets in read/write are window-relative."""

    def __init__(self, key: str, offset: int, byte_size: int, mm: mmap.mmap, start: int) -> None:
        self.key, self.offset, self.byte_size = key, offset, byte_size
        self._mm, self._start = mm, start  # the window starts at self._start inside self._mm
        self.closed = False

    def _check_object(self) -> None:
        if self.closed:
            raise FailedPrecondition(f"shared memory {self.key!r} is no longer mapped")
        size = self._mm.size()  # fstat of the mapping's own descriptor: the object's size now
        if size < self.offset + self.byte_size:
            raise FailedPrecondition(
                f"shared memory object {self.key!r} shrank to {size} bytes after it was registered "
                f"with offset {self.offset} and byte size {self.byte_size}; register it again"
            )

    def read(self, offset: int, byte_size: int, what: str = "read") -> memoryview:
        """A zero-copy view of `byte_size` bytes at `offset`; do not keep it past the lease."""
        _check_span(what, offset, byte_size, self.byte_size, f"the region of {self.key!r}")
        self._check_object()
        begin = self._start + offset
        return memoryview(self._mm)[begin : begin + byte_size]

    def write(self, offset: int, data: bytes | memoryview, what: str = "write") -> None:
        """Copies `data` into the window at `offset`."""
        _check_span(what, offset, len(data), self.byte_size, f"the region of {self.key!r}")
        self._check_object()
        begin = self._start + offset
        self._mm[begin : begin + len(data)] = data

    def close(self) -> None:
        """Unmaps now, or (if a caller still holds a view) when the last view is dropped."""
        if self.closed:
            return
        self.closed = True
        try:
            self._mm.close()
        except BufferError:
            pass  # a view is still referenced: the mmap object frees the mapping after it

    def __enter__(self) -> Window:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def map_window(key: str, offset: int, byte_size: int) -> Window:
    """Maps bytes [offset, offset + byte_size) of the POSIX shared memory object `key`, read-write.

    INVALID_ARGUMENT for a hostile or malformed key, a link or non-regular file, a zero size, or a
    window past the object's real size; NOT_FOUND when no such object exists.
    """
    path = shm_path(key)
    if byte_size <= 0:
        raise InvalidArgument(f"shared memory {key!r}: byte size must be positive, got {byte_size}")
    if offset < 0:
        raise InvalidArgument(f"shared memory {key!r}: offset must not be negative, got {offset}")
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError:
        raise NotFound(f"no POSIX shared memory object {key!r} (looked for {path}); create it first") from None
    except OSError as exc:
        raise InvalidArgument(f"cannot open shared memory {key!r}: {exc.strerror} (links are refused)") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InvalidArgument(f"shared memory {key!r} is not a regular shared memory object")
        _check_span(f"shared memory {key!r}", offset, byte_size, st.st_size, "the object's size")
        aligned = offset - offset % mmap.ALLOCATIONGRANULARITY
        mm = mmap.mmap(fd, byte_size + offset - aligned, offset=aligned)  # keeps its own dup of fd
    finally:
        os.close(fd)
    return Window(key, offset, byte_size, mm, offset - aligned)


@dataclass(frozen=True, slots=True)
class ShmSpan:
    """Bytes [offset, offset + byte_size) of the object `key`: what a co-located peer maps."""

    key: str
    offset: int
    byte_size: int


@dataclass(frozen=True, slots=True)
class RegionInfo:
    name: str
    key: str
    offset: int
    byte_size: int


class _Region:
    def __init__(self, info: RegionInfo, window: Window) -> None:
        self.info, self.window = info, window
        self.users = 0
        self.registered = True


class Lease:
    """One request's hold on a region: the mapping stays open until `release` (or `with` exit)."""

    def __init__(self, owner: ShmRegistry, region: _Region) -> None:
        self._owner = owner
        self._region: _Region | None = region
        self.info = region.info

    def _window(self) -> Window:
        if self._region is None:
            raise FailedPrecondition(f"the lease on shared memory region {self.info.name!r} was released")
        return self._region.window

    def read(self, offset: int, byte_size: int, what: str) -> memoryview:
        view = self._window().read(offset, byte_size, f"{what} in shared memory region {self.info.name!r}")
        self._owner.bytes_read += byte_size
        return view

    def write(self, offset: int, data: bytes | memoryview, what: str) -> None:
        self._window().write(offset, data, f"{what} in shared memory region {self.info.name!r}")
        self._owner.bytes_written += len(data)

    def count_written(self, byte_size: int) -> None:
        """Counts bytes a co-located peer wrote into the region for this lease's request."""
        self._owner.bytes_written += byte_size

    def release(self) -> None:
        if self._region is not None:
            self._owner._release(self._region)
            self._region = None

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


class ShmRegistry:
    """Registered system shared memory regions by name (one registry per front door process)."""

    def __init__(self) -> None:
        self._regions: dict[str, _Region] = {}
        self._lock = threading.Lock()
        self.bytes_read = 0
        self.bytes_written = 0

    def __len__(self) -> int:
        return len(self._regions)

    def leases_held(self) -> int:
        """Leases not yet released on registered regions (0 when no request is running)."""
        with self._lock:
            return sum(r.users for r in self._regions.values())

    def register(self, name: str, key: str, offset: int, byte_size: int) -> RegionInfo:
        """Maps the window now, so every later error is about the request, not the region."""
        if not name:
            raise InvalidArgument("shared memory region name is empty")
        if name in self._regions:  # checked before mapping: a duplicate costs nothing
            raise AlreadyExists(f"shared memory region {name!r} is already registered; unregister it first")
        window = map_window(key, offset, byte_size)
        info = RegionInfo(name, key, offset, byte_size)
        with self._lock:
            if name in self._regions:
                window.close()
                raise AlreadyExists(f"shared memory region {name!r} is already registered; unregister it first")
            self._regions[name] = _Region(info, window)
        return info

    def unregister(self, name: str) -> list[str]:
        """Removes `name` (empty = every region); an unknown name is a no-op, as in Triton."""
        with self._lock:
            names = list(self._regions) if not name else [name] if name in self._regions else []
            gone = [self._regions.pop(n) for n in names]
            for region in gone:
                region.registered = False
                if region.users == 0:
                    region.window.close()
        return names

    def status(self, name: str = "") -> list[RegionInfo]:
        """Every region (empty name) or the one named; NOT_FOUND for an unknown name."""
        with self._lock:
            if not name:
                return [r.info for r in self._regions.values()]
            region = self._regions.get(name)
        if region is None:
            raise NotFound(f"no shared memory region named {name!r} is registered")
        return [region.info]

    def lease(self, name: str) -> Lease:
        with self._lock:
            region = self._regions.get(name)
            if region is None:
                raise NotFound(f"no shared memory region named {name!r} is registered")
            region.users += 1
        return Lease(self, region)

    def _release(self, region: _Region) -> None:
        with self._lock:
            region.users -= 1
            if region.users == 0 and not region.registered:
                region.window.close()

    def close(self) -> None:
        self.unregister("")


class ShmCollector:
    """Prometheus series read from a registry at scrape time (nothing is paid per request)."""

    def __init__(self, shm: ShmRegistry) -> None:
        self._shm = shm

    def collect(self) -> Iterator:
        yield GaugeMetricFamily("mlos_shm_regions", "Registered system shared memory regions.", value=len(self._shm))
        yield CounterMetricFamily(
            "mlos_shm_read_bytes", "Tensor bytes read from shared memory regions.", value=self._shm.bytes_read
        )
        yield CounterMetricFamily(
            "mlos_shm_written_bytes", "Tensor bytes written into shared memory regions.", value=self._shm.bytes_written
        )
