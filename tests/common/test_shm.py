"""mlos_common.shm: hostile keys, bounds, lifetime of mappings, unregister while in use, metrics."""

from __future__ import annotations

import mmap
import os
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from mlos_common.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from mlos_common.shm import SHM_DIR, ShmCollector, ShmRegistry, map_window, shm_path


def _open_fds_to(key: str) -> int:
    """How many of this process's file descriptors point at the object (a Window holds one; the
    test's own SharedMemory handle holds some too, so tests compare with a baseline)."""
    target = os.path.join(SHM_DIR, key.lstrip("/"))
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}") == target
        except OSError:
            continue
    return count


@pytest.mark.parametrize(
    "key",
    ["", "/", ".", "/..", "..", "../etc/passwd", "/../etc/passwd", "/a/b", "a/b", "//x", "a\0b", "/" + "x" * 256],
)
def test_hostile_keys_are_refused_before_anything_is_opened(key: str) -> None:
    with pytest.raises(InvalidArgument, match="shared memory key"):
        shm_path(key)
    with pytest.raises(InvalidArgument):
        map_window(key, 0, 8)


def test_key_maps_to_one_name_in_dev_shm() -> None:
    assert shm_path("/input_data") == "/dev/shm/input_data"
    assert shm_path("input_data") == "/dev/shm/input_data"
    assert shm_path("/a..b") == "/dev/shm/a..b"  # dots inside a single name are just a name


def test_symlink_directory_and_fifo_are_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"do not map me" * 10)
    names = {"link": f"mlos-test-link-{os.getpid()}", "dir": f"mlos-test-dir-{os.getpid()}",
             "fifo": f"mlos-test-fifo-{os.getpid()}"}
    paths = {k: os.path.join(SHM_DIR, v) for k, v in names.items()}
    os.symlink(secret, paths["link"])
    os.mkdir(paths["dir"])
    os.mkfifo(paths["fifo"])
    try:
        for name in names.values():
            with pytest.raises(InvalidArgument):
                map_window("/" + name, 0, 8)
    finally:
        os.unlink(paths["link"])
        os.rmdir(paths["dir"])
        os.unlink(paths["fifo"])
    assert secret.read_bytes() == b"do not map me" * 10


def test_missing_object_is_not_found() -> None:
    with pytest.raises(NotFound, match="no POSIX shared memory object"):
        map_window(f"/mlos-test-missing-{os.getpid()}", 0, 8)


def test_window_bounds_against_the_real_object_size(shm_object) -> None:
    key, _ = shm_object(4096)
    with pytest.raises(InvalidArgument, match="exceeds the object's size of 4096 bytes"):
        map_window(key, 0, 4097)
    with pytest.raises(InvalidArgument, match="exceeds"):
        map_window(key, 4000, 100)
    with pytest.raises(InvalidArgument, match="byte size must be positive"):
        map_window(key, 0, 0)
    with pytest.raises(InvalidArgument, match="offset must not be negative"):
        map_window(key, -1, 8)
    with pytest.raises(InvalidArgument, match="exceeds"):
        map_window(key, 2**63, 2**63)
    with map_window(key, 0, 4096) as w:
        assert w.read(0, 4096).nbytes == 4096


def test_unaligned_offset_reads_and_writes_the_right_bytes(shm_object) -> None:
    size = 3 * mmap.ALLOCATIONGRANULARITY
    key, handle = shm_object(size)
    offset = mmap.ALLOCATIONGRANULARITY + 100
    values = np.arange(64, dtype=np.float32)
    handle.buf[offset : offset + values.nbytes] = values.tobytes()
    with map_window(key, offset, 1024) as w:
        view = w.read(0, values.nbytes)
        assert np.array_equal(np.frombuffer(view, dtype=np.float32), values)
        handle.buf[offset : offset + 4] = np.float32(42).tobytes()
        assert np.frombuffer(view, dtype=np.float32)[0] == 42  # zero copy: the client's bytes
        del view
        w.write(512, b"\x01\x02\x03")
        assert bytes(handle.buf[offset + 512 : offset + 515]) == b"\x01\x02\x03"
        with pytest.raises(InvalidArgument, match="exceeds the region"):
            w.read(1000, 25)
        with pytest.raises(InvalidArgument, match="exceeds the region"):
            w.write(1020, b"12345")
        with pytest.raises(InvalidArgument, match="must not be negative"):
            w.read(-4, 4)


def test_view_held_past_close_stays_valid(shm_object) -> None:
    key, handle = shm_object(4096)
    handle.buf[:4] = b"abcd"
    w = map_window(key, 0, 4096)
    view = w.read(0, 4)
    w.close()  # a caller broke the contract; the mapping must outlive its view, not crash
    assert bytes(view) == b"abcd"
    with pytest.raises(FailedPrecondition, match="no longer mapped"):
        w.read(0, 4)
    del view


def test_object_shrunk_after_register_is_refused_not_sigbus(shm_object) -> None:
    key, handle = shm_object(8192)
    shm = ShmRegistry()
    shm.register("r", key, 0, 8192)
    os.truncate(shm_path(key), 4096)
    with shm.lease("r") as lease:
        with pytest.raises(FailedPrecondition, match="shrank to 4096 bytes"):
            lease.read(4096, 16, "input 'x'")
        with pytest.raises(FailedPrecondition, match="shrank"):
            lease.write(0, b"x", "output 'y'")
    shm.close()


def test_register_status_unregister(shm_object) -> None:
    key, _ = shm_object(4096)
    baseline = _open_fds_to(key)
    shm = ShmRegistry()
    info = shm.register("in", key, 0, 2048)
    shm.register("out", key, 2048, 2048)  # two regions of one object
    assert (info.name, info.key, info.offset, info.byte_size) == ("in", key, 0, 2048)
    assert {r.name for r in shm.status()} == {"in", "out"}
    assert shm.status("out")[0].offset == 2048
    with pytest.raises(AlreadyExists, match="'in' is already registered"):
        shm.register("in", key, 0, 16)
    with pytest.raises(InvalidArgument, match="name is empty"):
        shm.register("", key, 0, 16)
    with pytest.raises(NotFound, match="'nope'"):
        shm.status("nope")
    with pytest.raises(NotFound, match="'nope'"):
        shm.lease("nope")
    assert shm.unregister("nope") == []  # Triton: unregistering an unknown name is not an error
    assert shm.unregister("in") == ["in"]
    assert [r.name for r in shm.status()] == ["out"]
    shm.register("in", key, 0, 16)  # the name is free again
    assert sorted(shm.unregister("")) == ["in", "out"]
    assert shm.status() == [] and len(shm) == 0
    assert _open_fds_to(key) == baseline


def test_unregister_while_in_use_keeps_the_mapping_until_the_last_lease(shm_object) -> None:
    key, handle = shm_object(4096)
    baseline = _open_fds_to(key)
    shm = ShmRegistry()
    shm.register("r", key, 0, 4096)
    first, second = shm.lease("r"), shm.lease("r")
    assert _open_fds_to(key) == baseline + 1
    shm.unregister("r")
    with pytest.raises(NotFound):
        shm.lease("r")  # new requests cannot use it
    shm.register("r", key, 0, 1024)  # and the name can be reused at once
    first.write(0, b"still mapped", "output 'y'")
    first.release()
    first.release()  # idempotent
    with pytest.raises(FailedPrecondition, match="was released"):
        first.read(0, 4, "input 'x'")
    assert bytes(second.read(0, 12, "input 'x'")) == b"still mapped"
    assert _open_fds_to(key) == baseline + 2  # the old mapping (in use) and the new registration
    second.release()
    assert _open_fds_to(key) == baseline + 1
    shm.close()
    assert _open_fds_to(key) == baseline
    assert bytes(handle.buf[:12]) == b"still mapped"


def test_metrics_count_regions_and_bytes(shm_object) -> None:
    key, _ = shm_object(4096)
    shm = ShmRegistry()
    registry = CollectorRegistry()
    registry.register(ShmCollector(shm))
    shm.register("r", key, 0, 4096)
    with shm.lease("r") as lease:
        lease.read(0, 100, "input 'x'")
        lease.write(0, b"x" * 30, "output 'y'")
    assert registry.get_sample_value("mlos_shm_regions") == 1
    assert registry.get_sample_value("mlos_shm_read_bytes_total") == 100
    assert registry.get_sample_value("mlos_shm_written_bytes_total") == 30
    shm.close()
    assert registry.get_sample_value("mlos_shm_regions") == 0
