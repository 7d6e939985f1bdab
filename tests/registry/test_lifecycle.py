"""Aliases, forced deletes and WatchModels through the real registry gRPC server (SQLite on disk)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path

import pytest
from registry_testkit import Serve, Served, identity_model, run_mlos, save

from mlos_common.errors import FailedPrecondition, InvalidArgument, MlosError, NotFound, OutOfRange
from mlos_registry.client import RegistryClient
from mlos_registry.domain import ModelChange

WAIT_S = 10.0


async def _versions(served: Served, models_dir: Path, name: str = "m", count: int = 3) -> list[Path]:
    """Registers `count` distinct models as versions 1..count of `name`; returns their files."""
    paths = [save(identity_model(["N", k]), models_dir / f"{name}{k}.onnx") for k in range(1, count + 1)]
    for path in paths:
        await served.client.register(name, path)
    return paths


async def _take(changes: AsyncIterator[ModelChange], count: int) -> list[tuple[str, str, int, str]]:
    """The next `count` changes as (kind, name, version, alias), checking revisions increase by 1."""
    got = [await asyncio.wait_for(anext(changes), WAIT_S) for _ in range(count)]
    revisions = [c.revision for c in got]
    assert revisions == list(range(revisions[0], revisions[0] + count)), revisions
    return [(c.kind, c.name, c.version, c.alias) for c in got]


def _watch(client: RegistryClient, since: int) -> AsyncGenerator[ModelChange, None]:
    return client.watch(since)


async def test_aliases_set_move_resolve_and_fetch(served: Served, models_dir: Path, tmp_path: Path) -> None:
    c = served.client
    paths = await _versions(served, models_dir)
    pointed = await c.set_alias("m", "prod", 1)
    assert (pointed.version, pointed.aliases) == (1, ("prod",))
    await c.set_alias("m", "canary", 3)
    assert (await c.get("m", alias="prod")).version == 1
    assert (await c.get("m", alias="latest")).version == 3
    assert {v.version: v.aliases for v in await c.list("m")} == {1: ("prod",), 2: (), 3: ("canary",)}

    moved = await c.set_alias("m", "prod", 2)  # moved, not added: one alias, one version
    assert moved.aliases == ("prod",) and (await c.get("m", 1)).aliases == ()
    fetched, _ = await c.fetch_artifact("m", 0, tmp_path / "prod.onnx", alias="prod")
    assert fetched.read_bytes() == paths[1].read_bytes()
    fetched, _ = await c.fetch_artifact("m", 0, tmp_path / "latest.onnx", alias="latest")
    assert fetched.read_bytes() == paths[2].read_bytes()

    assert await c.delete_alias("m", "prod") == 2
    with pytest.raises(NotFound, match="model 'm' has no alias 'prod'"):
        await c.get("m", alias="prod")
    with pytest.raises(NotFound, match="no alias 'prod'"):
        await c.fetch_artifact("m", 0, tmp_path / "gone.onnx", alias="prod")


async def test_delete_refuses_an_aliased_version_unless_forced(served: Served, models_dir: Path) -> None:
    c = served.client
    await _versions(served, models_dir)
    await c.set_alias("m", "prod", 2)
    with pytest.raises(FailedPrecondition, match="alias 'prod' -> version 2"):
        await c.delete("m", 2)
    with pytest.raises(FailedPrecondition, match="'prod'"):
        await c.delete("m")  # every version: refused as a whole, nothing deleted
    assert [v.version for v in await c.list("m")] == [1, 2, 3]
    assert await c.delete("m", 3) == 1  # no alias on it

    _, revision = await c.listing()
    assert await c.delete("m", 2, force=True) == 1
    with pytest.raises(NotFound, match="no alias 'prod'"):
        await c.get("m", alias="prod")
    changes = _watch(c, revision)
    assert await _take(changes, 2) == [("alias_deleted", "m", 2, "prod"), ("deleted", "m", 2, "")]
    await changes.aclose()
    assert (await c.get("m", alias="latest")).version == 1


async def test_bad_alias_requests_name_the_field(served: Served, models_dir: Path) -> None:
    c = served.client
    await _versions(served, models_dir, count=1)
    for alias in ("latest", "123", "../x", "", "-x", "a" * 200, "a\x00b"):
        with pytest.raises(InvalidArgument, match="invalid alias"):
            await c.set_alias("m", alias, 1)
    with pytest.raises(InvalidArgument, match="invalid alias"):
        await c.delete_alias("m", "7")
    with pytest.raises(InvalidArgument, match="invalid alias"):
        await c.get("m", alias="a/b")
    with pytest.raises(InvalidArgument, match="version must be >= 1"):
        await c.set_alias("m", "prod", 0)
    with pytest.raises(InvalidArgument, match="invalid model name"):
        await c.set_alias("../m", "prod", 1)
    with pytest.raises(InvalidArgument, match=r"give version \(1\) or alias \('prod'\), not both"):
        await c.get("m", 1, alias="prod")
    with pytest.raises(NotFound, match="model 'm' has no version 9 to point alias 'prod' at"):
        await c.set_alias("m", "prod", 9)
    with pytest.raises(NotFound, match="'ghost' has no version 1"):
        await c.set_alias("ghost", "prod", 1)
    with pytest.raises(NotFound, match="model 'm' has no alias 'nope'"):
        await c.delete_alias("m", "nope")
    with pytest.raises(InvalidArgument, match="since_revision must be >= 0"):
        await anext(_watch(c, -1))
    assert (await c.get("m", 1)).aliases == ()  # nothing refused left a trace


async def test_watch_replays_then_streams_live(served: Served, models_dir: Path) -> None:
    c = served.client
    await _versions(served, models_dir, count=2)
    await c.register("m", models_dir / "m1.onnx")  # identical bytes: no new version, no change
    await c.set_alias("m", "prod", 1)
    _, revision = await c.listing()
    assert revision == 3

    first, second = _watch(c, 0), _watch(c, 0)  # two watchers see the same history
    replay = [("registered", "m", 1, ""), ("registered", "m", 2, ""), ("alias_set", "m", 1, "prod")]
    assert await _take(first, 3) == replay and await _take(second, 3) == replay

    await c.set_alias("m", "prod", 2)
    await c.register("other", models_dir / "m1.onnx")
    live = [("alias_set", "m", 2, "prod"), ("registered", "other", 1, "")]
    assert await _take(first, 2) == live and await _take(second, 2) == live
    assert (await c.listing())[1] == 5
    tail = _watch(c, 4)  # from a revision: only what came after it
    assert await _take(tail, 1) == [("registered", "other", 1, "")]
    for changes in (first, second, tail):
        await changes.aclose()


async def test_restart_keeps_revisions_and_a_resumed_watcher_misses_nothing(
    serve: Serve, models_dir: Path, tmp_path: Path
) -> None:
    data_dir = tmp_path / "kept"
    before = await serve(data_dir=data_dir)
    await _versions(before, models_dir, count=2)
    own = RegistryClient(before.addr)  # its own channel: stopping the server, not closing a client, ends it
    watcher = _watch(own, 0)
    seen = await asyncio.wait_for(anext(watcher), WAIT_S)
    assert seen.revision == 1  # this watcher got revision 1 only, then the registry went away
    await before.client.set_alias("m", "prod", 2)
    await before.stop()
    with pytest.raises(MlosError):  # the stream ends with the server (a status, not a hang)
        await asyncio.wait_for(_drain(watcher), WAIT_S)
    await own.close()

    after = await serve(data_dir=data_dir)
    await after.client.delete("m", 1)
    assert (await after.client.listing())[1] == 4  # revisions continue from the kept history
    resumed = _watch(after.client, seen.revision)
    assert await _take(resumed, 3) == [
        ("registered", "m", 2, ""), ("alias_set", "m", 2, "prod"), ("deleted", "m", 1, ""),
    ]
    assert (await after.client.get("m", alias="prod")).version == 2  # aliases survive the restart
    await resumed.aclose()


async def _drain(changes: AsyncIterator[ModelChange]) -> None:
    async for _ in changes:
        pass
    raise EOFError("the watch ended without an error")


async def test_watch_from_a_trimmed_or_future_revision_is_out_of_range(serve: Serve, models_dir: Path) -> None:
    s = await serve(changes_kept=3)
    await _versions(s, models_dir, count=3)
    await s.client.set_alias("m", "prod", 1)
    await s.client.set_alias("m", "prod", 2)  # revisions 1..5; 3..5 kept
    with pytest.raises(OutOfRange, match="since_revision 1 is older than the registry's kept history"):
        await anext(_watch(s.client, 1))
    with pytest.raises(OutOfRange, match="re-list"):
        await anext(_watch(s.client, 0))
    kept = _watch(s.client, 2)
    assert await _take(kept, 3) == [
        ("registered", "m", 3, ""), ("alias_set", "m", 1, "prod"), ("alias_set", "m", 2, "prod"),
    ]
    await kept.aclose()
    with pytest.raises(OutOfRange, match="since_revision 9 is past this registry's latest revision 5"):
        await anext(_watch(s.client, 9))


async def test_cli_alias_unalias_and_watch(served: Served, models_dir: Path, capsys: pytest.CaptureFixture) -> None:
    await _versions(served, models_dir, count=2)
    reg = ("--registry", served.addr)
    code, out, err = await run_mlos(capsys, "models", "alias", "m", "prod", "1", *reg)
    assert code == 0 and out.startswith("m:prod -> version 1 ("), err
    code, _, err = await run_mlos(capsys, "models", "alias", "m", "latest", "2", *reg)
    assert code == 2 and "INVALID_ARGUMENT" in err and "invalid alias 'latest'" in err
    code, out, _ = await run_mlos(capsys, "models", "unalias", "m", "prod", *reg)
    assert (code, out) == (0, "removed m:prod (was version 1)\n")
    code, _, err = await run_mlos(capsys, "models", "unalias", "m", "prod", *reg)
    assert code == 2 and "NOT_FOUND" in err and "no alias 'prod'" in err

    code, out, _ = await run_mlos(capsys, "models", "watch", "--since", "1", "--count", "3", *reg)
    lines = out.splitlines()
    assert code == 0 and len(lines) == 3
    assert lines[0].split()[0] == "2" and lines[0].endswith("registered     m v2")
    assert lines[1].endswith("alias_set      m:prod -> v1") and lines[2].endswith("alias_deleted  m:prod -> v1")
    code, out, _ = await run_mlos(capsys, "models", "watch", "--count", "1", "--json", *reg)
    assert json.loads(out) | {"unix_ms": 0} == {
        "revision": 1, "kind": "registered", "name": "m", "version": 1, "alias": "", "unix_ms": 0,
    }
    code, _, err = await run_mlos(capsys, "models", "watch", "--since", "99", "--count", "1", *reg)
    assert code == 2 and "OUT_OF_RANGE" in err and "re-list" in err
