"""ONNX inspection: parse safely, check what the file refers to, extract inputs/outputs.

`onnx.load(..., load_external_data=False)` never follows external-data locations; we check them
ourselves and refuse any that point outside the model's folder. Only the default ONNX op domains
and com.microsoft (onnxruntime contrib ops) are allowed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

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


class HasExternalData(Exception):
    """Raised (internally, not to users) for a single ONNX file whose tensors live in other files:
    the registry then registers its folder as a bundle (bundle.py)."""


def parse_model(data: bytes, shown_as: str) -> onnx.ModelProto:
    """Parses ONNX bytes (never following external data); InvalidModelFile if they are not a model."""
    return _checked(lambda: onnx.load_model_from_string(data), shown_as)


def load_model(path: Path, shown_as: str) -> onnx.ModelProto:
    return _checked(lambda: onnx.load(str(path), load_external_data=False), shown_as)


def _checked(load: Callable[[], onnx.ModelProto], shown_as: str) -> onnx.ModelProto:
    try:
        model = load()
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


def tensors(model: onnx.ModelProto) -> Iterator[onnx.TensorProto]:
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


def check_external_data(model: onnx.ModelProto) -> None:
    """HasExternalData if any tensor keeps its data in another file (bundle.py checks where)."""
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in tensors(model)):
        raise HasExternalData()


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


def inspect_onnx(staged: Path, shown_as: str) -> Signature:
    """Parses the one-file ONNX model at `staged` and checks it; HasExternalData if it is not one file."""
    model = load_model(staged, shown_as)
    check_external_data(model)
    return inspect_model(model, shown_as)


def inspect_model(model: onnx.ModelProto, shown_as: str) -> Signature:
    """Checks a parsed model's operator domains and extracts its signature."""
    check_domains(model, shown_as)
    return extract_signature(model, shown_as)


def default_config(signature: Signature, default_max_batch_size: int) -> ServingConfig:
    return ServingConfig(
        max_batch_size=default_max_batch_size if batchable(signature) else 0,
        instance_count=1,
        device="auto",
    )
