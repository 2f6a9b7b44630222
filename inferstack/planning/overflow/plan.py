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
