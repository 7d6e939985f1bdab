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


def iris_sample(home, seed: int = 4) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Three rows of the demo iris model's sample inputs and the labels in-process ONNX Runtime gives."""
    import onnxruntime

    from mlos_cli.demo import prepare_demo_models

    iris = {m.name: m for m in prepare_demo_models(home / "demo")}["iris"]
    arrays = iris.sample_inputs(batch=3, seed=seed)
    session = onnxruntime.InferenceSession(str(iris.path), providers=["CPUExecutionProvider"])
    return arrays, session.run(["label"], arrays)[0]


def serves_iris(addr: str, arrays: dict[str, np.ndarray], want: np.ndarray) -> None:
    """A fresh tritonclient (its own connection) finds the server ready and gets iris's labels right."""
    client = grpcclient.InferenceServerClient(url=addr)
    try:
        assert client.is_server_ready()
        np.testing.assert_array_equal(client.infer("iris", make_inputs(arrays)).as_numpy("label"), want)
    finally:
        client.close()


def scheduler_metrics(info: dict) -> str:
    """The scheduler's /metrics text, from `mlos up --json`'s ready line."""
    import urllib.request

    with urllib.request.urlopen(info["metrics"]["scheduler"], timeout=10) as reply:
        return reply.read().decode()
