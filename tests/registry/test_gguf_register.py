"""GGUF models through the real registry gRPC server: task, facts, signature and serving config from
the file; serving settings checked on write; hostile files refused while the registry keeps serving."""

from __future__ import annotations

from pathlib import Path

import gguf
import grpc
import llama_cpp
import numpy as np
import pytest
from gguf_testkit import HOSTILE, write_gguf
from grpc import aio
from registry_testkit import Serve, Served

from mlos.registry.v1 import registry_pb2, registry_pb2_grpc
from mlos_cli import gguf_models
from mlos_common.errors import InvalidArgument, NotFound
from mlos_registry.domain import ServingConfig, TensorSpec


@pytest.fixture
def llama_gguf(models_dir: Path) -> Path:
    return write_gguf(models_dir / "tiny-llama.gguf")


@pytest.fixture
def bert_gguf(models_dir: Path) -> Path:
    return write_gguf(models_dir / "tiny-bert.gguf", "bert", context_length=512, embedding_length=32,
                      file_type=gguf.LlamaFileType.ALL_F32, pooling_type=gguf.PoolingType.CLS)


async def test_generation_model_gets_task_facts_signature_and_defaults(served: Served, llama_gguf: Path) -> None:
    mv = await served.client.register("tiny", llama_gguf)
    assert (mv.format, mv.task, mv.version) == ("gguf", "generate", 1)
    assert mv.facts == {
        "architecture": "llama", "name": "tiny-llama", "context_length": "4096", "embedding_length": "64",
        "block_count": "2", "head_count": "4", "vocab_size": "32", "tokenizer": "llama", "quantization": "Q8_0",
        "parameters": str(32 * 64 + 64), "gguf_version": "3",
    }
    assert mv.inputs == (TensorSpec("text_input", "BYTES", (1,)), TensorSpec("stream", "BOOL", (1,)),
                         TensorSpec("sampling_parameters", "BYTES", (1,)))
    assert mv.outputs == (TensorSpec("text_output", "BYTES", (-1,)),)
    assert mv.config == ServingConfig(max_batch_size=0, instance_count=1, device="auto", context_length=2048,
                                      chunk_tokens=4, contexts=2)
    assert await served.client.get("tiny") == mv


async def test_embedding_model_by_architecture(served: Served, bert_gguf: Path) -> None:
    mv = await served.client.register("embedder", bert_gguf)
    assert (mv.task, mv.facts["architecture"], mv.facts["pooling_type"]) == ("embed", "bert", "cls")
    assert mv.facts["quantization"] == "F32" and mv.facts["context_length"] == "512"
    assert mv.inputs == (TensorSpec("text_input", "BYTES", (-1,)),)
    assert mv.outputs == (TensorSpec("embedding", "FP32", (-1, 32)),)
    assert mv.config == ServingConfig(instance_count=1, device="auto", context_length=512, contexts=1)


async def test_pooling_key_makes_any_architecture_embed(served: Served, models_dir: Path) -> None:
    path = write_gguf(models_dir / "qwen-embed.gguf", "qwen2", pooling_type=gguf.PoolingType.LAST)
    mv = await served.client.register("qe", path)
    assert (mv.task, mv.facts["pooling_type"]) == ("embed", "last")
    assert mv.outputs == (TensorSpec("embedding", "FP32", (-1, 64)),)


async def test_quantization_from_the_tensors_without_a_file_type(served: Served, models_dir: Path) -> None:
    tensors = {"big": np.zeros((8, 64), np.float16), "small": np.zeros(64, np.float32)}
    mv = await served.client.register("q", write_gguf(models_dir / "q.gguf", file_type=None, tensors=tensors))
    assert (mv.facts["quantization"], mv.facts["parameters"]) == ("F16", str(8 * 64 + 64))


async def test_long_texts_are_clipped_in_facts(served: Served, models_dir: Path) -> None:
    mv = await served.client.register("long", write_gguf(models_dir / "long.gguf", name="n" * 100_000))
    assert mv.facts["name"] == "n" * 255 + "…"


async def test_identical_bytes_are_idempotent_and_survive_a_restart(serve: Serve, llama_gguf: Path, tmp_path: Path) -> None:
    first = await serve(data_dir=tmp_path / "data")
    mv = await first.client.register("tiny", llama_gguf)
    copy = tmp_path / "copy.bin"
    copy.write_bytes(llama_gguf.read_bytes())
    assert await first.client.register("tiny", copy) == mv
    assert len(await first.client.list("tiny")) == 1
    await first.core.close()
    reopened = await serve(data_dir=tmp_path / "data")
    assert await reopened.client.get("tiny") == mv


async def test_serving_settings_within_bounds_round_trip(served: Served, llama_gguf: Path) -> None:
    config = ServingConfig(context_length=4096, chunk_tokens=64, contexts=8, threads=256, gpu_layers=99,
                           device="cuda:1", priority_levels=4, default_priority=2)
    mv = await served.client.register("tiny", llama_gguf, config=config)
    c = mv.config
    assert (c.context_length, c.chunk_tokens, c.contexts, c.threads, c.gpu_layers) == (4096, 64, 8, 256, 99)
    assert (c.device, c.priority_levels, c.default_priority, c.max_batch_size) == ("cuda:1", 4, 2, 0)


@pytest.mark.parametrize(
    "model,config,words",
    [
        ("llama", ServingConfig(context_length=4097), "context_length 4097 is over the 4096 tokens"),
        ("llama", ServingConfig(chunk_tokens=65), "chunk_tokens must be 1..64, got 65"),
        ("llama", ServingConfig(contexts=9), "contexts must be 1..8, got 9"),
        ("llama", ServingConfig(threads=257), "threads must be at most 256"),
        ("llama", ServingConfig(gpu_layers=-1), "gpu_layers must be >= 0"),
        ("llama", ServingConfig(max_batch_size=4), "max_batch_size must stay 0 for GGUF"),
        ("llama", ServingConfig(preferred_batch_sizes=(2,)), "preferred_batch_sizes do not apply"),
        ("llama", ServingConfig(device="tpu"), "device 'tpu'"),
        ("bert", ServingConfig(chunk_tokens=4), "chunk_tokens applies to generation"),
        ("bert", ServingConfig(context_length=513), "context_length 513 is over the 512 tokens"),
    ],
)
async def test_impossible_serving_settings_are_invalid(
    served: Served, llama_gguf: Path, bert_gguf: Path, model: str, config: ServingConfig, words: str
) -> None:
    path = llama_gguf if model == "llama" else bert_gguf
    with pytest.raises(InvalidArgument) as err:
        await served.client.register("m", path, config=config)
    assert words in err.value.message
    with pytest.raises(NotFound):
        await served.client.get("m")  # nothing stored


@pytest.mark.parametrize("field", ["context_length", "chunk_tokens", "gpu_layers", "contexts"])
async def test_generation_settings_on_an_onnx_model_are_refused(served: Served, dynamic_onnx: Path, field: str) -> None:
    with pytest.raises(InvalidArgument, match=f"{field} applies only to GGUF models"):
        await served.client.register("adder", dynamic_onnx, config=ServingConfig(**{field: 2}))
    assert (await served.client.register("adder", dynamic_onnx)).task == "infer"


async def test_onnx_intra_op_threads_kept_and_bounded(served: Served, dynamic_onnx: Path) -> None:
    mv = await served.client.register("adder", dynamic_onnx, config=ServingConfig(threads=2, instance_count=3))
    assert (mv.config.threads, mv.config.instance_count) == (2, 3)
    with pytest.raises(InvalidArgument, match="threads must be at most 256"):
        await served.client.register("adder2", dynamic_onnx, config=ServingConfig(threads=257))


@pytest.mark.parametrize("case", ["array of 2^63 bytes", "tensor count 2^63", "nested arrays 3 deep", "non-UTF-8 key",
                                  "version 1", "tensor past the end", "unknown value type"])
async def test_hostile_files_are_invalid_argument_and_the_registry_keeps_serving(
    served: Served, models_dir: Path, llama_gguf: Path, case: str
) -> None:
    data, words = HOSTILE[case]
    evil = models_dir / "evil.onnx"  # the name lies; the content decides
    evil.write_bytes(data)
    request = registry_pb2.RegisterModelRequest(name="evil", path=str(evil))
    async with aio.insecure_channel(served.addr) as channel:
        with pytest.raises(aio.AioRpcError) as info:
            await registry_pb2_grpc.RegistryStub(channel).RegisterModel(request, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = info.value.details() or ""
    assert details.startswith(f"{str(evil)!r} is not a valid GGUF file") and words in details and "byte offset" in details
    assert (await served.client.register("tiny", llama_gguf)).version == 1


@pytest.mark.parametrize(
    "metadata,words",
    [
        ({}, "no general.architecture"),
        ({"general.architecture": "llama"}, "no 'llama.context_length'"),
        ({"general.architecture": "llama", "llama.context_length": -5}, "must be a positive integer"),
        ({"general.architecture": "bert", "bert.context_length": 512}, "no 'bert.embedding_length'"),
    ],
)
async def test_files_without_what_llama_cpp_needs_are_invalid(
    served: Served, models_dir: Path, metadata: dict, words: str
) -> None:
    models_dir.mkdir()
    path = models_dir / "partial.gguf"
    writer = gguf.GGUFWriter(path, "unused")
    writer.kv_data[0].clear()  # drop the architecture the constructor adds; write exactly `metadata`
    for key, value in metadata.items():
        if isinstance(value, str):
            writer.add_string(key, value)
        else:
            writer.add_int32(key, value)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.close()
    with pytest.raises(InvalidArgument) as err:
        await served.client.register("partial", path)
    assert words in err.value.message


@pytest.mark.parametrize("writer,task,output", [
    ("write_tiny_llama", "generate", TensorSpec("text_output", "BYTES", (-1,))),
    ("write_tiny_bert", "embed", TensorSpec("embedding", "FP32", (-1, 64))),
])
async def test_the_repos_test_models_register_with_the_facts_llama_cpp_reads(
    served: Served, models_dir: Path, writer: str, task: str, output: TensorSpec
) -> None:
    """mlos_cli.gguf_models' tiny llama and BERT: our header facts agree with llama.cpp loading the file."""
    path = getattr(gguf_models, writer)(models_dir / f"{writer}.gguf")
    mv = await served.client.register(writer.replace("_", "-"), path)
    assert (mv.format, mv.task, mv.outputs) == ("gguf", task, (output,))
    embedder = task == "embed"
    llm = llama_cpp.Llama(str(path), n_ctx=64, n_threads=1, embedding=embedder, verbose=False)
    model = llm._model.model
    assert int(mv.facts["parameters"]) == llama_cpp.llama_model_n_params(model)
    assert int(mv.facts["context_length"]) == llama_cpp.llama_model_n_ctx_train(model)
    assert int(mv.facts["embedding_length"]) == llama_cpp.llama_model_n_embd(model)
    assert int(mv.facts["vocab_size"]) == llm.n_vocab()
    assert mv.facts["architecture"] == llm.metadata["general.architecture"]
    assert mv.facts["quantization"] == "F32"
    assert mv.config.context_length == min(int(mv.facts["context_length"]), 2048)
    assert mv.config.contexts == (1 if embedder else 2)
