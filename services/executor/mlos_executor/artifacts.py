"""The executor's local artifact cache: verified, content-addressed copies of model files.

No grpc here: files come through an injected fetcher (the registry client in production).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from mlos_executor.errors import ChecksumMismatch

log = logging.getLogger(__name__)

# (name, version, destination folder) -> (path of the verified file, its sha256)
Fetcher = Callable[[str, int, Path], Awaitable[tuple[Path, str]]]


async def verified_artifact(cache_dir: Path, fetch: Fetcher, name: str, version: int, sha256: str) -> Path:
    """`cache_dir/<sha256>.onnx`, checked against `sha256` when given; fetched when missing or
    corrupt. Raises ChecksumMismatch when the fetched file is not the one registered."""
    if sha256:
        cached = cache_dir / f"{sha256}.onnx"
        if cached.exists():
            if await asyncio.to_thread(sha256_file, cached) == sha256:
                return cached
            log.warning("cached artifact %s is corrupt; fetching again", sha256[:12])
            cached.unlink()
    path, digest = await fetch(name, version, cache_dir)
    if sha256 and digest != sha256:
        path.unlink(missing_ok=True)
        raise ChecksumMismatch(
            f"model {name!r} v{version}: artifact digest {digest[:12]}… differs from the "
            f"registered {sha256[:12]}…"
        )
    final = cache_dir / f"{digest}.onnx"
    if path != final:
        os.replace(path, final)
    return final


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
