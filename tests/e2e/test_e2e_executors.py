"""`mlos up --executors 2`: two executor processes behind one scheduler, the demo models spread
over them, the unmodified tritonclient served, each process's threads and memory bounded."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from e2e_testkit import iris_sample, scheduler_metrics, serves_iris


@pytest.fixture(scope="module")
def two_executors(tmp_path_factory):
    from conftest import mlos_up_process

    yield from mlos_up_process(tmp_path_factory.mktemp("mlos-executors"), ("--executors", "2"))


def _status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


def test_two_executors_serve_and_share_the_models(two_executors) -> None:
    info = two_executors.info
    assert info["executor_addr"] != info["executor-1_addr"]
    serves_iris(two_executors.scheduler_addr, *iris_sample(two_executors.home))
    text = scheduler_metrics(info)
    for name in ("executor", "executor-1"):  # both breakers exist and are closed
        assert f'mlos_scheduler_executor_breaker_state{{executor="{info[name + "_addr"]}"}} 0.0' in text


def test_executors_get_a_share_of_the_cores(two_executors) -> None:
    from proc_testkit import children_of

    pids = [p for p in children_of(two_executors.process.pid)
            if b"mlos_executor" in Path(f"/proc/{p}/cmdline").read_bytes()]
    assert len(pids) == 2, pids
    cpus = len(os.sched_getaffinity(0))
    for pid in pids:
        env = dict(e.split(b"=", 1) for e in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0") if b"=" in e)
        assert int(env[b"MLOS_EXECUTOR_INTRA_OP_THREADS"]) == max(1, cpus // 4)  # 2 executors x 2 slots
        status = _status(pid)
        rss_mb = int(status["VmRSS"].split()[0]) / 1024
        print(f"executor pid {pid}: {status['Threads']} threads, {rss_mb:.0f} MB RSS")
        assert int(status["Threads"]) < 64 and rss_mb < 1024, status
