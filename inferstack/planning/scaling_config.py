"""The scaling configuration a plan would deploy, read back from its recorded resources (types
and inputs), so that `inferstack simulate` rehearses what would be created rather than what the
spec meant. Pure: takes the plan's resource list (dicts as `Plan.resources` holds them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

AWS_GROUP = "aws:autoscaling/group:Group"
AWS_POLICY = "aws:autoscaling/policy:Policy"
AWS_ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
AWS_HOOK = "aws:autoscaling/lifecycleHook:LifecycleHook"
GCP_AUTOSCALER = "gcp:compute/regionAutoscaler:RegionAutoscaler"
GCP_MIG = "gcp:compute/regionInstanceGroupManager:RegionInstanceGroupManager"
GCP_TEMPLATE = "gcp:compute/instanceTemplate:InstanceTemplate"
LAUNCHING = "autoscaling:EC2_INSTANCE_LAUNCHING"
# GCP's default stabilization period: before a scale-in the recommended size covers the peak load of
# the last 600 s (Compute Engine API, AutoscalingPolicy.stabilizationPeriodSec: "The default
# stabilization period is 600 seconds"; "Understanding autoscaler decisions").
GCP_STABILIZATION_SECONDS = 600
KEDA_SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
K8S_HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
ONPREM_COMPONENT = ":onprem:OnPremK8s::"
POOL_LABEL = "inferstack.io/pool"  # planning.onprem.pools.POOL_LABEL (not imported: this module stays pure)
# The HPA controller's loop: kube-controller-manager --horizontal-pod-autoscaler-sync-period, default
# 15 s; it leaves the scale alone while the usage ratio is within 0.1 of 1 (kubernetes.io, "Horizontal
# Pod Autoscaling", "Algorithm details"; the tolerance became configurable per HPA in 1.33, KEP-4951,
# which inferstack does not set).
HPA_SYNC_SECONDS = 15
HPA_TOLERANCE = 0.1
# KEDA ScaledObject defaults (keda.sh, "ScaledObject specification"): pollingInterval 30 s,
# cooldownPeriod 300 s (the wait before scaling to zero, used only when minReplicaCount is 0),
# minReplicaCount 0, maxReplicaCount 100.
KEDA_DEFAULT_POLLING = 30
KEDA_DEFAULT_COOLDOWN = 300
KEDA_DEFAULT_MIN = 0
KEDA_DEFAULT_MAX = 100


@dataclass(frozen=True)
class AlarmPolicy:
    """A CloudWatch alarm on one metric driving a simple/step policy."""

    resource: str  # the alarm's resource name in the plan
    policy: str
    metric: str
    statistic: str
    period: int
    evaluation_periods: int
    threshold: float
    comparison: str
    missing_breaches: bool
    adjustment: int
    adjustment_type: str
    cooldown: int
    # Metric math that keeps the last node unless its peak load was 0 (the component's scale-in
    # alarm on a group that may reach zero).
    last_node_only_when_idle: bool = False


@dataclass(frozen=True)
class WakeAlarm:
    resource: str
    policy: str
    period: int
    evaluation_periods: int
    load_balancer: bool  # an AWS/NetworkELB query: connections at zero count as demand
    published: tuple[str, ...]  # InferStack metrics queried (published by nodes or a front door)
    capacity: int  # ExactCapacity it sets


@dataclass(frozen=True)
class TargetTracking:
    resource: str
    metric: str
    statistic: str
    target: float
    disable_scale_in: bool
    warmup: int


@dataclass(frozen=True)
class GcpAutoscaler:
    resource: str
    metric: str  # custom metric name, or "loadBalancingUtilization"
    target: float
    per_group: bool  # single-instance assignment: the metric is the group's, size = ceil(value / target)
    cooldown: int
    scale_in_window: int
    scale_in_max: int
    stabilization: int = GCP_STABILIZATION_SECONDS  # stabilizationPeriodSec, when the plan sets it


@dataclass(frozen=True)
class ScalingPolicy:
    """HPAScalingPolicy: at most `value` pods (type Pods) or `value`% of the replicas at the start of
    the period (type Percent) added or removed within any `period` seconds."""

    type: str  # Pods | Percent
    value: int
    period: int


@dataclass(frozen=True)
class ScalingRules:
    """HPAScalingRules for one direction (autoscaling/v2 HorizontalPodAutoscalerBehavior)."""

    stabilization: int
    policies: tuple[ScalingPolicy, ...]
    select: str = "Max"  # Max | Min | Disabled


# The HPA's default behavior when the object sets none (kubernetes.io, "Horizontal Pod Autoscaling",
# "Default Behavior"; HPAScalingRules.stabilizationWindowSeconds: "For scale up: 0 ... For scale
# down: 300"): scale up by 100% or 4 pods per 15 s, whichever is more, at once; scale down by 100%
# per 15 s after 300 s of stabilization.
DEFAULT_SCALE_UP = ScalingRules(0, (ScalingPolicy("Percent", 100, 15), ScalingPolicy("Pods", 4, 15)))
DEFAULT_SCALE_DOWN = ScalingRules(300, (ScalingPolicy("Percent", 100, 15),))


@dataclass(frozen=True)
class PodMetric:
    """One metric of a pod autoscaler: the load signal it carries (in_flight = running + waiting,
    queue_depth = waiting, busy = pods with a request in flight; planning.onprem.workload) and the
    per-replica target (AverageValue)."""

    signal: str
    target: float


@dataclass(frozen=True)
class PodAutoscaler:
    """An on-prem pool's HPA, or the HPA a KEDA ScaledObject creates and feeds (an External metric
    of type AverageValue per trigger)."""

    resource: str
    via: str  # "keda" | "hpa"
    metrics: tuple[PodMetric, ...]
    scale_up: ScalingRules = DEFAULT_SCALE_UP
    scale_down: ScalingRules = DEFAULT_SCALE_DOWN
    sync: int = HPA_SYNC_SECONDS
    polling: int = HPA_SYNC_SECONDS  # KEDA: how often the triggers' queries are read
    cooldown: int = KEDA_DEFAULT_COOLDOWN  # KEDA: last activity to zero replicas (minReplicaCount 0 only)
    tolerance: float = HPA_TOLERANCE


@dataclass(frozen=True)
class ScalingConfig:
    target: str
    cloud: str  # "aws", "gcp" or "fixed" (nothing scales it)
    group: str  # the resource that holds the size
    min_size: int
    max_size: int
    initial: int
    tracking: TargetTracking | None = None
    alarms: tuple[AlarmPolicy, ...] = ()
    wake: WakeAlarm | None = None
    warm_pool: int = 0
    grace: int = 0
    launch_hook_timeout: int | None = None
    launch_hook: str | None = None
    autoscaler: GcpAutoscaler | None = None
    spot: bool = False
    # AWS instances distribution: the first on_demand_base instances, and this percentage above them,
    # run on demand and are never reclaimed.
    on_demand_base: int = 0
    on_demand_percentage: int = 0
    notes: tuple[str, ...] = field(default=())
    pods: PodAutoscaler | None = None  # on-prem: the pool's HPA or KEDA ScaledObject


def _target_of(resource: dict[str, Any]) -> str | None:
    parent = resource.get("parent") or ""
    if ":fleet:" not in parent and ":fleet:" not in resource.get("type", ""):
        return None
    return parent.rsplit("::", 1)[-1]


def _by_target(resources: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in resources:
        name = _target_of(r)
        if name is not None:
            out.setdefault(name, []).append(r)
    return out


def _aws(name: str, rs: list[dict[str, Any]]) -> ScalingConfig:
    group = next(r for r in rs if r["type"] == AWS_GROUP)
    gi = group["inputs"]
    policies = {r["name"]: r for r in rs if r["type"] == AWS_POLICY}
    # An alarm names its policy by ARN; under mocks the ARN is opaque, so match through the
    # dependency the plan records (alarmActions depends on the policy resource's URN).
    urn_to_policy = {r["urn"]: r for r in policies.values()}
    tracking = None
    for p in policies.values():
        tt = p["inputs"].get("targetTrackingConfiguration")
        if tt:
            m = tt.get("customizedMetricSpecification") or {}
            tracking = TargetTracking(
                resource=p["name"],
                metric=m.get("metricName")
                or str((tt.get("predefinedMetricSpecification") or {}).get("predefinedMetricType")),
                statistic=m.get("statistic", "Average"),
                target=float(tt["targetValue"]),
                disable_scale_in=bool(tt.get("disableScaleIn", False)),
                warmup=int(p["inputs"].get("estimatedInstanceWarmup") or gi.get("defaultInstanceWarmup") or 0),
            )
    alarms: list[AlarmPolicy] = []
    wake = None
    for a in (r for r in rs if r["type"] == AWS_ALARM):
        ai = a["inputs"]
        deps = a.get("propertyDependencies", {}).get("alarmActions", [])
        pol = next((urn_to_policy[u] for u in deps if u in urn_to_policy), None)
        if pol is None:  # fall back on the naming the component uses: alarm and policy share a name
            pol = policies.get(a["name"])
        if pol is None:
            continue
        pi = pol["inputs"]
        if ai.get("metricQueries") and pi.get("adjustmentType") != "ExactCapacity":
            # The scale-in alarm of a group that may reach zero: the average load, except that at
            # one node the last node's peak must have been 0.
            load = next(
                q["metric"]
                for q in ai["metricQueries"]
                if q.get("metric", {}).get("stat") == "Average" and q["metric"].get("namespace") == "InferStack"
            )
            alarms.append(
                AlarmPolicy(
                    resource=a["name"],
                    policy=pol["name"],
                    metric=load["metricName"],
                    statistic="Average",
                    period=int(load.get("period", 60)),
                    evaluation_periods=int(ai.get("evaluationPeriods", 1)),
                    threshold=float(ai["threshold"]),
                    comparison=ai["comparisonOperator"],
                    missing_breaches=ai.get("treatMissingData") == "breaching",
                    adjustment=int(pi.get("scalingAdjustment", 0)),
                    adjustment_type=pi.get("adjustmentType", "ChangeInCapacity"),
                    cooldown=int(pi.get("cooldown") or 300),
                    last_node_only_when_idle=any("peak" in (q.get("expression") or "") for q in ai["metricQueries"]),
                )
            )
            continue
        if ai.get("metricQueries"):
            queries = ai["metricQueries"]
            metrics = [q["metric"] for q in queries if q.get("metric")]
            step = (pi.get("stepAdjustments") or [{}])[0]
            wake = WakeAlarm(
                resource=a["name"],
                policy=pol["name"],
                period=int(max((m.get("period", 60) for m in metrics), default=60)),
                evaluation_periods=int(ai.get("evaluationPeriods", 1)),
                load_balancer=any(m.get("namespace") == "AWS/NetworkELB" for m in metrics),
                published=tuple(m["metricName"] for m in metrics if m.get("namespace") == "InferStack"),
                capacity=int(step.get("scalingAdjustment", 1)),
            )
            continue
        adj = pi.get("scalingAdjustment")
        if adj is None:
            adj = (pi.get("stepAdjustments") or [{}])[0].get("scalingAdjustment", 0)
        alarms.append(
            AlarmPolicy(
                resource=a["name"],
                policy=pol["name"],
                metric=ai["metricName"],
                statistic=ai.get("statistic", "Average"),
                period=int(ai.get("period", 60)),
                evaluation_periods=int(ai.get("evaluationPeriods", 1)),
                threshold=float(ai["threshold"]),
                comparison=ai["comparisonOperator"],
                missing_breaches=ai.get("treatMissingData") == "breaching",
                adjustment=int(adj),
                adjustment_type=pi.get("adjustmentType", "ChangeInCapacity"),
                cooldown=int(pi.get("cooldown") or 300),  # the group's default cooldown when the policy has none
            )
        )
    hook = next((r for r in rs if r["type"] == AWS_HOOK and r["inputs"].get("lifecycleTransition") == LAUNCHING), None)
    hook_timeout = int(hook["inputs"]["heartbeatTimeout"]) if hook else None
    if hook is None:
        for h in gi.get("initialLifecycleHooks") or []:
            if h.get("lifecycleTransition") == LAUNCHING:
                hook_timeout = int(h["heartbeatTimeout"])
    mixed = gi.get("mixedInstancesPolicy") or {}
    dist = mixed.get("instancesDistribution") or {}
    spot = bool(mixed) and (dist.get("onDemandPercentageAboveBaseCapacity", 100) < 100)
    return ScalingConfig(
        target=name,
        cloud="aws",
        group=group["name"],
        min_size=int(gi["minSize"]),
        max_size=int(gi["maxSize"]),
        initial=int(gi.get("desiredCapacity", gi["minSize"])),
        tracking=tracking,
        alarms=tuple(alarms),
        wake=wake,
        warm_pool=int((gi.get("warmPool") or {}).get("minSize") or 0),
        grace=int(gi.get("healthCheckGracePeriod") or 0),
        launch_hook_timeout=hook_timeout,
        launch_hook=hook["name"] if hook else group["name"],
        spot=spot,
        on_demand_base=int(dist.get("onDemandBaseCapacity", 0) or 0),
        on_demand_percentage=int(dist.get("onDemandPercentageAboveBaseCapacity", 100)),
    )


def _gcp(name: str, rs: list[dict[str, Any]]) -> ScalingConfig:
    mig = next(r for r in rs if r["type"] == GCP_MIG)
    auto = next((r for r in rs if r["type"] == GCP_AUTOSCALER), None)
    size = int(mig["inputs"].get("targetSize", 1))
    if auto is None:
        return ScalingConfig(target=name, cloud="fixed", group=mig["name"], min_size=size, max_size=size, initial=size)
    p = auto["inputs"]["autoscalingPolicy"]
    metric, target, per_group = "loadBalancingUtilization", 0.8, False
    if p.get("metrics"):
        m = p["metrics"][0]
        metric = m["name"]
        if m.get("singleInstanceAssignment") is not None:
            target, per_group = float(m["singleInstanceAssignment"]), True
        else:
            target = float(m["target"])
    elif p.get("loadBalancingUtilization"):
        target = float(p["loadBalancingUtilization"]["target"])
    sic = p.get("scaleInControl") or {}
    template = next((r for r in rs if r["type"] == GCP_TEMPLATE), None)
    spot = template is not None and (template["inputs"].get("scheduling") or {}).get("provisioningModel") == "SPOT"
    return ScalingConfig(
        target=name,
        cloud="gcp",
        group=mig["name"],
        min_size=int(p.get("minReplicas", 0)),
        max_size=int(p["maxReplicas"]),
        initial=size,
        autoscaler=GcpAutoscaler(
            resource=auto["name"],
            metric=metric,
            target=target,
            per_group=per_group,
            cooldown=int(p.get("cooldownPeriod", 60)),
            scale_in_window=int(sic.get("timeWindowSec", 600)),
            scale_in_max=int((sic.get("maxScaledInReplicas") or {}).get("fixed", 10**6)),
            stabilization=int(p.get("stabilizationPeriodSec", GCP_STABILIZATION_SECONDS)),
        ),
        spot=spot,
    )


def _signal_of_query(query: str) -> str:
    """Which load a KEDA trigger's PromQL measures, from the shape planning.onprem.workload
    .prometheus_query gives each signal: busy counts pods (`count(... > 0)`), in_flight adds the
    running and the waiting gauges, queue_depth sums the waiting gauge alone."""
    if query.lstrip().startswith("count("):
        return "busy"
    if " + " in query:
        return "in_flight"
    return "queue_depth"


# The Prometheus adapter's metric names (planning.onprem.workload.ADAPTER_METRICS) to signals.
_ADAPTER_SIGNALS = {
    "inferstack_in_flight_requests": "in_flight",
    "inferstack_waiting_requests": "queue_depth",
    "inferstack_busy": "busy",
}


def _rules(raw: dict[str, Any] | None, default: ScalingRules) -> ScalingRules:
    """A direction's behavior; a field it leaves out takes the HPA's default for that direction."""
    if not raw:
        return default
    policies = tuple(
        ScalingPolicy(str(p["type"]), int(p["value"]), int(p["periodSeconds"])) for p in raw.get("policies") or []
    )
    return ScalingRules(
        stabilization=int(raw.get("stabilizationWindowSeconds", default.stabilization)),
        policies=policies or default.policies,
        select=str(raw.get("selectPolicy", default.select)),
    )


def _onprem_pool(target: str, r: dict[str, Any]) -> tuple[str, ScalingConfig]:
    body = r["inputs"]
    meta, spec = body.get("metadata") or {}, body["spec"]
    pool = (meta.get("labels") or {}).get(POOL_LABEL) or spec["scaleTargetRef"]["name"]
    if r["type"] == KEDA_SCALED_OBJECT:
        behavior = ((spec.get("advanced") or {}).get("horizontalPodAutoscalerConfig") or {}).get("behavior") or {}
        metrics = tuple(
            PodMetric(_signal_of_query(t["metadata"]["query"]), float(t["metadata"]["threshold"]))
            for t in spec.get("triggers") or []
            if t.get("type") == "prometheus"
        )
        lo = int(spec.get("minReplicaCount", KEDA_DEFAULT_MIN))
        hi = int(spec.get("maxReplicaCount", KEDA_DEFAULT_MAX))
        pods = PodAutoscaler(
            resource=r["name"],
            via="keda",
            metrics=metrics,
            scale_up=_rules(behavior.get("scaleUp"), DEFAULT_SCALE_UP),
            scale_down=_rules(behavior.get("scaleDown"), DEFAULT_SCALE_DOWN),
            polling=int(spec.get("pollingInterval", KEDA_DEFAULT_POLLING)),
            cooldown=int(spec.get("cooldownPeriod", KEDA_DEFAULT_COOLDOWN)),
        )
    else:
        behavior = spec.get("behavior") or {}
        metrics = tuple(
            PodMetric(_ADAPTER_SIGNALS[m["pods"]["metric"]["name"]], float(m["pods"]["target"]["averageValue"]))
            for m in spec.get("metrics") or []
            if m.get("type") == "Pods" and m["pods"]["metric"]["name"] in _ADAPTER_SIGNALS
        )
        lo, hi = int(spec.get("minReplicas", 1)), int(spec["maxReplicas"])  # minReplicas defaults to 1
        pods = PodAutoscaler(
            resource=r["name"],
            via="hpa",
            metrics=metrics,
            scale_up=_rules(behavior.get("scaleUp"), DEFAULT_SCALE_UP),
            scale_down=_rules(behavior.get("scaleDown"), DEFAULT_SCALE_DOWN),
        )
    return pool, ScalingConfig(
        target=f"{target}/{pool}",
        cloud="onprem",
        group=spec["scaleTargetRef"]["name"],
        min_size=lo,
        max_size=hi,
        initial=lo,  # the Deployment sets no replicas: the autoscaler brings it to its minimum at once
        pods=pods,
    )


def onprem_scaling_configs(resources: list[dict[str, Any]]) -> dict[str, dict[str, ScalingConfig]]:
    """Each on-prem target's pools (target -> pool -> configuration), from the KEDA ScaledObjects or
    HPAs its component registers, one per pool's Deployment."""
    out: dict[str, dict[str, ScalingConfig]] = {}
    for r in resources:
        if r["type"] not in (KEDA_SCALED_OBJECT, K8S_HPA):
            continue
        parent = r.get("parent") or ""
        if ONPREM_COMPONENT not in parent:
            continue
        target = parent.rsplit("::", 1)[-1]
        pool, cfg = _onprem_pool(target, r)
        out.setdefault(target, {})[pool] = cfg
    return out


def scaling_configs(resources: list[dict[str, Any]]) -> dict[str, ScalingConfig]:
    """Each fleet target's scaling configuration; targets with no group (TPU slices) are absent."""
    out = {}
    for name, rs in _by_target(resources).items():
        types = {r["type"] for r in rs}
        if AWS_GROUP in types:
            out[name] = _aws(name, rs)
        elif GCP_MIG in types:
            out[name] = _gcp(name, rs)
    return out
