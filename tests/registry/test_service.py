"""The registry through real gRPC: a server on port 0, RegistryClient and raw stubs."""

from __future__ import annotations

import hashlib
from pathlib import Path

import grpc
import pytest
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from onnx import TensorProto
from prometheus_client import CollectorRegistry
from registry_testkit import Serve, Served, add_model, identity_model, save

from mlos.registry.v1 import registry_pb2, registry_pb2_grpc
from mlos_common.bootstrap import ServerParts
from mlos_common.errors import FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted
from mlos_registry.config import RegistrySettings
from mlos_registry.domain import ServingConfig, TensorSpec
from mlos_registry.server import start


async def test_register_extracts_signature_and_defaults(served: Served, dynamic_onnx: Path) -> None:
    mv = await served.client.register("adder", dynamic_onnx, labels={"team": "core"})
    assert (mv.name, mv.version, mv.format) == ("adder", 1, "onnx")
    assert mv.sha256 == hashlib.sha256(dynamic_onnx.read_bytes()).hexdigest()
    assert mv.size_bytes == dynamic_onnx.stat().st_size
    assert mv.inputs == (TensorSpec("x", "FP32", (-1, 3)), TensorSpec("y", "FP32", (-1, 3)))
    assert mv.outputs == (TensorSpec("z", "FP32", (-1, 3)),)
    assert mv.config == ServingConfig(max_batch_size=8, instance_count=1, device="auto")
    assert mv.labels == {"team": "core"}
    assert mv.created_unix_ms > 0


async def test_fixed_first_dim_disables_batching(served: Served, fixed_onnx: Path) -> None:
    mv = await served.client.register("ident", fixed_onnx)
    assert mv.inputs == (TensorSpec("a", "INT64", (1, 4)),)
    assert mv.config.max_batch_size == 0
    with pytest.raises(InvalidArgument, match="cannot batch"):
        await served.client.register("ident2", fixed_onnx, config=ServingConfig(max_batch_size=4))


async def test_request_config_overrides_defaults(serve: Serve, dynamic_onnx: Path) -> None:
    s = await serve(default_max_batch_size=16)
    mv = await s.client.register("m", dynamic_onnx, config=ServingConfig(instance_count=3, default_priority=2))
    assert mv.config == ServingConfig(max_batch_size=16, instance_count=3, device="auto", default_priority=2)
    with pytest.raises(InvalidArgument, match="device"):
        await s.client.register("m2", dynamic_onnx, config=ServingConfig(device="tpu"))


async def test_list_get_latest_delete_and_monotonic_versions(served: Served, models_dir: Path) -> None:
    c = served.client
    paths = [save(identity_model(["N", k]), models_dir / f"v{k}.onnx") for k in (1, 2, 3)]
    versions = [await c.register("m", p) for p in paths]
    assert [v.version for v in versions] == [1, 2, 3]
    await c.register("other", paths[0])
    assert [(v.name, v.version) for v in await c.list()] == [("m", 1), ("m", 2), ("m", 3), ("other", 1)]
    assert [v.version for v in await c.list("m")] == [1, 2, 3]
    assert (await c.get("m")).version == 3
    assert (await c.get("m", 2)).inputs[0].shape == (-1, 2)

    assert await c.delete("m", 3) == 1
    assert (await c.get("m")).version == 2
    again = await c.register("m", paths[2])
    assert again.version == 4  # 3 is never reused
    assert await c.delete("m") == 3
    assert await c.list("m") == []
    assert (await c.register("m", paths[0])).version == 5
    assert (await c.get("other")).version == 1  # shares a blob with deleted versions; still fetchable
    path, _ = await c.fetch_artifact("other", 1, models_dir / "other.onnx")
    assert path.read_bytes() == paths[0].read_bytes()


async def test_identical_bytes_are_idempotent(served: Served, dynamic_onnx: Path, tmp_path: Path) -> None:
    first = await served.client.register("m", dynamic_onnx)
    copy = tmp_path / "elsewhere" / "renamed.bin"
    copy.parent.mkdir()
    copy.write_bytes(dynamic_onnx.read_bytes())
    second = await served.client.register("m", copy)
    assert second == first
    assert len(await served.client.list("m")) == 1


async def test_fetch_artifact_round_trip(served: Served, models_dir: Path, tmp_path: Path) -> None:
    model = identity_model(["N", 8])
    # a big initializer-free model isn't possible with Identity, so pad with doc_string to span chunks
    model.doc_string = "x" * (3 * 64 * 1024 + 123)
    src = save(model, models_dir / "big.onnx")
    await served.client.register("big", src)
    dest = tmp_path / "out" / "big.onnx"
    dest.parent.mkdir()
    path, digest = await served.client.fetch_artifact("big", 0, dest, chunk_bytes=64 * 1024)
    assert path == dest and dest.read_bytes() == src.read_bytes()
    assert digest == hashlib.sha256(src.read_bytes()).hexdigest()
    assert list(dest.parent.iterdir()) == [dest]  # no temp file left behind

    async with aio.insecure_channel(served.addr) as channel:
        stub = registry_pb2_grpc.RegistryStub(channel)
        chunks = [c async for c in stub.FetchArtifact(registry_pb2.FetchArtifactRequest(name="big", chunk_bytes=64 * 1024))]
    assert len(chunks) == 4
    assert [c.offset for c in chunks] == [0, 65536, 131072, 196608]
    assert all(c.total_bytes == src.stat().st_size for c in chunks)
    assert [bool(c.sha256) for c in chunks] == [False, False, False, True]
    assert chunks[-1].sha256 == digest


async def test_corrupted_blob_fails_precondition(served: Served, dynamic_onnx: Path, tmp_path: Path) -> None:
    await served.client.register("m", dynamic_onnx)
    blob, _, size = await served.core.open_artifact("m", 1)
    data = bytearray(Path(blob).read_bytes())
    data[size // 2] ^= 0xFF
    Path(blob).write_bytes(bytes(data))
    dest = tmp_path / "fetched.onnx"
    with pytest.raises(FailedPrecondition, match="does not match its sha256") as info:
        await served.client.fetch_artifact("m", 1, dest)
    assert str(tmp_path) not in info.value.message  # never leaks a store path
    assert not dest.exists() and list(tmp_path.glob("*.part")) == []
    # re-registering the same bytes repairs the blob
    await served.client.register("m", dynamic_onnx)
    await served.client.fetch_artifact("m", 1, dest)
    assert dest.read_bytes() == dynamic_onnx.read_bytes()


async def test_not_found(served: Served, dynamic_onnx: Path, tmp_path: Path) -> None:
    c = served.client
    with pytest.raises(NotFound, match="'nope' is not registered"):
        await c.get("nope")
    await c.register("m", dynamic_onnx)
    with pytest.raises(NotFound, match="no version 7"):
        await c.get("m", 7)
    with pytest.raises(NotFound):
        await c.delete("m", 7)
    with pytest.raises(NotFound):
        await c.fetch_artifact("nope", 1, tmp_path / "x.onnx")
    with pytest.raises(NotFound, match="does not exist"):
        await c.register("m", tmp_path / "missing.onnx")


@pytest.mark.parametrize("name", ["../x", "", "a b", "a" * 300, ".hidden", "-x", "a/b", "a\x00b", "a..b"])
async def test_bad_names_are_invalid_argument(served: Served, dynamic_onnx: Path, name: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid model name"):
        await served.client.register(name, dynamic_onnx)


async def test_bad_files_are_invalid_argument(served: Served, models_dir: Path, dynamic_onnx: Path) -> None:
    c = served.client
    garbage = models_dir / "garbage.onnx"
    garbage.write_bytes(b"\xff\xfe this is not a model \x00\x01" * 10)
    with pytest.raises(InvalidArgument, match="not a model file we recognise"):
        await c.register("g", garbage)
    truncated = models_dir / "truncated.onnx"
    truncated.write_bytes(dynamic_onnx.read_bytes()[:-7])
    with pytest.raises(InvalidArgument, match="ONNX"):
        await c.register("t", truncated)
    gguf = models_dir / "model.onnx"  # extension lies: content decides
    gguf.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\x00" * 64)
    with pytest.raises(InvalidArgument, match="GGUF metadata has no general.architecture"):
        await c.register("llm", gguf)  # read as GGUF (the header parser), not as ONNX
    with pytest.raises(InvalidArgument, match="holds several ONNX files"):
        await c.register("dir", models_dir)


async def test_external_data_outside_folder_rejected(served: Served, models_dir: Path) -> None:
    model = add_model("N")
    weight = model.graph.initializer.add()
    weight.name, weight.data_type = "w", TensorProto.FLOAT
    weight.dims.extend([3])
    weight.data_location = TensorProto.EXTERNAL
    entry = weight.external_data.add()
    entry.key, entry.value = "location", "../secret"
    path = save(model, models_dir / "ext.onnx")
    with pytest.raises(InvalidArgument, match=r"tensor 'w' keeps its data at external location '\.\./secret'"):
        await served.client.register("ext", path)


async def test_size_limit_is_resource_exhausted(serve: Serve, dynamic_onnx: Path) -> None:
    s = await serve(max_artifact_bytes=dynamic_onnx.stat().st_size - 1)
    with pytest.raises(ResourceExhausted, match="MAX_ARTIFACT_BYTES"):
        await s.client.register("m", dynamic_onnx)


async def test_allowed_roots(serve: Serve, tmp_path: Path, models_dir: Path) -> None:
    inside = save(add_model("N"), models_dir / "ok.onnx")
    outside = save(add_model("N"), tmp_path / "other" / "no.onnx")
    s = await serve(allowed_roots=[models_dir])
    assert (await s.client.register("ok", inside)).version == 1
    with pytest.raises(InvalidArgument, match="ALLOWED_ROOTS"):
        await s.client.register("no", outside)
    link = models_dir / "sneaky.onnx"
    link.symlink_to(outside)
    with pytest.raises(InvalidArgument, match="outside the folders"):
        await s.client.register("no", link)


async def test_raw_stub_status_codes(served: Served) -> None:
    async with aio.insecure_channel(served.addr) as channel:
        stub = registry_pb2_grpc.RegistryStub(channel)
        with pytest.raises(aio.AioRpcError) as info:
            await stub.GetModel(registry_pb2.GetModelRequest(name="absent"))
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(aio.AioRpcError) as info:
            await stub.RegisterModel(registry_pb2.RegisterModelRequest(name="../x", path="/dev/null"))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_start_reports_serving(tmp_path: Path, dynamic_onnx: Path) -> None:
    settings = RegistrySettings(grpc_port=0, metrics_port=-1, data_dir=tmp_path / "data")
    parts = ServerParts()
    server, port, closers = await start(settings, parts, CollectorRegistry())
    await server.start()
    try:
        async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            for service in ("", "mlos.registry.v1.Registry"):
                reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
                assert reply.status == health_pb2.HealthCheckResponse.SERVING
            stub = registry_pb2_grpc.RegistryStub(channel)
            await stub.RegisterModel(registry_pb2.RegisterModelRequest(name="m", path=str(dynamic_onnx)))
    finally:
        await server.stop(None)
        for close in closers:
            await close()
