"""Checkpoints for the conversion tests: tiny random transformers models saved the ways people save
them (SafeTensors, PyTorch zip, legacy pickle), and hostile files that must never be loaded."""

from __future__ import annotations

import json
import os
import pickle
import struct
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

TINY = {
    "bert": dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                 max_position_embeddings=64),
    "distilbert": dict(vocab_size=99, dim=32, n_layers=2, n_heads=4, hidden_dim=37, max_position_embeddings=64),
    "roberta": dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                    max_position_embeddings=70, pad_token_id=1),
}


def tiny_model(model_type: str, folder: Path, save_as: str) -> Any:
    """A random `model_type` model written to `folder` with its config.json; `save_as` is
    "safetensors" (model.safetensors), "zip" (pytorch_model.bin, torch.save) or "pickle" (the legacy
    format). Returns the torch model (the reference)."""
    pytest.importorskip("transformers")
    import torch
    from transformers import AutoConfig, AutoModel

    torch.manual_seed(7)
    config = AutoConfig.for_model(model_type, **TINY[model_type])
    model = AutoModel.from_config(config).eval()
    folder.mkdir(parents=True, exist_ok=True)
    if save_as == "safetensors":
        model.save_pretrained(folder)
    else:
        model.config.architectures = [type(model).__name__]
        model.config.save_pretrained(folder)
        torch.save(model.state_dict(), folder / "pytorch_model.bin", _use_new_zipfile_serialization=save_as == "zip")
    return model


def add_pooling(folder: Path, mode: str, normalize: bool) -> None:
    """sentence-transformers' modules.json + 1_Pooling/config.json, as that library writes them."""
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "1_Pooling").mkdir(exist_ok=True)
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({
        "word_embedding_dimension": 32, "pooling_mode_cls_token": mode == "cls",
        "pooling_mode_mean_tokens": mode == "mean", "pooling_mode_max_tokens": False,
    }))


def token_feeds(names: list[str], batch: int = 3, seq: int = 9, vocab: int = 99) -> dict[str, np.ndarray]:
    """Token ids with padding in the first row, for whichever of the BERT-style inputs a model takes."""
    rng = np.random.default_rng(1)
    ids = rng.integers(3, vocab, size=(batch, seq), dtype=np.int64)
    mask = np.ones((batch, seq), np.int64)
    mask[0, seq // 2:] = 0
    known = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    return {n: known[n] for n in names}


def bert_config(folder: Path) -> Path:
    """A folder with a BERT config.json and nothing else yet (the weights file is the test's)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "bert", "architectures": ["BertModel"], **TINY["bert"]}))
    return folder


class Payload:
    """Unpickling this runs `touch <canary>`: what a hostile checkpoint does."""

    def __init__(self, canary: Path) -> None:
        self.canary = canary

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.canary}",))


def plain_pickle_payload(path: Path, canary: Path) -> Path:
    path.write_bytes(pickle.dumps({"weight": Payload(canary)}, protocol=2))
    return path


def torch_zip_payload(path: Path, canary: Path) -> Path:
    import torch

    torch.save({"weight": Payload(canary)}, path)
    return path


def hostile_zip(path: Path, entry: zipfile.ZipInfo | str, data: bytes = b"x", compress: int = zipfile.ZIP_STORED) -> Path:
    """A zip that looks like a PyTorch checkpoint (archive/data.pkl) plus one hostile `entry`."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps({}, protocol=2))
        zf.writestr(entry, data, compress_type=compress)
    return path


def safetensors_bytes(header: dict | bytes, data: bytes, header_len: int | None = None) -> bytes:
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(text) if header_len is None else header_len) + text + data
