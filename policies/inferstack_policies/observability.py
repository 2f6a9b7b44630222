"""Rules on what watches a serving target: an SLO is only kept if something alerts when it is not."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from pulumi_policy import EnforcementLevel, Severity, StackValidationArgs

from ._rules import ASG, GCP_TEMPLATES, TPU_VM, get, items, queued_tpu_nodes, stack_rule

METRIC_ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
PROMETHEUS_RULE = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"
K8S_DEPLOYMENT = "kubernetes:apps/v1:Deployment"
ALERT_POLICY = "gcp:monitoring/alertPolicy:AlertPolicy"
# The label a GCP target's serving nodes and alert policies carry (planning.gcp_observability): the
# resources' label, and the PromQL conditions' label of the same value.
GCP_TARGET_LABEL, PROMQL_TARGET_LABEL = "inferstack-target", "inferstack_target"
# The latency series each platform's alarms read (planning.observability): CloudWatch's
# distributions, and the engines' Prometheus histograms.
CLOUDWATCH_LATENCY = frozenset({"request_latency_seconds", "time_to_first_token_seconds"})
LATENCY_HINTS = ("latency", "time_to_first_token", "tgi_request_duration")


def _tags(props: Any) -> dict[str, str]:
    return {get(t, "key"): get(t, "value") for t in items(props, "tags")}


def _alarmed_groups(resources) -> set[str]:
    groups: set[str] = set()
    for r in resources:
        if r.resource_type != METRIC_ALARM:
            continue
        queries = list(items(r.props, "metricQueries"))
        direct = {"metricName": get(r.props, "metricName"), "dimensions": get(r.props, "dimensions") or {}}
        for q in [get(q, "metric") or {} for q in queries] + [direct]:
            if get(q, "metricName") in CLOUDWATCH_LATENCY:
                group = get(q, "dimensions", "AutoScalingGroupName")
                if group:
                    groups.add(group)
    return groups


def _watched_namespaces(resources) -> set[str]:
    out: set[str] = set()
    for r in resources:
        if r.resource_type != PROMETHEUS_RULE:
            continue
        for group in items(r.props, "spec", "groups"):
            for rule in items(group, "rules"):
                expr = str(get(rule, "expr") or "")
                if get(rule, "alert") and any(h in expr for h in LATENCY_HINTS):
                    out.add(get(r.props, "metadata", "namespace"))
    return out


def _watched_gcp_targets(resources) -> set[str]:
    out: set[str] = set()
    for r in resources:
        if r.resource_type != ALERT_POLICY:
            continue
        for c in items(r.props, "conditions"):
            promql = get(c, "conditionPrometheusQueryLanguage") or {}
            target = get(promql, "labels", PROMQL_TARGET_LABEL)
            if target and any(h in str(get(promql, "query") or "") for h in LATENCY_HINTS):
                out.add(target)
    return out


def _gcp_serving_nodes(r) -> list[dict]:
    """The labels of what a GCP serving target runs on: its instance template, TPU VMs, or the
    nodes of its queued resources."""
    if r.resource_type in GCP_TEMPLATES or r.resource_type == TPU_VM:
        return [get(r.props, "labels") or {}]
    return [get(n, "labels") or {} for n in queued_tpu_nodes(r.resource_type, r.props)]


@stack_rule(
    "observability-serving-target-require-latency-alarm",
    "Every serving target has at least one alarm on its request latency or time to first token: an "
    "Auto Scaling group of serving nodes a CloudWatch alarm on its latency distribution, a GCP "
    "group's instance template or TPU slice a Cloud Monitoring alert policy whose PromQL condition "
    "reads its engine's latency histogram, an on-prem serving Deployment a PrometheusRule alert on "
    "the engine's latency histogram in its namespace. "
    "Advisory: a team may watch latency elsewhere, but then the plan cannot show it.",
    severity=Severity.LOW,
    remediation="state latency objectives in observability.slos (inferstack alarms on each), or do not set "
    "them all to null.",
    enforcement=EnforcementLevel.ADVISORY,
)
def latency_alarm(args: StackValidationArgs, config: Mapping[str, Any]) -> Iterator[tuple[str, str | None]]:
    alarmed = _alarmed_groups(args.resources)
    watched = _watched_namespaces(args.resources)
    watched_gcp = _watched_gcp_targets(args.resources)
    for r in args.resources:
        for labels in _gcp_serving_nodes(r):
            target = labels.get(GCP_TARGET_LABEL)
            if labels.get("workload", "serving") == "serving" and target and target not in watched_gcp:
                yield f"The serving target {target} has no Cloud Monitoring latency alert.", r.urn
        if r.resource_type == ASG and _tags(r.props).get("workload", "serving") == "serving":
            name = get(r.props, "name")
            if name and name not in alarmed:
                yield f"The serving group {name} has no latency alarm.", r.urn
        if r.resource_type == K8S_DEPLOYMENT and get(r.props, "metadata", "labels", "workload") == "serving":
            namespace = get(r.props, "metadata", "namespace")
            if namespace not in watched:
                yield f"The serving Deployment in {namespace} has no latency alert.", r.urn
