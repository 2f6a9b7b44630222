"""Everything an `AwsGpuFleet` needs, decided from the spec without touching Pulumi.

The component receives an `AwsFleetPlan` and only turns it into resources. Keeping the
decisions here (subnet layout, names, tags, the IAM statements, the rendered user data, the
scaling signal) makes them testable as plain values and keeps one place that decides each.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from inferstack import catalog
from inferstack.planning import sizing
from inferstack.planning.endpoint import AwsEndpointPlan, plan_aws_endpoint
from inferstack.planning.naming import resource_prefix, standard_tags
from inferstack.planning.serving import engine_args, engine_runtime_flags
from inferstack.render import render
from inferstack.spec.models import AwsGpuFleetTarget, DeploymentSpec

METRICS_NAMESPACE = "InferStack"
DEFAULT_VPC_CIDR = "10.64.0.0/16"
DEFAULT_AZ_COUNT = 2
KMS_DELETION_WINDOW_DAYS = 30
INSTANCE_REFRESH_MIN_HEALTHY = 90

# The autoscaling signal each spec choice becomes: the CloudWatch metric the node agent
# publishes per instance, and how the agent reads it.
SIGNAL_METRICS = {
    "queue_depth": ("PendingRequests", "Count"),
    "requests_per_target": ("RunningRequests", "Count"),
    "gpu_utilization": ("GPUUtilization", "Percent"),
}

# What wakes a group at zero: pending requests for it, from its nodes or from its front door.
DEMAND_METRIC = SIGNAL_METRICS["queue_depth"][0]

# Interface endpoints the nodes need with no internet route: image pulls (ECR api + dkr, whose
# layers come from S3 through the gateway endpoint), role credentials (STS), logs and metrics,
# and Session Manager (ssm, ssmmessages, ec2messages) in place of SSH.
INTERFACE_ENDPOINT_SERVICES = ("ecr.api", "ecr.dkr", "sts", "logs", "monitoring", "ssm", "ssmmessages", "ec2messages")

_ECR = re.compile(
    r"^(?P<registry>(?P<account>\d{12})\.dkr\.ecr(?:-fips)?\.(?P<region>[a-z0-9-]+)\.amazonaws\.com)/(?P<repo>[^:@]+)"
)


@dataclass(frozen=True)
class NetworkPlan:
    """A VPC to create (cidr, subnet_cidrs) or an existing one (vpc_id, subnet_ids)."""

    vpc_cidr: str | None
    subnet_cidrs: tuple[str, ...]
    vpc_id: str | None
    subnet_ids: tuple[str, ...]
    interface_endpoints: tuple[str, ...]

    @property
    def creates_vpc(self) -> bool:
        return self.vpc_id is None


@dataclass(frozen=True)
class EcrImage:
    registry: str  # the host, as written in the image (FIPS endpoints included)
    account: str
    region: str
    repository: str


@dataclass(frozen=True)
class ScalingPlan:
    signal: str
    metric_name: str
    metric_unit: str
    target_value: float
    scale_in_cooldown: int
    wake_from_zero: bool  # min 0: no instance publishes the signal, so demand must wake the group


@dataclass(frozen=True)
class AwsFleetPlan:
    target: str
    region: str
    prefix: str
    asg_name: str
    log_group_name: str
    log_retention_days: int  # every log group of the target: engine logs, flow logs
    tags: dict[str, str]
    model_name: str
    weights_bucket: str
    weights_prefix: str
    weights_kms_key_arn: str | None
    image: str
    ecr: EcrImage | None
    instance_types: tuple[str, ...]
    ami_ssm_parameter: str
    root_volume_gib: int
    port: int
    health_path: str
    min_size: int
    max_size: int
    desired_capacity: int
    warm_pool_size: int
    spot_enabled: bool
    on_demand_base: int
    on_demand_percentage: int
    spot_allocation_strategy: str
    health_check_grace_seconds: int
    network: NetworkPlan
    public_ip: bool
    scaling: ScalingPlan
    user_data: str
    endpoint: AwsEndpointPlan | None

    @property
    def uses_mixed_instances(self) -> bool:
        """A warm pool rules out a mixed instances policy; the spec checks guarantee it is alone."""
        return self.warm_pool_size == 0


def log_group_name(spec: DeploymentSpec, stack: str, target: str) -> str:
    """The engine's log group: deployment, stack and target, so two deployments (or two stacks
    of one) in an account and region never claim the same group (names are unique per region)."""
    return f"/inferstack/{spec.metadata.name}/{stack}/{target}"


def plan_network(target: AwsGpuFleetTarget) -> NetworkPlan:
    net = target.network
    if not net.creates_vpc:
        return NetworkPlan(None, (), net.vpc_id, tuple(net.subnet_ids or ()), ())
    cidr = ipaddress.IPv4Network(net.cidr or DEFAULT_VPC_CIDR)
    zones = net.availability_zones or DEFAULT_AZ_COUNT
    # Four more prefix bits than the VPC: room for six zones and ten more subnets later
    # (the private endpoint's NLB and interface endpoints share these subnets).
    subnets = tuple(str(s) for s in list(cidr.subnets(prefixlen_diff=4))[:zones])
    return NetworkPlan(str(cidr), subnets, None, (), INTERFACE_ENDPOINT_SERVICES)


def plan_scaling(target: AwsGpuFleetTarget) -> ScalingPlan:
    metric, unit = SIGNAL_METRICS[target.autoscaling.signal]
    return ScalingPlan(
        signal=target.autoscaling.signal,
        metric_name=metric,
        metric_unit=unit,
        target_value=target.autoscaling.target,
        scale_in_cooldown=target.autoscaling.scale_in_cooldown,
        wake_from_zero=target.capacity.min == 0,
    )


def parse_ecr(image: str) -> EcrImage | None:
    m = _ECR.match(image)
    return EcrImage(m["registry"], m["account"], m["region"], m["repo"]) if m else None


def plan_aws_fleet(spec: DeploymentSpec, stack: str, name: str) -> AwsFleetPlan:
    target = spec.targets[name]
    assert isinstance(target, AwsGpuFleetTarget)
    model_name, model = spec.model_of(name)
    engine = catalog.engines()[spec.serving.engine]
    prefix = resource_prefix(spec, stack, name)
    grace = spec.serving.health_check_grace_seconds or sizing.startup_seconds(sizing.footprint(model_name, model))
    scaling = plan_scaling(target)
    image = spec.image_of(name)
    assert image is not None  # the spec checks guarantee every GPU target resolves an image
    ecr = parse_ecr(image)
    asg_name = prefix
    log_group = log_group_name(spec, stack, name)
    weights_uri = f"s3://{model.bucket}/{model.prefix}/" if model.prefix else f"s3://{model.bucket}/"
    user_data = render(
        "aws_user_data.sh.j2",
        stack=stack,
        target=name,
        region=target.region,
        model_name=model_name,
        weights_uri=weights_uri,
        image=image,
        ecr=ecr,
        port=spec.serving.port,
        engine=engine,
        engine_args=engine_args(spec, model_name, model),
        engine_runtime=engine_runtime_flags(spec.serving.engine),
        log_group=log_group,
        asg_name=asg_name,
        namespace=METRICS_NAMESPACE,
        scaling=scaling,
    )
    return AwsFleetPlan(
        target=name,
        region=target.region,
        prefix=prefix,
        asg_name=asg_name,
        log_group_name=log_group,
        log_retention_days=spec.log_retention_days(),
        tags=standard_tags(spec, stack, model_name, target.workload),
        model_name=model_name,
        weights_bucket=model.bucket,
        weights_prefix=model.prefix,
        weights_kms_key_arn=model.source_kms_key_arn,
        image=image,
        ecr=ecr,
        instance_types=tuple(target.instance_types),
        ami_ssm_parameter=target.ami_ssm_parameter,
        root_volume_gib=target.root_volume_gib,
        port=spec.serving.port,
        health_path=engine.health_path,
        min_size=target.capacity.min,
        max_size=target.capacity.max,
        desired_capacity=target.capacity.initial,
        warm_pool_size=target.capacity.warm_pool,
        spot_enabled=target.spot.enabled,
        on_demand_base=target.spot.on_demand_base if target.spot.enabled else 0,
        on_demand_percentage=target.spot.on_demand_percentage if target.spot.enabled else 100,
        spot_allocation_strategy=target.spot.allocation_strategy,
        health_check_grace_seconds=grace,
        network=plan_network(target),
        public_ip=target.network.public_ip,
        scaling=scaling,
        user_data=user_data,
        endpoint=plan_aws_endpoint(spec, stack, name),
    )
