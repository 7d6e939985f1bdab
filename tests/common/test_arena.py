"""Arenas: the first-fit allocator and the lifetime of the /dev/shm segment."""

from __future__ import annotations

import gc
import os

import pytest

from mlos_common.arena import HEADER_BYTES, Arena, FreeList, host_id
from mlos_common.shm import map_window


def test_free_list_first_fit_coalesces_and_says_when_full() -> None:
    fl = FreeList(0, 1024, align=64)
    a, b, c = fl.alloc(100), fl.alloc(64), fl.alloc(1)
    assert (a, b, c) == (0, 128, 192)  # sizes rounded up to the alignment
    assert fl.alloc(1024) is None
    fl.free(b)
    assert fl.alloc(64) == 128  # the hole is reused first
    fl.free(128)
    fl.free(a)
    fl.free(c)
    assert fl.used_bytes == 0
    assert fl.alloc(1024) == 0  # every hole merged back into one
    with pytest.raises(KeyError):
        fl.free(64)  # never allocated: a bug must not pass silently


def test_arena_names_its_owner_reserves_on_demand_and_close_unlinks() -> None:
    arena = Arena("test", 1 << 20)
    name = arena.key[1:]
    assert name.startswith(f"mlos-test-{os.getpid()}-") and os.path.exists(f"/dev/shm/{name}")
    assert oct(os.stat(f"/dev/shm/{name}").st_mode & 0o777) == "0o600"
    off = arena.alloc(1000)
    assert off == HEADER_BYTES  # the header (the link's nonce) is never handed out
    assert arena.alloc(1 << 20) is None  # bigger than what is left: the caller goes inline
    arena.view(off, 4)[:] = b"abcd"
    with map_window(arena.key, off, 4) as peer:  # what a co-located peer sees
        assert bytes(peer.read(0, 4)) == b"abcd"
    held = arena.view(off, 4)
    arena.close()  # a view still held: unmapped only when dropped, no crash
    assert not os.path.exists(f"/dev/shm/{name}") and bytes(held) == b"abcd"
    del held
    assert arena.alloc(10) is None


def test_unlink_keeps_the_mapping_and_a_dropped_arena_leaves_no_name() -> None:
    arena = Arena("test", 4096)
    path = f"/dev/shm/{arena.key[1:]}"
    off = arena.alloc(8)
    arena.unlink()
    assert not os.path.exists(path)
    arena.view(off, 8)[:] = b"12345678"
    assert bytes(arena.view(off, 8)) == b"12345678"
    arena.close()
    other = Arena("test", 4096)
    path = f"/dev/shm/{other.key[1:]}"
    del other
    gc.collect()
    assert not os.path.exists(path)


def test_host_id_is_stable() -> None:
    assert host_id() == host_id() and ":" in host_id()
