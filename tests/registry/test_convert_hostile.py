"""Hostile checkpoints through a real registry: each refused with a status naming the reason, no
payload ever runs (its canary file never appears), and the registry keeps serving afterwards."""

from __future__ import annotations

import stat
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from convert_testkit import (
    bert_config,
    hostile_zip,
    plain_pickle_payload,
    safetensors_bytes,
    torch_zip_payload,
)
from registry_testkit import Serve, Served

from mlos_common.errors import FailedPrecondition, InvalidArgument, MlosError, ResourceExhausted
from mlos_registry.checkpoint import check_zip_listing


@pytest.fixture
async def survivor(serve: Serve, dynamic_onnx: Path) -> AsyncIterator[Served]:
    """A registry that must still register a good model after the test's hostile input."""
    served = await serve(convert_allow_pickle=False)
    yield served
    assert (await served.client.register("still-serving", dynamic_onnx)).version == 1


async def _refused(served: Served, folder: Path, error: type[MlosError], reason: str) -> None:
    with pytest.raises(error, match=reason):
        await served.client.register("hostile", folder)


async def test_plain_pickle_payload_refused_by_setting(survivor: Served, tmp_path: Path) -> None:
    folder, canary = bert_config(tmp_path / "m"), tmp_path / "canary"
    plain_pickle_payload(folder / "pytorch_model.bin", canary)
    await _refused(survivor, folder, FailedPrecondition, "plain Python pickle.*MLOS_REGISTRY_CONVERT_ALLOW_PICKLE")
    assert not canary.exists()


async def test_plain_pickle_payload_refused_by_weights_only_when_pickles_are_allowed(serve: Serve, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    served = await serve(convert_allow_pickle=True)
    folder, canary = bert_config(tmp_path / "m"), tmp_path / "canary"
    plain_pickle_payload(folder / "pytorch_model.bin", canary)
    await _refused(served, folder, InvalidArgument, r"refused by torch.load\(weights_only=True\).*system")
    assert not canary.exists()


async def test_pytorch_zip_with_payload_refused_by_weights_only(survivor: Served, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    folder, canary = bert_config(tmp_path / "m"), tmp_path / "canary"
    torch_zip_payload(folder / "pytorch_model.bin", canary)
    await _refused(survivor, folder, InvalidArgument, r"refused by torch.load\(weights_only=True\).*system")
    assert not canary.exists()


def _symlink(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


@pytest.mark.parametrize(("entry", "data", "compress", "error", "reason"), [
    ("../../evil.sh", b"x", zipfile.ZIP_STORED, InvalidArgument, r"'\.\./\.\./evil\.sh' is a '\.\./' path traversal"),
    ("/etc/evil.conf", b"x", zipfile.ZIP_STORED, InvalidArgument, r"'/etc/evil\.conf' is an absolute path"),
    (_symlink("archive/data/0"), b"/etc/passwd", zipfile.ZIP_STORED, InvalidArgument, "is a symbolic link"),
    ("archive/data/0", bytes(20 << 20), zipfile.ZIP_DEFLATED, ResourceExhausted, r"expands .* \(ratio over 100\): a zip bomb"),
], ids=["traversal", "absolute", "symlink", "bomb"])
async def test_hostile_zip_entries(survivor: Served, tmp_path: Path, entry, data: bytes, compress: int,
                                   error: type[MlosError], reason: str) -> None:
    folder = bert_config(tmp_path / "m")
    hostile_zip(folder / "pytorch_model.bin", entry, data, compress)
    await _refused(survivor, folder, error, reason)


def test_zip_declaring_more_than_the_limit(tmp_path: Path) -> None:
    path = hostile_zip(tmp_path / "big.bin", "archive/data/0", bytes(4096))
    with pytest.raises(ResourceExhausted, match="declare over 1000 bytes unpacked"):
        check_zip_listing(path, "'big.bin'", max_unpacked_bytes=1000)


_F32x2 = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}


@pytest.mark.parametrize(("content", "reason"), [
    (safetensors_bytes({"w": _F32x2}, bytes(8), header_len=10_000), "header length 10000 runs past the end of the file"),
    (safetensors_bytes(b'{"w": {"dtype": "F32", "sha', bytes(8)), "the SafeTensors header is not valid JSON"),
    (safetensors_bytes({"w": {**_F32x2, "data_offsets": [0, 8000]}}, bytes(8)),
     r"data_offsets \[0, 8000\] outside the file's data section"),
    (safetensors_bytes({"w": {"dtype": "F32", "shape": [1 << 40, 1 << 40], "data_offsets": [0, 8]}}, bytes(8)),
     r"shape \[1099511627776, 1099511627776\] \(F32\) needing \d+ bytes, more than the file's 8 bytes"),
    (safetensors_bytes({"w": {**_F32x2, "dtype": "F33"}}, bytes(8)), "unknown dtype 'F33'"),
    (safetensors_bytes({"a": _F32x2, "b": {**_F32x2, "data_offsets": [4, 12]}}, bytes(12)), "overlap"),
    (b"\x05\x00", "truncated: 2 bytes"),
], ids=["header-past-end", "bad-json", "offsets-out-of-range", "absurd-shape", "bad-dtype", "overlap", "truncated"])
async def test_hostile_safetensors(survivor: Served, tmp_path: Path, content: bytes, reason: str) -> None:
    folder = bert_config(tmp_path / "m")
    (folder / "model.safetensors").write_bytes(content)
    await _refused(survivor, folder, InvalidArgument, reason)


async def test_bit_flipped_safetensors(survivor: Served, tmp_path: Path) -> None:
    good = bytearray(safetensors_bytes({"w": _F32x2}, bytes(8)))
    good[0] ^= 0x40  # the header length is now 64 bytes longer than the file
    folder = bert_config(tmp_path / "m")
    (folder / "model.safetensors").write_bytes(bytes(good))
    await _refused(survivor, folder, InvalidArgument, "runs past the end of the file")


async def test_zip_that_is_no_pytorch_checkpoint(survivor: Served, tmp_path: Path) -> None:
    folder = bert_config(tmp_path / "m")
    with zipfile.ZipFile(folder / "pytorch_model.bin", "w") as zf:
        zf.writestr("readme.txt", "not a checkpoint")
    await _refused(survivor, folder, InvalidArgument, r"zip archive but not a PyTorch checkpoint \(no data.pkl\)")


async def test_weights_symlinked_into_proc(survivor: Served, tmp_path: Path) -> None:
    folder = bert_config(tmp_path / "m")
    (folder / "model.safetensors").symlink_to("/proc/self/environ")
    await _refused(survivor, folder, InvalidArgument, "resolves under /proc")


async def test_checkpoint_folder_outside_the_allowed_roots(serve: Serve, tmp_path: Path) -> None:
    served = await serve(allowed_roots=[tmp_path / "allowed"])
    folder = bert_config(tmp_path / "elsewhere")
    (folder / "model.safetensors").write_bytes(safetensors_bytes({"w": _F32x2}, bytes(8)))
    await _refused(served, folder, InvalidArgument, "outside the folders this registry may read")
