"""scripts/make_gguf_models.py: the test GGUF models written from the command line."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

from mlos_cli import gguf_models

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "make_gguf_models.py"


def _make(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60)


def test_writes_both_models_and_reports_their_digests(tmp_path: Path) -> None:
    out = tmp_path / "new" / "models"
    done = _make(str(out), "--seed", "3")
    assert done.returncode == 0, done.stderr
    expected = {"tiny-llama.gguf": gguf_models.tiny_llama_bytes(3), "tiny-bert.gguf": gguf_models.tiny_bert_bytes(3)}
    assert sorted(p.name for p in out.iterdir()) == sorted(expected)
    for line, (name, data) in zip(done.stdout.splitlines(), expected.items(), strict=True):
        assert (out / name).read_bytes() == data
        assert line == f"{out / name}\t{len(data)} bytes\tsha256 {hashlib.sha256(data).hexdigest()}"


def test_out_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "a-file"
    target.write_text("x")
    done = _make(str(target))
    assert done.returncode == 2
    assert f"OUT_DIR {target} exists and is not a folder" in done.stderr and "Traceback" not in done.stderr


def test_negative_seed_and_missing_out_dir_are_usage_errors(tmp_path: Path) -> None:
    done = _make(str(tmp_path), "--seed", "-1")
    assert done.returncode == 2 and "--seed must be >= 0, got -1" in done.stderr
    assert not list(tmp_path.iterdir())
    done = _make()
    assert done.returncode == 2 and "the following arguments are required: out_dir" in done.stderr
