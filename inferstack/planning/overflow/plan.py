"""The overflow's burst upstreams, decided from the spec: where the gateway reaches each burst
target (its private endpoint's name), how long it takes from zero, and the metric that wakes it."""

from __future__ import annotations

from inferstack.kinds import kind_of
from inferstack.planning import aws_fleet, gcp
from inferstack.planning.endpoint import LISTENER_PORT, aws_domain_name
from inferstack.planning.overflow import BurstUpstream, WakeMetric
from inferstack.spec.models import AwsGpuFleetTarget, DeploymentSpec, GcpGpuFleetTarget, GcpTpuTarget


def burst_host(spec: DeploymentSpec, stack: str, name: str) -> str:
    """The name the gateway connects to and verifies: on AWS the endpoint service's own name (its
    certificate covers it), on GCP `<target>.<private_dns_name>` (the regional certificate the spec
    names must cover it)."""
    target = spec.targets[name]
    if isinstance(target, AwsGpuFleetTarget):
        return aws_domain_name(spec, stack, name)
    assert spec.endpoint is not None and spec.endpoint.private_dns_name is not None  # the checks require it
    return f"{name}.{spec.endpoint.private_dns_name}"


def wake_metric(spec: DeploymentSpec, stack: str, name: str) -> WakeMetric | None:
    """What the target's autoscaler reads at zero, as the publisher must write it."""
    target = spec.targets[name]
    if isinstance(target, AwsGpuFleetTarget):
        plan = aws_fleet.plan_aws_fleet(spec, stack, name)
        # The wake alarm's `pending` query (components/aws_gpu_fleet.py): Sum over 60 s per group.
        return WakeMetric(
            "aws",
            target.region,
            None,
            aws_fleet.METRICS_NAMESPACE,
            aws_fleet.DEMAND_METRIC,
            {"AutoScalingGroupName": plan.asg_name},
        )
    if isinstance(target, GcpGpuFleetTarget):
        gplan = gcp.plan_gcp_fleet(spec, stack, name)
        # The autoscaler's per-group filter (components/gcp_gpu_fleet.py): resource.type "global"
        # and metric.labels.group; the series of every publisher are summed.
        return WakeMetric(
            "gcp", target.region, target.project, "", gplan.signal.metric, {"group": gplan.group_name}, "global"
        )
    assert isinstance(target, GcpTpuTarget)
    return None  # a slice serves from creation; it has no autoscaler to wake


def plan_upstreams(spec: DeploymentSpec, stack: str) -> tuple[BurstUpstream, ...]:
    assert spec.overflow is not None
    out = []
    for priority, name in enumerate(spec.overflow.burst):
        target = spec.targets[name]
        startup, _ = kind_of(target).startup(spec, stack, name)
        out.append(
            BurstUpstream(
                target=name,
                cloud=target.cloud,
                region=target.region,
                priority=priority,
                host=burst_host(spec, stack, name),
                port=LISTENER_PORT,  # both clouds' private endpoints listen for TLS there
                cold_start_seconds=startup,
                wake=wake_metric(spec, stack, name),
            )
        )
    return tuple(out)


def describe(spec: DeploymentSpec, stack: str) -> dict:
    """The overflow as the plan shows it: the trigger beside each burst target's time from zero to
    its first token (AWS refuses a warm pool on spot or mixed groups, so burst fleets start cold)."""
    ov = spec.overflow
    assert ov is not None
    trigger = ov.trigger
    conditions = []
    if trigger.pending_requests is not None:
        conditions.append(f"more than {trigger.pending_requests} requests waiting for {trigger.for_seconds} s")
    if trigger.p95_latency_ms is not None:
        conditions.append(f"p95 latency above {trigger.p95_latency_ms} ms")
    if trigger.primary_unhealthy:
        conditions.append("no healthy replica on the primary")
    return {
        "primary": ov.primary,
        "trigger": " or ".join(conditions),
        "classifications": list(ov.classifications),
        "classificationHeader": ov.classification_header,
        "overflowTimeoutSeconds": ov.gateway.overflow_timeout_seconds,
        "burst": [
            {
                "target": u.target,
                "cloud": u.cloud,
                "region": u.region,
                "endpoint": f"{u.host}:{u.port}",
                "coldStartSeconds": u.cold_start_seconds,
                "wakesOn": None
                if u.wake is None
                else f"{u.wake.namespace + '/' if u.wake.namespace else ''}{u.wake.name} "
                + ",".join(f"{k}={v}" for k, v in sorted(u.wake.dimensions.items())),
            }
            for u in plan_upstreams(spec, stack)
        ],
    }
