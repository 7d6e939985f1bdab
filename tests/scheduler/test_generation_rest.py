"""A generation model at the KServe v2 REST front door, served for real (conftest's `llama`):
infer answers the whole text as text_output, Triton's generate extension answers it as
{"text_output": ...} and generate_stream as Server-Sent Events, one per chunk; bad input is named."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from generation_sched_testkit import collect, request
from sched_testkit import Stack, rest_client

pytestmark = pytest.mark.asyncio(loop_scope="session")

PROMPT = "the quick brown fox"
MAX_TOKENS = 12
GREEDY = {"max_tokens": MAX_TOKENS, "temperature": 0, "seed": 7}


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def http(llama: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with rest_client(llama) as client:
        yield client


async def reference(llama: Stack) -> str:
    chunks = await collect(llama, request(PROMPT.encode(), model="tiny", max_tokens=MAX_TOKENS))
    return b"".join(c.text for c in chunks).decode()


def events(body: str) -> list[dict]:
    """The JSON of each `data:` event of a Server-Sent Events body."""
    blocks = body.split("\n\n")
    assert blocks[-1] == "", "every event ends with a blank line"
    out = []
    for block in blocks[:-1]:
        assert block.startswith("data: "), block
        out.append(json.loads(block[len("data: "):]))
    return out


async def test_infer_answers_the_whole_text(llama: Stack, http: httpx.AsyncClient) -> None:
    body = {"id": "r1", "inputs": [
        {"name": "text_input", "datatype": "BYTES", "shape": [1], "data": [PROMPT]},
        {"name": "sampling_parameters", "datatype": "BYTES", "shape": [1], "data": [json.dumps(GREEDY)]},
    ]}
    resp = await http.post("/v2/models/tiny/infer", json=body)
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    assert answer["id"] == "r1" and answer["model_version"] == "1"
    assert answer["outputs"] == [{"name": "text_output", "datatype": "BYTES", "shape": [1], "data": [await reference(llama)]}]


async def test_generate_answers_the_whole_text(llama: Stack, http: httpx.AsyncClient) -> None:
    want = await reference(llama)
    resp = await http.post("/v2/models/tiny/generate", json={"text_input": PROMPT, "parameters": GREEDY})
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"model_name": "tiny", "model_version": "1", "text_output": want}
    resp = await http.post("/v2/models/tiny/versions/1/generate",
                           json={"id": "g2", "text_input": PROMPT, "sampling_parameters": json.dumps(GREEDY)})
    assert resp.json() == {"model_name": "tiny", "model_version": "1", "id": "g2", "text_output": want}


async def test_generate_stream_sends_an_event_per_chunk(llama: Stack, http: httpx.AsyncClient) -> None:
    resp = await http.post("/v2/models/tiny/generate_stream", json={"text_input": PROMPT, "parameters": GREEDY})
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
    got = events(resp.text)
    assert len(got) >= 3, "TINY makes 4 tokens a chunk"
    assert all((e["model_name"], e["model_version"]) == ("tiny", "1") for e in got)
    assert "".join(e["text_output"] for e in got) == await reference(llama)


@pytest.mark.parametrize("route", ["generate", "generate_stream"])
@pytest.mark.parametrize("body,status,words", [
    ({"text_input": PROMPT, "parameters": {"top_p": 1.5}}, 400, ["parameters.top_p must be in (0, 1], got 1.5"]),
    ({"text_input": PROMPT, "sampling_parameters": '{"top_k": -1}'}, 400, ["sampling_parameters.top_k"]),
    ({"text_input": "the cat " * 200, "parameters": {"max_tokens": 4}}, 400, ["text_input"]),  # over the context
    ({"text_input": PROMPT, "parameters": {"first_token_timeout": 1}}, 504, []),
    ({"text_input": "a\ud800"}, 400, ["'text_input' is not valid UTF-8", "byte offset 1"]),
    ({"text_input": PROMPT, "parameters": {"priority": "high"}}, 400, ["parameter 'priority'"]),
])
async def test_bad_generate_requests(http: httpx.AsyncClient, route: str, body: dict, status: int, words: list[str]) -> None:
    resp = await http.post(f"/v2/models/tiny/{route}", content=json.dumps(body).encode())
    assert resp.status_code == status, resp.text
    message = resp.json()["error"]
    for w in words:
        assert w in message, message
