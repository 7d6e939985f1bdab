"""The committed generated stubs must be exactly what `make protos` produces from protos/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROTOS = ROOT / "protos"
GEN_SCRIPT = ROOT / "scripts" / "gen_protos.py"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")
HINT = "generated code is stale: run `make protos` and commit the result"


def _generated_files(root: Path) -> dict[str, bytes]:
    """Relative path -> content for every generated file (and package __init__) under root."""
    found: dict[str, bytes] = {}
    for path in sorted(root.rglob("*")):
        if "__pycache__" in path.parts or not path.is_file():
            continue
        if path.name == "__init__.py" or path.name.endswith(GENERATED_SUFFIXES):
            found[path.relative_to(root).as_posix()] = path.read_bytes()
    return found


def test_committed_stubs_match_regeneration(tmp_path: Path) -> None:
    out = tmp_path / "gen"
    proc = subprocess.run(
        [sys.executable, str(GEN_SCRIPT), str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, f"gen_protos.py failed ({HINT}):\n{proc.stdout}\n{proc.stderr}"

    fresh = _generated_files(out)
    committed = _generated_files(PROTOS)
    assert any(name.endswith("_pb2.py") for name in fresh), "regeneration produced no *_pb2.py files"

    missing = sorted(set(fresh) - set(committed))
    extra = sorted(set(committed) - set(fresh))
    differ = sorted(name for name in set(fresh) & set(committed) if fresh[name] != committed[name])
    assert not missing, f"generated but not committed: {missing}; {HINT}"
    assert not extra, f"committed but no longer generated (stale; delete them): {extra}; {HINT}"
    assert not differ, f"committed files differ from regeneration: {differ}; {HINT}"


def test_every_proto_has_committed_stubs() -> None:
    protos = sorted(PROTOS.glob("mlos/**/*.proto"))
    assert protos, "no .proto files found under protos/mlos"
    missing = [
        str(p.relative_to(ROOT).with_name(p.stem + suffix))
        for p in protos
        for suffix in GENERATED_SUFFIXES
        if not p.with_name(p.stem + suffix).is_file()
    ]
    assert not missing, f"missing generated files {missing}; {HINT}"
