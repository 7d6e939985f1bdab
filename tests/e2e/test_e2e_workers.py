"""`mlos up --scheduler-workers 2`: the unmodified tritonclient against a two-worker front door."""

from __future__ import annotations

import urllib.request

import numpy as np
import pytest

from e2e_testkit import make_inputs


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    from conftest import mlos_up_process

    yield from mlos_up_process(tmp_path_factory.mktemp("mlos-workers"), ("--scheduler-workers", "2"))


def test_tritonclient_on_many_connections(two_workers) -> None:
    import onnxruntime
    import tritonclient.grpc as grpcclient
    from mlos_cli.demo import prepare_demo_models

    iris = {m.name: m for m in prepare_demo_models(two_workers.home / "demo")}["iris"]
    arrays = iris.sample_inputs(batch=3, seed=4)
    session = onnxruntime.InferenceSession(str(iris.path), providers=["CPUExecutionProvider"])
    want = session.run(["label"], arrays)[0]
    for _ in range(8):  # a client per connection: the kernel spreads them over the workers
        client = grpcclient.InferenceServerClient(url=two_workers.scheduler_addr)
        try:
            assert client.is_server_ready()
            np.testing.assert_array_equal(client.infer("iris", make_inputs(arrays)).as_numpy("label"), want)
        finally:
            client.close()
    with urllib.request.urlopen(two_workers.info["metrics"]["scheduler"], timeout=10) as reply:
        text = reply.read().decode()
    assert 'mlos_scheduler_worker_up{worker="0"} 1.0' in text
    assert 'mlos_scheduler_worker_up{worker="1"} 1.0' in text
