"""Everything an `AwsGpuFleet` needs, decided from the spec without touching Pulumi.

The component receives an `AwsFleetPlan` and only turns it into resources. Keeping the
decisions here (subnet layout, names, tags, the IAM statements, the rendered user data, the
scaling signal) makes them testable as plain values and keeps one place that decides each.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import math
import re
from dataclasses import dataclass

from inferstack import catalog
from inferstack.planning import aws_observability, observability, sizing
from inferstack.planning.aws_observability import SloAlarm
from inferstack.planning.endpoint import AwsEndpointPlan, plan_aws_endpoint
from inferstack.planning.naming import resource_prefix, standard_tags
from inferstack.planning.observability import TargetObservability
from inferstack.planning.serving import engine_args, engine_runtime_flags
from inferstack.render import render
from inferstack.spec.models import AwsGpuFleetTarget, DeploymentSpec

METRICS_NAMESPACE = "InferStack"
DEFAULT_VPC_CIDR = "10.64.0.0/16"
DEFAULT_AZ_COUNT = 2
KMS_DELETION_WINDOW_DAYS = 30
# Instance refresh launches before it terminates: 100% of the desired capacity stays in service
# and up to MAX more may run meanwhile (the API wants max in 100..200 and max - min <= 100). A GPU
# fleet is small, so one spare node at a time is what "launch before terminating" means here.
INSTANCE_REFRESH_MIN_HEALTHY = 100
INSTANCE_REFRESH_MAX_HEALTHY = 200

# The autoscaling signal each spec choice becomes: the CloudWatch metric the node agent
# publishes per instance, and how the agent reads it.
SIGNAL_METRICS = {
    "in_flight": ("InFlightRequests", "Count"),
    "queue_depth": ("PendingRequests", "Count"),
    "requests_per_target": ("RunningRequests", "Count"),
    "gpu_utilization": ("GPUUtilization", "Percent"),
}
IN_FLIGHT_METRIC = SIGNAL_METRICS["in_flight"][0]
# Scale-in removes a node when the signal stays below this share of the target for a cooldown.
SCALE_IN_SHARE = 0.5
# With a scale-out signal that is not in requests (queue_depth, gpu_utilization), scale-in still
# acts on in-flight load, and only when nodes average less than one request in flight: nothing is
# known of a node's capacity in requests, so only an idle fleet gives a node back.
SCALE_IN_IDLE_IN_FLIGHT = 1.0

# What wakes a group at zero. Nodes publish nothing then, so:
# - the private endpoint's NLB: a client connecting while no target is registered still shows in
#   AWS/NetworkELB (the TLS listener completes the client's handshake, then resets the flow it
#   cannot forward), so new TLS flows plus load-balancer resets plus failed client handshakes are
#   demand (metric math; each FILLed with 0 because ELB reports a metric only when it is non-zero);
# - InFlight/PendingRequests for the group from its front door: the hybrid overflow gateway
#   publishes InferStack/PendingRequests for the group (a later issue); kept as a second waker.
DEMAND_METRIC = SIGNAL_METRICS["queue_depth"][0]
NLB_DEMAND_METRICS = ("NewFlowCount_TLS", "TCP_ELB_Reset_Count", "ClientTLSNegotiationErrorCount")

# Lifecycle hooks: the node completes them itself (aws autoscaling complete-lifecycle-action).
LAUNCH_HOOK = "inferstack-ready"
DRAIN_HOOK = "inferstack-drain"
# After a completed launch hook the engine already answers its health check; the grace only
# covers the load balancer's first checks of a new target (2 healthy checks 15 s apart) with room.
GRACE_AFTER_HOOK_SECONDS = 120
HOOK_TIMEOUT_MARGIN = 1.5
MIN_HOOK_SECONDS, MAX_HOOK_SECONDS = 300, 7200  # PutLifecycleHook: HeartbeatTimeout 30..7200
# Draining: a streamed reply of a full context at a slow decode rate must finish before the node
# goes. Deregistration delay (NLB: 0..3600 s) and the drain hook's timeout both derive from it.
SLOW_DECODE_TOKENS_PER_SECOND = 30
MIN_DRAIN_SECONDS, MAX_DRAIN_SECONDS = 120, 3600
DRAIN_POLL_SECONDS = 5
# The bootstrap polls the engine's health every 10 s and gives up (abandons) this long before
# the launch hook would time out, so the failure is logged by the node rather than by timeout.
HEALTH_POLL_SECONDS = 10
HEALTH_POLL_MARGIN_SECONDS = 60

# gp3 (EC2 CreateVolume / launch template EBS): throughput 125..1000 MiB/s, IOPS 3000..16000,
# at most 0.25 MiB/s of throughput per provisioned IOPS. Newer volumes accept up to 2000 MiB/s
# and 80000 IOPS, but the launch template field documents 1000, so 1000 is the cap here.
GP3_BASELINE_MIB, GP3_MAX_MIB = 125, 1000
GP3_BASELINE_IOPS, GP3_MAX_IOPS = 3000, 16000
GP3_MIB_PER_IOPS = 0.25
# The weights should cross the root volume (written by the download, read by the engine) in
# about this long each way, within the volume's and the instance's limits.
WEIGHTS_DISK_SECONDS = 120

# Interface endpoints the nodes need with no internet route: image pulls (ECR api + dkr, whose
# layers come from S3 through the gateway endpoint), role credentials (STS), logs and metrics,
# the lifecycle hooks the nodes complete (autoscaling), and Session Manager (ssm, ssmmessages,
# ec2messages) in place of SSH.
INTERFACE_ENDPOINT_SERVICES = (
    "ecr.api",
    "ecr.dkr",
    "sts",
    "logs",
    "monitoring",
    "autoscaling",
    "ssm",
    "ssmmessages",
    "ec2messages",
)

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
    publishes_in_flight: bool  # the engine has running and waiting gauges: the agent publishes in-flight
    scale_in_metric: str  # what scale-in acts on: in-flight load wherever the engine reports it
    scale_in_unit: str
    scale_in_threshold: float
    # The endpoint's unroutable connections count as demand at zero, except for a burst target of a
    # hybrid overflow with a publisher: the gateway health-checks its endpoint every few seconds
    # (a new TLS flow each time the empty NLB resets it), which would wake the group for ever; the
    # publisher's PendingRequests is its waker then.
    wake_on_endpoint: bool = True


@dataclass(frozen=True)
class RootVolume:
    """gp3 sized so the weights do not crawl through the 125 MiB/s baseline."""

    size_gib: int
    throughput_mib: int
    iops: int


@dataclass(frozen=True)
class Readiness:
    """How long a node may take to serve, and how long it may take to leave."""

    startup_seconds: int  # estimate from the per-family timings (slowest type of the fleet)
    launch_hook_timeout: int  # the launch hook's heartbeat timeout: the real readiness deadline
    grace_seconds: int  # health-check grace after the hook (the engine is healthy by then)
    drain_seconds: int  # deregistration delay and the agent's drain bound
    drain_hook_timeout: int


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
    ami_id: str | None  # pinned in the spec; None: the SSM parameter's value at creation, kept
    root_volume: RootVolume
    readiness: Readiness
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
    network: NetworkPlan
    public_ip: bool
    scaling: ScalingPlan
    user_data: str
    endpoint: AwsEndpointPlan | None
    # Observability (planning.aws_observability): the agent's EMF log group, the SLO alarms and
    # where they notify (None: the fleet's own encrypted topic).
    metrics_log_group_name: str = ""
    metrics_log_retention_days: int = 14
    slo_alarms: tuple[SloAlarm, ...] = ()
    alert_topic_arn: str | None = None
    observability: TargetObservability | None = None

    @property
    def health_check_grace_seconds(self) -> int:
        return self.readiness.grace_seconds

    @property
    def root_volume_gib(self) -> int:
        return self.root_volume.size_gib

    @property
    def uses_mixed_instances(self) -> bool:
        """A warm pool rules out a mixed instances policy; the spec checks guarantee it is alone."""
        return self.warm_pool_size == 0


def metrics_log_group_name(spec: DeploymentSpec, stack: str, target: str) -> str:
    """The CloudWatch agent's embedded-metric-format events: next to the engine's logs."""
    return f"{log_group_name(spec, stack, target)}/metrics"


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


def plan_scaling(target: AwsGpuFleetTarget, engine: catalog.Engine) -> ScalingPlan:
    """Scale out on the spec's signal; scale in on in-flight load wherever the engine reports it.

    Waiting requests are 0 whenever the batch has room, which is normal load, so scaling in on
    them removes busy nodes; GPU utilisation reads near 100% with a single decoding request.
    In-flight requests (running + waiting) fall only when nodes really have room.
    """
    signal = target.autoscaling.signal
    metric, unit = SIGNAL_METRICS[signal]
    in_flight = engine.queue_metric is not None and engine.running_metric is not None
    share = target.autoscaling.target * SCALE_IN_SHARE
    if not in_flight:  # no request gauges (e.g. gpu_utilization on TensorRT-LLM): the signal itself
        scale_in = (metric, unit, share)
    elif signal in ("in_flight", "requests_per_target"):  # the target is in requests per node
        scale_in = (IN_FLIGHT_METRIC, "Count", share)
    else:
        scale_in = (IN_FLIGHT_METRIC, "Count", SCALE_IN_IDLE_IN_FLIGHT)
    return ScalingPlan(
        signal=signal,
        metric_name=metric,
        metric_unit=unit,
        target_value=target.autoscaling.target,
        scale_in_cooldown=target.autoscaling.scale_in_cooldown,
        wake_from_zero=target.capacity.min == 0,
        publishes_in_flight=in_flight,
        scale_in_metric=scale_in[0],
        scale_in_unit=scale_in[1],
        scale_in_threshold=scale_in[2],
    )


def plan_root_volume(size_gib: int, weights_bytes: int, instance_types: tuple[str, ...]) -> RootVolume:
    """gp3 throughput to move the weights in about WEIGHTS_DISK_SECONDS, no faster than the
    slowest type's EBS link can carry, within gp3's limits; IOPS to match the throughput ratio."""
    link = min(catalog.aws_node_timings_of(t).ebs_mib_per_second for t in instance_types)
    wanted = math.ceil(weights_bytes / catalog.MIB / WEIGHTS_DISK_SECONDS)
    throughput = max(GP3_BASELINE_MIB, min(wanted, link, GP3_MAX_MIB))
    iops = max(GP3_BASELINE_IOPS, min(GP3_MAX_IOPS, math.ceil(throughput / GP3_MIB_PER_IOPS)))
    return RootVolume(size_gib, throughput, iops)


def _minutes(seconds: float) -> int:
    return -(-math.ceil(seconds) // 60) * 60


def drain_seconds(context_length: int) -> int:
    """How long a replica that is leaving keeps serving: a streamed reply of a full context at a
    slow decode rate, in whole minutes, within the NLB's deregistration delay. The on-prem pods'
    termination grace and their route's timeout use the same bound."""
    return max(MIN_DRAIN_SECONDS, min(MAX_DRAIN_SECONDS, _minutes(context_length / SLOW_DECODE_TOKENS_PER_SECOND)))


def plan_readiness(
    weights_bytes: int,
    instance_types: tuple[str, ...],
    volume: RootVolume,
    context_length: int,
    override_seconds: int | None = None,
) -> Readiness:
    """Launch to healthy, from the per-family timings of the slowest type in the fleet: boot, image
    pull, the weights' download (S3 or the disk, whichever is slower), their load (the disk or the
    GPU path) and the engine's warm-up. The launch hook carries it, with a margin; the grace after
    the hook stays short because the engine is healthy before the node goes in service."""
    mib = weights_bytes / catalog.MIB
    worst = 0.0
    for itype in instance_types:
        t = catalog.aws_node_timings_of(itype)
        disk = min(volume.throughput_mib, t.ebs_mib_per_second)
        worst = max(
            worst,
            t.boot_seconds
            + t.image_pull_seconds
            + t.warmup_seconds
            + mib / min(t.s3_mib_per_second, disk)
            + mib / min(t.load_mib_per_second, disk),
        )
    startup = override_seconds or _minutes(worst)
    hook = max(MIN_HOOK_SECONDS, min(MAX_HOOK_SECONDS, _minutes(startup * HOOK_TIMEOUT_MARGIN)))
    drain = drain_seconds(context_length)
    return Readiness(
        startup_seconds=startup,
        launch_hook_timeout=hook,
        grace_seconds=GRACE_AFTER_HOOK_SECONDS,
        drain_seconds=drain,
        drain_hook_timeout=min(MAX_HOOK_SECONDS, drain + 120),
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
    types = target.types
    weights = sizing.footprint(model_name, model).weights_bytes
    volume = plan_root_volume(target.root_volume_gib, weights, types)
    readiness = plan_readiness(weights, types, volume, model.context_length, spec.serving.health_check_grace_seconds)
    scaling = plan_scaling(target, engine)
    ov = spec.overflow
    if ov is not None and name in ov.burst and ov.gateway.publisher_image is not None:
        scaling = dataclasses.replace(scaling, wake_on_endpoint=False)
    image = spec.image_of(name)
    assert image is not None  # the spec checks guarantee every GPU target resolves an image
    ecr = parse_ecr(image)
    asg_name = prefix
    log_group = log_group_name(spec, stack, name)
    metrics_log_group = metrics_log_group_name(spec, stack, name)
    seen = observability.plan_target(spec, name, "cloudwatch")
    weights_bucket, weights_prefix = model.copy_in("s3")
    weights_uri = f"s3://{weights_bucket}/{weights_prefix}/" if weights_prefix else f"s3://{weights_bucket}/"
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
        in_flight_metric=IN_FLIGHT_METRIC,
        launch_hook=LAUNCH_HOOK,
        drain_hook=DRAIN_HOOK,
        readiness=readiness,
        health_polls=max(1, (readiness.launch_hook_timeout - HEALTH_POLL_MARGIN_SECONDS) // HEALTH_POLL_SECONDS),
        drain_polls=readiness.drain_seconds // DRAIN_POLL_SECONDS,
        drain_poll_seconds=DRAIN_POLL_SECONDS,
        cloudwatch_agent=json.dumps(
            aws_observability.agent_config(spec.serving.engine, METRICS_NAMESPACE, asg_name, metrics_log_group),
            indent=2,
            sort_keys=True,
        ),
        cloudwatch_agent_path=aws_observability.AGENT_CONFIG_PATH,
        prometheus_config=json.dumps(
            aws_observability.prometheus_config(spec.serving.engine, spec.serving.port, asg_name), indent=2
        ),
        prometheus_config_path=aws_observability.PROMETHEUS_CONFIG_PATH,
        histograms=aws_observability.histogram_exports(spec.serving.engine),
        histogram_seconds=aws_observability.SCRAPE_SECONDS,
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
        weights_bucket=weights_bucket,
        weights_prefix=weights_prefix,
        weights_kms_key_arn=model.source_kms_key_arn,
        image=image,
        ecr=ecr,
        instance_types=types,
        ami_ssm_parameter=target.ami_ssm_parameter,
        ami_id=target.ami_id,
        root_volume=volume,
        readiness=readiness,
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
        network=plan_network(target),
        public_ip=target.network.public_ip,
        scaling=scaling,
        user_data=user_data,
        endpoint=plan_aws_endpoint(spec, stack, name),
        metrics_log_group_name=metrics_log_group,
        metrics_log_retention_days=spec.metrics_log_retention_days(),
        slo_alarms=tuple(
            aws_observability.slo_alarms(list(seen.alerts), spec.serving.engine, METRICS_NAMESPACE, asg_name, prefix)
        ),
        alert_topic_arn=spec.observability.alerts.aws_sns_topic_arn,
        observability=seen,
    )
