"""Shared memory on the Execute stream, executor side: refs that must fail alone, declined offers,
and no segment left behind when a link closes or its process is killed."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import textwrap

import numpy as np
import pytest
from exec_testkit import tensor

from mlos.common.v1 import tensor_pb2
from mlos.executor.v1 import executor_pb2 as pb
from mlos_common.arena import host_id
from mlos_common.errors import MlosError, Unavailable
from mlos_common.tensors import array_from_raw
from mlos_executor.client import ExecutorClient
from mlos_executor.link_shm import LinkCounters, LinkShm, LinkShmSettings

SHM = LinkShmSettings(min_bytes=64, arena_bytes=1 << 20)


def plus(version: int, inputs: list[tensor_pb2.Tensor], **fields) -> pb.Work:
    return pb.Work(model=pb.ModelKey(name="plus", version=version), inputs=inputs, **fields)


async def ready_link(registry, executor, model_files) -> tuple[ExecutorClient, int]:
    mv = await registry.client.register("plus", model_files.plus_one)
    await executor.client.load("plus", mv.version, mv.sha256)
    client = ExecutorClient(executor.addr, shm=SHM)
    first = await client.link.submit(plus(mv.version, [tensor("X", np.ones((1, 3), np.float32))]), 10)
    assert not first.error_code, first.error_message
    return client, mv.version


def ref(name: str, key: str, offset: int, byte_size: int, shape=(2, 3)) -> tensor_pb2.Tensor:
    return tensor_pb2.Tensor(name=name, datatype="FP32", shape=shape,
                             shm=tensor_pb2.ShmRef(key=key, offset=offset, byte_size=byte_size))


def shm_names(pid: int) -> list[str]:
    return [n for n in os.listdir("/dev/shm") if n.startswith((f"mlos-sched-{pid}-", f"mlos-exec-{pid}-"))]


async def test_bad_refs_fail_their_work_alone(registry, executor, model_files, shm_object) -> None:
    client, version = await ready_link(registry, executor, model_files)
    try:
        link = client.link
        assert link.shm.ready, link.shm.error
        status = await executor.client.status()
        assert status.shm_usable and status.host_id == host_id()
        key, handle = shm_object(24)
        handle.buf[:24] = np.arange(6, dtype=np.float32).tobytes()
        arena = link.shm.arena
        cases = {
            "hostile key": (ref("X", "/../etc/passwd", 0, 24), "INVALID_ARGUMENT", "one name like"),
            "missing object": (ref("X", "/mlos-no-such-object", 0, 24), "NOT_FOUND", "no POSIX shared memory"),
            "past the object": (ref("X", key, 8, 24), "INVALID_ARGUMENT", "exceeds the object's size of 24"),
            "past the arena": (ref("X", arena.key, arena.size_bytes - 8, 24), "INVALID_ARGUMENT", "exceeds"),
            "size vs shape": (ref("X", key, 0, 20), "INVALID_ARGUMENT", "needs 24 bytes, got 20"),
        }
        both = ref("X", key, 0, 24)
        both.raw = b"\0" * 24
        cases["raw and ref"] = (both, "INVALID_ARGUMENT", "both raw bytes and a shared memory ref")
        futures = {what: link.submit(plus(version, [t]), 10) for what, (t, _, _) in cases.items()}
        good = link.submit(plus(version, [ref("X", key, 0, 24)]), 10)
        for what, (_, code, text) in cases.items():
            result = await futures[what]
            assert (result.error_code, text in result.error_message) == (code, True), (what, result.error_message)
        result = await good
        assert not result.error_code, result.error_message
        (y,) = result.outputs
        got = array_from_raw("Y", y.datatype, y.shape, y.raw)
        np.testing.assert_array_equal(got, np.arange(6, dtype=np.float32).reshape(2, 3) + 1)
    finally:
        await client.close()


async def test_an_executor_with_shm_off_declines_and_work_goes_inline(registry, start_executor, model_files) -> None:
    executor = await start_executor(shm_arena_bytes=0)
    client, version = await ready_link(registry, executor, model_files)
    try:
        link = client.link
        assert link.shm is not None and not link.shm.ready
        assert "off on this executor" in link.shm.error
        x = np.ones((64, 3), np.float32)
        result = await link.submit(plus(version, []), 10, [_Input("X", x)])
        assert not result.error_code and link.counters.bytes_by_shm_sent == 0
        assert link.counters.bytes_inline_sent >= x.nbytes
        assert (await executor.client.status()).shm_usable is False
    finally:
        await client.close()


class _Input:
    def __init__(self, name: str, array: np.ndarray) -> None:
        self.name, self.datatype, self.shape = name, "FP32", array.shape
        self.raw, self.window = array.tobytes(), None


async def test_arena_inputs_and_outputs_are_freed_and_close_leaves_nothing(registry, executor, model_files) -> None:
    client, version = await ready_link(registry, executor, model_files)
    link = client.link
    x = np.random.default_rng(1).standard_normal((100, 3)).astype(np.float32)
    results = await asyncio.gather(*(link.submit(plus(version, []), 10, [_Input("X", x)]) for _ in range(4)))
    for r in results:
        (y,) = r.outputs
        assert not y.HasField("shm")  # copied out of the executor's arena on arrival
        np.testing.assert_array_equal(array_from_raw("Y", y.datatype, y.shape, y.raw), x + 1)
    assert link.counters.bytes_by_shm_sent == link.counters.bytes_by_shm_received == 4 * x.nbytes
    assert link.shm.arena.used_bytes == 0
    assert shm_names(os.getpid()) == []  # unlinked as soon as both ends mapped them
    await client.close()
    assert link.shm is None and shm_names(os.getpid()) == []


async def test_a_killed_scheduler_leaves_no_segment(executor) -> None:
    """A process holding a ready link is killed with SIGKILL: no arena name remains in /dev/shm."""
    script = textwrap.dedent(f"""
        import asyncio, sys
        from mlos.executor.v1 import executor_pb2 as pb
        from mlos_executor.client import ExecutorClient
        from mlos_executor.link_shm import LinkCounters, LinkShm, LinkShmSettings

        async def main():
            client = ExecutorClient({executor.addr!r}, shm=LinkShmSettings(min_bytes=64, arena_bytes=1 << 20))
            result = await client.link.submit(pb.Work(model=pb.ModelKey(name="none", version=1)), 10)
            assert result.error_code and client.link.shm.ready, client.link.shm.error
            print("ready", flush=True)
            await asyncio.sleep(3600)

        asyncio.run(main())
    """)
    # The executor serves on this test's event loop: wait for the child without blocking it.
    child = await asyncio.create_subprocess_exec(sys.executable, "-c", script, stdout=asyncio.subprocess.PIPE)
    try:
        assert (await asyncio.wait_for(child.stdout.readline(), 60)).strip() == b"ready"
        child.send_signal(signal.SIGKILL)
        await asyncio.wait_for(child.wait(), 30)
        assert shm_names(child.pid) == []
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()


async def test_a_killed_executor_leaves_no_segment(tmp_path) -> None:
    """An executor process with a ready link is killed with SIGKILL: no arena name of either side
    remains, and the link fails its next work with UNAVAILABLE."""
    env = {**os.environ, "MLOS_EXECUTOR_GRPC_PORT": "0", "MLOS_EXECUTOR_METRICS_PORT": "-1",
           "MLOS_EXECUTOR_CACHE_DIR": str(tmp_path / "cache")}
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mlos_executor", env=env, stdout=asyncio.subprocess.PIPE
    )
    try:
        line = json.loads(await asyncio.wait_for(child.stdout.readline(), 60))
        client = ExecutorClient(f"127.0.0.1:{line['grpc_port']}", shm=SHM)
        first = await client.link.submit(pb.Work(model=pb.ModelKey(name="none", version=1)), 30)
        assert first.error_code == "FAILED_PRECONDITION" and client.link.shm.ready, client.link.shm.error
        child.send_signal(signal.SIGKILL)
        await asyncio.wait_for(child.wait(), 30)
        with pytest.raises(Unavailable):
            await client.link.submit(pb.Work(model=pb.ModelKey(name="none", version=1)), 30)
        assert shm_names(child.pid) == [] and shm_names(os.getpid()) == []
        await client.close()
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()


def test_an_answer_that_proves_nothing_keeps_the_link_inline() -> None:
    """Another host's boot id, or a nonce not read from our arena: no shared memory, arena freed."""
    host = host_id()
    cases = {
        "another host": (pb.LinkAnswer(host_id="0000-boot:m", nonce=b"x" * 16), "another host"),
        "wrong nonce": (pb.LinkAnswer(host_id=host, nonce=b"x" * 16), "another nonce"),
        "declined": (pb.LinkAnswer(host_id=host, error="shared memory is off"), "declined: shared memory is off"),
    }
    for what, (answer, text) in cases.items():
        shm = LinkShm(SHM, LinkCounters())
        path = f"/dev/shm/{shm.arena.key[1:]}"
        assert os.path.exists(path)
        shm.accept(answer)
        assert not shm.ready and text in shm.error, (what, shm.error)
        assert not os.path.exists(path) and shm.arena.closed, what


def test_settings_refuse_shm_values_that_cannot_work() -> None:
    from pydantic import ValidationError

    from mlos_executor.config import ExecutorSettings
    from mlos_scheduler.config import SchedulerSettings

    for bad in ({"executor_shm": "maybe"}, {"executor_shm_arena_bytes": 4096}, {"executor_shm_min_bytes": -1}):
        with pytest.raises(ValidationError, match=next(iter(bad))):
            SchedulerSettings(**bad)
    with pytest.raises(ValidationError, match="shm_arena_bytes"):
        ExecutorSettings(shm_arena_bytes=-1)


async def test_execute_batch_refuses_shm_refs(registry, executor, model_files, shm_object) -> None:
    """The unary ExecuteBatch carries bytes only: a ref there is INVALID_ARGUMENT, not a size error."""
    mv = await registry.client.register("plus", model_files.plus_one)
    await executor.client.load("plus", mv.version, mv.sha256)
    key, _ = shm_object(24)
    with pytest.raises(MlosError) as err:
        await executor.client.execute("plus", mv.version, [ref("X", key, 0, 24)], [])
    assert err.value.code == "INVALID_ARGUMENT" and "Execute stream only" in err.value.message
