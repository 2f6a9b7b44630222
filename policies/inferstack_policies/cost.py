"""GPU cost guardrails (advisory by default): a ceiling on the GPUs a stack can scale to, and
spot capacity for batch pools.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from pulumi_policy import EnforcementLevel, Severity, StackValidationArgs

from ._rules import ASG, GCP_TEMPLATES, LAUNCH_TEMPLATE, TPU_VM, get, items, queued_tpu_nodes, stack_rule


def _instance_types(group, templates: dict[str, Any]) -> list[str]:
    """Instance types a group may launch: its mixed policy's overrides, else its template's type."""
    overrides = [
        get(o, "instanceType") for o in items(group.props, "mixedInstancesPolicy", "launchTemplate", "overrides")
    ]
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


def _gcp_group_accelerators(autoscaler, per_type: Mapping[str, Any]) -> tuple[list[str], float | None]:
    """Accelerators per VM of the group an autoscaler drives, through its MIG to the template."""
    for group in autoscaler.property_dependencies.get("target", []):
        for template in group.property_dependencies.get("versions", []):
            guests = list(items(template.props, "guestAccelerators"))
            if guests:
                return [get(g, "type") for g in guests], float(sum(get(g, "count", default=0) for g in guests))
            machine = get(template.props, "machineType")
            return [machine], per_type.get(machine)
    return ["its instance template"], None


def accelerators(resources, per_type: Mapping[str, Any]) -> Iterator[tuple[Any, list[str], float | None]]:
    """(resource, types, accelerators at max capacity) for every GPU group and TPU slice."""
    templates = {r.urn: r for r in resources if r.resource_type == LAUNCH_TEMPLATE}
    for r in resources:
        if r.resource_type == ASG:
            types = _instance_types(r, templates)
            known = [per_type[t] for t in types if t in per_type]
            count = max(known) * (get(r.props, "maxSize") or 0) if types and len(known) == len(types) else None
            yield r, types, count
        elif r.resource_type == "gcp:compute/regionAutoscaler:RegionAutoscaler":
            types, per_vm = _gcp_group_accelerators(r, per_type)
            maximum = get(r.props, "autoscalingPolicy", "maxReplicas") or 0
            yield r, types, None if per_vm is None else per_vm * maximum
        elif r.resource_type == TPU_VM:
            kind = get(r.props, "acceleratorType")
            yield r, [kind], per_type.get(kind)
        else:
            for node in queued_tpu_nodes(r.resource_type, r.props):
                kind = get(node, "acceleratorType")
                yield r, [kind], per_type.get(kind)


@stack_rule(
    "cost-stack-gpu-count-limit",
    "The accelerators a stack can scale to (every GPU group at its max size, every TPU slice's chips) "
    "stay under a ceiling.",
    severity=Severity.MEDIUM,
    remediation="lower max capacity, pick smaller instance types, or raise maxGpus in the pack config.",
    enforcement=EnforcementLevel.ADVISORY,
    config={
        "maxGpus": {"type": "integer", "minimum": 0, "default": 64, "description": "GPUs and TPU chips together."},
        "gpusPerInstanceType": {
            "type": "object",
            "additionalProperties": {"type": "number"},
            "default": {},
            "description": "GPUs per instance or machine type, chips per TPU accelerator type "
            "(inferstack policy-config fills it from the catalog).",
        },
    },
)
def gpu_ceiling(args: StackValidationArgs, config: Mapping[str, Any]) -> Iterator[tuple[str, str | None]]:
    total = 0.0
    for resource, types, count in accelerators(args.resources, config["gpusPerInstanceType"]):
        if count is None:
            yield f"Cannot count the accelerators of {resource.name}: no count for {types}.", resource.urn
            continue
        total += count
    if total > config["maxGpus"]:
        yield (
            f"At max capacity the stack runs {total:g} GPUs/TPU chips, above the ceiling of {config['maxGpus']:g}.",
            None,
        )


def _on_demand_batch(r) -> bool | None:
    """Whether a batch pool runs on-demand capacity; None for anything that is not a batch pool."""
    t, p = r.resource_type, r.props
    if t == ASG:
        if {get(x, "key"): get(x, "value") for x in items(p, "tags")}.get("workload") != "batch":
            return None
        dist = get(p, "mixedInstancesPolicy", "instancesDistribution") or {}
        return bool(
            get(dist, "onDemandBaseCapacity", default=0)
            or get(dist, "onDemandPercentageAboveBaseCapacity", default=100)
        )
    if t in GCP_TEMPLATES:
        if get(p, "labels", "workload") != "batch":
            return None
        return get(p, "scheduling", "provisioningModel") != "SPOT"
    if t == TPU_VM:
        if get(p, "labels", "workload") != "batch":
            return None
        return not get(p, "schedulingConfig", "spot")
    nodes = queued_tpu_nodes(t, p)
    if nodes and get(nodes[0], "labels", "workload") == "batch":
        return get(p, "body", "spot") is None
    return None


@stack_rule(
    "cost-compute-pool-require-spot-for-batch",
    "Pools whose workload is batch (ASGs, GCP instance templates, TPU slices) run on spot capacity only.",
    severity=Severity.LOW,
    remediation="enable spot with no on-demand base or share for batch pools (spot.enabled, provisioning: spot).",
    enforcement=EnforcementLevel.ADVISORY,
    config={"spotRequiredForBatch": {"type": "boolean", "default": True}},
)
def batch_spot(args: StackValidationArgs, config: Mapping[str, Any]) -> Iterator[tuple[str, str | None]]:
    if not config["spotRequiredForBatch"]:
        return
    for r in args.resources:
        if _on_demand_batch(r):
            yield f"Batch pool {r.name} runs on-demand capacity.", r.urn
