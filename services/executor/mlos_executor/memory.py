"""Memory facts of an ONNX model from its file, and the process's resident memory.

`memory_facts(path)` reads the graph only (external tensor data is not loaded): the file's
bytes (plus any external data files found beside it), the parameters (initializer elements,
inline or external, sparse ones at their dense size, plus the weights exporters keep in node
attributes: Constant tensors, ai.onnx.ml coefficient lists; subgraphs included), the nodes
(subgraphs included), and the bytes of
one batch item of all inputs and of all outputs. For those, a dimension that is not a fixed
positive number (a named or unknown dimension) counts as 1, so the first, batch dimension of a
batchable model counts as 1 and a fixed first dimension counts in full. Element sizes come from
the ONNX element type; a string element counts as 8 bytes (its real size is the data's).

`memory_row(facts, batch_size)` is the predictor's `memory` feature row (kinds.MEMORY order).
`rss_bytes()` is the resident set size of this process from /proc/self/statm (Linux; 0 where
it cannot be read). No grpc here.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import onnx
from onnx import TensorProto

from mlos_predictor.kinds import MEMORY

_STRING_BYTES = 8
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@dataclass(frozen=True, slots=True)
class MemoryFacts:
    file_bytes: int
    parameters: int  # initializer elements + weights in attributes (see the module's docstring)
    nodes: int
    input_bytes_per_item: int
    output_bytes_per_item: int


def memory_facts(path: Path) -> MemoryFacts:
    """The facts of the ONNX model at `path`; raises onnx's DecodeError/OSError on a bad file.
    A GGUF file (llama.cpp) counts by its size only: its weights are mapped from the file, and its
    parameters are not read here (0)."""
    with open(path, "rb") as f:
        if f.read(4) == b"GGUF":
            return MemoryFacts(file_bytes=path.stat().st_size, parameters=0, nodes=0,
                               input_bytes_per_item=0, output_bytes_per_item=0)
    model = onnx.load(str(path), load_external_data=False)
    graph = model.graph
    initializer_names = {t.name for t in graph.initializer} | {s.values.name for s in graph.sparse_initializer}
    inputs = [v for v in graph.input if v.name not in initializer_names]  # IR < 4 lists initializers as inputs
    externals = _external_files(graph, path.parent)
    return MemoryFacts(
        file_bytes=path.stat().st_size + sum(f.stat().st_size for f in externals if f.is_file()),
        parameters=_parameters(graph),
        nodes=_nodes(graph),
        input_bytes_per_item=sum(_value_bytes(v) for v in inputs),
        output_bytes_per_item=sum(_value_bytes(v) for v in graph.output),
    )


def memory_row(facts: MemoryFacts, batch_size: int) -> list[float]:
    """The `memory` kind's feature row, in kinds.MEMORY order."""
    named = {
        "file_mb": facts.file_bytes / 2**20,
        "params_m": facts.parameters / 1e6,
        "nodes": float(facts.nodes),
        "input_kb_per_item": facts.input_bytes_per_item / 1024,
        "output_kb_per_item": facts.output_bytes_per_item / 1024,
        "batch_size": float(max(1, batch_size)),
    }
    return [named[f.name] for f in MEMORY]


def rss_bytes() -> int:
    """Resident memory of this process now (bytes); 0 where /proc/self/statm is missing."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE_BYTES
    except (OSError, IndexError, ValueError):
        return 0


def mem_total_bytes() -> int:
    """The host's MemTotal from /proc/meminfo (bytes); 0 where it cannot be read."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, IndexError, ValueError):
        pass
    return 0


def _subgraphs(graph: onnx.GraphProto) -> list[onnx.GraphProto]:
    found = []
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                found.append(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                found.extend(attr.graphs)
    return found


def _nodes(graph: onnx.GraphProto) -> int:
    return len(graph.node) + sum(_nodes(g) for g in _subgraphs(graph))


def _parameters(graph: onnx.GraphProto) -> int:
    own = sum(math.prod(t.dims) for t in graph.initializer)
    own += sum(math.prod(s.dims) for s in graph.sparse_initializer)  # the dense shape: what it stands for
    own += sum(_attribute_elements(a) for node in graph.node for a in node.attribute)
    return own + sum(_parameters(g) for g in _subgraphs(graph))


def _attribute_elements(attr: onnx.AttributeProto) -> int:
    """Weights kept in attributes: Constant nodes' tensors (PyTorch and Paddle exports), the
    coefficient lists of ai.onnx.ml operators (scikit-learn exports); a few shape ints besides."""
    if attr.type == onnx.AttributeProto.TENSOR:
        return math.prod(attr.t.dims)
    if attr.type == onnx.AttributeProto.TENSORS:
        return sum(math.prod(t.dims) for t in attr.tensors)
    if attr.type == onnx.AttributeProto.SPARSE_TENSOR:
        return math.prod(attr.sparse_tensor.dims)
    if attr.type == onnx.AttributeProto.FLOATS:
        return len(attr.floats)
    if attr.type == onnx.AttributeProto.INTS:
        return len(attr.ints)
    return 0


def _external_files(graph: onnx.GraphProto, folder: Path) -> set[Path]:
    files = set()
    for t in graph.initializer:
        if t.data_location == TensorProto.EXTERNAL:
            location = next((e.value for e in t.external_data if e.key == "location"), "")
            if location:
                files.add(folder / location)
    for g in _subgraphs(graph):
        files |= _external_files(g, folder)
    return files


def _value_bytes(value: onnx.ValueInfoProto) -> int:
    tensor = value.type.tensor_type
    if not value.type.HasField("tensor_type"):
        return 0  # sequences, maps, optionals: no fixed size to count
    if tensor.elem_type == TensorProto.STRING:
        item = _STRING_BYTES
    else:
        item = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).itemsize
    dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else 1 for d in tensor.shape.dim]
    return item * math.prod(dims)
