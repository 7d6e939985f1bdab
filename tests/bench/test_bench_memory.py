"""bench/memory_footprint.py for real, as a subprocess: a row per model, samples per warm-up batch size."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "memory_footprint.py"


def test_memory_footprint_measures_every_model(tmp_path: Path) -> None:
    out = tmp_path / "memory.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--json", str(out)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    results = {r["model"]: r for r in json.loads(out.read_text())}
    assert set(results) == {"iris", "silero_vad", "ocr_cls", "weights_16mb"}
    for name in ("iris", "ocr_cls", "weights_16mb"):  # batched: warmed at 1 and 8, one sample each
        for run in (results[name]["first_load"], results[name]["after_another_load"]):
            assert [s["batch_size"] for s in run["samples"]] == [1, 8], (name, run)
    heavy = results["weights_16mb"]["first_load"]
    assert heavy["facts"]["parameters"] == 2048 * 2048
    assert heavy["measured_mb"] > 8  # at least half of its 16 MiB of weights is resident
    assert "MODEL" in done.stdout.splitlines()[0]
