"""Helpers shared by the e2e tests (tritonclient side only; never imports mlos.inference)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.utils.shared_memory as shm
from tritonclient.utils import InferenceServerException, np_to_triton_dtype


def make_inputs(arrays: dict[str, np.ndarray]) -> list[grpcclient.InferInput]:
    inputs = []
    for name, array in arrays.items():
        inp = grpcclient.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
        inp.set_data_from_numpy(array)
        inputs.append(inp)
    return inputs


def expect_status(status: str, call, *args, **kwargs) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as info:
        call(*args, **kwargs)
    assert info.value.status() == status, f"got {info.value.status()}: {info.value.message()}"
    assert info.value.message(), "the error says why"
    return info.value


@contextlib.contextmanager
def shm_regions(client, prefix: str) -> Iterator[Callable]:
    """make(name, byte_size, register=True) -> handle: a client-side region made with
    tritonclient.utils.shared_memory, registered through `client` (tritonclient.grpc or .http: same
    method names). Every region is unregistered and destroyed at exit."""
    made = []

    def make(name: str, byte_size: int, register: bool = True):
        key = f"/{prefix}_{os.getpid()}_{name}"
        handle = shm.create_shared_memory_region(name, key, byte_size)
        made.append(handle)
        if register:
            client.register_system_shared_memory(name, key, byte_size)
        return handle

    client.unregister_system_shared_memory()
    try:
        yield make
    finally:
        client.unregister_system_shared_memory()
        for handle in made:
            shm.destroy_shared_memory_region(handle)
