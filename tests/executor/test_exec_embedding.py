"""A GGUF embedding model (the tiny BERT the repo writes) served as an ordinary tensor model by a real
executor: texts in, one vector each out, equal to llama-cpp-python's own embeddings in process."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gen_testkit import file_fetcher

from mlos_common.errors import InvalidArgument
from mlos_common.tensors import array_from_raw
from mlos_executor.client import ExecutorClient

llama_cpp = pytest.importorskip("llama_cpp")

TEXTS = [b"the cat sat on the mat", b"a dog runs"]


def _bytes_tensor(items: list[bytes]):
    from mlos.common.v1 import tensor_pb2

    raw = b"".join(len(t).to_bytes(4, "little") + t for t in items)
    return tensor_pb2.Tensor(name="text_input", datatype="BYTES", shape=[len(items)], raw=raw)


@pytest.fixture(scope="module")
def bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mlos_cli.gguf_models import write_tiny_bert

    return write_tiny_bert(tmp_path_factory.mktemp("bert") / "bert.gguf")


@pytest.fixture
async def served(start_executor, bert) -> ExecutorClient:
    ex = await start_executor(fetch=file_fetcher({"bert": bert}))
    await ex.client.load_model("bert", 1, "", task="embed")
    return ex.client


async def test_embeddings_match_llama_cpp_in_process(served, bert):
    (model,) = (await served.status()).models
    assert (model.runtime, model.task) == ("llama.cpp", "embed")
    assert [(i.name, i.datatype) for i in model.inputs] == [("text_input", "BYTES")]
    reply = await served.execute("bert", 1, [_bytes_tensor(TEXTS)], [])
    (out,) = reply.outputs
    vectors = array_from_raw(out.name, out.datatype, tuple(out.shape), out.raw)
    llm = llama_cpp.Llama(model_path=str(bert), embedding=True, n_ctx=512, verbose=False)
    try:
        expected = np.asarray(llm.embed([t.decode() for t in TEXTS]), dtype=np.float32)
    finally:
        llm.close()
    assert out.name == "embedding" and vectors.shape == expected.shape
    np.testing.assert_allclose(vectors, expected, rtol=1e-4, atol=1e-5)
    assert not np.allclose(vectors[0], vectors[1])


async def test_non_utf8_text_is_invalid_argument(served):
    with pytest.raises(InvalidArgument, match="text_input.*element 1 is not UTF-8"):
        await served.execute("bert", 1, [_bytes_tensor([b"fine", b"\xff\xfe"])], [])


async def test_concurrent_embeddings_share_one_context_safely(served):
    """Batches of one embedding model run on the executor's execution threads at once; llama.cpp's
    context is not thread-safe (two decodes at once tripped a GGML_ASSERT and killed the process),
    so they must take turns — every answer equals the one the text gets alone."""
    import asyncio

    texts = [f"text number {i} with some words".encode() for i in range(8)]
    alone = {}
    for text in texts:
        (out,) = (await served.execute("bert", 1, [_bytes_tensor([text])], [])).outputs
        alone[text] = array_from_raw(out.name, out.datatype, tuple(out.shape), out.raw)
    for _ in range(3):
        replies = await asyncio.gather(*(served.execute("bert", 1, [_bytes_tensor([t, t])], []) for t in texts))
        for text, reply in zip(texts, replies):
            (out,) = reply.outputs
            vectors = array_from_raw(out.name, out.datatype, tuple(out.shape), out.raw)
            np.testing.assert_allclose(vectors, np.vstack([alone[text], alone[text]]), atol=1e-4)  # batched vs alone: rounding
