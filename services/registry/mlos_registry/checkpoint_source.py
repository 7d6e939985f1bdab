"""Where a checkpoint to convert is, what it is, and its digest: the registry-side half of conversion.

`locate` recognises a Hugging Face-style folder (config.json + model.safetensors or
pytorch_model.bin) or a single SafeTensors / PyTorch / pickle file with config.json beside it.
In the registry's process only config.json is parsed (at most 1 MB of plain JSON) to refuse an
unsupported architecture early, and only the first bytes of the weights are read; the weights
themselves are hashed, never parsed (that happens in convert_child.py).
"""

from __future__ import annotations

import hashlib
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlos_common.errors import FailedPrecondition
from mlos_registry import formats
from mlos_registry.errors import InvalidModelFile, UnsupportedFormat
from mlos_registry.safetensors_header import json_object

# model_type in config.json -> what it covers. The one list of architectures conversion supports.
SUPPORTED = {
    "bert": "BERT and its sentence embedders (MiniLM, BGE, E5, GTE)",
    "distilbert": "DistilBERT",
    "roberta": "RoBERTa",
}
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
CHECKPOINTS = (formats.SAFETENSORS, formats.PYTORCH, formats.PICKLE)
_MAX_CONFIG_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A located source: `weights` in `folder`, whose config.json names `model_type`."""

    folder: Path
    weights: Path
    format: str
    model_type: str
    architecture: str
    shown: str


def _read_config(config: Path, shown: str) -> tuple[str, str]:
    """(model_type, architecture) from config.json, refusing architectures not in SUPPORTED."""
    with formats.open_regular(config, repr(str(config))) as f:
        raw = f.read(_MAX_CONFIG_BYTES + 1)
    if len(raw) > _MAX_CONFIG_BYTES:
        raise InvalidModelFile(f"{shown}: config.json is over {_MAX_CONFIG_BYTES} bytes")
    parsed = json_object(raw, f"{shown}: config.json")
    model_type = str(parsed.get("model_type", ""))[:64]
    archs = parsed.get("architectures")
    architecture = str(archs[0])[:64] if isinstance(archs, list) and archs else model_type or "unknown"
    if model_type not in SUPPORTED:
        raise FailedPrecondition(
            f"{shown}: architecture {architecture!r} (model_type {model_type!r}) cannot be converted to ONNX; "
            f"supported model types: {', '.join(f'{k} ({v})' for k, v in SUPPORTED.items())}"
        )
    return model_type, architecture


def _head_format(path: Path) -> str | None:
    """formats.sniff without its zip listing: a zip is a PyTorch candidate, listed and checked in the child."""
    with formats.open_regular(path, repr(str(path))) as f:
        if f.read(4) == b"PK\x03\x04":
            return formats.PYTORCH
    return formats.sniff(path)


def _weights_in(folder: Path) -> Path | None:
    """model.safetensors or pytorch_model.bin, else the folder's only .safetensors/.bin/.pt/.pth file."""
    named = next((folder / n for n in WEIGHT_FILES if (folder / n).exists()), None)
    if named is not None:
        return named
    others = [f for f in folder.iterdir() if f.suffix in (".safetensors", ".bin", ".pt", ".pth")]
    return others[0] if len(others) == 1 else None


def locate(raw: str, check_file: Callable[[str], Path], shown: str = "") -> Checkpoint | None:
    """The checkpoint `raw` names, or None when it is not one (the caller registers it as is: a
    folder with an .onnx file is an ONNX model even beside config.json). Every file read goes
    through `check_file` (the registry's path rules); `shown` names the source in errors. Blocking."""
    if not raw or "\x00" in raw:
        return None
    path = Path(raw).expanduser()
    shown = shown or repr(raw[:200])
    try:
        mode = path.stat().st_mode
    except OSError:
        return None  # missing, unreadable, name too long: the registry's path check says which
    if stat.S_ISDIR(mode):
        if not (path / "config.json").is_file() or any(path.glob("*.onnx")):
            return None
        weights = _weights_in(path)
        if weights is None:
            if any(path.glob("*.index.json")):
                raise UnsupportedFormat(f"{shown} holds a sharded checkpoint; conversion reads one weights file only")
            return None  # sources.folder_model says what the folder holds
        fmt = _head_format(check_file(str(weights)))
        if fmt is None and weights.suffix == ".safetensors":
            fmt = formats.SAFETENSORS  # damaged: the child's header check says how
    elif stat.S_ISREG(mode):
        beside = (path.parent / "config.json").is_file()
        fmt = _head_format(check_file(raw)) if beside else formats.sniff(check_file(raw))
        if fmt is None and path.suffix == ".safetensors" and beside:
            fmt = formats.SAFETENSORS
        if fmt not in CHECKPOINTS:
            return None
        weights = path
        if not beside:
            raise UnsupportedFormat(
                f"{shown} is a {fmt} checkpoint; to convert it to ONNX the registry needs the model's config.json "
                "beside it (the Hugging Face layout)"
            )
    else:
        return None
    if fmt not in CHECKPOINTS:
        raise InvalidModelFile(f"{shown}: {weights.name} is neither SafeTensors nor a PyTorch checkpoint")
    model_type, architecture = _read_config(check_file(str(weights.parent / "config.json")), shown)
    return Checkpoint(weights.parent, weights, fmt, model_type, architecture, shown)


def source_digest(source: Checkpoint, recipe: str, check_file: Callable[[str], Path]) -> str:
    """sha256 over `recipe` and every file the conversion reads (weights, configs, pooling). Blocking."""
    digest = hashlib.sha256(f"{recipe}\n".encode())
    extra = [source.folder / n for n in ("config.json", "modules.json")]
    extra += sorted(source.folder.glob("*/config.json"))  # sentence-transformers module configs (1_Pooling)
    for path in (source.weights, *extra):
        if not path.is_file():
            continue
        digest.update(f"{path.relative_to(source.folder)}\n".encode())
        with formats.open_regular(check_file(str(path)), repr(str(path))) as f:
            while block := f.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()
