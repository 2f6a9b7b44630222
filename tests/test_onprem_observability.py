"""The on-prem SLO rules through Prometheus' own tool: `promtool check rules` on the rendered
groups, and `promtool test rules` proving an alert fires on a synthetic breach and stays quiet on a
healthy series. promtool comes from the system's `prometheus` package (.ci/run installs it); CI sets
INFERSTACK_REQUIRE_PROMTOOL so a missing promtool fails there instead of skipping."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml
from promtool import needs_promtool, promtool

from conftest import STACKS
from inferstack.planning import observability as obs
from inferstack.planning.onprem.observability import grafana_dashboard, prometheus_rule_groups, scope
from inferstack.spec.loader import load_spec

SPEC = load_spec(STACKS / "onprem.yaml").spec
NS = "onprem-muc"
GROUPS = prometheus_rule_groups(SPEC, "muc", NS)


@needs_promtool
def test_the_rules_pass_promtool_check(tmp_path):
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": GROUPS}))
    run = promtool(tmp_path, "check", "rules", "rules.yaml")
    assert run.returncode == 0, run.stdout + run.stderr


def _alert(name: str) -> dict:
    return next(r for g in GROUPS for r in g["rules"] if r.get("alert") == name)


def _latency_series(slow: bool) -> list[dict]:
    """Two hours of vLLM's latency histogram at 10 requests a minute: all of them between 10 and
    60 s (p95 interpolates to 10 + 0.95 x 50 = 57.5 s, over the 30 s objective) or all under 10 s
    (p95 9.5 s)."""
    sel = f'namespace="{NS}"'
    under10 = "0+0x120" if slow else "0+10x120"
    return [
        {"series": f'vllm:e2e_request_latency_seconds_bucket{{{sel},le="10"}}', "values": under10},
        {"series": f'vllm:e2e_request_latency_seconds_bucket{{{sel},le="60"}}', "values": "0+10x120"},
        {"series": f'vllm:e2e_request_latency_seconds_bucket{{{sel},le="+Inf"}}', "values": "0+10x120"},
    ]


def _error_series(failing: float) -> list[dict]:
    """Two hours of /v1 requests at 100 a minute, `failing` of them 5xx."""
    sel = f'namespace="{NS}",handler="/v1/chat/completions"'
    bad = round(100 * failing)
    return [
        {"series": f'http_requests_total{{{sel},status="5xx"}}', "values": f"0+{bad}x120"},
        {"series": f'http_requests_total{{{sel},status="2xx"}}', "values": f"0+{100 - bad}x120"},
    ]


def _test(tmp_path, series: list[dict], alert: dict, fires: bool) -> subprocess.CompletedProcess:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": GROUPS}))
    expected = [{"exp_labels": alert["labels"], "exp_annotations": alert["annotations"]}] if fires else []
    tests = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "alert_rule_test": [{"eval_time": "110m", "alertname": alert["alert"], "exp_alerts": expected}],
            }
        ],
    }
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests))
    return promtool(tmp_path, "test", "rules", "tests.yaml")


@needs_promtool
@pytest.mark.parametrize("slow", [True, False])
def test_the_latency_alert_fires_on_slow_requests_only(tmp_path, slow):
    run = _test(tmp_path, _latency_series(slow), _alert("InferstackLatencyP95"), fires=slow)
    assert run.returncode == 0, run.stdout + run.stderr


@needs_promtool
@pytest.mark.parametrize(("failing", "fires"), [(0.10, True), (0.0, False), (0.04, False)])
def test_the_fast_burn_alert_fires_above_14_4_times_the_budget(tmp_path, failing, fires):
    """Budget 0.5%: the 1 h burn alert fires above 7.2% failing; 4% is under it, and under the
    5% error-rate objective too."""
    run = _test(tmp_path, _error_series(failing), _alert("InferstackAvailabilityBurn1h"), fires=fires)
    assert run.returncode == 0, run.stdout + run.stderr


def test_every_alert_routes_by_severity_and_names_its_slo():
    alerts = [r for g in GROUPS for r in g["rules"] if "alert" in r]
    assert {a["alert"] for a in alerts} == {
        "Inferstack" + "".join(p.capitalize() for p in a.key.split("-"))
        for a in obs.alerts(SPEC.observability.slos, obs.engine_series(SPEC))
    }
    assert all(a["labels"]["severity"] in ("page", "ticket") and a["labels"]["slo"] for a in alerts)


def test_the_dashboard_has_the_shared_panels_and_only_scraped_series():
    board = grafana_dashboard(SPEC, "muc", NS, "uid")
    titles = [p["title"] for p in board["panels"] if p["type"] == "timeseries"]
    assert titles == [p.title for p in obs.PANELS]
    scraped = (
        "vllm:",
        "http_requests_total",
        "DCGM_FI_DEV_",
        "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
        "kube_deployment_status_",
    )
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    assert exprs and all(any(s in e for s in scraped) for e in exprs)
    json.dumps(board)  # a ConfigMap value


def test_gpu_panels_take_each_device_once_and_mig_reads_engine_activity():
    """A time-sliced GPU has one series per pod sharing it; MIG instances have no GPU_UTIL."""
    series = obs.engine_series(SPEC)
    whole = obs.promql("gpu_memory_used", series, scope(NS))
    assert whole.startswith("sum(max by (Hostname, UUID, GPU_I_ID) (DCGM_FI_DEV_FB_USED{")
    assert obs.promql("gpu_utilization", series, scope(NS)).startswith(
        "avg(max by (Hostname, UUID, GPU_I_ID) (DCGM_FI_DEV_GPU_UTIL{"
    )
    mig = obs.promql("gpu_utilization", series, scope(NS, mig=True))
    assert "DCGM_FI_PROF_GR_ENGINE_ACTIVE" in mig and mig.endswith(" * 100")


@needs_promtool
def test_a_time_sliced_gpu_shared_by_two_pods_counts_its_memory_once(tmp_path):
    query = obs.promql("gpu_memory_used", obs.engine_series(SPEC), scope(NS))
    rules = {"groups": [{"name": "g", "rules": [{"record": "gpu_memory_bytes", "expr": query}]}]}
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules))
    sel = f'exported_namespace="{NS}",Hostname="n1",UUID="GPU-1"'
    tests = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": f'DCGM_FI_DEV_FB_USED{{{sel},exported_pod="a",vgpu="0"}}', "values": "1000x5"},
                    {"series": f'DCGM_FI_DEV_FB_USED{{{sel},exported_pod="b",vgpu="1"}}', "values": "1000x5"},
                ],
                "promql_expr_test": [
                    {
                        "expr": "gpu_memory_bytes",
                        "eval_time": "2m",
                        "exp_samples": [{"labels": "gpu_memory_bytes", "value": 1000 * 1048576}],
                    }
                ],
            }
        ],
    }
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests))
    run = promtool(tmp_path, "test", "rules", "tests.yaml")
    assert run.returncode == 0, run.stdout + run.stderr
