"""`mlos up` with and without auth, driven by the unmodified tritonclient and the `mlos` CLI.

Without MLOS_AUTH_TOKENS_FILE (the shared `suite`) the ready line says auth is off. With one, the
services call each other with the run's own service token, the CLI registers a model with an
admin token (`mlos --token-file`), and tritonclient needs `headers={"authorization": ...}`.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from e2e_testkit import make_inputs
from tritonclient.utils import InferenceServerException

from mlos_cli.demo import prepare_demo_models

if TYPE_CHECKING:
    from conftest import Suite

INFER_TOKEN = "e2e-infer-token-7f3a9c"
ADMIN_TOKEN = "e2e-admin-token-51be02"


def test_mlos_up_says_auth_is_off(suite: Suite) -> None:
    assert suite.info["auth"].split()[:2] == ["auth", "OFF:"], suite.info["auth"]
    assert "this host" in suite.info["auth"]


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Suite, Path]]:
    secrets = tmp_path_factory.mktemp("secrets")
    tokens = secrets / "tokens"
    tokens.write_text(f"{INFER_TOKEN} infer e2e-client\n{ADMIN_TOKEN} admin e2e-operator\n")
    admin_file = secrets / "admin-token"
    admin_file.write_text(ADMIN_TOKEN + "\n")
    env = {"MLOS_AUTH_TOKENS_FILE": str(tokens)}
    from conftest import mlos_up_process  # the e2e conftest, as the other e2e tests import it
    for suite in mlos_up_process(tmp_path_factory.mktemp("auth-home"), ("--no-demo",), env):
        yield suite, admin_file


def _register_iris(suite: Suite, admin_file: Path) -> tuple[dict[str, np.ndarray], np.ndarray]:
    import onnxruntime

    iris = {m.name: m for m in prepare_demo_models(suite.home / "demo")}["iris"]
    done = subprocess.run(
        [sys.executable, "-m", "mlos_cli", "--token-file", str(admin_file), "models", "register", "iris",
         str(iris.path), "--registry", suite.info["registry_addr"], "--addr", suite.scheduler_addr],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    arrays = iris.sample_inputs(batch=2, seed=9)
    session = onnxruntime.InferenceSession(str(iris.path), providers=["CPUExecutionProvider"])
    return arrays, session.run(["label"], arrays)[0]


def test_tokens_protect_the_suite_and_tritonclient_sends_them(secured: tuple[Suite, Path]) -> None:
    suite, admin_file = secured
    assert suite.info["auth"].startswith("auth      on: bearer tokens from"), suite.info["auth"]
    arrays, want = _register_iris(suite, admin_file)  # the CLI's admin token; the services' own service token
    headers = {"authorization": f"Bearer {INFER_TOKEN}"}

    client = grpcclient.InferenceServerClient(url=suite.scheduler_addr)
    try:
        assert client.is_server_ready(headers=headers)
        got = client.infer("iris", make_inputs(arrays), headers=headers).as_numpy("label")
        np.testing.assert_array_equal(got, want)
        with pytest.raises(InferenceServerException) as info:
            client.infer("iris", make_inputs(arrays))
        assert info.value.status() == "StatusCode.UNAUTHENTICATED"
        with pytest.raises(InferenceServerException) as info:
            client.unload_model("iris", headers=headers)
        assert info.value.status() == "StatusCode.PERMISSION_DENIED"
        assert INFER_TOKEN not in info.value.message()
    finally:
        client.close()

    http = httpclient.InferenceServerClient(url=suite.info["scheduler_http"].removeprefix("http://"))
    try:
        inputs = [httpclient.InferInput(n, list(a.shape), "FP32") for n, a in arrays.items()]
        for i, a in zip(inputs, arrays.values()):
            i.set_data_from_numpy(a)
        np.testing.assert_array_equal(http.infer("iris", inputs, headers=headers).as_numpy("label"), want)
        with pytest.raises(InferenceServerException) as info:
            http.infer("iris", inputs)
        assert "401" in str(info.value.status()) or "bearer" in str(info.value.message()).lower()
    finally:
        http.close()

    logs = "".join(p.read_text(errors="replace") for p in (suite.home / "logs").glob("*.log"))
    assert INFER_TOKEN not in logs and ADMIN_TOKEN not in logs
