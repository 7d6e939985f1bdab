"""Fixtures shared by every test directory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from multiprocessing import shared_memory

import pytest


@pytest.fixture
def shm_object() -> Iterator[Callable[[int], tuple[str, shared_memory.SharedMemory]]]:
    """Creates real POSIX shared memory objects: make(size) -> (key as clients pass it, handle).

    Every object is closed and unlinked after the test.
    """
    made: list[shared_memory.SharedMemory] = []

    def make(size: int) -> tuple[str, shared_memory.SharedMemory]:
        handle = shared_memory.SharedMemory(create=True, size=size)
        made.append(handle)
        return "/" + handle.name, handle

    yield make
    for handle in made:
        handle.close()
        try:
            handle.unlink()
        except FileNotFoundError:
            pass
