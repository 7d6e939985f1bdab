"""ONNX models with external data: which files make the bundle, and whether each may be read.

`plan_onnx` reads the model file (bounded), parses it without following external data, and
checks every external-data location twice: with the onnx library's own resolver (the one
`onnx.load` uses: no absolute paths, no `..`, no symlinked data files, nothing outside the
folder) and with ours, which also resolves symlinked folders and refuses anything that lands
outside `root` or under /proc, /sys or /dev, or that is not a regular file. A refusal is an
InvalidModelFile naming the tensor and the location. The bundle holds the model file and exactly
the data files its tensors name (other files of the folder, e.g. a README, are left out).
No grpc here; blocking, run in a thread.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

import onnx

from mlos_registry import signature
from mlos_registry.errors import ArtifactTooLarge, InvalidModelFile
from mlos_registry.formats import open_regular

# Paths under these are never model files (and /proc can expose another process's memory).
PSEUDO_FS = (Path("/proc"), Path("/sys"), Path("/dev"))


@dataclass(frozen=True, slots=True)
class BundlePlan:
    """The files of an ONNX model with external data, checked, ready for mlos_common.bundle."""

    model_rel: str
    files: tuple[tuple[str, Path | bytes], ...]  # (relative POSIX path, source); the model as its bytes
    model: onnx.ModelProto  # parsed from the very bytes that go into the bundle


def _onnx_refuses(folder: Path, tensor: onnx.TensorProto, via_cache_link: bool) -> str | None:
    """The onnx library's own verdict on a tensor's external data: its C++ opener (the one
    onnx.load uses: no absolute paths, no '..', no symlinked files, nothing outside the folder)
    and its offset/length fields against the file's size. None when it accepts. With
    `via_cache_link` (a Hugging Face snapshot, whose files are symlinks into the repository's
    blobs/ by design) the rules are applied to the blob the link points to."""
    from onnx import external_data_helper as helper

    try:
        info = helper.ExternalDataInfo(tensor)
        opener = getattr(helper, "_open_external_data_fd", None)  # onnx >= 1.21
        if opener is None:
            return None
        base, location = str(folder), info.location
        if via_cache_link:
            target = (folder / location).resolve()
            base, location = str(target.parent), target.name
        fd = opener(base, location, tensor.name, True)
    except Exception as exc:  # noqa: BLE001 - onnx raises ValidationError (a C++ binding type) or ValueError
        return f"refused by onnx: {str(exc).splitlines()[0][:300]}"
    try:
        size = os.fstat(fd).st_size
    finally:
        os.close(fd)
    offset = info.offset or 0
    if offset > size or (info.length is not None and info.length > size - offset):
        return f"a range (offset {offset}, length {info.length}) past the end of its {size}-byte file"
    return None


def _our_refusal(folder: Path, root: Path, location: str) -> str | None:
    if not location or "\x00" in location:
        return "an empty location or one with a NUL byte"
    if os.path.isabs(location) or PureWindowsPath(location).is_absolute() or location.startswith(("/", "\\")):
        return "an absolute path"
    if ".." in PurePosixPath(location.replace("\\", "/")).parts:
        return "a path with '..'"
    target = (folder / location).resolve()
    pseudo = next((top for top in PSEUDO_FS if target.is_relative_to(top)), None)
    if pseudo is not None:
        return f"a path that resolves under {pseudo}"
    if not target.is_relative_to(root):
        return "a path that resolves (through a symlink) outside the model's folder"
    try:
        mode = target.stat().st_mode
    except OSError:
        return "a file that does not exist"
    if not stat.S_ISREG(mode):
        return "not a regular file"
    return None


def _read_model(model_file: Path, shown: str, max_bytes: int) -> bytes:
    with open_regular(model_file, shown) as handle:
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ArtifactTooLarge(
            f"{shown} is larger than the registry's limit of {max_bytes} bytes (MLOS_REGISTRY_MAX_ARTIFACT_BYTES)"
        )
    return data


def plan_onnx(model_file: Path, root: Path, shown: str, max_bytes: int) -> BundlePlan:
    """The bundle for the ONNX file `model_file`, whose data files must lie within `root` (its
    folder, or for a Hugging Face snapshot the repository's cache folder, where blobs live)."""
    folder = model_file.parent.resolve()
    data = _read_model(model_file, shown, max_bytes)
    model = signature.parse_model(data, shown)
    files: dict[str, Path | bytes] = {model_file.name: data}
    for tensor in signature.tensors(model):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        why = _our_refusal(folder, root, location) or _onnx_refuses(folder, tensor, folder != root)
        if why is not None:
            raise InvalidModelFile(
                f"{shown}: tensor {tensor.name!r} keeps its data at external location {location[:200]!r}, "
                f"which is {why}; external data must be regular files inside the model's folder"
            )
        rel = PurePosixPath(location.replace("\\", "/")).as_posix()
        files.setdefault(rel, (folder / location).resolve())
    total = sum(len(src) if isinstance(src, bytes) else src.stat().st_size for src in files.values())
    if total > max_bytes:
        raise ArtifactTooLarge(
            f"{shown} and its external data hold {total} bytes, over the registry's limit of {max_bytes} bytes "
            "(MLOS_REGISTRY_MAX_ARTIFACT_BYTES)"
        )
    return BundlePlan(model_file.name, tuple(sorted(files.items(), key=lambda pair: pair[0])), model)
