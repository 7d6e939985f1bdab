"""bench/bench_registry.py for real with tiny sizes (--quick), as a subprocess: its table and JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "bench_registry.py"


def test_bench_registry_quick(tmp_path: Path) -> None:
    out = tmp_path / "registry.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--json", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())
    assert results["small_models"] == 5 and results["registrations_per_s_1_caller"] > 0
    assert results["registrations_per_s_4_callers"] > 0
    paths = results["large"]
    assert set(paths) == {"shutil.copyfile", "copyfile + fsync", "sha256 of the file (one read)",
                          "RegisterModel (path)", "UploadModel", "FetchArtifact",
                          "RegisterModel (external-data folder)"}
    assert all(row["mb_per_s"] > 0 and row["seconds"] > 0 for row in paths.values())
    assert paths["shutil.copyfile"]["vs_copyfile"] == 1.0
    assert "UploadModel" in done.stdout and "registrations/s" in done.stdout
