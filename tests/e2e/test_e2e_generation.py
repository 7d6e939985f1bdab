"""Generation through the front door as a Triton LLM client sees it: the unmodified tritonclient
streams tokens from the tiny llama GGUF (`tinyllama-test`, written by mlos_cli.gguf_models) that
`mlos up` serves, with start_stream / async_stream_infer, and the text is llama-cpp-python's own
greedy text for the same file and prompt."""

from __future__ import annotations

import json
import queue
from collections.abc import Iterator

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from e2e_testkit import expect_status
from tritonclient.utils import InferenceServerException

MODEL = "tinyllama-test"
PROMPT = "the quick brown fox"
MAX_TOKENS = 24
GREEDY = {"max_tokens": MAX_TOKENS, "temperature": 0, "seed": 7}
RESPONSE_TIMEOUT_S = 60.0


def inputs(prompt: str, stream: bool | None, sampling: dict | str | None = None) -> list[grpcclient.InferInput]:
    """Triton's vLLM-backend inputs: text_input, optionally stream and sampling_parameters."""
    made = []
    text = grpcclient.InferInput("text_input", [1], "BYTES")
    text.set_data_from_numpy(np.array([prompt.encode()], dtype=np.object_))
    made.append(text)
    if stream is not None:
        flag = grpcclient.InferInput("stream", [1], "BOOL")
        flag.set_data_from_numpy(np.array([stream], dtype=bool))
        made.append(flag)
    if sampling is not None:
        source = sampling if isinstance(sampling, str) else json.dumps(sampling)
        params = grpcclient.InferInput("sampling_parameters", [1], "BYTES")
        params.set_data_from_numpy(np.array([source.encode()], dtype=np.object_))
        made.append(params)
    return made


@pytest.fixture(scope="module")
def reference_text(suite) -> str:
    """llama-cpp-python's own greedy text on the same GGUF file, prompt and token budget."""
    import llama_cpp

    from mlos_cli.demo import prepare_demo_models

    path = {m.name: m for m in prepare_demo_models(suite.home / "demo", generation=True)}[MODEL].path
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=512, n_threads=1, verbose=False)
    try:
        tokens = []
        for token in llm.generate(llm.tokenize(PROMPT.encode()), temp=0.0, top_k=1):
            if token == llm.token_eos() or len(tokens) == MAX_TOKENS:
                break
            tokens.append(token)
        return llm.detokenize(tokens).decode("utf-8", "replace")
    finally:
        llm.close()


@pytest.fixture
def stream_client(suite) -> Iterator[tuple[grpcclient.InferenceServerClient, queue.Queue]]:
    """A client with an open stream; its callback puts (result, error) pairs on the queue."""
    client = grpcclient.InferenceServerClient(url=suite.scheduler_addr)
    answers: queue.Queue = queue.Queue()
    client.start_stream(callback=lambda result, error: answers.put((result, error)))
    try:
        yield client, answers
    finally:
        client.stop_stream()
        client.close()


def until_final(answers: queue.Queue, ids: set[str]) -> dict[str, list]:
    """Responses by request id until each of `ids` has had its triton_final_response (or an error)."""
    got: dict[str, list] = {i: [] for i in ids}
    open_ids = set(ids)
    while open_ids:
        result, error = answers.get(timeout=RESPONSE_TIMEOUT_S)
        if error is not None:
            raise error
        response = result.get_response()
        got[response.id].append(result)
        if response.parameters["triton_final_response"].bool_param:
            open_ids.discard(response.id)
    return got


def text_of(result) -> str:
    out = result.as_numpy("text_output")
    return "" if out is None else b"".join(out.tolist()).decode()


def test_config_says_decoupled_to_tritonclient(client) -> None:
    config = client.get_model_config(MODEL).config
    assert config.model_transaction_policy.decoupled
    assert (config.backend, config.max_batch_size) == ("llamacpp", 0)
    assert [(i.name, i.optional) for i in config.input] == [
        ("text_input", False), ("stream", True), ("sampling_parameters", True)]
    assert config.parameters["architecture"].string_value == "llama"
    meta = client.get_model_metadata(MODEL)
    assert [o.name for o in meta.outputs] == ["text_output"]


def test_stream_tokens_as_tritonclient_streams_them(stream_client, reference_text: str) -> None:
    client, answers = stream_client
    client.async_stream_infer(MODEL, inputs(PROMPT, True, GREEDY), request_id="s1")
    responses = until_final(answers, {"s1"})["s1"]
    assert len(responses) > 1, "chunks come as they are made"
    flags = [r.get_response().parameters["triton_final_response"].bool_param for r in responses]
    assert flags == [False] * (len(responses) - 1) + [True]
    assert "".join(text_of(r) for r in responses) == reference_text


def test_unary_infer_returns_the_whole_text(client, reference_text: str) -> None:
    result = client.infer(MODEL, inputs(PROMPT, None, GREEDY))
    assert result.as_numpy("text_output").shape == (1,)
    assert text_of(result) == reference_text


def test_empty_final_response_and_a_whole_text_on_the_stream(stream_client, reference_text: str) -> None:
    client, answers = stream_client
    client.async_stream_infer(MODEL, inputs(PROMPT, True, GREEDY), request_id="e1", enable_empty_final_response=True)
    client.async_stream_infer(MODEL, inputs(PROMPT, False, GREEDY), request_id="w1")
    got = until_final(answers, {"e1", "w1"})
    *chunks, end = got["e1"]
    assert end.get_response().outputs == [] and end.get_response().parameters["triton_final_response"].bool_param
    assert not any(r.get_response().parameters["triton_final_response"].bool_param for r in chunks)
    assert "".join(text_of(r) for r in chunks) == reference_text
    (whole,) = got["w1"]
    assert text_of(whole) == reference_text


def test_bad_sampling_parameters_fail_that_request_only(stream_client, client) -> None:
    stream, answers = stream_client
    stream.async_stream_infer(MODEL, inputs(PROMPT, True, '{"top_p": 1.5}'), request_id="bad")
    result, error = answers.get(timeout=RESPONSE_TIMEOUT_S)
    assert isinstance(error, InferenceServerException)
    assert "sampling_parameters.top_p must be in (0, 1], got 1.5" in error.message()
    stream.async_stream_infer(MODEL, inputs(PROMPT, True, {"max_tokens": 4, "temperature": 0}), request_id="ok")
    assert until_final(answers, {"ok"})["ok"]
    expect_status("StatusCode.INVALID_ARGUMENT", client.infer, MODEL, inputs(PROMPT, None, "{not json"))
    err = expect_status("StatusCode.INVALID_ARGUMENT", client.infer, MODEL,
                        inputs(PROMPT, None, {"max_tokens": 100_000}))
    assert "sampling_parameters.max_tokens" in err.message()
