"""Content-addressed blob store: data_dir/blobs/sha256/<ab>/<digest>.

A source is copied while hashing into a temp file (data_dir/blobs/tmp, same filesystem), fsynced,
then moved into place with os.replace and the folder fsynced, so a crash never leaves a
half-written blob under its digest (at worst a temp file, removed by the next start-up's
reconcile, see reconcile.py). Reads stream in chunks and re-hash, so a blob damaged on disk is caught before its last
chunk is sent. Nothing is ever written outside the store's root.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from mlos_registry.errors import ArtifactCorrupt, ArtifactTooLarge
from mlos_registry.formats import open_regular

log = logging.getLogger(__name__)

COPY_CHUNK = 4 * 1024 * 1024
_DIGEST = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True, slots=True)
class StagedBlob:
    """A fully written, fsynced temp copy, not yet visible under its digest."""

    temp_path: Path
    sha256: str
    size_bytes: int


@dataclass(frozen=True, slots=True)
class Chunk:
    data: bytes
    offset: int
    last: bool


class BlobStore:
    """Blocking methods (stage/commit/discard/delete) are meant to run in a worker thread."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._blobs = root / "sha256"
        self._tmp = root / "tmp"

    def prepare(self) -> None:
        self._blobs.mkdir(parents=True, exist_ok=True)
        self._tmp.mkdir(parents=True, exist_ok=True)

    def remove_temps(self, older_than_ns: int) -> int:
        """Removes temp files last modified before `older_than_ns` (st_mtime_ns), i.e. left by a
        crash of an earlier run mid-copy; returns how many. Younger ones may be a live staging."""
        removed = 0
        for stale in self._tmp.iterdir():
            try:
                if stale.stat().st_mtime_ns >= older_than_ns:
                    continue
                if stale.is_dir() and not stale.is_symlink():
                    shutil.rmtree(stale)  # an unpacked folder upload
                else:
                    stale.unlink()
            except FileNotFoundError:
                continue
            log.warning("removed temp blob %s left by an earlier run", stale.name)
            removed += 1
        return removed

    def digests(self) -> list[str]:
        """The digests of every blob in the store (files under sha256/ named by a digest)."""
        return [p.name for p in self._blobs.glob("??/*") if _DIGEST.match(p.name) and p.is_file()]

    def check(self, digest: str, size_bytes: int, rehash: bool) -> str | None:
        """Why the blob of `digest` is not what a row says (missing, size, sha256), or None if it is.
        With rehash False only presence and size are checked."""
        path = self.path(digest)
        try:
            actual = path.stat().st_size
        except FileNotFoundError:
            return "its blob is missing"
        if actual != size_bytes:
            return f"its blob has {actual} bytes, not {size_bytes}"
        if rehash:
            hasher = hashlib.sha256()
            with open(path, "rb") as handle:
                while block := handle.read(COPY_CHUNK):
                    hasher.update(block)
            if hasher.hexdigest() != digest:
                return "its blob's sha256 does not match"
        return None

    def path(self, digest: str) -> Path:
        if not _DIGEST.match(digest):
            raise ValueError(f"not a sha256 hex digest: {digest!r}")
        return self._blobs / digest[:2] / digest

    def exists(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def writer(self, max_bytes: int, shown_as: str) -> StagingWriter:
        """A temp file in the store that hashes and counts what is written to it (see StagingWriter)."""
        fd, temp_name = tempfile.mkstemp(dir=self._tmp, prefix="stage-")
        return StagingWriter(os.fdopen(fd, "wb"), Path(temp_name), max_bytes, shown_as)

    def stage_with(self, write: Callable[[StagingWriter], None], max_bytes: int, shown_as: str) -> StagedBlob:
        """Stages what `write` writes (e.g. a bundle's canonical tar); enforces max_bytes as it goes."""
        out = self.writer(max_bytes, shown_as)
        try:
            write(out)
            return out.finish()
        except BaseException:
            out.abort()
            raise

    def stage(self, source: Path, max_bytes: int, shown_as: str) -> StagedBlob:
        """Copies `source` into a temp file while hashing; enforces max_bytes as it copies."""

        def copy(out: StagingWriter) -> None:
            with open_regular(source, shown_as) as src:
                while block := src.read(COPY_CHUNK):
                    out.write(block)

        return self.stage_with(copy, max_bytes, shown_as)

    def commit(self, staged: StagedBlob) -> Path:
        """Moves a staged copy under its digest (atomic). An existing blob is replaced by the fresh,
        verified copy, which also repairs one damaged on disk; open readers keep the old inode."""
        final = self.path(staged.sha256)
        if not final.parent.is_dir():
            final.parent.mkdir(parents=True, exist_ok=True)
            _fsync_dir(self._blobs)  # the new <ab> folder's entry must survive a crash too
        os.replace(staged.temp_path, final)
        _fsync_dir(final.parent)
        return final

    def temp_folder(self) -> Path:
        """A fresh folder in the store's temp area (same file system; removed by reconcile if left)."""
        return Path(tempfile.mkdtemp(dir=self._tmp, prefix="unpack-"))

    def discard(self, staged: StagedBlob) -> None:
        staged.temp_path.unlink(missing_ok=True)

    def delete(self, digest: str) -> None:
        path = self.path(digest)
        path.unlink(missing_ok=True)
        _fsync_dir(path.parent)

    async def read_verified(self, digest: str, size: int, chunk_bytes: int, what: str) -> AsyncIterator[Chunk]:
        """Streams a blob in chunks, re-hashing; raises ArtifactCorrupt before the last chunk if
        the bytes on disk no longer match `digest` (or `size`)."""
        path = self.path(digest)
        corrupt = ArtifactCorrupt(
            f"the stored artifact of {what} does not match its sha256 (damaged on disk); "
            "delete and re-register this version"
        )
        try:
            handle = await asyncio.to_thread(open, path, "rb")
        except FileNotFoundError:
            raise ArtifactCorrupt(
                f"the stored artifact of {what} is missing; delete and re-register this version"
            ) from None
        hasher = hashlib.sha256()

        def read() -> bytes:
            data = handle.read(chunk_bytes)
            hasher.update(data)
            return data

        try:
            if os.fstat(handle.fileno()).st_size != size:
                raise corrupt
            offset = 0
            pending = await asyncio.to_thread(read)
            while True:
                following = await asyncio.to_thread(read) if pending else b""
                if not following:
                    if hasher.hexdigest() != digest:
                        raise corrupt
                    yield Chunk(pending, offset, True)
                    return
                yield Chunk(pending, offset, False)
                offset += len(pending)
                pending = following
        finally:
            await asyncio.to_thread(handle.close)


class StagingWriter:
    """A temp file being staged: `write` hashes, counts and refuses more than max_bytes
    (ArtifactTooLarge); `finish` fsyncs and closes it and returns the StagedBlob; `abort` removes it."""

    def __init__(self, handle: BinaryIO, temp_path: Path, max_bytes: int, shown_as: str) -> None:
        self._handle = handle
        self.temp_path = temp_path
        self._max_bytes = max_bytes
        self._shown_as = shown_as
        self._hasher = hashlib.sha256()
        self.size_bytes = 0

    def write(self, data: bytes | memoryview) -> int:
        self.size_bytes += len(data)
        if self.size_bytes > self._max_bytes:
            raise ArtifactTooLarge(
                f"{self._shown_as} is larger than the registry's limit of {self._max_bytes} bytes "
                "(MLOS_REGISTRY_MAX_ARTIFACT_BYTES)"
            )
        self._hasher.update(data)
        return self._handle.write(data)

    def finish(self) -> StagedBlob:
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        return StagedBlob(self.temp_path, self._hasher.hexdigest(), self.size_bytes)

    def abort(self) -> None:
        self._handle.close()
        self.temp_path.unlink(missing_ok=True)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
