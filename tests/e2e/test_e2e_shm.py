"""System shared memory with unmodified tritonclient.grpc + tritonclient.utils.shared_memory
against `mlos up`: regions made and read the way Triton's own examples do it."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.utils.shared_memory as shm
from e2e_testkit import expect_status, shm_regions

OCR_OUT = "save_infer_model/scale_0.tmp_1"
CASES = {"iris": ("X", ["label", "probabilities"]), "ocr_cls": ("x", [OCR_OUT])}


@pytest.fixture
def regions(client) -> Iterator:
    """make(name, byte_size, register=True) -> handle: a client-side region, registered; all removed afterwards."""
    with shm_regions(client, "mlos_e2e") as make:
        yield make


@pytest.mark.parametrize("model", list(CASES))
def test_inputs_and_outputs_in_shared_memory(client, demo_models, ort_sessions, regions, model):
    input_name, output_names = CASES[model]
    arrays = demo_models[model].sample_inputs(batch=2, seed=21)
    x = arrays[input_name]
    want = dict(zip(output_names, ort_sessions[model].run(output_names, arrays)))

    in_handle = regions("input_data", x.nbytes)
    shm.set_shared_memory_region(in_handle, [x])
    out_bytes = sum(w.nbytes for w in want.values())
    out_handle = regions("output_data", out_bytes)

    inp = grpcclient.InferInput(input_name, list(x.shape), "FP32")
    inp.set_shared_memory("input_data", x.nbytes)
    outputs, offset, offsets = [], 0, {}
    for name in output_names:
        out = grpcclient.InferRequestedOutput(name)
        out.set_shared_memory("output_data", want[name].nbytes, offset=offset)
        outputs.append(out)
        offsets[name] = offset
        offset += want[name].nbytes

    result = client.infer(model, [inp], outputs=outputs)

    for name in output_names:
        meta = result.get_output(name)
        assert meta.parameters["shared_memory_region"].string_param == "output_data"
        got = shm.get_contents_as_numpy(out_handle, want[name].dtype, list(meta.shape), offset=offsets[name])
        assert got.shape == want[name].shape
        if np.issubdtype(want[name].dtype, np.integer):
            np.testing.assert_array_equal(got, want[name])
        else:
            assert np.allclose(got, want[name], atol=1e-5), f"{model}.{name}"
    assert result.get_response().raw_output_contents == [b""] * len(output_names)


def test_status_unregister_and_metadata(client, regions):
    regions("a", 64)
    regions("b", 128)
    status = client.get_system_shared_memory_status()
    assert {r: status.regions[r].byte_size for r in status.regions} == {"a": 64, "b": 128}
    assert client.get_system_shared_memory_status("a").regions["a"].key.endswith("_a")
    client.unregister_system_shared_memory("a")
    assert list(client.get_system_shared_memory_status().regions) == ["b"]
    expect_status("StatusCode.NOT_FOUND", client.get_system_shared_memory_status, "a")
    client.unregister_system_shared_memory()
    assert len(client.get_system_shared_memory_status().regions) == 0
    extensions = client.get_server_metadata().extensions
    assert "system_shared_memory" in extensions and "cuda_shared_memory" not in extensions


def test_bad_regions_then_good(client, demo_models, ort_sessions, regions, good_infer):
    r_handle = regions("r", 64, register=False)
    err = expect_status("StatusCode.INVALID_ARGUMENT", client.register_system_shared_memory, "r", "/../etc/passwd", 64)
    assert "one name" in err.message()
    expect_status("StatusCode.NOT_FOUND", client.register_system_shared_memory, "r", "/mlos_e2e_missing", 64)
    key = f"/mlos_e2e_{os.getpid()}_r"
    expect_status("StatusCode.INVALID_ARGUMENT", client.register_system_shared_memory, "r", key, 65)
    client.register_system_shared_memory("r", key, 64)
    expect_status("StatusCode.ALREADY_EXISTS", client.register_system_shared_memory, "r", key, 64)
    good_infer()

    x = demo_models["iris"].sample_inputs(batch=2, seed=4)["X"]
    shm.set_shared_memory_region(regions("in", x.nbytes), [x])
    inp = grpcclient.InferInput("X", list(x.shape), "FP32")
    inp.set_shared_memory("in", x.nbytes)
    small = grpcclient.InferRequestedOutput("probabilities")
    small.set_shared_memory("r", 8)
    err = expect_status("StatusCode.INVALID_ARGUMENT", client.infer, "iris", [inp], outputs=[small])
    assert "'probabilities' (8 bytes) should be at least 24 bytes" in err.message()
    unknown = grpcclient.InferRequestedOutput("probabilities")
    unknown.set_shared_memory("nope", 64)
    expect_status("StatusCode.NOT_FOUND", client.infer, "iris", [inp], outputs=[unknown])
    good_infer()

    fits = grpcclient.InferRequestedOutput("probabilities")
    fits.set_shared_memory("r", 64)
    client.infer("iris", [inp], outputs=[fits])
    got = shm.get_contents_as_numpy(r_handle, np.float32, [2, 3])
    assert np.allclose(got, ort_sessions["iris"].run(["probabilities"], {"X": x})[0], atol=1e-5)


def test_cuda_shared_memory_is_refused_with_a_reason(client, good_infer):
    err = expect_status("StatusCode.UNIMPLEMENTED", client.get_cuda_shared_memory_status)
    assert "needs a GPU executor" in err.message()
    handle = base64.b64encode(b"\0" * 64)
    err = expect_status("StatusCode.UNIMPLEMENTED", client.register_cuda_shared_memory, "g", handle, 0, 64)
    assert "needs a GPU executor" in err.message()
    good_infer()
