"""deploy/grafana/mlos-dashboard.json queries only metrics the services define: every metric name
in every panel's PromQL is found among the prometheus_client definitions in services/ (a Counter
as <name>_total, a Histogram as <name>_bucket/_sum/_count, a Gauge as itself), so a renamed metric
breaks this test instead of silently emptying a panel."""

from __future__ import annotations

import json
import re

from deploy_testkit import DEPLOY, ROOT

DASHBOARD = DEPLOY / "grafana" / "mlos-dashboard.json"
DEFINITION = re.compile(
    r"\b(Counter|Gauge|Histogram|Summary|CounterMetricFamily|GaugeMetricFamily|HistogramMetricFamily)\(\s*\"([a-z_:]+)\""
)
SUFFIXES = {"Counter": ("_total",), "CounterMetricFamily": ("_total",), "Gauge": ("",), "GaugeMetricFamily": ("",),
            "Histogram": ("_bucket", "_sum", "_count"), "HistogramMetricFamily": ("_bucket", "_sum", "_count"),
            "Summary": ("_sum", "_count")}
PROMQL_WORDS = {"sum", "by", "rate", "max", "min", "avg", "histogram_quantile", "le", "without", "irate", "increase"}


def exposed_names() -> dict[str, str]:
    """Every series name the services' metric definitions expose -> the definition's kind."""
    names = {}
    for path in (ROOT / "services").rglob("*.py"):
        for kind, name in DEFINITION.findall(path.read_text()):
            for suffix in SUFFIXES[kind]:
                names[name + suffix] = kind
    return names


def queried_names() -> set[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    names = set()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = re.sub(r"\{[^}]*\}|\[[^]]*\]|\"[^\"]*\"", "", target["expr"])  # label matchers, ranges, strings
            expr = re.sub(r"\bby \([^)]*\)", "", expr)
            names |= {w for w in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr) if w not in PROMQL_WORDS}
    return names


def test_the_definitions_are_found() -> None:
    names = exposed_names()
    assert names["mlos_inference_request_success_total"] == "Counter"
    assert names["mlos_inference_pending_request_count"] == "GaugeMetricFamily"
    assert "mlos_inference_request_duration_seconds_bucket" in names and len(names) > 60


def test_every_queried_metric_is_defined() -> None:
    queried = queried_names()
    assert len(queried) >= 15, queried
    missing = sorted(queried - set(exposed_names()))
    assert not missing, f"the dashboard queries metrics no service defines: {missing}"


def test_the_dashboard_covers_every_service_and_uses_the_provisioned_datasource() -> None:
    queried = queried_names()
    for prefix in ("mlos_inference_", "mlos_scheduler_", "mlos_executor_", "mlos_predictor_", "mlos_generation_", "mlos_grpc_"):
        assert any(q.startswith(prefix) for q in queried), prefix
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)) and dashboard["uid"] == "mlos-overview"
    assert all(t["datasource"]["uid"] == "${datasource}" for p in dashboard["panels"] for t in p["targets"])
