"""deploy/helm/mlos rendered by Helm's own engine (`helm lint`, `helm template`), every manifest
validated by `kubernetes-validate --strict` (the Kubernetes OpenAPI schemas, unknown fields
refused), then read back for what operators rely on: restricted pod security with writable
folders on volumes, gRPC probes, a termination grace above the services' drain, a default-deny
NetworkPolicy, the registry's PVC, an HPA over the executors' StatefulSet and the scheduler
naming every executor pod the HPA may make, GPUs and auth Secrets from values."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from deploy_testkit import DEPLOY

from mlos_common.config import ServiceSettings

CHART = DEPLOY / "helm" / "mlos"
FULL = [  # every optional part switched on
    "--set", "executor.gpu.count=1", "--set", "auth.tokens.service-token=s3cret", "--set", "tls.cert=CERT",
    "--set", "tls.key=KEY", "--set", "tls.ca=CA", "--set", "otlpEndpoint=http://otel:4317",
    "--set", "networkPolicy.metricsScrapers[0].namespaceSelector.matchLabels.team=monitoring",
    "--set", "networkPolicy.clients[0].podSelector.matchLabels.role=client",
    "--set", "networkPolicy.otlpCollector[0].namespaceSelector.matchLabels.team=observability",
]
VALUE_SETS = {"defaults": [], "full": FULL, "no-autoscaling": ["--set", "executor.autoscaling.enabled=false"]}


def render(helm: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(helm), "template", "t", str(CHART), "--namespace", "ml", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module", params=sorted(VALUE_SETS))
def rendered(request: pytest.FixtureRequest, helm: Path) -> tuple[str, list[dict]]:
    result = render(helm, *VALUE_SETS[request.param])
    assert result.returncode == 0, result.stderr
    return result.stdout, [d for d in yaml.safe_load_all(result.stdout) if d]


def by_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def workloads(docs: list[dict]) -> dict[str, dict]:
    return {d["metadata"]["labels"]["app.kubernetes.io/component"]: d for d in docs
            if d["kind"] in ("Deployment", "StatefulSet")}


def test_helm_lint(helm: Path) -> None:
    for args in VALUE_SETS.values():
        result = subprocess.run([str(helm), "lint", "--strict", str(CHART), *args], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr


def test_every_manifest_passes_kubernetes_validate_strict(rendered, kubernetes_validate: Path, tmp_path: Path) -> None:
    text, docs = rendered
    path = tmp_path / "rendered.yaml"
    path.write_text(text)
    result = subprocess.run([str(kubernetes_validate), "--strict", str(path)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(" passed for resource ") == len(docs), result.stdout


def test_kubernetes_validate_strict_refuses_an_unknown_field(kubernetes_validate: Path, tmp_path: Path, helm: Path) -> None:
    field = "readOnlyRootFilesystem: true"
    text = render(helm).stdout.replace(field, f"{field}\n            readOnlyRoot: true", 1)
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    result = subprocess.run([str(kubernetes_validate), "--strict", str(path)], capture_output=True, text=True, timeout=300)
    assert result.returncode != 0 and "readOnlyRoot" in result.stdout + result.stderr


def test_pods_are_restricted_and_write_only_to_volumes(rendered) -> None:
    _, docs = rendered
    assert set(workloads(docs)) == {"registry", "predictor", "executor", "scheduler"}
    for component, workload in workloads(docs).items():
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        (container,) = pod["containers"]
        sc = container["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]} and sc["runAsNonRoot"] is True
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert mounts["/tmp"] == "tmp" and mounts["/var/lib/mlos"] == "data", component
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["MLOS_SERVICE"] == component and env[f"MLOS_{component.upper()}_HOST"] == "0.0.0.0"


def test_grpc_probes_and_a_grace_above_the_drain(rendered) -> None:
    _, docs = rendered
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["drainGraceSeconds"] == ServiceSettings().shutdown_grace_s  # the services' default drain
    for component, workload in workloads(docs).items():
        pod = workload["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        grpc_port = {p["name"]: p["containerPort"] for p in container["ports"]}["grpc"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        drain_s = float(env[f"MLOS_{component.upper()}_SHUTDOWN_GRACE_S"])
        assert pod["terminationGracePeriodSeconds"] > drain_s, component
        assert container["readinessProbe"]["grpc"] == {"port": grpc_port}, component
        assert container["livenessProbe"]["grpc"] == {"port": grpc_port, "service": "mlos.liveness"}, component
        assert container["startupProbe"]["grpc"]["port"] == grpc_port


def test_registry_data_on_a_pvc(rendered) -> None:
    _, docs = rendered
    registry = workloads(docs)["registry"]
    assert registry["spec"]["strategy"] == {"type": "Recreate"} and registry["spec"]["replicas"] == 1
    (data,) = [v for v in registry["spec"]["template"]["spec"]["volumes"] if v["name"] == "data"]
    assert data["persistentVolumeClaim"]["claimName"] in by_kind(docs, "PersistentVolumeClaim")


def test_executors_behind_a_headless_service_named_to_the_scheduler(rendered) -> None:
    text, docs = rendered
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    executor = workloads(docs)["executor"]
    assert executor["kind"] == "StatefulSet"
    service = by_kind(docs, "Service")[executor["spec"]["serviceName"]]
    assert service["spec"]["clusterIP"] == "None"
    scheduler = workloads(docs)["scheduler"]["spec"]["template"]["spec"]["containers"][0]
    addrs = {e["name"]: e.get("value") for e in scheduler["env"]}["MLOS_SCHEDULER_EXECUTOR_ADDRS"].split(",")
    pod_names = [f"{executor['metadata']['name']}-{i}" for i in range(values["executor"]["maxReplicas"])]
    assert addrs == [f"{p}.{service['metadata']['name']}.ml.svc:{values['executor']['grpcPort']}" for p in pod_names]
    hpas = by_kind(docs, "HorizontalPodAutoscaler")
    if "replicas" in executor["spec"]:  # autoscaling off
        assert not hpas
    else:
        (hpa,) = hpas.values()
        target = {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": executor["metadata"]["name"]}
        assert hpa["spec"]["scaleTargetRef"] == target
        assert hpa["spec"]["maxReplicas"] == len(addrs)


def test_default_deny_network_policy_with_the_peer_paths(rendered) -> None:
    _, docs = rendered
    policies = by_kind(docs, "NetworkPolicy")
    deny = policies["t-mlos-default-deny"]["spec"]
    assert deny["policyTypes"] == ["Ingress", "Egress"] and "ingress" not in deny and "egress" not in deny
    callers = {}
    for name, policy in policies.items():
        if name.endswith("-peers"):
            component = policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
            callers[component] = {p["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
                                  for rule in policy["spec"]["ingress"] for p in rule["from"]}
    assert callers == {"registry": {"predictor", "executor", "scheduler"}, "predictor": {"executor", "scheduler"},
                       "executor": {"scheduler"}}


def test_gpus_and_auth_secrets_from_values(helm: Path) -> None:
    docs = [d for d in yaml.safe_load_all(render(helm, *FULL).stdout) if d]
    executor = workloads(docs)["executor"]["spec"]["template"]["spec"]
    resources = executor["containers"][0]["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == 1 and resources["requests"]["nvidia.com/gpu"] == 1
    secrets = by_kind(docs, "Secret")
    assert secrets["t-mlos-tls"]["type"] == "kubernetes.io/tls"
    assert set(secrets["t-mlos-tokens"]["stringData"]) == {"service-token"}
    for workload in workloads(docs).values():
        pod = workload["spec"]["template"]["spec"]
        assert {v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v} == {"t-mlos-tls", "t-mlos-tokens"}
        assert all(m.get("readOnly") for m in pod["containers"][0]["volumeMounts"] if m["name"] in ("tls", "tokens"))
    defaults = [d for d in yaml.safe_load_all(render(helm).stdout) if d]
    assert not by_kind(defaults, "Secret")  # nothing made or mounted until auth is configured
    assert "nvidia.com/gpu" not in str(workloads(defaults)["executor"])


def test_a_tls_cert_without_its_key_is_refused(helm: Path) -> None:
    result = render(helm, "--set", "tls.cert=CERT")
    assert result.returncode != 0 and "tls.key is needed with tls.cert" in result.stderr
