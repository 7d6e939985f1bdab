"""Hostile model names and file paths through real gRPC: each refused with a status naming why."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from registry_testkit import Served

from mlos_common.errors import InvalidArgument, NotFound
from mlos_registry import formats
from mlos_registry.artifacts import BlobStore
from mlos_registry.errors import InvalidPath


@pytest.mark.parametrize("name", ["/etc/passwd", "/abs", "..", "x" * 10_000, "a\\..\\b", "\u202ename"])
async def test_hostile_names(served: Served, dynamic_onnx: Path, name: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid model name") as info:
        await served.client.register(name, dynamic_onnx)
    assert len(info.value.message) < 500  # a 10 kB name is not echoed back whole


async def test_nul_in_path(served: Served, dynamic_onnx: Path) -> None:
    with pytest.raises(InvalidArgument, match="contains a NUL byte"):
        await served.client.register("m", f"{dynamic_onnx}\x00.txt")


async def test_10kb_path_is_refused_and_not_echoed(served: Served) -> None:
    with pytest.raises(InvalidArgument, match=r"cannot be read: File name too long") as info:
        await served.client.register("m", "/" + "a" * 10_000)
    assert "(10001 characters)" in info.value.message and len(info.value.message) < 500


async def test_traversal_to_a_missing_file(served: Served, models_dir: Path) -> None:
    with pytest.raises(NotFound, match="does not exist"):
        await served.client.register("m", models_dir / ".." / ".." / ".." / "no-such-model.onnx")


@pytest.mark.parametrize("path", ["/proc/self/environ", "/proc/self/mem", "/sys/kernel/mm/transparent_hugepage/enabled"])
async def test_kernel_pseudo_files(served: Served, path: str) -> None:
    if not os.path.exists(path):
        pytest.skip(f"{path} absent on this host")
    with pytest.raises(InvalidArgument, match="kernel pseudo-file system"):
        await served.client.register("m", path)


async def test_symlink_into_proc(served: Served, models_dir: Path) -> None:
    models_dir.mkdir(parents=True, exist_ok=True)
    (models_dir / "innocent.onnx").symlink_to("/proc/self/environ")
    with pytest.raises(InvalidArgument, match="resolves under /proc"):
        await served.client.register("m", models_dir / "innocent.onnx")


async def test_fifo_is_refused_without_blocking(served: Served, models_dir: Path) -> None:
    models_dir.mkdir(parents=True, exist_ok=True)
    fifo = models_dir / "pipe.onnx"
    os.mkfifo(fifo)  # opening it would block for a writer that never comes
    with pytest.raises(InvalidArgument, match=r"not a regular file but a FIFO"):
        await served.client.register("m", fifo)


async def test_folder_and_device(served: Served, models_dir: Path) -> None:
    models_dir.mkdir(parents=True)
    (models_dir / "README.md").write_text("no model here")
    with pytest.raises(InvalidArgument, match="holds no model we can register.*README.md"):
        await served.client.register("m", models_dir)
    with pytest.raises(InvalidArgument, match="kernel pseudo-file system"):
        await served.client.register("m", "/dev/zero")  # would stream zeros forever



def test_a_file_swapped_for_a_fifo_after_its_check_is_refused(tmp_path: Path) -> None:
    """The race _check_path cannot see: sniff and stage open without blocking and re-check the type."""
    fifo = tmp_path / "swapped.onnx"
    os.mkfifo(fifo)
    with pytest.raises(InvalidPath, match="changed after it was checked"):
        formats.sniff(fifo)
    blobs = BlobStore(tmp_path / "blobs")
    blobs.prepare()
    with pytest.raises(InvalidPath, match="changed after it was checked"):
        blobs.stage(fifo, max_bytes=1 << 20, shown_as="'swapped.onnx'")
    assert list((tmp_path / "blobs" / "tmp").iterdir()) == []
