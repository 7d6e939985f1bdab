"""Checks of untrusted PyTorch checkpoints before torch reads them, and the only way they are read.

A PyTorch checkpoint is a zip (data.pkl + tensor records) or, in the legacy format, a plain
pickle stream. Its zip listing is checked first: entries that would escape a folder (`../`,
absolute), symbolic links, and bombs (declared sizes over a limit, or compression ratios no
checkpoint has) are refused with the entry named. Then it loads only with
`torch.load(weights_only=True)`, whose restricted unpickler refuses any global other than
tensors and plain containers, so a `__reduce__` payload never runs. Runs in the conversion child.
"""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

from mlos_common.errors import ResourceExhausted
from mlos_registry.errors import InvalidModelFile

MAX_ENTRIES = 200_000
# PyTorch writes its records uncompressed; a deflated entry this much smaller than its size is a bomb.
MAX_RATIO = 100


def _unsafe_name(name: str) -> str | None:
    """Why an entry name may not be used, or None."""
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "an absolute path"
    if ".." in PurePosixPath(name.replace("\\", "/")).parts:
        return "a '../' path traversal"
    if "\x00" in name:
        return "a NUL byte in its name"
    return None


def check_zip_listing(path: Path, shown: str, max_unpacked_bytes: int) -> list[str]:
    """The entry names of the zip at `path` after the checks above (InvalidModelFile or
    ResourceExhausted naming the entry)."""
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise InvalidModelFile(f"{shown} is not a readable zip archive ({str(exc)[:120]})") from None
    if len(infos) > MAX_ENTRIES:
        raise ResourceExhausted(f"{shown} lists {len(infos)} zip entries, over the limit of {MAX_ENTRIES}")
    total_bytes = 0
    for info in infos:
        entry = repr(info.filename[:120])
        why = _unsafe_name(info.filename)
        if why:
            raise InvalidModelFile(f"{shown}: zip entry {entry} is {why}; refused")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise InvalidModelFile(f"{shown}: zip entry {entry} is a symbolic link; refused")
        total_bytes += info.file_size
        if total_bytes > max_unpacked_bytes:
            raise ResourceExhausted(
                f"{shown}: zip entries declare over {max_unpacked_bytes} bytes unpacked (at {entry}): a zip bomb? "
                "(limit MLOS_REGISTRY_CONVERT_MAX_MEMORY_BYTES)"
            )
        if info.compress_type != zipfile.ZIP_STORED and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            raise ResourceExhausted(
                f"{shown}: zip entry {entry} expands {info.compress_size} -> {info.file_size} bytes "
                f"(ratio over {MAX_RATIO}): a zip bomb?"
            )
    return [i.filename for i in infos]


def is_zip(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(4) == b"PK\x03\x04"


def load_state_dict(path: Path, shown: str) -> dict[str, Any]:
    """The tensors of a PyTorch checkpoint (zip, after check_zip_listing, or legacy pickle), loaded
    with weights_only=True. Refuses (InvalidModelFile) a pickle that needs anything but tensors and
    containers."""
    import pickle

    import torch

    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's text opens with advice to retry with weights_only=False; keep only the reason.
        parts = [p.strip() for p in str(exc).split("\n\n") if p.strip()]
        reason = next((p for p in parts if "GLOBAL" in p or "Unsupported" in p), parts[-1] if parts else "")[:300]
        raise InvalidModelFile(
            f"{shown}: refused by torch.load(weights_only=True), which loads only tensors: {reason}"
        ) from None
    except (RuntimeError, EOFError, ValueError, OSError) as exc:
        raise InvalidModelFile(f"{shown} is not a readable PyTorch checkpoint ({str(exc)[:200]})") from None
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise InvalidModelFile(f"{shown} holds no state dict (a mapping of names to tensors)")
    return loaded
