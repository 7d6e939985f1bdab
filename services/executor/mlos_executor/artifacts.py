"""The executor's local artifact cache: verified, content-addressed copies of model files.

A bundle (an ONNX model with external data, see mlos_common.bundle) is kept as its verified tar
`<sha256>.onnx` and unpacked once beside it into `<sha256>.d/` (into a temp folder, then renamed),
so ONNX Runtime finds the external data files relative to the model file, as it expects.
No grpc here: files come through an injected fetcher (the registry client in production).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from mlos_common.bundle import BundleError, bundle_model, extract_bundle, is_bundle
from mlos_executor.errors import ChecksumMismatch, ModelLoadFailed

log = logging.getLogger(__name__)

# (name, version, destination folder) -> (path of the verified file, its sha256)
Fetcher = Callable[[str, int, Path], Awaitable[tuple[Path, str]]]


async def verified_artifact(cache_dir: Path, fetch: Fetcher, name: str, version: int, sha256: str) -> Path:
    """`cache_dir/<sha256>.onnx` (for a bundle: its model file in `<sha256>.d/`), checked against
    `sha256` when given; fetched when missing or corrupt. Raises ChecksumMismatch when the fetched
    file is not the one registered."""
    if sha256:
        cached = cache_dir / f"{sha256}.onnx"
        if cached.exists():
            if await asyncio.to_thread(sha256_file, cached) == sha256:
                return await asyncio.to_thread(materialise, cached)
            log.warning("cached artifact %s is corrupt; fetching again", sha256[:12])
            cached.unlink()
            await asyncio.to_thread(shutil.rmtree, cached.with_suffix(".d"), True)
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
    return await asyncio.to_thread(materialise, final)


def materialise(artifact: Path) -> Path:
    """The file to load: `artifact` itself, or for a bundle its model file in the unpacked folder
    beside it (unpacked once; ModelLoadFailed if the bundle is not a safe, well-formed one)."""
    if not is_bundle(artifact):
        return artifact
    folder = artifact.with_suffix(".d")
    try:
        if folder.is_dir():
            return bundle_model(folder)
        temp = Path(tempfile.mkdtemp(dir=artifact.parent, prefix=f".{artifact.stem}."))
        try:
            extract_bundle(artifact, temp)
            os.replace(temp, folder)
        except OSError:
            if not folder.is_dir():  # not a concurrent unpack of the same bundle that won the rename
                raise
        finally:
            shutil.rmtree(temp, ignore_errors=True)
        return bundle_model(folder)
    except BundleError as exc:
        raise ModelLoadFailed(f"artifact {artifact.stem[:12]}: {exc}") from None


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
