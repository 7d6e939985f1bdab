"""A predictor process without scikit-learn/skl2onnx: serves its priors, says training is off."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from learn_testkit import base_ms, memory, rate

from mlos_common.errors import FailedPrecondition
from mlos_predictor.client import PredictorClient

BLOCKER = '''
import importlib.abc, sys

class _NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("sklearn", "skl2onnx"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _NotInstalled())
'''


@pytest.fixture
def predictor_without_learn(tmp_path: Path):
    """`python -m mlos_predictor` in a process where scikit-learn and skl2onnx cannot be imported."""
    (tmp_path / "sitecustomize.py").write_text(BLOCKER)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
               MLOS_PREDICTOR_GRPC_PORT="0", MLOS_PREDICTOR_METRICS_PORT="-1", MLOS_PREDICTOR_DATA_DIR=str(tmp_path))
    log = (tmp_path / "predictor.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "mlos_predictor"], stdout=subprocess.PIPE, stderr=log, env=env)
    try:
        assert proc.stdout is not None
        line = json.loads(proc.stdout.readline())
        yield f"127.0.0.1:{line['grpc_port']}", tmp_path / "predictor.log"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


async def test_serves_priors_and_refuses_to_train(predictor_without_learn) -> None:
    addr, log_path = predictor_without_learn
    async with PredictorClient(addr) as c:
        await c.report([rate(base_ms(), 600, "m")] + [memory(base_ms() + i) for i in range(300)])
        with pytest.raises(FailedPrecondition, match=r"training is off: sklearn and skl2onnx not installed \(pip install"):
            await c.train()
        (score,) = (await c.scores("workload")).scores
        infos = await c.model_info()
    assert score.prediction.value == pytest.approx(10.0) and score.prediction.model_version == 0
    assert {m.source for m in infos} == {"prior"}
    assert "training is off" in log_path.read_text()
