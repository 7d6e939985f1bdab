"""Generation on a real executor server with a real llama.cpp model (the tiny llama GGUF the repo
writes): streaming, agreement with llama-cpp-python in process, preemption by priority with both
ways of keeping the preempted state, cancellation, deadlines and bad input."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from gen_testkit import GenStream, file_fetcher, text_of, tokens_of

from mlos.common.v1 import tensor_pb2

llama_cpp = pytest.importorskip("llama_cpp")

PROMPT = b"the cat sat on the mat"


@pytest.fixture(scope="module")
def gguf(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from mlos_cli.gguf_models import write_tiny_llama

    d = tmp_path_factory.mktemp("gguf")
    tiny = write_tiny_llama(d / "tiny.gguf", seed=0)
    data = tiny.read_bytes()
    (d / "truncated.gguf").write_bytes(data[: len(data) // 3])
    (d / "header_only.gguf").write_bytes(data[:43])
    return {"tiny": tiny, "truncated": d / "truncated.gguf", "header_only": d / "header_only.gguf"}


async def _served(start_executor, gguf, contexts: int = 2, chunk_tokens: int = 4, **settings):
    ex = await start_executor(fetch=file_fetcher(gguf), **settings)
    config = tensor_pb2.ModelServingConfig(context_length=256, contexts=contexts, chunk_tokens=chunk_tokens, threads=1)
    await ex.client.load_model("tiny", 1, "", generation=config, task="generate")
    return ex


@pytest.fixture
async def gen(start_executor, gguf):
    ex = await _served(start_executor, gguf)
    stream = GenStream(ex.addr)
    yield ex, stream
    await stream.close()


def _in_process_greedy(path: Path, prompt: bytes, max_tokens: int) -> bytes:
    """llama-cpp-python's own greedy generation, as text the way the executor sends it (UTF-8; a
    byte sequence that is not UTF-8 becomes U+FFFD)."""
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=256, n_threads=1, verbose=False)
    try:
        tokens = []
        for token in llm.generate(llm.tokenize(prompt), temp=0.0, top_k=1):
            if token == llm.token_eos() or len(tokens) == max_tokens:
                break
            tokens.append(token)
        return llm.detokenize(tokens).decode("utf-8", "replace").encode()
    finally:
        llm.close()


async def test_status_describes_the_generation_model(gen):
    ex, _ = gen
    (model,) = (await ex.client.status()).models
    assert (model.runtime, model.task) == ("llama.cpp", "generate")
    assert model.providers == ["llama.cpp CPU"]
    assert (model.generation.context_length, model.generation.contexts, model.generation.chunk_tokens) == (256, 2, 4)


async def test_streams_chunks_whose_text_matches_llama_cpp_in_process(gen, gguf):
    _, stream = gen
    await stream.start(1, "tiny", prompt=PROMPT, max_tokens=24, temperature=0.0)
    results = await stream.finished(1)
    first, last = results[0], results[-1]
    assert first.chunk.tokens == 1 and first.chunk.first_token_ns > 0 and first.chunk.prompt_tokens > 0
    assert all(r.chunk.tokens <= 4 for r in results) and len(results) >= 24 // 4
    assert last.chunk.final and last.chunk.finish_reason == "length"
    assert tokens_of(results) == 24
    assert text_of(results) == _in_process_greedy(gguf["tiny"], PROMPT, 24)


async def test_a_seed_makes_sampling_repeatable(gen):
    _, stream = gen
    for work_id in (1, 2):
        await stream.start(work_id, "tiny", prompt=PROMPT, max_tokens=30, temperature=0.9, top_p=0.95, top_k=40, seed=11)
    one, two = await stream.finished(1), await stream.finished(2)
    assert text_of(one) == text_of(two)
    await stream.start(3, "tiny", prompt=PROMPT, max_tokens=30, temperature=0.9, top_p=0.95, top_k=40, seed=12)
    assert text_of(await stream.finished(3)) != text_of(one)


async def test_not_streamed_the_whole_text_comes_once(gen):
    _, stream = gen
    await stream.start(1, "tiny", prompt=PROMPT, max_tokens=12, temperature=0.0, stream=False)
    (only,) = await stream.finished(1)
    assert only.chunk.final and only.chunk.tokens == 12 and only.chunk.first_token_ns > 0


@pytest.mark.parametrize("contexts", [2, 1], ids=["second-context", "save-restore"])
async def test_an_urgent_generation_preempts_and_the_preempted_one_resumes_unchanged(start_executor, gguf, contexts):
    ex = await _served(start_executor, gguf, contexts=contexts)
    stream = GenStream(ex.addr)
    try:
        await stream.start(1, "tiny", prompt=PROMPT, max_tokens=150, temperature=0.8, seed=5, priority=2)
        alone = text_of(await stream.finished(1))
        await stream.start(2, "tiny", prompt=PROMPT, max_tokens=150, temperature=0.8, seed=5, priority=2)
        await stream.first(2)
        await stream.start(3, "tiny", prompt=b"a dog", max_tokens=5, temperature=0.0, priority=1)
        urgent = await stream.finished(3)
        low = await stream.finished(2)
        assert low[-1].chunk.preemptions >= 1
        assert text_of(low) == alone  # its own context or its saved state: nothing lost
        assert urgent[-1].chunk.finish_reason == "length"
        assert stream.order.index((3, True)) < stream.order.index((2, True))  # it did not wait for the long one
        (model,) = (await ex.client.status()).models
        assert model.generation.preemptions >= 1
        if contexts == 1:
            assert model.generation.state_saves >= 1 and model.generation.state_restores >= 1
        else:
            assert model.generation.state_saves == 0
    finally:
        await stream.close()


async def test_cancel_ends_the_generation_within_a_step_and_frees_it(gen):
    ex, stream = gen
    await stream.start(1, "tiny", prompt=PROMPT, max_tokens=200, temperature=0.0)
    await stream.first(1)
    await stream.cancel(1)
    results = await stream.finished(1)
    assert results[-1].chunk.final and results[-1].chunk.finish_reason == "cancelled"
    assert tokens_of(results) < 200
    (model,) = (await ex.client.status()).models
    assert model.generation.cancelled == 1 and model.generation.active == 0


async def test_a_closed_stream_cancels_its_generations(gen, gguf):
    ex, stream = gen
    await stream.start(1, "tiny", prompt=PROMPT, max_tokens=200, temperature=0.0)
    await stream.first(1)
    await stream.close()
    for _ in range(200):
        (model,) = (await ex.client.status()).models
        if model.generation.cancelled:
            break
        await asyncio.sleep(0.01)  # polling a status the server changes on its own: no event to wait on
    assert model.generation.cancelled == 1 and model.generation.active == 0


async def test_deadlines_end_generations_with_deadline_exceeded(gen):
    _, stream = gen
    await stream.start(1, "tiny", prompt=PROMPT, max_tokens=200, temperature=0.0, timeout_us=3_000)
    (*_, last) = await stream.finished(1)
    assert last.error_code == "DEADLINE_EXCEEDED"
    # the first-token deadline: queued behind a long generation that holds the model
    await stream.start(2, "tiny", prompt=PROMPT, max_tokens=200, temperature=0.0, priority=1)
    await stream.first(2)
    await stream.start(3, "tiny", prompt=PROMPT, max_tokens=5, priority=2, first_token_timeout_us=1_000)
    (last,) = await stream.finished(3)
    assert last.error_code == "DEADLINE_EXCEEDED" and "first token" in last.error_message
    await stream.cancel(2)


async def test_bad_generation_requests_are_invalid_argument(gen):
    _, stream = gen
    await stream.start(1, "tiny", prompt=b"the cat " * 200, max_tokens=8)
    await stream.start(2, "tiny", prompt=PROMPT, max_tokens=0)
    await stream.start(3, "tiny", prompt=PROMPT, max_tokens=250)
    for work_id, field in ((1, "text_input"), (2, "max_tokens"), (3, "max_tokens")):
        (result,) = await stream.finished(work_id)
        assert result.error_code == "INVALID_ARGUMENT" and field in result.error_message


async def test_tensor_work_on_a_generation_model_is_refused(gen):
    ex, _ = gen
    text = tensor_pb2.Tensor(name="text_input", datatype="BYTES", shape=[1], raw=b"\x03\x00\x00\x00abc")
    with pytest.raises(Exception) as caught:
        await ex.client.execute("tiny", 1, [text], [])
    assert "text generation model" in str(caught.value)


@pytest.mark.parametrize("name", ["truncated", "header_only"])
async def test_a_corrupt_gguf_fails_to_load_and_the_executor_keeps_serving(gen, name):
    ex, stream = gen
    with pytest.raises(Exception) as caught:
        await ex.client.load_model(name, 1, "", task="generate")
    assert getattr(caught.value, "code", "") == "FAILED_PRECONDITION"
    assert "llama.cpp cannot load" in str(caught.value)
    await stream.start(1, "tiny", prompt=PROMPT, max_tokens=3, temperature=0.0)
    assert (await stream.finished(1))[-1].chunk.finish_reason == "length"


async def test_generate_on_an_onnx_model_is_refused(start_executor, gguf, model_files):
    files = dict(gguf, plus_one=model_files.plus_one)
    ex = await start_executor(fetch=file_fetcher(files))
    await ex.client.load("plus_one", 1, "")
    stream = GenStream(ex.addr)
    try:
        await stream.start(1, "plus_one", prompt=PROMPT, max_tokens=3)
        (result,) = await stream.finished(1)
        assert result.error_code == "INVALID_ARGUMENT" and "not a text generation model" in result.error_message
    finally:
        await stream.close()



async def test_without_preemption_generations_run_first_come_first_served(start_executor, gguf):
    ex = await _served(start_executor, gguf, generation_preemption=False)
    stream = GenStream(ex.addr)
    try:
        await stream.start(1, "tiny", prompt=PROMPT, max_tokens=60, temperature=0.0, priority=2)
        await stream.first(1)
        await stream.start(2, "tiny", prompt=b"a dog", max_tokens=3, temperature=0.0, priority=1)
        await stream.finished(2)
        assert stream.order.index((1, True)) < stream.order.index((2, True))
        assert (await stream.finished(1))[-1].chunk.preemptions == 0
    finally:
        await stream.close()


async def test_mlos_status_shows_the_generation_counters(gen):
    from mlos_cli.status import executor_lines

    ex, stream = gen
    await stream.start(1, "tiny", prompt=PROMPT, max_tokens=6, temperature=0.0)
    await stream.finished(1)
    lines = executor_lines(ex.addr, await ex.client.status())
    line = next(x for x in lines if "context(s)" in x)
    assert "llama.cpp, 2 context(s) of 256 tokens, 1 thread(s)" in line and "1 done" in line and "6 tokens" in line
