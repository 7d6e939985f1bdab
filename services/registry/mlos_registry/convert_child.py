"""`python -m mlos_registry.convert_child '<request json>'`: one checkpoint -> ONNX, in its own process.

The registry (conversion.py) starts this per conversion. It first limits itself (RLIMIT_AS to
`max_memory_bytes`, RLIMIT_CPU, no core file), and only then reads the untrusted files: the
SafeTensors header through safetensors_header.py, a PyTorch checkpoint through checkpoint.py
(zip listing checks, torch.load(weights_only=True)). It builds the transformers architecture
from config.json (never remote code), loads the weights, adds the sentence-transformers pooling
and normalisation that modules.json names, exports with torch.onnx.export, and checks the ONNX
against torch on inputs of another shape. stdout carries one JSON object per line: {"step": ...}
while it works, then {"result": {facts}} or {"error": {"code": <grpc status name>, "message"}}.
Files: <out>/model.onnx and <out>/facts.json.
"""

from __future__ import annotations

import json
import resource
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from mlos_common.errors import FailedPrecondition, Internal, MlosError, ResourceExhausted
from mlos_registry import checkpoint, safetensors_header
from mlos_registry.errors import InvalidModelFile

# What the exported graph must reproduce (max |onnx - torch| on the check inputs).
MATCH_TOLERANCE = 1e-3
_POOLING = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls", "pooling_mode_max_tokens": "max"}


def _emit(**message: Any) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def _limit(max_memory_bytes: int, cpu_s: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (max_memory_bytes, max_memory_bytes))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 5))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_bytes()[: 1024 * 1024])
    except (OSError, ValueError) as exc:
        raise InvalidModelFile(f"{what} is not readable JSON ({str(exc)[:120]})") from None


def _pooling(folder: Path) -> tuple[str, bool]:
    """(pooling, normalize) from sentence-transformers' modules.json; ("", False) without one."""
    modules_file = folder / "modules.json"
    if not modules_file.is_file():
        return "", False
    modules = _read_json(modules_file, "modules.json")
    if not isinstance(modules, list):
        raise InvalidModelFile("modules.json is not a list of modules")
    types = {str(m.get("type", "")).rsplit(".", 1)[-1]: m for m in modules if isinstance(m, dict)}
    pooling = ""
    if "Pooling" in types:
        sub = str(types["Pooling"].get("path", ""))
        if ".." in Path(sub).parts or Path(sub).is_absolute():
            raise InvalidModelFile(f"modules.json: Pooling path {sub[:80]!r} leaves the model folder")
        options = _read_json(folder / sub / "config.json", f"{sub}/config.json")
        modes = [mode for key, mode in _POOLING.items() if isinstance(options, dict) and options.get(key)]
        if len(modes) != 1:
            raise FailedPrecondition(
                f"{sub}/config.json asks for pooling {modes or 'none'}; conversion supports exactly one of "
                f"{', '.join(_POOLING.values())}"
            )
        pooling = modes[0]
    return pooling, "Normalize" in types


def _check_source(request: dict[str, Any]) -> int | None:
    """Checks the weights file before torch sees it; the parameter count when the header gives it."""
    weights, shown = Path(request["weights"]), request["shown"]
    if request["format"] == "safetensors":
        header = safetensors_header.read_header(weights, shown)
        _emit(step="header checked", tensors=len(header.tensors), parameters=header.parameter_count)
        return header.parameter_count
    if checkpoint.is_zip(weights):
        entries = checkpoint.check_zip_listing(weights, shown, request["max_memory_bytes"])
        if not any(e == "data.pkl" or e.endswith("/data.pkl") for e in entries):
            raise InvalidModelFile(f"{shown} is a zip archive but not a PyTorch checkpoint (no data.pkl)")
        _emit(step="zip listing checked", entries=len(entries))
    return None


def _state_dict(request: dict[str, Any]) -> dict[str, Any]:
    weights, shown = Path(request["weights"]), request["shown"]
    if request["format"] == "safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(weights))
        except Exception as exc:  # the library's own checks, after ours
            raise InvalidModelFile(f"{shown}: the safetensors library refused it ({str(exc)[:200]})") from None
    return checkpoint.load_state_dict(weights, shown)


def _model(request: dict[str, Any], state: dict[str, Any]) -> Any:
    import torch
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.from_pretrained(request["folder"], local_files_only=True, trust_remote_code=False)
    model = AutoModel.from_config(config, attn_implementation="eager").float().eval()
    prefix = f"{model.base_model_prefix}."
    state = {(k[len(prefix):] if k.startswith(prefix) else k): v.float() for k, v in state.items()}
    try:
        missing, _unused = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        raise InvalidModelFile(f"{request['shown']}: weights do not fit the architecture ({str(exc)[:300]})") from None
    missing = [k for k in missing if not k.startswith("pooler.") and not k.endswith("position_ids")]
    if missing:
        raise InvalidModelFile(
            f"{request['shown']} lacks {len(missing)} weights the architecture needs, e.g. {missing[:3]}"
        )
    torch.set_grad_enabled(False)
    return model


def _wrapper(model: Any, input_names: list[str], pooling: str, normalize: bool) -> Any:
    import torch

    class Exported(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            hidden = self.model(**dict(zip(input_names, inputs))).last_hidden_state
            if not pooling:
                return hidden
            mask = inputs[1].unsqueeze(-1).to(hidden.dtype)
            if pooling == "mean":
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            elif pooling == "cls":
                pooled = hidden[:, 0]
            else:
                pooled = hidden.masked_fill(mask == 0, -1e9).max(1).values
            return torch.nn.functional.normalize(pooled, p=2, dim=1) if normalize else pooled

    return Exported().eval()


def _inputs(names: list[str], batch: int, seq: int, vocab: int) -> tuple[Any, ...]:
    import torch

    gen = torch.Generator().manual_seed(batch * 100 + seq)
    ids = torch.randint(3, max(vocab, 4), (batch, seq), generator=gen)
    mask = torch.ones(batch, seq, dtype=torch.long)
    mask[0, seq // 2:] = 0  # padding in the trace, so the mask path is exported
    return tuple({"input_ids": ids, "attention_mask": mask}.get(n, torch.zeros_like(ids)) for n in names)


def _pin_width(path: Path, width: int) -> None:
    """Writes the output's last dimension (the hidden size) into the graph: the exporter leaves it unnamed."""
    import onnx

    exported = onnx.load(str(path))
    exported.graph.output[0].type.tensor_type.shape.dim[-1].dim_value = width
    onnx.save(exported, str(path))


def convert(request: dict[str, Any]) -> dict[str, str]:
    """Does the conversion `request` describes; returns the facts (see module doc)."""
    start_s = time.monotonic()
    parameters = _check_source(request)
    _emit(step="importing torch and transformers")
    import inspect

    try:
        import numpy as np
        import onnxruntime as ort
        import torch
        import transformers
    except (ImportError, OSError) as exc:  # mapping torch's libraries is the first thing a low RLIMIT_AS stops
        raise ResourceExhausted(
            f"could not load torch under the conversion memory limit of {request['max_memory_bytes']} bytes "
            f"(MLOS_REGISTRY_CONVERT_MAX_MEMORY_BYTES): {str(exc)[:200]}"
        ) from None

    torch.set_num_threads(max(1, int(request.get("threads", 1))))
    state = _state_dict(request)
    parameters = parameters or sum(int(t.numel()) for t in state.values())
    _emit(step="weights loaded", tensors=len(state))
    model = _model(request, state)
    folder = Path(request["folder"])
    pooling, normalize = _pooling(folder)
    accepted = inspect.signature(model.forward).parameters
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in accepted]
    wrapper = _wrapper(model, names, pooling, normalize)
    output = "sentence_embedding" if pooling else "last_hidden_state"
    out = Path(request["out"])
    axes = {n: {0: "batch", 1: "sequence"} for n in names}
    axes[output] = {0: "batch"} if pooling else {0: "batch", 1: "sequence"}
    vocab = int(getattr(model.config, "vocab_size", 100))
    _emit(step="exporting to ONNX", opset=request["opset"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper, _inputs(names, 2, 8, vocab), str(out / "model.onnx"), input_names=names, output_names=[output],
            dynamic_axes=axes, opset_version=request["opset"], dynamo=False,
        )
    _pin_width(out / "model.onnx", int(model.config.hidden_size))
    _emit(step="checking the ONNX against torch")
    check = _inputs(names, 3, 13, vocab)
    expected = wrapper(*check).numpy()
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {n: t.numpy() for n, t in zip(names, check)})[0]
    diff = float(np.abs(got - expected).max())
    if not diff <= MATCH_TOLERANCE:
        raise Internal(f"the exported ONNX differs from torch by {diff:.3g} (> {MATCH_TOLERANCE}); not registered")
    facts = {
        "source_format": request["format"], "source_sha256": request["source_sha256"],
        "architecture": request["architecture"], "model_type": model.config.model_type,
        "parameter_count": str(parameters), "opset": str(request["opset"]),
        "converted_by": f"torch {torch.__version__}, transformers {transformers.__version__}",
        "conversion_seconds": f"{time.monotonic() - start_s:.1f}", "export_max_abs_diff": f"{diff:.2e}",
        "max_sequence_length": str(getattr(model.config, "max_position_embeddings", 0)),
    }
    if pooling:
        facts.update(pooling=pooling, normalized=str(normalize).lower(), embedding_dim=str(got.shape[-1]))
    (out / "facts.json").write_text(json.dumps(facts))
    return facts


def main(argv: list[str]) -> int:
    request = json.loads(argv[1])
    _limit(int(request["max_memory_bytes"]), int(request["cpu_s"]))
    try:
        _emit(result=convert(request))
    except MlosError as exc:
        _emit(error={"code": exc.code, "message": exc.message})
    except MemoryError:
        limit = ResourceExhausted(
            f"conversion ran out of memory under its limit of {request['max_memory_bytes']} bytes "
            "(MLOS_REGISTRY_CONVERT_MAX_MEMORY_BYTES)"
        )
        _emit(error={"code": limit.code, "message": limit.message})
    except Exception as exc:  # a crash of the converter itself: reported, never a registry crash
        _emit(error={"code": "INTERNAL", "message": f"conversion failed: {type(exc).__name__}: {str(exc)[:400]}"})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
