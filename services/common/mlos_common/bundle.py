"""Model bundles: a model kept as several files (an ONNX file and its external data) as one tar.

The registry stores a folder model as one blob, its *canonical tar*, so the blob store, the
start-up reconcile, FetchArtifact and the receiver's digest check treat it like any file.

Digest contract: a bundle's sha256 is the sha256 of its canonical tar, which depends only on
the files' relative paths and bytes. Entry 0 is MANIFEST, the JSON text
`{"bundle": 1, "model": "<relative path of the model file>"}` (keys sorted, no spaces); then
every file, sorted by relative POSIX path. Each entry is a regular file in POSIX (pax) format
with mode 0644, uid/gid 0, empty user and group names and mtime 0; the tar ends with tarfile's
end blocks and record padding. The same files at the same paths give the same digest on any
host, whatever their timestamps, owners or the order the file system lists them in.

Reading (`extract_bundle`) trusts nothing: the first entry must be the manifest, every entry a
regular file whose name is relative, without `..`, NUL or backslashes, and whose parent folders
are not files themselves; links, devices and folders are refused. No grpc here.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Protocol, cast

MANIFEST = ".mlos-bundle.json"
BUNDLE_VERSION = 1
COPY_BUFFER_BYTES = 4 * 1024 * 1024
_USTAR_MAGIC_OFFSET = 257

# Opens one source file for reading (the registry's opener refuses anything but regular files).
Opener = Callable[[Path], BinaryIO]


class Writable(Protocol):
    def write(self, data: bytes, /) -> int: ...


class BundleError(ValueError):
    """A tar that is not a well-formed bundle (or not a safe one to unpack)."""


def manifest_bytes(model_rel: str) -> bytes:
    return json.dumps({"bundle": BUNDLE_VERSION, "model": model_rel}, sort_keys=True, separators=(",", ":")).encode()


def _info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info


def write_bundle(
    out: Writable, model_rel: str | None, files: Sequence[tuple[str, Path | bytes]], opener: Opener
) -> None:
    """Writes the canonical tar of `files` ((relative path, source file or its bytes) pairs; the
    model among them) to `out`; with model_rel None, the same tar without a manifest (a plain
    folder archive, as uploads send). Sizes are taken from the opened file; a file that shrinks
    while copied raises OSError."""
    rels = [rel for rel, _ in files]
    if (model_rel is not None and model_rel not in rels) or len(set(rels)) != len(rels):
        raise BundleError(f"bundle files must name the model {model_rel!r} once and hold no duplicates")
    stream = cast(BinaryIO, out)  # tarfile's stream mode only calls write()
    with tarfile.open(fileobj=stream, mode="w|", format=tarfile.PAX_FORMAT, bufsize=COPY_BUFFER_BYTES) as tar:
        tar.copybufsize = COPY_BUFFER_BYTES  # type: ignore[attr-defined]  # default 16 KiB copies
        if model_rel is not None:
            manifest = manifest_bytes(model_rel)
            tar.addfile(_info(MANIFEST, len(manifest)), _BytesReader(manifest))
        for rel, source in sorted(files, key=lambda pair: pair[0]):
            if isinstance(source, bytes):
                tar.addfile(_info(rel, len(source)), _BytesReader(source))
                continue
            with opener(source) as handle:
                size = os.fstat(handle.fileno()).st_size
                tar.addfile(_info(rel, size), handle)


class _BytesReader:
    """The minimal file object tarfile.addfile reads from."""

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self._pos = 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._data) if size < 0 else self._pos + size
        chunk = self._data[self._pos : end].tobytes()
        self._pos += len(chunk)
        return chunk


def is_bundle(path: Path) -> bool:
    """Whether `path` starts like a bundle: a tar header whose first entry is the manifest."""
    with open(path, "rb") as handle:
        head = handle.read(512)
    name = MANIFEST.encode() + b"\x00"
    return len(head) == 512 and head.startswith(name) and head[_USTAR_MAGIC_OFFSET : _USTAR_MAGIC_OFFSET + 5] == b"ustar"


MAX_NAME_BYTES = 1024
MAX_PART_BYTES = 255
MAX_MEMBERS = 10_000


def safe_member_name(name: str) -> str | None:
    """Why `name` may not be unpacked (absolute, `..`, NUL, backslash, empty, not in canonical form
    such as `./a`, `a//b` or `a/`, too long), or None if it may."""
    if not name or "\x00" in name or "\\" in name:
        return "an empty name, a NUL byte or a backslash"
    pure = PurePosixPath(name)
    if pure.is_absolute():
        return "an absolute path"
    if ".." in pure.parts:
        return "'..' (it would climb out of the folder)"
    if str(pure) != name or name == ".":
        return "not a plain relative path (no '.', empty or trailing parts)"
    if len(name.encode(errors="surrogateescape")) > MAX_NAME_BYTES or any(
        len(part.encode(errors="surrogateescape")) > MAX_PART_BYTES for part in pure.parts
    ):
        return f"a name over {MAX_NAME_BYTES} bytes (or a part over {MAX_PART_BYTES})"
    return None


def check_members(members: Sequence[tarfile.TarInfo], what: str) -> None:
    """Raises BundleError naming the first entry of an archive that would not unpack safely into
    a fresh folder: links, devices, FIFOs, unsafe names, duplicates, a file used as a folder."""
    if len(members) > MAX_MEMBERS:
        raise BundleError(f"{what}: {len(members)} entries, more than the {MAX_MEMBERS} allowed")
    seen: set[str] = set()
    for member in members:
        name = member.name
        reason = safe_member_name(name)
        if reason is None and not member.isreg():
            reason = "not a regular file (links, folders, devices and FIFOs are refused)"
        norm = str(PurePosixPath(name))
        if reason is None and (norm in seen or any(str(p) in seen for p in PurePosixPath(norm).parents)):
            reason = "a duplicate, or a file that another entry uses as a folder"
        if reason is not None:
            raise BundleError(f"{what}: entry {name[:200]!r} is {reason}")
        seen.add(norm)


def unpack_checked(tar: tarfile.TarFile, dest: Path, what: str, max_bytes: int) -> list[tarfile.TarInfo]:
    """Unpacks every entry of the (seekable) `tar` into the fresh folder `dest` after
    check_members; refuses more than `max_bytes` in all. Returns the entries."""
    members = tar.getmembers()
    check_members(members, what)
    total = sum(m.size for m in members)
    if total > max_bytes:
        raise BundleError(f"{what}: its files hold {total} bytes, over the limit of {max_bytes} bytes")
    for member in members:
        target = dest / member.name
        target.parent.mkdir(parents=True, exist_ok=True)
        source = tar.extractfile(member)
        if source is None:
            raise BundleError(f"{what}: entry {member.name!r} has no data")
        with source, open(target, "xb") as out:
            shutil.copyfileobj(source, out, COPY_BUFFER_BYTES)
    return members


def extract_bundle(path: Path, dest: Path, max_bytes: int = 1 << 62) -> Path:
    """Unpacks the bundle at `path` into the fresh folder `dest`; returns the model file's path.
    BundleError if it is not a safe, well-formed bundle."""
    what = f"bundle {path.name}"
    try:
        with tarfile.open(path, mode="r:") as tar:
            members = unpack_checked(tar, dest, what, max_bytes)
    except tarfile.TarError as exc:
        raise BundleError(f"{what} is not a readable tar: {exc}") from None
    if not members or members[0].name != MANIFEST:
        raise BundleError(f"{what}: its first entry is not {MANIFEST}")
    return bundle_model(dest)


def bundle_model(folder: Path) -> Path:
    """The model file of an unpacked bundle, as its manifest names it."""
    try:
        model_rel = str(json.loads((folder / MANIFEST).read_text())["model"])
    except (OSError, ValueError, KeyError, TypeError):
        raise BundleError(f"bundle folder {folder.name}: {MANIFEST} is missing or not a bundle manifest") from None
    model = folder / model_rel
    if safe_member_name(model_rel) is not None or not model.is_file():
        raise BundleError(f"bundle folder {folder.name}: the manifest names model {model_rel[:200]!r}, which it lacks")
    return model
