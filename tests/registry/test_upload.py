"""UploadModel through a real registry server: files and folders, size and digest checks,
hostile archives; the registry never needs to read the client's path."""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import Iterable
from pathlib import Path

import grpc
import pytest
from bundle_testkit import external_data_model
from grpc import aio
from registry_testkit import Serve, Served

from mlos.registry.v1 import registry_pb2, registry_pb2_grpc
from mlos_common.errors import InvalidArgument


def _stub(served: Served) -> tuple[aio.Channel, registry_pb2_grpc.RegistryStub]:
    channel = aio.insecure_channel(served.addr)
    return channel, registry_pb2_grpc.RegistryStub(channel)


def _header(data: bytes, **fields) -> registry_pb2.UploadModelRequest:
    fields.setdefault("name", "up")
    fields.setdefault("size_bytes", len(data))
    fields.setdefault("sha256", hashlib.sha256(data).hexdigest())
    return registry_pb2.UploadModelRequest(header=registry_pb2.UploadHeader(**fields))


def _chunks(data: bytes, size: int = 1000) -> list[registry_pb2.UploadModelRequest]:
    return [registry_pb2.UploadModelRequest(chunk=data[i : i + size]) for i in range(0, len(data), size)]


async def _upload_raw(served: Served, messages: Iterable[registry_pb2.UploadModelRequest]) -> aio.AioRpcError:
    channel, stub = _stub(served)
    try:
        async def stream():
            for m in messages:
                yield m

        with pytest.raises(aio.AioRpcError) as caught:
            await stub.UploadModel(stream())
        return caught.value
    finally:
        await channel.close()


def _no_temp_files(served: Served) -> bool:
    return not any((served.settings.resolved_data_dir() / "blobs" / "tmp").iterdir())


async def test_upload_registers_what_the_registry_cannot_read(serve: Serve, tmp_path: Path, dynamic_onnx: Path):
    s = await serve(allowed_roots=[tmp_path / "nowhere"])  # local paths are off limits here
    with pytest.raises(InvalidArgument, match="MLOS_REGISTRY_ALLOWED_ROOTS"):
        await s.client.register("m", dynamic_onnx)
    mv = await s.client.upload("m", dynamic_onnx, labels={"via": "upload"})
    assert mv.version == 1 and mv.sha256 == hashlib.sha256(dynamic_onnx.read_bytes()).hexdigest()
    assert mv.labels == {"via": "upload"} and [t.name for t in mv.inputs] == ["x", "y"]
    assert (await s.client.upload("m", dynamic_onnx, chunk_bytes=100)).version == 1  # idempotent
    model_file = external_data_model(tmp_path / "affine")
    bundle = await s.client.upload("affine", model_file.parent)
    assert bundle.facts == {"bundle_files": "2", "model_file": "model.onnx"}
    assert _no_temp_files(s)
    assert (s.core.metrics.count("upload", "file"), s.core.metrics.count("upload", "bundle")) == (2, 1)
    other = await serve()
    local = await other.client.register("affine", model_file.parent)
    assert local.sha256 == bundle.sha256  # an uploaded folder is the same bundle as a local one
    assert other.core.metrics.count("path", "bundle") == 1


async def test_one_file_with_external_data_asks_for_its_folder(served: Served, tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="keeps tensors in external data files; upload .* its folder"):
        await served.client.upload("m", external_data_model(tmp_path / "affine"))
    assert _no_temp_files(served)


async def test_declared_size_and_digest_are_checked(serve: Serve, dynamic_onnx: Path) -> None:
    data = dynamic_onnx.read_bytes()
    s = await serve(max_artifact_bytes=len(data) + 10)
    wrong = hashlib.sha256(b"other").hexdigest()
    err = await _upload_raw(s, [_header(data, sha256=wrong), *_chunks(data)])
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"hash to sha256 {hashlib.sha256(data).hexdigest()}, not the declared header.sha256 {wrong}" in err.details()
    err = await _upload_raw(s, [_header(data), *_chunks(data[:-5])])
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"ended after {len(data) - 5} bytes; header.size_bytes declared {len(data)}" in err.details()
    err = await _upload_raw(s, [_header(data, size_bytes=10), *_chunks(data)])
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "more bytes than the declared" in err.details()
    err = await _upload_raw(s, [_header(data, size_bytes=len(data) + 11), *_chunks(data)])
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "MAX_ARTIFACT_BYTES" in err.details()
    err = await _upload_raw(s, [_header(data, sha256="abc"), *_chunks(data)])
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "header.sha256 must be 64" in err.details()
    err = await _upload_raw(s, [_header(data, name="../x"), *_chunks(data)])
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "invalid model name" in err.details()
    assert _no_temp_files(s) and await s.client.list() == []


async def test_stream_shape_is_checked(served: Served, dynamic_onnx: Path) -> None:
    data = dynamic_onnx.read_bytes()
    for messages, expected in (
        ([], "first message must carry `header`"),
        (_chunks(data), "first message must carry `header`"),
        ([_header(data), _header(data)], "only the first message carries `header`"),
        ([_header(data, size_bytes=0)], "header.size_bytes must be"),
    ):
        err = await _upload_raw(served, messages)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and expected in err.details()


def _tar(entries: list[tarfile.TarInfo], data: bytes = b"x" * 10) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for info in entries:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return out.getvalue()


def _entry(name: str, kind: bytes = tarfile.REGTYPE, target: str = "", size: int = 10) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, target, size if kind == tarfile.REGTYPE else 0
    return info


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        (_entry("../../evil.onnx"), "'..'"),
        (_entry("/tmp/evil.onnx"), "an absolute path"),
        (_entry("link.onnx", tarfile.SYMTYPE, "/etc/passwd"), "not a regular file"),
        (_entry("hard.onnx", tarfile.LNKTYPE, "/etc/passwd"), "not a regular file"),
        (_entry("dev", tarfile.CHRTYPE), "not a regular file"),
        (_entry("."), "not a plain relative path"),
        (_entry("./a.onnx"), "not a plain relative path"),
        (_entry("x" * 300), "a name over"),
    ],
)
async def test_hostile_archives_are_refused_naming_the_entry(served: Served, tmp_path: Path, entry, reason) -> None:
    data = _tar([entry])
    err = await _upload_raw(served, [_header(data, archive=True), *_chunks(data)])
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"entry {entry.name[:200]!r} is {reason}" in err.details()
    assert _no_temp_files(served) and not (tmp_path.parent / "evil.onnx").exists()


async def test_an_archive_that_is_not_a_tar_or_expands_past_the_limit(serve: Serve) -> None:
    s = await serve(max_artifact_bytes=64 * 1024)
    junk = b"not a tar at all" * 100
    err = await _upload_raw(s, [_header(junk, archive=True), *_chunks(junk)])
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "not an uncompressed tar" in err.details()
    sparse = _entry("big.onnx", tarfile.GNUTYPE_SPARSE, size=10**9)  # claims 1 GB from a few bytes
    data = _tar([sparse], b"")
    err = await _upload_raw(s, [_header(data, archive=True), *_chunks(data)])
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _no_temp_files(s)
