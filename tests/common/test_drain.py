"""run_until_signalled: a real SIGTERM to this process drains the server in order.

The signal is delivered with os.kill to the pytest process itself. That is safe here because
run_until_signalled installs its handler with loop.add_signal_handler (we wait until it is in
place before sending), and the test restores the previous SIGTERM/SIGINT handlers afterwards.
"""

from __future__ import annotations

import asyncio
import os
import signal

import grpc
import pytest
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from mlos.scheduler.v1 import scheduler_pb2, scheduler_pb2_grpc
from mlos_common.bootstrap import SETTLE_QUIET_S, GrpcService, ServerParts, build_server, run_until_signalled, set_serving, settle
from mlos_common.config import ServiceSettings

SERVICE = "mlos.scheduler.v1.SchedulerAdmin"
GRACE_S = 10.0


class BlockingScheduler(scheduler_pb2_grpc.SchedulerAdminServicer):
    """model_name "block" waits for `release`; anything else answers at once."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def GetQueueStats(self, request, context):
        if request.model_name == "block":
            self.entered.set()
            await self.release.wait()
        return scheduler_pb2.GetQueueStatsResponse(queues=[scheduler_pb2.QueueStats(model_name=request.model_name)])


async def _until(condition, what: str, attempts: int = 1000) -> None:
    """Bounded polling: yields to the loop until `condition()` holds."""
    for _ in range(attempts):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def restore_signal_handlers():
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    yield saved
    for sig, handler in saved.items():
        signal.signal(sig, handler)


async def test_sigterm_drains_in_flight_then_closes(restore_signal_handlers) -> None:
    servicer = BlockingScheduler()
    service = GrpcService(SERVICE, lambda s: scheduler_pb2_grpc.add_SchedulerAdminServicer_to_server(servicer, s))
    parts = ServerParts()
    server, port = build_server(ServiceSettings(grpc_port=0), [service], parts)
    await server.start()
    addr = f"127.0.0.1:{port}"
    events: list[str] = []

    async def close_first() -> None:
        events.append("close_first")
        raise RuntimeError("a failing hook must not stop the others")

    async def close_second() -> None:
        events.append("close_second")

    channel = aio.insecure_channel(addr)
    runner: asyncio.Task | None = None
    try:
        await set_serving(parts, [service], True)
        stub = scheduler_pb2_grpc.SchedulerAdminStub(channel)
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""))
        assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING

        in_flight = asyncio.ensure_future(
            stub.GetQueueStats(scheduler_pb2.GetQueueStatsRequest(model_name="block"), timeout=30)
        )
        await asyncio.wait_for(servicer.entered.wait(), 5)

        runner = asyncio.create_task(
            run_until_signalled(
                service="test", server=server, parts=parts, grace_s=GRACE_S, on_close=[close_first, close_second]
            )
        )
        previous = restore_signal_handlers[signal.SIGTERM]
        await _until(lambda: signal.getsignal(signal.SIGTERM) is not previous, "SIGTERM handler installed")
        assert not runner.done()

        loop = asyncio.get_running_loop()
        signalled_at = loop.time()
        os.kill(os.getpid(), signal.SIGTERM)

        # Health flips to NOT_SERVING for watchers (load balancers) first.
        reply = await asyncio.wait_for(watch.read(), 5)
        assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING
        watch.cancel()

        # Calls keep being picked up while they come (the drain window, `settle`); once none has
        # come for SETTLE_QUIET_S the server stops accepting and new calls are refused; the
        # in-flight one is untouched. Attempts are paced wider than the quiet window.
        async def refused() -> bool:
            await asyncio.sleep(SETTLE_QUIET_S * 1.5)
            try:
                await stub.GetQueueStats(scheduler_pb2.GetQueueStatsRequest(model_name="new"), timeout=2)
            except aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.UNAVAILABLE
                return True
            return False

        for _ in range(40):
            if await refused():
                break
        else:
            raise AssertionError("new calls were still accepted while draining")
        assert not in_flight.done()
        assert not runner.done(), "run_until_signalled returned with an RPC still in flight"
        assert events == [], "close hooks ran before in-flight RPCs finished"

        servicer.release.set()
        reply = await asyncio.wait_for(in_flight, 5)
        assert reply.queues[0].model_name == "block"

        await asyncio.wait_for(runner, 5)
        assert events == ["close_first", "close_second"]
        # Drain finished when the last RPC did, not at the end of the grace period.
        assert loop.time() - signalled_at < GRACE_S / 2
    finally:
        servicer.release.set()
        if runner is not None and not runner.done():
            runner.cancel()
        await channel.close()
        await server.stop(None)


class Queued(scheduler_pb2_grpc.SchedulerAdminServicer):
    """Two calls at a time, 50 ms each: most of a burst waits, picked up or not yet."""

    def __init__(self) -> None:
        self.slots = asyncio.Semaphore(2)

    async def GetQueueStats(self, request, context):
        async with self.slots:
            await asyncio.sleep(0.05)
        return scheduler_pb2.GetQueueStatsResponse()


async def test_a_burst_sent_just_before_the_drain_is_answered_not_cancelled() -> None:
    """gRPC's stop cancels calls the transport accepted but the application had not picked up;
    settle() waits for them, so a burst sent the moment before SIGTERM is answered in full."""
    servicer = Queued()
    service = GrpcService(SERVICE, lambda s: scheduler_pb2_grpc.add_SchedulerAdminServicer_to_server(servicer, s))
    parts = ServerParts()
    server, port = build_server(ServiceSettings(grpc_port=0), [service], parts)
    await server.start()
    async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = scheduler_pb2_grpc.SchedulerAdminStub(channel)
        calls = [asyncio.ensure_future(stub.GetQueueStats(scheduler_pb2.GetQueueStatsRequest(model_name="m"), timeout=30))
                 for _ in range(24)]
        await _until(lambda: parts.arrivals.picked_up >= 1, "the first call picked up")
        await parts.health.enter_graceful_shutdown()
        await settle(parts.arrivals, GRACE_S)
        assert parts.arrivals.picked_up == 24
        await server.stop(GRACE_S)
        replies = await asyncio.gather(*calls, return_exceptions=True)
    assert [r for r in replies if isinstance(r, BaseException)] == []
