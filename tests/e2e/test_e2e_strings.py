"""BYTES tensors and load-time config through the unmodified tritonclient against `mlos up`.

The string models are built by tests/scheduler/string_models.py (loaded by file path: that
directory's other modules import our protobufs) and registered in the running suite.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from e2e_testkit import make_inputs
from tritonclient.utils import InferenceServerException

BUILDER = Path(__file__).resolve().parents[1] / "scheduler" / "string_models.py"


def _build(folder: Path) -> dict[str, Path]:
    spec = importlib.util.spec_from_file_location("string_models", BUILDER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_string_models(folder)


async def _register(addr: str, models: dict[str, Path]) -> None:
    from mlos_registry.client import RegistryClient

    async with RegistryClient(addr) as registry:
        for name, path in models.items():
            await registry.register(name, path)


@pytest.fixture(scope="module")
def string_models(suite, client) -> dict[str, Path]:
    models = _build(suite.home / "string-models")
    asyncio.run(_register(suite.info["registry_addr"], models))
    for name in models:
        client.load_model(name)
    return models


def text_input(name: str, items: list[bytes]) -> grpcclient.InferInput:
    (inp,) = make_inputs({name: np.array(items, dtype=object)})
    return inp


def test_identity_returns_the_same_bytes(client, string_models):
    items = [b"abc", b"", "h\u00e9llo \u2713".encode(), b"a\x00b"]
    result = client.infer("str_identity", [text_input("x", items)])
    assert list(result.as_numpy("y")) == items


def test_string_concat(client, string_models):
    result = client.infer("str_concat", [text_input("a", [b"foo", b"x"]), text_input("b", [b"bar", b"y"])])
    assert list(result.as_numpy("y")) == [b"foobar", b"xy"]


def test_string_to_number_and_its_runtime_error(client, string_models):
    result = client.infer("str_to_float", [text_input("x", [b"2.5"])])
    np.testing.assert_array_equal(result.as_numpy("y"), np.array([2.5], np.float32))
    with pytest.raises(InferenceServerException) as info:
        client.infer("str_to_float", [text_input("x", [b"abc"])])
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT", info.value.message()
    assert "Cast" in info.value.message() and "RuntimeException" not in info.value.message()


def test_non_utf8_is_invalid(client, string_models):
    with pytest.raises(InferenceServerException) as info:
        client.infer("str_identity", [text_input("x", [b"\xff"])])
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "UTF-8" in info.value.message()


def test_load_model_with_config_override(client, string_models):
    client.load_model("str_identity", config=json.dumps({"max_batch_size": 2}))
    assert client.get_model_config("str_identity").config.max_batch_size == 2
    with pytest.raises(InferenceServerException) as info:
        client.infer("str_identity", [text_input("x", [b"a", b"b", b"c"])])
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT"
    with pytest.raises(InferenceServerException) as info:
        client.load_model("str_identity", config=json.dumps({"instance_group": [{"count": 2}]}))
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT" and "instance_group" in info.value.message()
    with pytest.raises(InferenceServerException) as info:
        client.load_model("str_identity", config="{}", files={"file:1/model.onnx": b"\x08\x07"})
    assert info.value.status() == "StatusCode.UNIMPLEMENTED" and "file:1/model.onnx" in info.value.message()
    client.load_model("str_identity")
    assert client.get_model_config("str_identity").config.max_batch_size == 8
