"""`mlos models show` against a real registry, and the `mlos models list` table built from real versions."""

from __future__ import annotations

import json
from pathlib import Path

import gguf
import pytest
from gguf_testkit import write_gguf
from registry_testkit import Served, run_mlos

from mlos_cli.models_cmd import count_text, list_rows, served_versions


async def test_show_a_generation_model(served: Served, models_dir: Path, capsys: pytest.CaptureFixture) -> None:
    await served.client.register("tiny", write_gguf(models_dir / "tiny.gguf"), labels={"team": "llm"})
    code, out, err = await run_mlos(capsys, "models", "show", "tiny", "--registry", served.addr)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "tiny version 1" and "  task      generate" in lines
    assert "  facts     llama, Q8_0, 2.11K parameters, context 2048 of 4096, vocab 32" in lines
    assert "context_length 2048" in out and "chunk_tokens 4" in out and "contexts 2" in out
    assert "text_input:BYTES[1], stream:BOOL[1], sampling_parameters:BYTES[1]" in out
    assert "    tokenizer         llama" in lines and "  labels    team=llm" in lines

    code, out, _ = await run_mlos(capsys, "models", "show", "tiny", "--version", "1", "--registry", served.addr, "--json")
    shown = json.loads(out)
    assert (code, shown["task"], shown["format"], shown["facts"]["architecture"]) == (0, "generate", "gguf", "llama")
    assert shown["config"]["context_length"] == 2048


async def test_show_an_onnx_model_and_errors(served: Served, dynamic_onnx: Path, capsys: pytest.CaptureFixture) -> None:
    await served.client.register("adder", dynamic_onnx)
    code, out, _ = await run_mlos(capsys, "models", "show", "adder", "--registry", served.addr)
    assert code == 0 and "  task      infer" in out.splitlines() and "facts" not in out and "context_length" not in out
    code, _, err = await run_mlos(capsys, "models", "show", "nope", "--registry", served.addr)
    assert code == 2 and "NOT_FOUND" in err and "'nope' is not registered" in err
    code, _, err = await run_mlos(capsys, "models", "show", "adder", "--version", "9", "--registry", served.addr)
    assert code == 2 and "no version 9" in err


async def test_list_rows_show_task_and_gguf_facts(served: Served, models_dir: Path, dynamic_onnx: Path) -> None:
    c = served.client
    await c.register("adder", dynamic_onnx)
    await c.register("bert", write_gguf(models_dir / "bert.gguf", "bert", context_length=512, embedding_length=32,
                                        pooling_type=gguf.PoolingType.MEAN))
    await c.register("tiny", write_gguf(models_dir / "v1.gguf"))
    await c.register("tiny", write_gguf(models_dir / "v2.gguf", context_length=1024))
    entries = [("adder", "1", "READY"), ("bert", "1", "UNAVAILABLE"), ("tiny", "1", "READY"), ("ghost", "3", "READY")]
    known = served_versions(await c.list(), entries)
    assert {name: mv.version for name, mv in known.items()} == {"adder": 1, "bert": 1, "tiny": 1}  # the served one
    assert served_versions(await c.list(), [("tiny", "", "")])["tiny"].version == 2  # else the latest
    rows = list_rows(entries, known, {"ghost": "a:FP32[1] -> b:FP32[1]"})
    assert rows[0].split() == ["MODEL", "VERSION", "STATE", "TASK", "INPUTS", "->", "OUTPUTS"]
    assert rows[1].split()[:4] == ["adder", "1", "READY", "infer"]
    assert rows[2].split()[:4] == ["bert", "1", "UNAVAILABLE", "embed"] and "embedding:FP32[-1, 32]" in rows[2]
    assert rows[3].strip() == "gguf: bert, Q8_0, 1.06K parameters, context 512 of 512, vocab 32, pooling mean"
    assert rows[4].split()[:4] == ["tiny", "1", "READY", "generate"]
    assert "context 2048 of 4096" in rows[5]
    assert rows[6].split() == ["ghost", "3", "READY", "?", "a:FP32[1]", "->", "b:FP32[1]"]


@pytest.mark.parametrize("text,shown", [("999", "999"), ("2112", "2.11K"), ("1100048384", "1.1B"), ("7e9", "7e9")])
def test_counts_read_like_model_cards(text: str, shown: str) -> None:
    assert count_text(text) == shown
