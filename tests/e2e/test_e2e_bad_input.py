"""Bad requests through tritonclient get a clear gRPC status, and the suite keeps serving."""

from __future__ import annotations

import numpy as np
import tritonclient.grpc as grpcclient
from e2e_testkit import expect_status, make_inputs

MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # the services' default gRPC message limit
OCR_ITEM_BYTES = 3 * 48 * 192 * 4


def iris_input(array: np.ndarray, datatype: str = "FP32") -> grpcclient.InferInput:
    inp = grpcclient.InferInput("X", list(array.shape), datatype)
    inp.set_data_from_numpy(array)
    return inp


def test_unknown_model(client, good_infer):
    err = expect_status("StatusCode.NOT_FOUND", client.infer, "nope", [iris_input(np.zeros((1, 4), np.float32))])
    assert "nope" in err.message()
    good_infer()


def test_wrong_datatype(client, good_infer):
    err = expect_status("StatusCode.INVALID_ARGUMENT", client.infer, "iris",
                        [iris_input(np.zeros((1, 4), np.float64), "FP64")])
    assert "FP64" in err.message() or "FP32" in err.message()
    good_infer()


def test_wrong_shape(client, good_infer):
    expect_status("StatusCode.INVALID_ARGUMENT", client.infer, "iris", [iris_input(np.zeros((1, 5), np.float32))])
    good_infer()


def test_unknown_input_name(client, good_infer):
    inp = grpcclient.InferInput("Y", [1, 4], "FP32")
    inp.set_data_from_numpy(np.zeros((1, 4), np.float32))
    expect_status("StatusCode.INVALID_ARGUMENT", client.infer, "iris", [inp])
    good_infer()


def test_raw_byte_length_mismatch(client, good_infer):
    # tritonclient checks shape against the array, so claim [2, 4] after setting [1, 4] (16 of 32 bytes)
    inp = iris_input(np.zeros((1, 4), np.float32))
    inp.set_shape([2, 4])
    expect_status("StatusCode.INVALID_ARGUMENT", client.infer, "iris", [inp])
    good_infer()


def test_raw_bytes_short_by_four(client, good_infer):
    inp = iris_input(np.zeros((2, 4), np.float32))
    inp._raw_content = inp._raw_content[:-4]  # tritonclient's field for raw_input_contents
    expect_status("StatusCode.INVALID_ARGUMENT", client.infer, "iris", [inp])
    good_infer()


def test_huge_claimed_shape(client, good_infer):
    inp = iris_input(np.zeros((1, 4), np.float32))
    inp.set_shape([2**40, 4])  # 16 bytes sent, 16 TiB claimed: must not be allocated
    expect_status("StatusCode.INVALID_ARGUMENT", client.infer, "iris", [inp])
    good_infer()


def test_negative_shape(client, good_infer):
    inp = iris_input(np.zeros((1, 4), np.float32))
    inp.set_shape([-1, 4])
    expect_status("StatusCode.INVALID_ARGUMENT", client.infer, "iris", [inp])
    good_infer()


def test_message_over_limit(client, good_infer):
    batch = (70 * 1024 * 1024) // OCR_ITEM_BYTES + 1
    assert batch * OCR_ITEM_BYTES > MAX_MESSAGE_BYTES
    inp = grpcclient.InferInput("x", [batch, 3, 48, 192], "FP32")
    inp.set_data_from_numpy(np.zeros((batch, 3, 48, 192), np.float32))
    expect_status("StatusCode.RESOURCE_EXHAUSTED", client.infer, "ocr_cls", [inp])
    good_infer()


def test_batch_over_max_batch_size(client, demo_models, good_infer):
    arrays = demo_models["iris"].sample_inputs(batch=9)
    err = expect_status("StatusCode.INVALID_ARGUMENT", client.infer, "iris", make_inputs(arrays))
    assert "8" in err.message()
    good_infer()


def test_client_timeout(client, demo_models, good_infer):
    arrays = demo_models["ocr_cls"].sample_inputs(batch=1)
    expect_status("StatusCode.DEADLINE_EXCEEDED", client.infer, "ocr_cls", make_inputs(arrays), client_timeout=0.000001)
    good_infer()


def test_still_live_after_bad_input(client, good_infer):
    good_infer()
    assert client.is_server_live() is True
    assert client.is_server_ready() is True
