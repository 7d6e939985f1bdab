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


def _png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's signature and IHDR chunk; fails on anything else."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", data[:16]
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


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


async def test_eval_prints_the_table_and_writes_json_and_a_plot(tmp_path) -> None:
    """`mlos predictor eval` on a small simulation: every kind scored, learned beats baseline;
    `--plot` writes the figure (2 x 3 panels at 100 dpi) into a folder it creates."""
    out_file, png = tmp_path / "eval.json", tmp_path / "figures" / "eval.png"
    code, out, err = await _mlos(
        "predictor", "eval", "--scale", "0.3", "--seed", "1", "--json", str(out_file), "--plot", str(png)
    )
    assert code == 0, err
    assert f"wrote {png}" in out
    data = png.read_bytes()
    assert _png_size(data) == (1800, 1100)
    assert len(data) > 100_000  # six panels of points and curves, not an empty canvas
    assert out.splitlines()[0].split()[:5] == ["kind", "metric", "learned", "baseline", "prior"]
    assert "precision@0.5" in out and "precision@0.8" in out and "Brier" in out and "AUC proxy" in out
    report = json.loads(out_file.read_text())
    kinds = {k["kind"]: k for k in report["kinds"]}
    assert sorted(kinds) == sorted(KINDS)
    for kind, k in kinds.items():
        assert k["metric"] == SPECS[kind].metric and k["beats_baseline"], kind
        assert set(k["scores"]) == {"learned", "baseline", "prior"} and k["held_out_rows"] > 0
    assert report["meta"]["seed"] == 1 and report["meta"]["rejected"] == 0


async def test_eval_plot_without_matplotlib_names_the_extra_before_any_work(tmp_path) -> None:
    png = tmp_path / "eval.png"
    blocked = "import sys; sys.modules['matplotlib'] = None; from mlos_cli.__main__ import main; sys.exit(main())"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", blocked, "predictor", "eval", "--plot", str(png),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2, err
    assert "--plot needs matplotlib" in err.decode() and "pip install 'mlos[bench]'" in err.decode()
    assert "Traceback" not in err.decode() and out == b"" and not png.exists()  # no evaluation ran


async def test_eval_plot_refuses_a_path_that_is_not_png_or_cannot_be_made(tmp_path) -> None:
    code, out, err = await _mlos("predictor", "eval", "--plot", str(tmp_path / "eval.svg"))
    assert code == 2 and "--plot: must be a .png file, got" in err and out == ""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code, out, err = await _mlos("predictor", "eval", "--plot", str(blocker / "eval.png"))
    assert code == 2 and out == "" and "Traceback" not in err
    assert f"--plot {blocker / 'eval.png'}: cannot create the folder {blocker}" in err


async def test_eval_refuses_a_bad_scale() -> None:
    code, _, err = await _mlos("predictor", "eval", "--scale", "9")
    assert code == 2 and "--scale: must be between 0.05 and 4, got 9" in err
