"""`mlos predictor status` against a real predictor (in this process, port 0), run as a user runs it."""

from __future__ import annotations

import asyncio
import json
import sys

from predictor_testkit import linear_onnx, sample_rows, serve_engine

from mlos_predictor.client import PredictorClient
from mlos_predictor.engine import build_engine
from mlos_predictor.kinds import KINDS, SPECS
from mlos_predictor.models import ModelCard, OnnxModel


async def _mlos(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mlos_cli", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_status_shows_each_kind_source_score_and_serving_figures() -> None:
    engine = build_engine()
    spec = SPECS["failure"]
    engine.slots["failure"].swap(
        OnnxModel(spec, linear_onnx(spec, [3.0, 0, 0, 0, 0, 0], bias=-2.0, sigmoid=True)),
        ModelCard("failure", source="trained", version=5, score=0.91, baseline_score=0.74, training_rows=1200),
    )
    running = await serve_engine(engine)
    try:
        async with PredictorClient(running.addr) as client:
            rows = sample_rows(spec, 4).tolist()
            await client.predict_batch("failure", rows)
            await client.predict_batch("failure", rows)
        code, out, err = await _mlos("predictor", "status", "--addr", running.addr)
    finally:
        await running.server.stop(None)
    assert code == 0, err
    header, *lines = out.splitlines()
    assert header.split() == ["KIND", "SOURCE", "VERSION", "METRIC", "SCORE", "BASELINE", "TRAIN_ROWS", "COUNT", "HIT%",
                              "P50_MS", "P99_MS"]  # fmt: skip
    by_kind = {line.split()[0]: line.split() for line in lines}
    assert list(by_kind) == list(KINDS)
    assert by_kind["failure"][:9] == ["failure", "trained", "5", "auc", "0.91", "0.74", "1200", "8", "50.0"]
    assert by_kind["memory"][:9] == ["memory", "prior", "0", "mae", "-", "-", "0", "0", "-"]


async def test_status_of_an_absent_predictor_says_so() -> None:
    code, _out, err = await _mlos("predictor", "status", "--addr", "127.0.0.1:1")
    assert code == 2 and "UNAVAILABLE" in err and "Traceback" not in err


async def test_eval_prints_the_table_and_writes_json(tmp_path) -> None:
    """`mlos predictor eval` on a small simulation: every kind scored, learned beats baseline."""
    out_file = tmp_path / "eval.json"
    code, out, err = await _mlos("predictor", "eval", "--scale", "0.3", "--seed", "1", "--json", str(out_file))
    assert code == 0, err
    assert out.splitlines()[0].split()[:5] == ["kind", "metric", "learned", "baseline", "prior"]
    assert "precision@0.5" in out and "precision@0.8" in out and "Brier" in out and "AUC proxy" in out
    report = json.loads(out_file.read_text())
    kinds = {k["kind"]: k for k in report["kinds"]}
    assert sorted(kinds) == sorted(KINDS)
    for kind, k in kinds.items():
        assert k["metric"] == SPECS[kind].metric and k["beats_baseline"], kind
        assert set(k["scores"]) == {"learned", "baseline", "prior"} and k["held_out_rows"] > 0
    assert report["meta"]["seed"] == 1 and report["meta"]["rejected"] == 0


async def test_eval_refuses_a_bad_scale() -> None:
    code, _, err = await _mlos("predictor", "eval", "--scale", "9")
    assert code == 2 and "--scale: must be between 0.05 and 4, got 9" in err
