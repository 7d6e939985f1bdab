"""Model format detection by content, never by file name.

`sniff` looks at the first bytes only: GGUF magic, SafeTensors header, PyTorch zip, pickle.
ONNX has no magic number, so a file that matches none of these is tried as an ONNX protobuf
(see signature.py). ONNX and GGUF (read by gguf_header.py) are registrable; the others are
recognised so that the refusal can say what the file is.
"""

from __future__ import annotations

import json
import os
import stat
import struct
import zipfile
from pathlib import Path
from typing import BinaryIO

from mlos_registry.errors import InvalidPath, UnsupportedFormat

HEAD_BYTES = 64 * 1024
ONNX = "onnx"
GGUF = "gguf"
SAFETENSORS = "safetensors"
PYTORCH = "pytorch"
PICKLE = "pickle"
ZIP = "zip"
REGISTRABLE = (ONNX, GGUF)


def _is_safetensors(head: bytes, file_size: int) -> bool:
    if len(head) < 10:
        return False
    (header_len,) = struct.unpack_from("<Q", head, 0)
    if header_len < 2 or 8 + header_len > file_size or head[8:9] != b"{":
        return False
    if 8 + header_len <= len(head):
        try:
            return isinstance(json.loads(head[8 : 8 + header_len]), dict)
        except ValueError:
            return False
    return True  # header longer than what we read: the '{' and length are good enough


def open_regular(path: Path, shown_as: str) -> BinaryIO:
    """Opens `path` for reading without blocking and only if it is (still) a regular file: a file
    swapped for a FIFO after its stat check cannot hang a worker thread waiting for a writer."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise InvalidPath(f"{shown_as} is not a regular file (it changed after it was checked)")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def sniff(path: Path) -> str | None:
    """The format the first bytes reveal, or None (maybe ONNX, maybe garbage)."""
    with open_regular(path, repr(str(path))) as f:
        head = f.read(HEAD_BYTES)
        file_size = f.seek(0, 2)
    if head[:4] == b"GGUF":
        return GGUF
    if _is_safetensors(head, file_size):
        return SAFETENSORS
    if head[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
        except (zipfile.BadZipFile, OSError):
            return ZIP
        return PYTORCH if any(n == "data.pkl" or n.endswith("/data.pkl") for n in names) else ZIP
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return PICKLE
    return None


def reject_unregistrable(fmt: str, shown_as: str) -> None:
    """Raises UnsupportedFormat for a detected format we cannot register yet."""
    if fmt in REGISTRABLE:
        return
    if fmt == ZIP:
        raise UnsupportedFormat(
            f"{shown_as} is a zip archive but not a PyTorch checkpoint (no data.pkl); "
            "only ONNX and GGUF models can be registered"
        )
    labels = {
        SAFETENSORS: "a SafeTensors checkpoint",
        PYTORCH: "a PyTorch checkpoint (zip)",
        PICKLE: "a Python pickle (legacy PyTorch checkpoint)",
    }
    raise UnsupportedFormat(
        f"{shown_as} is {labels.get(fmt, fmt)} (format '{fmt}'); conversion to ONNX is not available "
        "yet, so only ONNX and GGUF models can be registered for now"
    )
