"""Registration sources: whether a path may be read (`check_path`), and which model a folder
holds (`folder_model`, the one dispatch on a source folder's content).

`folder_model` looks at the folder's top-level files (symlinks followed, as in a Hugging Face
snapshot) and answers with the file to register:
- exactly one `*.onnx` file: ONNX (ONNX has no magic number, so in a folder the name picks the
  candidate; its content is then parsed and checked like any file, external data included);
- else exactly one file starting with the GGUF magic: that GGUF file;
- `config.json` beside SafeTensors or PyTorch weights: a checkpoint to convert. CONVERTIBLE is
  returned with no model file; conversion (an optional part) plugs in at `Registry` through
  `convert_folder`, and without it the registration is refused with UnsupportedFormat;
- anything else: InvalidPath saying what the folder holds.
No grpc here; blocking, run in a thread.
"""

from __future__ import annotations

import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mlos_registry import formats
from mlos_registry.bundle import PSEUDO_FS
from mlos_registry.errors import ArtifactTooLarge, FileNotFound, InvalidPath, UnsupportedFormat

MAX_FOLDER_ENTRIES = 1000
ONNX = formats.ONNX
GGUF = formats.GGUF
CONVERTIBLE = "checkpoint"  # config.json + SafeTensors/PyTorch weights


def _kind(mode: int) -> str:
    for test, kind in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device")):
        if test(mode):
            return kind
    return "a special file"


def check_root(resolved: Path, roots: Sequence[Path], shown: str) -> None:
    """InvalidPath unless `resolved` lies under one of `roots` (none = anywhere)."""
    if roots and not any(resolved.is_relative_to(root) for root in roots):
        raise InvalidPath(f"{shown} is outside the folders this registry may read (MLOS_REGISTRY_ALLOWED_ROOTS)")


def check_path(raw: str, roots: Sequence[Path], max_bytes: int) -> Path:
    """The resolved regular file or folder `raw` names, or a typed error saying why it may not be
    read: NUL, missing, under /proc, /sys or /dev, not a file or folder, outside `roots`, too big."""
    if not raw:
        raise InvalidPath("path: a model file path is required")
    shown = repr(raw) if len(raw) <= 200 else repr(raw[:200]) + f"... ({len(raw)} characters)"
    if "\x00" in raw:
        raise InvalidPath(f"path {shown} contains a NUL byte")
    path = Path(raw).expanduser()
    try:
        info = path.stat()
    except FileNotFoundError:
        raise FileNotFound(f"model file {shown} does not exist (on the registry's host)") from None
    except OSError as exc:
        raise InvalidPath(f"model file {shown} cannot be read: {exc.strerror}") from None
    resolved = path.resolve()
    pseudo = next((top for top in PSEUDO_FS if resolved.is_relative_to(top)), None)
    if pseudo is not None:
        raise InvalidPath(f"{shown} resolves under {pseudo} (a kernel pseudo-file system), not a model file")
    if stat.S_ISDIR(info.st_mode):
        check_root(resolved, roots, shown)
        return resolved  # a model folder (folder_model says which model it holds)
    if not stat.S_ISREG(info.st_mode):
        raise InvalidPath(f"{shown} is not a regular file but {_kind(info.st_mode)}")
    check_root(resolved, roots, shown)
    if info.st_size > max_bytes:
        raise ArtifactTooLarge(
            f"{shown} is {info.st_size} bytes, over the registry's limit of {max_bytes} bytes "
            "(MLOS_REGISTRY_MAX_ARTIFACT_BYTES)"
        )
    return resolved


@dataclass(frozen=True, slots=True)
class FolderModel:
    kind: str  # ONNX, GGUF or CONVERTIBLE
    folder: Path
    model_file: Path | None  # None for CONVERTIBLE


def _files(folder: Path, root: Path, shown: str) -> list[Path]:
    """The folder's visible top-level files; InvalidPath for one that is a link leading outside
    `root` or into /proc, /sys or /dev (it is never opened)."""
    entries = []
    for count, entry in enumerate(sorted(folder.iterdir())):
        if count >= MAX_FOLDER_ENTRIES:
            raise InvalidPath(f"folder {shown} has more than {MAX_FOLDER_ENTRIES} entries; name the model file")
        if entry.name.startswith("."):
            continue
        target = entry.resolve()
        if not target.is_relative_to(root) or any(target.is_relative_to(top) for top in PSEUDO_FS):
            raise InvalidPath(f"folder {shown}: {entry.name!r} is a link leading outside the model's folder")
        if target.is_file():
            entries.append(entry)
    return entries


def folder_model(folder: Path, root: Path, shown: str) -> FolderModel:
    """The model in `folder`, whose files must resolve within `root` (see the module docstring)."""
    files = _files(folder, root, shown)
    onnx_files = [f for f in files if f.suffix.lower() == ".onnx"]
    if len(onnx_files) > 1:
        names = ", ".join(f.name for f in onnx_files[:8])
        raise InvalidPath(f"folder {shown} holds several ONNX files ({names}); register one of them by its path")
    if onnx_files:
        return FolderModel(ONNX, folder, onnx_files[0])
    sniffed = {f: formats.sniff(f) for f in files if f.suffix.lower() not in (".json", ".txt", ".md")}
    ggufs = [f for f, fmt in sniffed.items() if fmt == GGUF]
    if len(ggufs) == 1:
        return FolderModel(GGUF, folder, ggufs[0])
    if len(ggufs) > 1:
        raise InvalidPath(
            f"folder {shown} holds several GGUF files ({', '.join(f.name for f in ggufs[:8])}); register one by its path"
        )
    weights = [f for f, fmt in sniffed.items() if fmt in (formats.SAFETENSORS, formats.PYTORCH)]
    if weights and (folder / "config.json").is_file():
        return FolderModel(CONVERTIBLE, folder, None)
    listed = ", ".join(f.name for f in files[:8]) or "no files"
    raise InvalidPath(
        f"folder {shown} holds no model we can register (an .onnx file, a GGUF file, or config.json with "
        f"SafeTensors/PyTorch weights); it has: {listed}"
    )


def refuse_conversion(found: FolderModel, shown: str) -> None:
    """The answer for a CONVERTIBLE folder the converter (conversion.py) did not take: its weights are
    not one model.safetensors / pytorch_model.bin or a single .safetensors/.bin/.pt/.pth file."""
    raise UnsupportedFormat(
        f"folder {shown} holds config.json with SafeTensors/PyTorch weights, but conversion to ONNX reads one "
        "weights file (model.safetensors, pytorch_model.bin, or the folder's only .safetensors/.bin/.pt file)"
    )
