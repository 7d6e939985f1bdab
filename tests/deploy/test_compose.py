"""deploy/docker-compose.yaml, validated by docker-compose 1.29.2's own `config` (its schema and
interpolation; no engine needed), then read back to check what the schema cannot: every service
restarts, is health-checked and restricted, starts after its peers are healthy, and the
scheduler's executor list and Prometheus's scrape targets name services that exist."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from deploy_testkit import DEPLOY

COMPOSE_FILE = DEPLOY / "docker-compose.yaml"
MLOS = {"registry", "predictor", "executor-0", "executor-1", "scheduler"}


def compose_config(compose: Path, path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(compose), "-f", str(path), *args, "config"], capture_output=True, text=True,
                          timeout=120, cwd=path.parent, env={"PATH": "/usr/bin:/bin"})


@pytest.fixture(scope="module")
def resolved(compose: Path) -> dict:
    """The file as docker-compose resolves it with the observability profile (anchors merged)."""
    result = compose_config(compose, COMPOSE_FILE, "--profile", "observability")
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_compose_config_accepts_the_file(compose: Path) -> None:
    result = compose_config(compose, COMPOSE_FILE)
    assert result.returncode == 0, result.stderr


def test_compose_config_rejects_a_broken_copy(compose: Path, tmp_path: Path) -> None:
    broken = tmp_path / "docker-compose.yaml"
    broken.write_text(COMPOSE_FILE.read_text().replace("{condition: service_healthy}", "{condition: service_sick}", 1))
    result = compose_config(compose, broken)
    assert result.returncode != 0 and "service_sick" in result.stderr, result.stderr


def test_services_restart_are_health_checked_and_restricted(resolved: dict) -> None:
    services = resolved["services"]
    assert MLOS | {"otel-collector", "prometheus", "grafana"} == set(services)
    for name in MLOS:
        svc = services[name]
        assert svc["restart"] == "unless-stopped", name
        assert svc["healthcheck"]["test"] == ["CMD", "mlos", "health"], name
        assert svc["environment"]["MLOS_SERVICE"] == name.split("-")[0], name
        assert svc["read_only"] is True and svc["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in svc["security_opt"], name
        assert svc["image"] == "mlos:latest", name
        for peer, condition in svc.get("depends_on", {}).items():
            assert condition == {"condition": "service_healthy"}, (name, peer)
    assert set(services["scheduler"]["depends_on"]) == MLOS - {"scheduler"}


def test_registry_keeps_its_data_in_a_named_volume(resolved: dict) -> None:
    (mount,) = resolved["services"]["registry"]["volumes"]  # docker-compose 1.x prints SOURCE:TARGET:MODE
    source, target, _ = mount.split(":")
    assert target == "/var/lib/mlos" and source in resolved["volumes"]


def test_the_scheduler_and_prometheus_name_every_executor(resolved: dict) -> None:
    services = resolved["services"]
    executors = {n for n in services if n.startswith("executor-")}
    addrs = services["scheduler"]["environment"]["MLOS_SCHEDULER_EXECUTOR_ADDRS"].split(",")
    assert {a.split(":")[0] for a in addrs} == executors
    assert {services[e]["environment"]["MLOS_EXECUTOR_EXECUTOR_ID"] for e in executors} == executors
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = {t.split(":")[0] for job in scrape["scrape_configs"] for c in job["static_configs"] for t in c["targets"]}
    assert targets == MLOS


def test_observability_is_an_optional_profile(resolved: dict) -> None:
    for name, svc in resolved["services"].items():
        assert svc.get("profiles") == (None if name in MLOS else ["observability"]), name
    grafana_mounts = " ".join(str(v) for v in resolved["services"]["grafana"]["volumes"])
    assert "mlos-dashboard.json" in grafana_mounts and "provisioning" in grafana_mounts
