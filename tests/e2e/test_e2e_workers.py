"""`mlos up --scheduler-workers 2`: the unmodified tritonclient against a two-worker front door."""

from __future__ import annotations

import pytest
from e2e_testkit import iris_sample, scheduler_metrics, serves_iris


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    from conftest import mlos_up_process

    yield from mlos_up_process(tmp_path_factory.mktemp("mlos-workers"), ("--scheduler-workers", "2"))


def test_tritonclient_on_many_connections(two_workers) -> None:
    arrays, want = iris_sample(two_workers.home)
    for _ in range(8):  # a client per connection: the kernel spreads them over the workers
        serves_iris(two_workers.scheduler_addr, arrays, want)
    text = scheduler_metrics(two_workers.info)
    assert 'mlos_scheduler_worker_up{worker="0"} 1.0' in text
    assert 'mlos_scheduler_worker_up{worker="1"} 1.0' in text
