"""ONNX Runtime backend: one InferenceSession per loaded model version.

Sessions are always created from a file path (never from bytes), so ONNX Runtime applies its
external-data path checks. CUDA is used when the device setting allows it and the installed
onnxruntime has the provider; otherwise CPU.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from mlos_common.signatures import TensorSpec
from mlos_common.tensors import ONNX_TYPES
from mlos_executor.errors import ModelLoadFailed

log = logging.getLogger(__name__)


def auto_intra_op_threads(execution_slots: int, cpus: int | None = None) -> int:
    """Threads inside one run when the setting is 0: the usable CPUs shared by the runs that may
    execute at once, at least one.

    ONNX Runtime's default (one thread per physical core) assumes the runtime owns the host. An
    executor shares it with the front door and with its own concurrent runs: on 2 cores the
    default two-thread pool wakes its helper 40-60 times per small-model run and doubled the
    classifier's run time (2.1 ms vs 0.85 ms with one thread). Concurrent runs, not threads
    inside a run, then keep the cores busy.
    """
    if cpus is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cpus // max(1, execution_slots))


def choose_providers(device: str) -> list[str]:
    available = ort.get_available_providers()
    if device in ("auto", "cuda") and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if device == "cuda":
        raise ModelLoadFailed("device 'cuda' requested but onnxruntime has no CUDAExecutionProvider")
    return ["CPUExecutionProvider"]


def _specs(args: list) -> tuple[TensorSpec, ...]:
    specs = []
    for a in args:
        dtype = ONNX_TYPES.get(a.type)
        if dtype is None:  # sequence/map outputs cannot travel as v2 tensors
            continue
        shape = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in a.shape)
        specs.append(TensorSpec(a.name, dtype, shape))
    return tuple(specs)


@dataclass
class OnnxModel:
    session: ort.InferenceSession
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    providers: tuple[str, ...]

    @classmethod
    def load(cls, path: Path, *, device: str, intra_op_threads: int) -> "OnnxModel":
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = intra_op_threads
        opts.inter_op_num_threads = 1
        # Spinning workers burn the cores the gRPC servers need on small machines.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = choose_providers(device)
        try:
            session = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
        except Exception as exc:  # onnxruntime raises several private exception types
            raise ModelLoadFailed(f"onnxruntime could not load the model: {runtime_message(exc)}") from exc
        return cls(
            session=session,
            inputs=_specs(session.get_inputs()),
            outputs=_specs(session.get_outputs()),
            providers=tuple(session.get_providers()),
        )

    def run(self, feeds: dict[str, np.ndarray], output_names: list[str]) -> list[np.ndarray]:
        return self.session.run(output_names, feeds)


def runtime_message(exc: Exception) -> str:
    """The first line of a runtime error, without a stack trace, cut to 300 characters."""
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
