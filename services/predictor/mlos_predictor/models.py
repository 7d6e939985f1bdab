"""What answers for a kind: its documented prior, or a trained model served by ONNX Runtime.

Contract of a trained model's ONNX graph (the learning loop writes it, the registry stores it,
tritonclient can call it like any model): one input `features`, float32 [N, F] in the kind's
feature order (kinds.SPECS); one output named after the kind's output (`compute_ms`, `rate`,
`footprint_mb`, `probability`, `score`), float32 [N] or [N, 1], already in the kind's unit —
post-processing (a classifier's positive-class column, an anomaly score's scaling) is inside
the graph, so every consumer reads the same number.

A `ModelSlot` holds what answers now plus its card; `swap` replaces both at once (one event
loop, so a prediction sees either the old pair or the new one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np

from mlos_predictor.kinds import KINDS, SPECS, KindSpec

INPUT_NAME = "features"


class ServedModel(Protocol):
    def predict(self, rows: np.ndarray) -> np.ndarray:
        """rows: float64 (n, F), validated; returns float64 (n,) in the kind's unit."""
        ...


class PriorModel:
    """The kind's documented prior (kinds.KindSpec.prior), in numpy."""

    def __init__(self, spec: KindSpec) -> None:
        self.spec = spec

    def predict(self, rows: np.ndarray) -> np.ndarray:
        return np.asarray(self.spec.prior(rows), dtype=np.float64)


class OnnxModel:
    """A trained model's ONNX bytes in an ONNX Runtime session (one intra-op thread: these
    models are tiny, and the predictor shares the host with the data plane)."""

    def __init__(self, spec: KindSpec, onnx_bytes: bytes) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        self.spec = spec
        self.onnx_bytes = onnx_bytes
        self._session = ort.InferenceSession(onnx_bytes, opts, providers=["CPUExecutionProvider"])
        inputs = [i.name for i in self._session.get_inputs()]
        outputs = [o.name for o in self._session.get_outputs()]
        if inputs != [INPUT_NAME] or spec.output not in outputs:
            raise ValueError(
                f"a {spec.kind} model needs input {INPUT_NAME!r} and output {spec.output!r}; "
                f"this one has inputs {inputs} and outputs {outputs}"
            )

    def predict(self, rows: np.ndarray) -> np.ndarray:
        (out,) = self._session.run([self.spec.output], {INPUT_NAME: rows.astype(np.float32, copy=False)})
        return np.asarray(out, dtype=np.float64).reshape(-1)


@dataclass(frozen=True, slots=True)
class ModelCard:
    """What is known about the model answering for a kind (served by ModelInfo)."""

    kind: str
    source: str = "prior"  # "prior" | "trained"
    version: int = 0  # registry version; 0 = prior (or trained but not registered)
    estimator: str = ""
    score: float = math.nan  # held-out metric of this model
    baseline_score: float = math.nan  # the baseline's on the same rows
    training_rows: int = 0
    held_out_rows: int = 0
    trained_unix_ms: int = 0


@dataclass(slots=True)
class ModelSlot:
    spec: KindSpec
    model: ServedModel = field(init=False)
    card: ModelCard = field(init=False)

    def __post_init__(self) -> None:
        self.model = PriorModel(self.spec)
        self.card = ModelCard(self.spec.kind)

    def swap(self, model: ServedModel, card: ModelCard) -> None:
        self.model, self.card = model, card

    def with_version(self, version: int) -> None:
        """Records the registry version once the registry has the served model."""
        self.card = replace(self.card, version=version)


def make_slots() -> dict[str, ModelSlot]:
    """One slot per kind, each answering with its prior: created once per server and shared by
    the serving core, GetScores and the learning loop (which swaps trained models in)."""
    return {kind: ModelSlot(SPECS[kind]) for kind in KINDS}
