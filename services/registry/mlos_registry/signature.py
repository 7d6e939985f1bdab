"""ONNX inspection: parse safely, check what the file refers to, extract inputs/outputs.

`onnx.load(..., load_external_data=False)` never follows external-data locations; we check them
ourselves and refuse any that point outside the model's folder. Only the default ONNX op domains
and com.microsoft (onnxruntime contrib ops) are allowed.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

import onnx
from google.protobuf.message import DecodeError

from mlos_common.signatures import batchable
from mlos_common.tensors import ONNX_TYPES
from mlos_registry.domain import ServingConfig, TensorSpec
from mlos_registry.errors import InvalidModelFile, UnsupportedFormat

log = logging.getLogger(__name__)

ALLOWED_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml", "com.microsoft"})


@dataclass(frozen=True, slots=True)
class Signature:
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]


def load_model(path: Path, shown_as: str) -> onnx.ModelProto:
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError, TypeError) as exc:
        raise InvalidModelFile(
            f"{shown_as} is not a model file we recognise: it is not GGUF, SafeTensors or PyTorch, "
            f"and it does not parse as an ONNX model (truncated or not ONNX: {type(exc).__name__})"
        ) from None
    if not model.HasField("graph") or not model.graph.output:
        raise InvalidModelFile(
            f"{shown_as} is not a model file we recognise: it parses as protobuf but has no ONNX graph "
            "with outputs (truncated, or not an ONNX model)"
        )
    return model


def _graphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("g"):
                yield from _graphs(attr.g)
            for sub in attr.graphs:
                yield from _graphs(sub)


def _tensors(model: onnx.ModelProto) -> Iterator[onnx.TensorProto]:
    for graph in _graphs(model.graph):
        yield from graph.initializer
        for sparse in graph.sparse_initializer:
            yield sparse.values
            yield sparse.indices
        for node in graph.node:
            for attr in node.attribute:
                if attr.HasField("t"):
                    yield attr.t
                yield from attr.tensors


def _unsafe_location(location: str, folder: Path) -> bool:
    if not location or "\x00" in location:
        return True
    if os.path.isabs(location) or PureWindowsPath(location).is_absolute() or location.startswith(("/", "\\")):
        return True
    parts = PurePosixPath(location.replace("\\", "/")).parts
    if ".." in parts:
        return True
    resolved = (folder / location).resolve()
    return not resolved.is_relative_to(folder.resolve())


def check_external_data(model: onnx.ModelProto, model_dir: Path, shown_as: str) -> None:
    for tensor in _tensors(model):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        if _unsafe_location(location, model_dir):
            raise InvalidModelFile(
                f"{shown_as}: tensor {tensor.name!r} refers to external data at {location!r}, outside the "
                "model's folder; refusing to register it"
            )
        raise InvalidModelFile(
            f"{shown_as}: tensor {tensor.name!r} keeps its data in a separate file ({location!r}); models "
            "with external data cannot be registered yet; save it as one file "
            "(onnx.save(model, path, save_as_external_data=False))"
        )


def check_domains(model: onnx.ModelProto, shown_as: str) -> None:
    local = {f.domain for f in model.functions}
    allowed = ALLOWED_DOMAINS | local
    for opset in model.opset_import:
        if opset.domain not in allowed:
            raise UnsupportedFormat(
                f"{shown_as} imports custom operator domain {opset.domain!r}; only "
                f"{sorted(d or 'ai.onnx' for d in ALLOWED_DOMAINS)} are supported"
            )
    for graph in _graphs(model.graph):
        for node in graph.node:
            if node.domain not in allowed:
                raise UnsupportedFormat(
                    f"{shown_as}: node {node.name or node.op_type!r} uses custom operator domain "
                    f"{node.domain!r}, which this server cannot run"
                )


def _spec(value: onnx.ValueInfoProto) -> TensorSpec | None:
    if not value.type.HasField("tensor_type"):
        return None
    tensor_type = value.type.tensor_type
    elem = onnx.TensorProto.DataType.Name(tensor_type.elem_type)
    datatype = ONNX_TYPES.get(f"tensor({elem.lower()})")
    if datatype is None:
        raise UnsupportedFormat(f"tensor {value.name!r} has element type {elem}, which has no protocol datatype")
    if not tensor_type.HasField("shape"):
        log.warning("tensor %r has no shape (unknown rank); reporting it as a scalar", value.name)
        return TensorSpec(value.name, datatype, ())
    dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tensor_type.shape.dim)
    return TensorSpec(value.name, datatype, dims)


def extract_signature(model: onnx.ModelProto, shown_as: str) -> Signature:
    graph = model.graph
    initializers = {t.name for t in graph.initializer}
    inputs = []
    for value in graph.input:
        if value.name in initializers:
            continue
        spec = _spec(value)
        if spec is None:
            raise UnsupportedFormat(
                f"{shown_as}: input {value.name!r} is not a tensor (sequence/map inputs are not supported)"
            )
        inputs.append(spec)
    outputs = []
    for value in graph.output:
        spec = _spec(value)
        if spec is None:
            log.warning("%s: skipping non-tensor output %r", shown_as, value.name)
            continue
        outputs.append(spec)
    if not outputs:
        raise UnsupportedFormat(f"{shown_as} has no tensor outputs")
    return Signature(tuple(inputs), tuple(outputs))


def inspect_onnx(staged: Path, model_dir: Path, shown_as: str) -> Signature:
    """Parses the ONNX file at `staged` (a copy of a file that lived in `model_dir`) and checks it."""
    model = load_model(staged, shown_as)
    check_external_data(model, model_dir, shown_as)
    check_domains(model, shown_as)
    return extract_signature(model, shown_as)


def default_config(signature: Signature, default_max_batch_size: int) -> ServingConfig:
    return ServingConfig(
        max_batch_size=default_max_batch_size if batchable(signature) else 0,
        instance_count=1,
        device="auto",
    )
