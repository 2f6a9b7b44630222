"""GPU cost guardrails (advisory by default): a ceiling on the GPUs a stack can scale to, and
spot capacity for batch pools.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from pulumi_policy import EnforcementLevel, Severity, StackValidationArgs

from ._rules import get, items, stack_rule

ASG = "aws:autoscaling/group:Group"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"


def _instance_types(group, templates: dict[str, Any]) -> list[str]:
    """Instance types a group may launch: its mixed policy's overrides, else its template's type."""
    overrides = [get(o, "instanceType") for o in items(group.props, "mixedInstancesPolicy", "launchTemplate", "overrides")]
    if overrides:
        return [t for t in overrides if t]
    for dep in group.property_dependencies.get("launchTemplate", []) + group.dependencies:
        if dep.urn in templates and get(templates[dep.urn].props, "instanceType"):
            return [get(templates[dep.urn].props, "instanceType")]
    lt_id = get(group.props, "launchTemplate", "id")
    for t in templates.values():
        if lt_id and get(t.props, "name") == lt_id:
            return [get(t.props, "instanceType")]
    return []


@stack_rule(
    "cost-stack-gpu-count-limit",
    "The GPUs a stack can scale to (every group at its max size) stay under a ceiling.",
    severity=Severity.MEDIUM,
    remediation="lower max capacity, pick smaller instance types, or raise maxGpus in the pack config.",
    enforcement=EnforcementLevel.ADVISORY,
    config={
        "maxGpus": {"type": "integer", "minimum": 0, "default": 64},
        "gpusPerInstanceType": {
            "type": "object",
            "additionalProperties": {"type": "number"},
            "default": {},
            "description": "GPUs per instance type (inferstack policy-config fills it from the catalog).",
        },
    },
)
def gpu_ceiling(args: StackValidationArgs, config: Mapping[str, Any]) -> Iterator[tuple[str, str | None]]:
    gpus = config["gpusPerInstanceType"]
    templates = {r.urn: r for r in args.resources if r.resource_type == LAUNCH_TEMPLATE}
    total = 0.0
    for group in (r for r in args.resources if r.resource_type == ASG):
        types = _instance_types(group, templates)
        unknown = [t for t in types if t not in gpus]
        if unknown or not types:
            yield f"Cannot count the GPUs of {group.name}: no GPU count for {unknown or 'its instance type'}.", group.urn
            continue
        total += (get(group.props, "maxSize") or 0) * max(gpus[t] for t in types)
    if total > config["maxGpus"]:
        yield f"At max capacity the stack runs {total:g} GPUs, above the ceiling of {config['maxGpus']}.", None


@stack_rule(
    "cost-aws-autoscalinggroup-require-spot-for-batch",
    "Groups tagged workload=batch run on spot capacity only.",
    severity=Severity.LOW,
    remediation="enable spot with no on-demand base or share for batch pools.",
    enforcement=EnforcementLevel.ADVISORY,
    config={"spotRequiredForBatch": {"type": "boolean", "default": True}},
)
def batch_spot(args: StackValidationArgs, config: Mapping[str, Any]) -> Iterator[tuple[str, str | None]]:
    if not config["spotRequiredForBatch"]:
        return
    for group in (r for r in args.resources if r.resource_type == ASG):
        tags = {get(t, "key"): get(t, "value") for t in items(group.props, "tags")}
        if tags.get("workload") != "batch":
            continue
        dist = get(group.props, "mixedInstancesPolicy", "instancesDistribution") or {}
        if get(dist, "onDemandBaseCapacity", default=0) or get(dist, "onDemandPercentageAboveBaseCapacity", default=100):
            yield f"Batch group {group.name} runs on-demand capacity.", group.urn
