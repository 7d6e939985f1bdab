#!/usr/bin/env python3
"""Writes the tiny test GGUF models (mlos_cli.gguf_models) into OUT_DIR.

Usage: scripts/make_gguf_models.py OUT_DIR [--seed N]

Writes OUT_DIR/tiny-llama.gguf (llama architecture, generation) and OUT_DIR/tiny-bert.gguf (BERT
architecture, embeddings) and prints one line per file: path, bytes, sha256. The same seed writes
the same bytes. Needs the `gguf` package (pip install -e '.[llm]'); exit status 2 on bad usage.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

FILES = {"tiny-llama.gguf": "write_tiny_llama", "tiny-bert.gguf": "write_tiny_bert"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path, help="folder to write into (created if missing)")
    parser.add_argument("--seed", type=int, default=0, help="numpy seed of the random weights (default 0)")
    args = parser.parse_args(argv)
    if args.out_dir.exists() and not args.out_dir.is_dir():
        parser.error(f"OUT_DIR {args.out_dir} exists and is not a folder")
    if args.seed < 0:
        parser.error(f"--seed must be >= 0, got {args.seed}")
    try:
        from mlos_cli import gguf_models
    except ImportError as exc:
        print(f"cannot write GGUF models: {exc} (pip install -e '.[llm]')", file=sys.stderr)
        return 1
    for name, writer in FILES.items():
        path = getattr(gguf_models, writer)(args.out_dir / name, seed=args.seed)
        data = path.read_bytes()
        print(f"{path}\t{len(data)} bytes\tsha256 {hashlib.sha256(data).hexdigest()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
