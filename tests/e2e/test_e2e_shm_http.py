"""System shared memory with unmodified tritonclient.http + tritonclient.utils.shared_memory against
`mlos up` (the KServe v2 REST port), and regions shared with the gRPC front door of the same suite.
Every answer is compared with in-process ONNX Runtime."""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import pytest
import tritonclient.http as httpclient
import tritonclient.utils.shared_memory as shm
from e2e_testkit import shm_regions
from test_e2e_tritonclient_http import http_client, http_url  # noqa: F401 (fixtures)
from tritonclient.utils import InferenceServerException

OCR_OUT = "save_infer_model/scale_0.tmp_1"
PREFIX = "mlos_e2e_http"
CASES = {"iris": ("X", ["label", "probabilities"]), "ocr_cls": ("x", [OCR_OUT])}


@pytest.fixture
def regions(http_client) -> Iterator:  # noqa: F811
    """make(name, byte_size, register=True) -> handle: a client-side region, registered over REST;
    every region is unregistered and destroyed afterwards."""
    with shm_regions(http_client, PREFIX) as make:
        yield make


def shm_infer(http_client, model: str, x: np.ndarray, want: dict[str, np.ndarray], in_region: str,  # noqa: F811
              out_region: str) -> tuple[httpclient.InferResult, dict[str, int]]:
    """Infers `model` with its input in `in_region` and every output in `out_region`, one after the
    other; returns the result and each output's offset."""
    input_name, output_names = CASES[model]
    inp = httpclient.InferInput(input_name, list(x.shape), "FP32")
    inp.set_shared_memory(in_region, x.nbytes)
    outputs, offset, offsets = [], 0, {}
    for name in output_names:
        out = httpclient.InferRequestedOutput(name, binary_data=True)
        out.set_shared_memory(out_region, want[name].nbytes, offset=offset)
        outputs.append(out)
        offsets[name] = offset
        offset += want[name].nbytes
    return http_client.infer(model, [inp], outputs=outputs), offsets


def assert_region_holds(handle, result, want: dict[str, np.ndarray], offsets: dict[str, int], region: str) -> None:
    for name, expected in want.items():
        meta = result.get_output(name)
        assert meta["parameters"]["shared_memory_region"] == region and "data" not in meta
        got = shm.get_contents_as_numpy(handle, expected.dtype, meta["shape"], offset=offsets[name])
        assert got.shape == expected.shape
        if np.issubdtype(expected.dtype, np.integer):
            np.testing.assert_array_equal(got, expected)
        else:
            assert np.allclose(got, expected, atol=1e-5), name


@pytest.mark.parametrize("model", list(CASES))
def test_inputs_and_outputs_in_shared_memory(http_client, demo_models, ort_sessions, regions, model):  # noqa: F811
    input_name, output_names = CASES[model]
    arrays = demo_models[model].sample_inputs(batch=2, seed=31)
    x = arrays[input_name]
    want = dict(zip(output_names, ort_sessions[model].run(output_names, arrays)))
    shm.set_shared_memory_region(regions("input_data", x.nbytes), [x])
    out_handle = regions("output_data", sum(w.nbytes for w in want.values()))

    result, offsets = shm_infer(http_client, model, x, want, "input_data", "output_data")

    assert_region_holds(out_handle, result, want, offsets, "output_data")


def test_status_unregister_and_cuda(http_client, regions):  # noqa: F811
    regions("a", 64)
    regions("b", 128)
    status = {r["name"]: r for r in http_client.get_system_shared_memory_status()}
    assert {n: r["byte_size"] for n, r in status.items()} == {"a": 64, "b": 128}
    assert http_client.get_system_shared_memory_status("a")[0]["key"].endswith("_a")
    http_client.unregister_system_shared_memory("a")
    assert [r["name"] for r in http_client.get_system_shared_memory_status()] == ["b"]
    with pytest.raises(InferenceServerException, match="no shared memory region named 'a'") as err:
        http_client.get_system_shared_memory_status("a")
    assert err.value.status() == "404"
    with pytest.raises(InferenceServerException, match="needs a GPU executor") as err:
        http_client.get_cuda_shared_memory_status()
    assert err.value.status() == "501"


def test_registered_over_grpc_used_over_rest(client, http_client, demo_models, ort_sessions, regions):  # noqa: F811
    """One registry per front door: gRPC registers, REST infers and unregisters, gRPC sees it gone."""
    arrays = demo_models["iris"].sample_inputs(batch=3, seed=17)
    x = arrays["X"]
    want = dict(zip(CASES["iris"][1], ort_sessions["iris"].run(CASES["iris"][1], arrays)))
    in_handle = regions("g_in", x.nbytes, register=False)
    out_handle = regions("g_out", 256, register=False)
    shm.set_shared_memory_region(in_handle, [x])
    client.register_system_shared_memory("g_in", f"/{PREFIX}_{os.getpid()}_g_in", x.nbytes)
    client.register_system_shared_memory("g_out", f"/{PREFIX}_{os.getpid()}_g_out", 256)
    assert {r["name"] for r in http_client.get_system_shared_memory_status()} == {"g_in", "g_out"}

    result, offsets = shm_infer(http_client, "iris", x, want, "g_in", "g_out")

    assert_region_holds(out_handle, result, want, offsets, "g_out")
    http_client.unregister_system_shared_memory("g_in")
    assert list(client.get_system_shared_memory_status().regions) == ["g_out"]


def test_bad_requests_then_good(http_client, demo_models, ort_sessions, regions):  # noqa: F811
    arrays = demo_models["iris"].sample_inputs(batch=2, seed=4)
    x = arrays["X"]
    want = {"probabilities": ort_sessions["iris"].run(["probabilities"], arrays)[0]}
    shm.set_shared_memory_region(regions("in", x.nbytes), [x])
    out_handle = regions("out", 64)
    with pytest.raises(InferenceServerException, match="one name") as err:
        http_client.register_system_shared_memory("r", "/../etc/passwd", 64)
    assert err.value.status() == "400"
    inp = httpclient.InferInput("X", list(x.shape), "FP32")
    inp.set_shared_memory("in", x.nbytes)
    small = httpclient.InferRequestedOutput("probabilities")
    small.set_shared_memory("out", 8)
    with pytest.raises(InferenceServerException, match=r"'probabilities' \(8 bytes\) should be at least 24 bytes"):
        http_client.infer("iris", [inp], outputs=[small])
    unknown = httpclient.InferInput("X", list(x.shape), "FP32")
    unknown.set_shared_memory("nope", x.nbytes)
    with pytest.raises(InferenceServerException, match="'nope'") as err:
        http_client.infer("iris", [unknown])
    assert err.value.status() == "404"

    result, offsets = shm_infer(http_client, "iris", x, {"label": np.zeros(2, np.int64), **want}, "in", "out")
    got = shm.get_contents_as_numpy(out_handle, np.float32, [2, 3], offset=offsets["probabilities"])
    assert np.allclose(got, want["probabilities"], atol=1e-5)
