"""The AWS binding of the observability description: the agent's configuration, the dashboard and
the SLO alarms of the example stacks, checked against what the nodes publish and CloudWatch's rules."""

from __future__ import annotations

import json
import re

import pytest

from conftest import EXAMPLE_STACKS
from inferstack import catalog
from inferstack.planning import aws_observability as awo
from inferstack.planning import observability as obs
from inferstack.planning.aws_fleet import METRICS_NAMESPACE, plan_aws_fleet
from inferstack.spec.loader import load_spec
from inferstack.spec.models import AwsGpuFleetTarget, Slos

ENGINES = sorted(catalog.engines())


def _published(engine: str) -> set[tuple[str, str]]:
    """(namespace, metric) a node publishes: the agent's renamed engine series, its GPU metrics,
    the node agent's distributions, and the group metrics Auto Scaling publishes itself."""
    out = {(METRICS_NAMESPACE, name) for _, name in awo.renames(engine)}
    out |= {(METRICS_NAMESPACE, m) for m in obs.CLOUDWATCH_GPU.values()}
    out |= {(METRICS_NAMESPACE, h.metric) for h in awo.histogram_exports(engine)}
    out.add(("AWS/AutoScaling", "GroupInServiceInstances"))
    return out


@pytest.mark.parametrize("engine", ENGINES)
def test_every_metric_the_dashboard_names_is_one_the_nodes_publish(engine):
    body = json.loads(awo.dashboard_body([awo.DashboardTarget("t", "eu-central-1", "g", engine)], METRICS_NAMESPACE))
    named = set()
    for w in body["widgets"]:
        for row in w["properties"].get("metrics", []):
            if isinstance(row[0], str):
                named.add((row[0], row[1]))
    assert named and named <= _published(engine)


@pytest.mark.parametrize("engine", ENGINES)
def test_the_dashboard_is_a_valid_cloudwatch_body(engine):
    """Dashboard body structure (CloudWatch "Dashboard body structure and syntax"): a 24-column grid,
    metric ids starting with a lower-case letter and unique in their widget, every expression's ids
    defined in the widget, no more than 500 widgets."""
    targets = [awo.DashboardTarget(n, "eu-central-1", f"g-{n}", engine) for n in ("b", "a")]
    body = json.loads(awo.dashboard_body(targets, METRICS_NAMESPACE))
    widgets = body["widgets"]
    assert len(widgets) <= 500
    assert widgets[0]["properties"]["markdown"].startswith("## a ")  # rows in name order
    for w in widgets:
        assert w["x"] >= 0 and w["x"] + w["width"] <= 24 and w["height"] > 0
        ids = []
        for row in w["properties"].get("metrics", []):
            options = row[-1]
            assert re.fullmatch(r"[a-z][a-zA-Z0-9_]*", options["id"]), options
            ids.append(options["id"])
            if "expression" in options:
                for ref in re.findall(r"\b(s\d[a-z])\b", options["expression"]):
                    assert ref in ids, (ref, options)
        assert len(ids) == len(set(ids))
    # The first row: the panels in their order, a note where the engine publishes nothing for one.
    row = widgets[1 : 1 + len(obs.PANELS)]
    titles = [w["properties"].get("title") or w["properties"]["markdown"].split("**")[1] for w in row]
    assert titles == [p.title for p in obs.PANELS]


@pytest.mark.parametrize("engine", ENGINES)
def test_the_agents_scrape_renames_each_engine_series_it_keeps(engine):
    config = awo.prometheus_config(engine, 8000, "g")
    relabel = config["scrape_configs"][0]["metric_relabel_configs"]
    for rule in relabel:
        re.compile(rule["regex"])  # Prometheus takes RE2; these use nothing beyond it
    *renames, keep = relabel
    assert keep["action"] == "keep" and keep["source_labels"] == ["__name__"]
    kept = set(keep["regex"].strip("()").split("|"))
    assert {r["replacement"] for r in renames} == kept
    # A series renamed only when its labels match: vLLM's /v1 handlers, not its /health probes.
    if engine == "vllm":
        (requests,) = [r for r in renames if r["replacement"] == "engine_requests"]
        assert requests["source_labels"] == ["__name__", "handler"]
        assert re.fullmatch(requests["regex"], "http_requests_total;/v1/chat/completions")
        assert not re.fullmatch(requests["regex"], "http_requests_total;/health")


def test_vllm_errors_are_the_request_counters_5xx_dimension():
    (plain, errors) = awo.metric_declarations("vllm")
    assert plain["dimensions"] == [["AutoScalingGroupName"]]
    assert errors == {
        "source_labels": ["job", "status"],
        "label_matcher": "^engine;5xx$",
        "dimensions": [["AutoScalingGroupName", "status"]],
        "metric_selectors": ["^engine_requests$"],
    }


def test_the_agent_publishes_in_the_namespace_the_node_role_may_write():
    config = awo.agent_config("vllm", METRICS_NAMESPACE, "g", "/inferstack/x/metrics")
    assert config["metrics"]["namespace"] == METRICS_NAMESPACE
    assert config["logs"]["metrics_collected"]["prometheus"]["emf_processor"]["metric_namespace"] == METRICS_NAMESPACE
    assert config["metrics"]["metrics_collected"]["nvidia_gpu"]["append_dimensions"] == {"AutoScalingGroupName": "g"}


def _aws_plans():
    for path in EXAMPLE_STACKS:
        spec = load_spec(path).spec
        for name, target in sorted(spec.targets.items()):
            if isinstance(target, AwsGpuFleetTarget):
                yield f"{path.stem}/{name}", plan_aws_fleet(spec, path.stem, name)


PLANS = dict(_aws_plans())


@pytest.mark.parametrize("key", sorted(PLANS))
def test_every_slo_alarm_is_one_cloudwatch_accepts(key):
    """PutMetricAlarm: a period of 10, 20, 30 or a multiple of 60 s; period x evaluation periods at
    most 1 day under an hour's period, 7 days otherwise; query ids starting lower-case, exactly one
    returning data. PutCompositeAlarm: the rule names alarms that exist."""
    plan = PLANS[key]
    assert plan.slo_alarms
    names = set()
    for slo in plan.slo_alarms:
        for w in slo.windows:
            assert w.period % 60 == 0 and w.period <= (86400 if w.period < 3600 else 604800)
            assert sum(q.return_data for q in w.queries) == 1
            assert all(re.fullmatch(r"[a-z][a-zA-Z0-9_]*", q.id) for q in w.queries)
            names.add(w.name)
        assert re.findall(r'ALARM\("([^"]+)"\)', slo.rule) == [w.name for w in slo.windows]
    assert len(names) == 2 * len(plan.slo_alarms)


def test_the_burn_rate_alarms_by_hand():
    """availability 99.5% over 30 days: a budget of 0.5% of requests. Spending 2% of it in an hour
    is a burn rate of 0.02 x 720 h / 1 h = 14.4, an error ratio of 14.4 x 0.005 = 0.072; 5% in 6 h
    is 6x (0.03); 10% in a day 3x (0.015); 10% in 3 days 1x (0.005)."""
    alerts = {a.key: a for a in obs.alerts(Slos(), catalog.engines()["vllm"].series)}
    assert alerts["availability-burn-1h"].threshold == pytest.approx(0.072)
    assert alerts["availability-burn-6h"].threshold == pytest.approx(0.03)
    assert alerts["availability-burn-1d"].threshold == pytest.approx(0.015)
    assert alerts["availability-burn-3d"].threshold == pytest.approx(0.005)
    # A 7-day window: 2% in an hour is 0.02 x 168 = 3.36x.
    week = {a.key: a for a in obs.alerts(Slos(window_days=7), catalog.engines()["vllm"].series)}
    assert week["availability-burn-1h"].threshold == pytest.approx(3.36 * 0.005)


def test_cloudwatch_keeps_the_windows_it_can_evaluate_and_the_plan_says_which_it_left():
    plan = next(iter(PLANS.values()))
    assert plan.observability is not None
    kept = {a.key for a in plan.observability.alerts}
    assert "availability-burn-1d" in kept and "availability-burn-3d" not in kept
    assert any("availability-burn-3d" in why for why in plan.observability.left_out)


def test_an_engine_without_a_series_gets_no_alarm_on_it_and_a_stated_objective_is_refused():
    tgi = catalog.engines()["tgi"].series
    assert "ttft-p95" not in {a.key for a in obs.alerts(Slos(), tgi)}
    assert obs.unavailable(Slos(), tgi) == [("ttft_p95_seconds", "publishes no time-to-first-token histogram")]
    trt = catalog.engines()["tensorrt-llm"].series
    keys = {a.key for a in obs.alerts(Slos(), trt)}
    assert "error-rate" not in keys and not any(k.startswith("availability") for k in keys)


def test_the_latency_alarm_reads_the_nodes_distribution_at_its_percentile():
    plan = PLANS["dev/burst"]
    (p95,) = [s for s in plan.slo_alarms if s.alert.key == "latency-p95"]
    long, short = p95.windows
    assert (long.period, short.period, long.threshold) == (3600, 300, 30.0)
    (q,) = long.queries
    assert (q.metric, q.stat, q.dimensions) == (
        "request_latency_seconds",
        "p95",
        (("AutoScalingGroupName", plan.asg_name),),
    )
