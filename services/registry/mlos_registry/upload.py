"""UploadModel's receiving side: stream the bytes into the store's temp area, verify, register.

Contract: the header declares the exact size and the sha256 of the bytes that follow. A declared
size over MAX_ARTIFACT_BYTES is refused before a byte is read (RESOURCE_EXHAUSTED); more bytes
than declared stop the upload at once, fewer or a different sha256 are INVALID_ARGUMENT naming
the declared and the received values. The verified temp file is then registered as a local file
would be (sniff, describe, rename into the content-addressed store: no second copy), or, for an
archive, unpacked into a temp folder in the store (regular files only: links, devices, absolute
paths, '..' and duplicates are refused, and the unpacked total is bounded by the same limit)
and registered as a local folder. Temp files and folders are removed whatever happens (and by the
start-up reconcile after a crash). No grpc here.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import shutil
import tarfile
import tempfile
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mlos_common.bundle import BundleError, unpack_checked, write_bundle
from mlos_common.errors import InvalidArgument
from mlos_registry import formats
from mlos_registry.artifacts import COPY_CHUNK, BlobStore, StagedBlob
from mlos_registry.domain import ModelVersion, ServingConfig
from mlos_registry.errors import ArtifactTooLarge

if TYPE_CHECKING:
    from mlos_registry.core import Registry

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class UploadMismatch(InvalidArgument):
    """The uploaded bytes are not what the header declared (size or sha256)."""


@dataclass(frozen=True, slots=True)
class UploadHeader:
    name: str
    size_bytes: int
    sha256: str
    config: ServingConfig | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    archive: bool = False
    filename: str = ""

    def shown(self) -> str:
        label = (self.filename or self.name)[:120]
        return repr(f"upload:{label}")


def check_header(header: UploadHeader, max_bytes: int) -> None:
    if header.size_bytes <= 0:
        raise InvalidArgument(f"header.size_bytes must be the number of bytes that follow (> 0), got {header.size_bytes}")
    if header.size_bytes > max_bytes:
        raise ArtifactTooLarge(
            f"header.size_bytes {header.size_bytes} is over the registry's limit of {max_bytes} bytes "
            "(MLOS_REGISTRY_MAX_ARTIFACT_BYTES)"
        )
    if not _SHA256.match(header.sha256):
        raise InvalidArgument(f"header.sha256 must be 64 lowercase hex digits, got {header.sha256[:80]!r}")


async def receive(blobs: BlobStore, header: UploadHeader, chunks: AsyncIterator[bytes], max_bytes: int) -> StagedBlob:
    """The uploaded bytes as a staged temp file, verified against the header."""
    check_header(header, max_bytes)
    shown = header.shown()
    out = await asyncio.to_thread(blobs.writer, max_bytes, shown)
    try:
        async for data in chunks:
            if out.size_bytes + len(data) > header.size_bytes:
                raise UploadMismatch(
                    f"upload {shown}: more bytes than the declared header.size_bytes {header.size_bytes}"
                )
            await asyncio.to_thread(out.write, data)
        if out.size_bytes != header.size_bytes:
            raise UploadMismatch(
                f"upload {shown} ended after {out.size_bytes} bytes; header.size_bytes declared {header.size_bytes}"
            )
        staged = await asyncio.to_thread(out.finish)
    except BaseException:
        await asyncio.to_thread(out.abort)
        raise
    if staged.sha256 != header.sha256:
        await asyncio.to_thread(blobs.discard, staged)
        raise UploadMismatch(
            f"upload {shown}: the bytes received hash to sha256 {staged.sha256}, not the declared "
            f"header.sha256 {header.sha256}; the upload was damaged or the header is wrong"
        )
    return staged


def unpack(archive: Path, dest: Path, shown: str, max_bytes: int) -> None:
    """Unpacks an uploaded (uncompressed) tar into `dest`; InvalidArgument naming a bad entry."""
    try:
        with tarfile.open(archive, mode="r:") as tar:
            unpack_checked(tar, dest, f"upload {shown}", max_bytes)
    except (tarfile.TarError, EOFError, UnicodeError) as exc:
        raise InvalidArgument(f"upload {shown} has header.archive set but is not an uncompressed tar: {exc}") from None
    except BundleError as exc:
        raise InvalidArgument(str(exc)) from None


@dataclass(frozen=True, slots=True)
class Prepared:
    """What a client sends for a path: the file, its size and sha256, and whether it is an archive
    made for the upload (a temp file the caller removes)."""

    path: Path
    size_bytes: int
    sha256: str
    archive: bool


def folder_files(folder: Path) -> list[tuple[str, Path]]:
    """Every regular file under `folder` (symlinked files followed, as in a Hugging Face snapshot;
    hidden names skipped), as (relative POSIX path, path) sorted by path."""
    found = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        found.append((rel.as_posix(), path))
    return found


def prepare(path: Path, temp_dir: Path | None = None) -> Prepared:
    """Client side (blocking): a file is sent as is; a folder as an uncompressed tar of its files
    (mlos_common.bundle's canonical layout, no manifest) written to a temp file in `temp_dir`."""
    if path.is_dir():
        handle = tempfile.NamedTemporaryFile(dir=temp_dir, prefix="mlos-upload-", suffix=".tar", delete=False)
        try:
            with handle:
                write_bundle(handle, None, folder_files(path), lambda p: open(p, "rb"))
            size, digest = _size_and_digest(Path(handle.name))
        except BaseException:
            Path(handle.name).unlink(missing_ok=True)
            raise
        return Prepared(Path(handle.name), size, digest, True)
    size, digest = _size_and_digest(path)
    return Prepared(path, size, digest, False)


def _size_and_digest(path: Path) -> tuple[int, str]:
    hasher = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while block := handle.read(COPY_CHUNK):
            hasher.update(block)
            size += len(block)
    return size, hasher.hexdigest()


async def register_upload(
    registry: Registry, blobs: BlobStore, header: UploadHeader, labels: dict[str, str],
    chunks: AsyncIterator[bytes], max_bytes: int,
) -> ModelVersion:
    """Receives, verifies and registers one upload (see the module docstring)."""
    shown = header.shown()
    staged = await receive(blobs, header, chunks, max_bytes)
    if not header.archive:
        try:
            fmt = await asyncio.to_thread(formats.sniff, staged.temp_path)
            if fmt is not None:
                formats.reject_unregistrable(fmt, shown)
        except BaseException:
            await asyncio.to_thread(blobs.discard, staged)
            raise
        return await registry.register_staged(header.name, staged, fmt, shown, header.config, labels, None)
    folder = await asyncio.to_thread(blobs.temp_folder)
    try:
        await asyncio.to_thread(unpack, staged.temp_path, folder, shown, max_bytes)
        await asyncio.to_thread(blobs.discard, staged)
        return await registry.register_source(header.name, folder, folder, shown, header.config, labels)
    finally:
        await asyncio.to_thread(blobs.discard, staged)
        await asyncio.to_thread(shutil.rmtree, folder, True)
