"""Regenerates the committed protobuf/gRPC stubs beside the .proto files.

Usage: python scripts/gen_protos.py [OUT_DIR]   (default: protos/, in place)

The drift test (tests/contracts/test_generated_code.py) runs this into a temporary folder and
compares byte for byte, so generated code can never silently disagree with the contracts.
"""

from __future__ import annotations

import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"


def proto_files() -> list[Path]:
    return sorted(PROTO_ROOT.glob("mlos/**/*.proto"))


def generate(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    include = Path(protoc.__file__).parent / "_proto"
    for proto in proto_files():
        rel = proto.relative_to(PROTO_ROOT)
        args = [
            "protoc",
            f"-I{PROTO_ROOT}",
            f"-I{include}",
            f"--python_out={out_dir}",
            f"--pyi_out={out_dir}",
            f"--grpc_python_out={out_dir}",
            str(rel),
        ]
        if protoc.main(args) != 0:
            raise SystemExit(f"protoc failed on {rel}")
    # Every folder on the way is a regular package, so imports mirror folders.
    for proto in proto_files():
        pkg = out_dir / proto.relative_to(PROTO_ROOT).parent
        while pkg != out_dir:
            (pkg / "__init__.py").touch()
            pkg = pkg.parent


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else PROTO_ROOT
    import os

    os.chdir(PROTO_ROOT)  # protoc resolves relative names against -I
    generate(out.resolve())


if __name__ == "__main__":
    main()
