"""The model-view follower against real registry servers on loopback: live changes, a registry
that is down at start, a restart on the same port and store (resume, nothing missed), and
OUT_OF_RANGE (re-snapshot). Every wait is on the follower's applied revision or its state."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from registry_testkit import Serve, add_model, save

from mlos_registry.domain import DELETED, REGISTERED, ModelChange
from mlos_registry.follow import ViewFollower, WatchCollector
from mlos_registry.model_view import ModelView

WAIT_S = 20.0


@pytest.fixture
def onnx_files(models_dir: Path) -> list[Path]:
    """Three ONNX files with different bytes (first dimension N, 2, 3)."""
    return [save(add_model(dim), models_dir / f"add_{dim}.onnx") for dim in ("N", 2, 3)]


@pytest.fixture
async def following() -> AsyncIterator[list[ViewFollower]]:
    """Followers made by the test, closed after it."""
    made: list[ViewFollower] = []
    yield made
    for follower in made:
        await follower.close()


def follow(made: list[ViewFollower], addr: str) -> ViewFollower:
    follower = ViewFollower.to(addr, ModelView(), initial_backoff_s=0.02, max_backoff_s=0.1)
    follower.start()
    made.append(follower)
    return follower


def summary(versions: list) -> list[tuple[str, int, str, tuple[str, ...]]]:
    return [(v.name, v.version, v.sha256, v.aliases) for v in versions]


async def test_view_follows_registrations_aliases_and_deletes(serve: Serve, onnx_files, following) -> None:
    served = await serve()
    await served.client.register("early", onnx_files[0])
    follower = follow(following, served.addr)
    seen: list[ModelChange] = []
    follower.view.add_listener(seen.append)
    await follower.view.wait_for((await served.client.listing())[1], WAIT_S)
    assert follower.view.latest("early") == 1 and follower.snapshots == 1

    mv2 = await served.client.register("early", onnx_files[1])
    await served.client.register("late", onnx_files[2])
    await served.client.set_alias("early", "stable", 1)
    await served.client.set_alias("early", "stable", 2)  # a move
    await served.client.delete("late")
    versions, revision = await served.client.listing()
    await follower.view.wait_for(revision, WAIT_S)

    view = follower.view
    assert summary(view.listing()) == summary(versions)
    assert view.latest("early") == 2 and view.alias("early", "stable") == 2
    assert view.get("early", alias="stable").sha256 == mv2.sha256
    assert view.get("early", 1).aliases == () and view.get("early", 2).aliases == ("stable",)
    assert not view.knows("late") and view.get("late") is None
    assert [(c.kind, c.name) for c in seen if c.kind in (REGISTERED, DELETED)][-3:] == [
        ("registered", "early"), ("registered", "late"), ("deleted", "late")
    ]
    assert follower.connected and follower.reconnects == 0 and follower.snapshots == 1


async def test_registry_down_at_start_is_retried(serve: Serve, onnx_files, following, tmp_path: Path) -> None:
    first = await serve()
    port = int(first.addr.rsplit(":", 1)[1])
    await first.stop()  # nothing listens on `port` now
    follower = follow(following, f"127.0.0.1:{port}")
    await follower.wait_until(lambda f: f.reconnects >= 2, WAIT_S)
    assert not follower.connected and not follower.view.synced and follower.last_error.startswith("UNAVAILABLE")
    metrics = CollectorRegistry()
    metrics.register(WatchCollector(follower))
    text = generate_latest(metrics).decode()
    assert "mlos_registry_watch_connected 0.0" in text and "mlos_registry_watch_synced 0.0" in text

    served = await serve(grpc_port=port, data_dir=tmp_path / "fresh")
    mv = await served.client.register("m", onnx_files[0])
    await follower.view.wait_for((await served.client.listing())[1], WAIT_S)
    assert follower.view.get("m") == mv
    await follower.wait_until(lambda f: f.connected, WAIT_S)
    text = generate_latest(metrics).decode()
    assert "mlos_registry_watch_connected 1.0" in text and f"mlos_registry_watch_revision {follower.view.revision}.0" in text


async def test_restart_resumes_from_the_applied_revision(serve: Serve, onnx_files, following, tmp_path: Path) -> None:
    """Changes made while the follower is cut off (the registry restarted on the same port and
    store) arrive by replay from its revision: no re-snapshot, nothing missed."""
    data_dir = tmp_path / "store"
    first = await serve(data_dir=data_dir)
    await first.client.register("a", onnx_files[0])
    follower = follow(following, first.addr)
    await follower.view.wait_for((await first.client.listing())[1], WAIT_S)
    port = int(first.addr.rsplit(":", 1)[1])
    await first.stop()
    await follower.wait_until(lambda f: not f.connected and f.reconnects >= 1, WAIT_S)
    cut_at = follower.view.revision

    applied: list[int] = []
    follower.view.add_listener(lambda c: applied.append(c.revision))
    writer = await serve(data_dir=data_dir)  # the same store on another port, while the follower is cut off
    await writer.client.register("b", onnx_files[1])
    await writer.client.register("a", onnx_files[2])
    await writer.client.set_alias("a", "prod", 1)
    await writer.client.delete("a", 1, force=True)
    await writer.stop()

    second = await serve(data_dir=data_dir, grpc_port=port)
    versions, revision = await second.client.listing()
    await follower.view.wait_for(revision, WAIT_S)

    assert summary(follower.view.listing()) == summary(versions)
    assert follower.snapshots == 1, "a resume must replay, not re-list"
    assert applied == list(range(cut_at + 1, revision + 1)), "every change once, in order"
    assert follower.view.alias("a", "prod") == 0 and follower.view.latest("a") == 2


async def test_trimmed_history_takes_a_fresh_snapshot(serve: Serve, onnx_files, following, tmp_path: Path) -> None:
    """More changes than the registry keeps while the follower is cut off: OUT_OF_RANGE, then a
    fresh ListModels; a version deleted meanwhile still reaches the listeners as a deletion."""
    data_dir = tmp_path / "store"
    first = await serve(data_dir=data_dir, changes_kept=2)
    await first.client.register("gone", onnx_files[0])
    follower = follow(following, first.addr)
    await follower.view.wait_for((await first.client.listing())[1], WAIT_S)
    seen: list[ModelChange] = []
    follower.view.add_listener(seen.append)
    port = int(first.addr.rsplit(":", 1)[1])
    await first.stop()
    await follower.wait_until(lambda f: f.reconnects >= 1, WAIT_S)

    writer = await serve(data_dir=data_dir, changes_kept=2)  # the same store on another port
    for i, path in enumerate(onnx_files):
        await writer.client.register(f"new{i}", path)
    await writer.client.delete("gone")
    await writer.stop()

    second = await serve(data_dir=data_dir, grpc_port=port, changes_kept=2)
    versions, revision = await second.client.listing()
    await follower.view.wait_for(revision, WAIT_S)

    assert summary(follower.view.listing()) == summary(versions)
    assert follower.snapshots == 2 and "older than the registry's kept history" in follower.last_error
    assert ModelChange(revision, DELETED, "gone", 1) in seen
