"""A minimal MLServer runtime for ONNX files: one onnxruntime session, tensors in, tensors out.

Runs inside MLServer's own virtualenv (bench/.peers/mlserver), never in the project's: the
harness puts this folder on PYTHONPATH and names ``mlserver_ort_runtime.OnnxRuntimeModel`` as the
``implementation`` in each model-settings.json.

Contract:
- ``parameters.uri`` names the .onnx file (relative to the model folder).
- Session options are ONNX Runtime's defaults (CPU provider), the same as the in-process floor
  and MLOS's executor, unless ``parameters.extra.intra_op_num_threads`` /
  ``inter_op_num_threads`` are > 0.
- Model metadata (names, V2 datatypes, -1 for dynamic dims) comes from the ONNX graph.
- Inputs are decoded with MLServer's NumpyCodec; only tensor outputs are returned (V2 carries
  tensors; e.g. the iris ZipMap ``seq(map)`` output is skipped).
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse, MetadataTensor
from mlserver.utils import get_model_uri

ONNX_TO_V2 = {
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(float16)": "FP16",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(bool)": "BOOL",
    "tensor(string)": "BYTES",
}


def _metadata(args: list[ort.NodeArg]) -> list[MetadataTensor]:
    return [
        MetadataTensor(
            name=a.name,
            datatype=ONNX_TO_V2[a.type],
            shape=[d if isinstance(d, int) else -1 for d in a.shape],
        )
        for a in args
        if a.type in ONNX_TO_V2
    ]


def _session_options(extra: dict) -> ort.SessionOptions:
    options = ort.SessionOptions()
    if int(extra.get("intra_op_num_threads", 0)) > 0:
        options.intra_op_num_threads = int(extra["intra_op_num_threads"])
    if int(extra.get("inter_op_num_threads", 0)) > 0:
        options.inter_op_num_threads = int(extra["inter_op_num_threads"])
    return options


class OnnxRuntimeModel(MLModel):
    """Serves one ONNX file; see the module docstring for the contract."""

    async def load(self) -> bool:
        uri = await get_model_uri(self._settings)
        extra = (self._settings.parameters.extra or {}) if self._settings.parameters else {}
        self._session = ort.InferenceSession(
            uri, sess_options=_session_options(extra), providers=["CPUExecutionProvider"]
        )
        self.inputs = _metadata(self._session.get_inputs())
        self.outputs = _metadata(self._session.get_outputs())
        self._output_names = [o.name for o in self.outputs]
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        feeds = {i.name: NumpyCodec.decode_input(i) for i in payload.inputs}
        results = self._session.run(self._output_names, feeds)
        return InferenceResponse(
            model_name=self.name,
            model_version=self.version,
            id=payload.id,
            outputs=[
                NumpyCodec.encode_output(name, np.asarray(value))
                for name, value in zip(self._output_names, results, strict=True)
            ],
        )
