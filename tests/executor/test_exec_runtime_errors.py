"""onnxruntime's exceptions as typed errors: its own first line, no paths, colours or stack traces."""

from __future__ import annotations

import pytest

from mlos_common.errors import Internal, InvalidArgument
from mlos_executor.onnx_backend import runtime_error

KERNEL_FAILURE = (
    "[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Non-zero status code returned while running Cast node. "
    "Name:'' Status Message: stod"
)


@pytest.mark.parametrize("text,kind,wanted", [
    (KERNEL_FAILURE, InvalidArgument, "onnxruntime RUNTIME_EXCEPTION: Non-zero status code returned while running Cast"),
    ("[ONNXRuntimeError] : 2 : INVALID_ARGUMENT : Got invalid dimensions for input: x", InvalidArgument,
     "onnxruntime INVALID_ARGUMENT: Got invalid dimensions for input: x"),
    ("[ONNXRuntimeError] : 1 : FAIL : /onnxruntime_src/onnxruntime/core/framework/allocator.cc:42 out of memory\n"
     "Stacktrace:\n/usr/lib/libonnxruntime.so(+0x1234)", Internal, "onnxruntime FAIL: <path> out of memory"),
    ("\x1b[1;31mplain failure in /home/user/models/m.onnx\x1b[m", Internal, "onnxruntime RuntimeError: plain failure in <path>"),
])
def test_runtime_error_keeps_the_message_without_paths(text: str, kind: type, wanted: str) -> None:
    err = runtime_error(RuntimeError(text))
    assert type(err) is kind
    assert err.message.startswith(wanted), err.message
    assert "Stacktrace" not in err.message and "/" not in err.message and "\x1b" not in err.message
