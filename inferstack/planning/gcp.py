"""Everything the GCP components need, decided from the spec without touching Pulumi:
network layout, labels, machine and accelerator facts, the autoscaler's signal, TPU slice
shapes, and the rendered startup scripts.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from inferstack import catalog
from inferstack.planning import gcp_observability as gcp_obs
from inferstack.planning import observability as obs
from inferstack.planning import sizing
from inferstack.planning.endpoint import GcpEndpointPlan, plan_gcp_endpoint
from inferstack.planning.naming import gcp_labels, gcp_name, resource_prefix, standard_tags
from inferstack.planning.serving import engine_args, engine_runtime_flags
from inferstack.render import render
from inferstack.spec.models import DeploymentSpec, GcpGpuFleetTarget, GcpNetwork, GcpTpuTarget

# Google's load balancer and health-check probes come from these ranges (Cloud Load Balancing docs).
HEALTH_CHECK_RANGES = ("35.191.0.0/16", "130.211.0.0/22")
KMS_ROTATION_SECONDS = 90 * 24 * 3600
METRIC_PREFIX = "custom.googleapis.com/inferstack"
SERVICE_ACCOUNT_ROLES = ("roles/logging.logWriter", "roles/monitoring.metricWriter")

# Per-group signals: one series per publisher, summed by the autoscaler and divided by the
# target (single_instance_assignment), so the sum stays defined while the group is empty; a
# per-instance gauge is averaged over the group's VMs and has no value at zero. No node publishes
# at zero, which is why a GCP group may not use min: 0 (spec.models.GcpGpuFleetTarget).
GCP_SIGNALS = {
    "in_flight": ("in_flight_requests", "group"),  # running + waiting, the default on both clouds
    "queue_depth": ("pending_requests", "group"),
    "requests_per_target": ("running_requests", "group"),
    "gpu_utilization": ("gpu_utilization", "instance"),
    "lb_utilization": ("", "load-balancer"),  # the endpoint's backend service measures it
}

# The group's auto-healing initial delay: Compute Engine accepts 0..3600 s (autoHealingPolicies
# initialDelaySec). The estimate is rounded up to whole minutes and kept inside that range.
MAX_INITIAL_DELAY_SECONDS = 3600
MIN_INITIAL_DELAY_SECONDS = 300


def initial_delay(timings: catalog.GcpNodeTimings, weights_bytes: int, override: int | None) -> int:
    """Create to healthy: boot, driver install, both image pulls, the weights' fetch and load, the
    engine's warm-up (catalog data/gcp_node.yaml), unless the spec overrides it."""
    if override is not None:
        return min(MAX_INITIAL_DELAY_SECONDS, override)
    minutes = -(-int(timings.startup_seconds(weights_bytes)) // 60)
    return max(MIN_INITIAL_DELAY_SECONDS, min(MAX_INITIAL_DELAY_SECONDS, minutes * 60))


_AR = re.compile(r"^(?P<location>[a-z0-9-]+)-docker\.pkg\.dev/(?P<project>[^/]+)/(?P<repository>[^/]+)/")


@dataclass(frozen=True)
class ArtifactRepository:
    location: str
    project: str
    repository: str


def _registry_host(image: str) -> str | None:
    """The Artifact Registry host to configure Docker credentials for; None for other registries."""
    return image.split("/", 1)[0] if parse_artifact_registry(image) else None


def parse_artifact_registry(image: str) -> ArtifactRepository | None:
    m = _AR.match(image)
    return ArtifactRepository(m["location"], m["project"], m["repository"]) if m else None


@dataclass(frozen=True)
class GcpNetworkPlan:
    project: str
    region: str
    name: str  # the physical name of the network (and subnet) inferstack creates
    subnet_cidr: str | None
    network: str | None  # an existing network's name
    subnetwork: str | None
    cloud_nat: bool
    serving_port: int

    @property
    def creates_network(self) -> bool:
        return self.network is None


def plan_network(net: GcpNetwork, project: str, region: str, prefix: str, port: int) -> GcpNetworkPlan:
    return GcpNetworkPlan(
        project=project,
        region=region,
        name=gcp_name(prefix),
        subnet_cidr=net.subnet_cidr if net.creates_network else None,
        network=net.network,
        subnetwork=net.subnetwork,
        cloud_nat=net.cloud_nat,
        serving_port=port,
    )


@dataclass(frozen=True)
class Weights:
    bucket: str
    prefix: str

    @property
    def uri(self) -> str:
        return f"gs://{self.bucket}/{self.prefix}/" if self.prefix else f"gs://{self.bucket}/"


# The autoscaler of a managed instance group has no separate scale-in policy: it follows the
# largest recommendation of its metrics. Waiting requests are 0 whenever the batch has room (normal
# load) and GPU utilisation says nothing of requests, so with those signals alone a busy group
# would shrink. Each healthy node therefore also publishes whether it has requests in flight (1 or
# 0) as a per-group metric with one VM per unit: the group never recommends fewer VMs than are
# busy, and never more than it has, so this metric only holds back scale-in.
BUSY_METRIC = f"{METRIC_PREFIX}/busy_instances"
SIGNALS_BLIND_TO_BUSY_NODES = ("queue_depth", "gpu_utilization")


@dataclass(frozen=True)
class GcpSignal:
    signal: str
    metric: str  # full Cloud Monitoring metric type ('' for the load balancer's own)
    per_group: bool
    target: float
    busy_metric: str = ""  # BUSY_METRIC when the signal alone would remove busy nodes

    @property
    def load_balancing(self) -> bool:
        return self.signal == "lb_utilization"


def plan_signal(signal: str, target: float, engine: catalog.Engine | None = None) -> GcpSignal:
    metric, scope = GCP_SIGNALS[signal]
    counts_requests = engine is not None and engine.queue_metric is not None and engine.running_metric is not None
    busy = BUSY_METRIC if counts_requests and signal in SIGNALS_BLIND_TO_BUSY_NODES else ""
    return GcpSignal(signal, f"{METRIC_PREFIX}/{metric}" if metric else "", scope == "group", target, busy)


@dataclass(frozen=True)
class GcpTargetPlan:
    """What every GCP target's plan has: where it runs, what it serves and how it is reached."""

    target: str
    project: str
    region: str
    prefix: str
    labels: dict[str, str]
    port: int
    weights: Weights
    image: str
    artifact_repository: ArtifactRepository | None
    public_ip: bool
    network: GcpNetworkPlan
    startup_script: str
    endpoint: GcpEndpointPlan | None
    # Observability (planning/gcp_observability.py): the label the target's series carry, how the
    # dashboard and the alerts select them, the alert policies and the channels they notify.
    metrics_label: str
    metrics_scope: obs.PrometheusScope
    alert_policies: tuple[gcp_obs.AlertPolicyPlan, ...]
    notification_channels: tuple[str, ...]
    # The collector image's repository when the spec names one in Artifact Registry (a mirror):
    # the nodes get read access to it. None for the default, public image.
    collector_repository: ArtifactRepository | None


def collector_image(target: GcpGpuFleetTarget | GcpTpuTarget) -> str:
    return target.collector_image or catalog.gcp_collector_image()


def collector_registry(target: GcpGpuFleetTarget | GcpTpuTarget) -> str | None:
    """The registry host the node logs in to for the collector: only a mirror's (the default image
    is public)."""
    return _registry_host(target.collector_image) if target.collector_image else None


def observability_fields(spec: DeploymentSpec, name: str, prefix: str, sc: obs.PrometheusScope) -> dict[str, object]:
    target = spec.targets[name]
    assert isinstance(target, (GcpGpuFleetTarget, GcpTpuTarget))
    return {
        "metrics_label": prefix,
        "metrics_scope": sc,
        "alert_policies": tuple(gcp_obs.alert_policies(spec, name, prefix, sc)),
        "notification_channels": tuple(
            gcp_obs.channels_for(target.project, spec.observability.alerts.gcp_notification_channels)
        ),
        "collector_repository": parse_artifact_registry(target.collector_image) if target.collector_image else None,
    }


def collector_template_vars(spec: DeploymentSpec, target: GcpGpuFleetTarget | GcpTpuTarget, prefix: str) -> dict:
    return {
        "collector_config": gcp_obs.collector_yaml(spec.serving.engine, spec.serving.port, prefix),
        "collector_image": collector_image(target),
        "scrape_seconds": gcp_obs.SCRAPE_SECONDS,
        "target_label": gcp_obs.TARGET_LABEL,
        "metrics_label": prefix,
    }


@dataclass(frozen=True)
class GcpGpuFleetPlan(GcpTargetPlan):
    zones: tuple[str, ...]  # the zones of the region that offer the machine type (catalog), or the spec's
    distribution_shape: str  # the regional group's target distribution shape
    group_name: str
    machine_type: str
    guest_accelerator: tuple[str, int] | None
    gpu_count: int
    boot_image: str
    boot_disk_gib: int
    boot_disk_type: str
    spot: bool
    termination_action: str
    min_size: int
    max_size: int
    initial_size: int
    scale_in_cooldown: int
    health_path: str
    initial_delay_seconds: int
    signal: GcpSignal


def gpu_zones(target: GcpGpuFleetTarget) -> tuple[str, ...]:
    """The spec's zones, else every zone of the region that offers the machine type (or the N1
    guest accelerator), from the catalog. The checks make sure the result is not empty."""
    if target.zones:
        return tuple(target.zones)
    accelerator = target.accelerator.type if target.accelerator is not None else None
    return catalog.gcp_zones(target.machine, accelerator).get(target.region, ())


def distribution_shape(spot: bool) -> str:
    """BALANCED for every GPU group, Spot or not. BALANCED places VMs in the zones where the GPUs
    are available while spreading over them (Google: "highly available serving or batch
    workloads"); EVEN would keep retrying a zone that is out of the GPU. ANY would suit Spot, but
    an autoscaled regional group must be EVEN or BALANCED ("Set a target distribution shape for
    VMs in a regional MIG", Limitations), and every group here has an autoscaler. BALANCED needs
    proactive instance redistribution off, which the group's update policy sets. `spot` stays a
    parameter so that the day ANY supports autoscaling, this is the one place to change."""
    return "BALANCED"


def group_name(prefix: str, zones: tuple[str, ...] | list[str]) -> str:
    """The regional group's name, carrying a short hash of its zones.

    Compute Engine sets a regional MIG's zones only at creation, so a zone change (a catalog
    update, a spec's `zones:`) replaces the group. With the zones in the name the replacement is
    an ordinary create-before-delete: the new group and its autoscaler come up under the new
    name, the backend service moves to the new group, and only then do the old ones go. A fixed
    name would need delete-before-replace, and Compute refuses to delete a group a backend
    service still uses, which would leave the stack stuck half-way."""
    digest = hashlib.sha256(",".join(sorted(zones)).encode()).hexdigest()[:4]
    return gcp_name(prefix, f"z{digest}")


def plan_gcp_fleet(spec: DeploymentSpec, stack: str, name: str) -> GcpGpuFleetPlan:
    target = spec.targets[name]
    assert isinstance(target, GcpGpuFleetTarget)
    model_name, model = spec.model_of(name)
    engine = catalog.engines()[spec.serving.engine]
    prefix = resource_prefix(spec, stack, name)
    zones = gpu_zones(target)
    group = group_name(prefix, zones)
    image = spec.image_of(name)
    assert image is not None  # the spec checks guarantee it
    if target.accelerator is not None:
        guest = (target.accelerator.type, target.accelerator.count)
        gpus, disk_type = target.accelerator.count, "pd-balanced"
    else:
        machine = catalog.gcp_machine_types()[target.machine]
        guest, gpus, disk_type = None, machine.gpu_count, machine.boot_disk_type
    signal = plan_signal(target.autoscaling.signal, target.autoscaling.target, engine)
    weights = Weights(*model.copy_in("gs"))
    script = render(
        "gcp_startup.sh.j2",
        stack=stack,
        target=name,
        project=target.project,
        model_name=model_name,
        weights_uri=weights.uri,
        image=image,
        registries=sorted({r for r in (_registry_host(image), collector_registry(target)) if r}),
        port=spec.serving.port,
        engine=engine,
        engine_args=engine_args(spec, model_name, model),
        engine_runtime=engine_runtime_flags(spec.serving.engine),
        group=group,
        signal=signal,
        cloud_cli_image=target.cloud_cli_image or catalog.gcp_cloud_cli_image(),
        gpu_utilization_metric=gcp_obs.GPU_UTILIZATION_METRIC,
        gpu_memory_metric=gcp_obs.GPU_MEMORY_METRIC,
        **collector_template_vars(spec, target, prefix),
    )
    return GcpGpuFleetPlan(
        target=name,
        project=target.project,
        region=target.region,
        zones=zones,
        distribution_shape=distribution_shape(target.spot.enabled),
        prefix=prefix,
        group_name=group,
        labels=gcp_labels(
            {**standard_tags(spec, stack, model_name, target.workload), gcp_obs.TARGET_RESOURCE_LABEL: prefix}
        ),
        machine_type=target.machine,
        guest_accelerator=guest,
        gpu_count=gpus,
        boot_image=target.boot_image,
        boot_disk_gib=target.boot_disk_gib,
        boot_disk_type=disk_type,
        spot=target.spot.enabled,
        termination_action=target.spot.termination_action,
        min_size=target.capacity.min,
        max_size=target.capacity.max,
        initial_size=target.capacity.initial,
        scale_in_cooldown=target.autoscaling.scale_in_cooldown,
        port=spec.serving.port,
        health_path=engine.health_path,
        initial_delay_seconds=initial_delay(
            catalog.gcp_node_timings_of(target.machine),
            sizing.footprint(model_name, model).weights_bytes,
            spec.serving.health_check_grace_seconds,
        ),
        signal=signal,
        weights=weights,
        image=image,
        artifact_repository=parse_artifact_registry(image),
        public_ip=target.network.public_ip,
        network=plan_network(target.network, target.project, target.region, prefix, spec.serving.port),
        startup_script=script,
        endpoint=plan_gcp_endpoint(spec, stack, name),
        **observability_fields(spec, name, prefix, gcp_obs.scope("gcp-gpu-fleet", prefix)),  # type: ignore[arg-type]
    )


# A TPU VM's boot disk is a fixed 100 GiB ("Attach durable block storage to a TPU VM": "A TPU VM
# includes a 100 GiB boot disk"), shared with the runtime image and the engine image. Weights go
# to a data disk of their own, of the type the generation takes (same page, "TPU support for
# Hyperdisk and Persistent Disk": v6e Hyperdisk Balanced or ML; v5e, v5p Balanced Persistent Disk).
TPU_BOOT_DISK_GIB = 100
TPU_BOOT_DISK_WEIGHTS_GIB = 50  # what multi-host slices may keep on the boot disk next to the images
TPU_DATA_DISK_TYPES = {"v5e": "pd-balanced", "v5p": "pd-balanced", "v6e": "hyperdisk-balanced"}
TPU_DATA_DISK_HEADROOM = 1.25  # file-system overhead and a second revision of the weights during a sync
TPU_DATA_DISK_EXTRA_GIB = 20


def tpu_data_disk_gib(weights_bytes: int) -> int:
    """The weights with headroom, rounded up to 10 GiB."""
    raw = weights_bytes / catalog.GIB * TPU_DATA_DISK_HEADROOM + TPU_DATA_DISK_EXTRA_GIB
    return -(-int(raw) // 10) * 10


@dataclass(frozen=True)
class GcpTpuPlan(GcpTargetPlan):
    zone: str
    generation: str
    topology: str
    accelerator_type: str
    runtime_version: str
    hosts: int
    slices: tuple[str, ...]  # the node name of each slice
    provisioning: str
    # One read-write data disk per single-host slice for the weights (None: multi-host slices,
    # whose weights stay on each host's boot disk: a read-write disk attaches to one VM only, and
    # a multi-host node is several VMs; the checks keep such weights small enough).
    data_disk_gib: int | None = None
    data_disk_type: str = "pd-balanced"

    def data_disk_name(self, slice_name: str) -> str:
        return gcp_name(slice_name, "weights")

    @property
    def uses_queued_resource(self) -> bool:
        """Multi-host slices, and spot or reserved capacity, go through a queued resource: the
        TPU API waits for the capacity instead of failing the deployment."""
        return self.hosts > 1 or self.provisioning != "on-demand"


QUEUED_RESOURCE_TYPE = "tpu.googleapis.com/QueuedResource"


def plan_tpu_hosts(target: GcpTpuTarget) -> int:
    return catalog.tpu_generations()[target.generation].hosts(target.shape)


def queued_resource_body(
    plan: GcpTpuPlan,
    node_id: str,
    *,
    network: str,
    subnetwork: str,
    service_account: str,
    data_disk: str | None = None,
) -> dict:
    """The Cloud TPU API's QueuedResource for one slice (v2 REST shape), with the node spec
    every slice gets: private network, dedicated service account, metadata, labels."""
    node: dict = {
        "acceleratorType": plan.accelerator_type,
        "runtimeVersion": plan.runtime_version,
        "description": f"inferstack {plan.prefix}: {plan.generation} {plan.topology} serving slice",
        "networkConfig": {
            "network": network,
            "subnetwork": subnetwork,
            "enableExternalIps": plan.public_ip,
            "canIpForward": False,
        },
        "serviceAccount": {"email": service_account, "scope": ["https://www.googleapis.com/auth/cloud-platform"]},
        "shieldedInstanceConfig": {"enableSecureBoot": True},
        "metadata": {
            "enable-oslogin": "TRUE",
            "block-project-ssh-keys": "TRUE",
            "startup-script": plan.startup_script,
        },
        "labels": dict(plan.labels),
    }
    # Reserved capacity: the v2 API's QueuedResource.Guaranteed has only `minDuration` (the
    # `reserved` flag there is v2alpha1's); in v2 the node's `schedulingConfig.reserved` asks for
    # the project's reservation (Cloud TPU REST v2 reference, projects.locations.queuedResources
    # and projects.locations.nodes#SchedulingConfig).
    if plan.provisioning == "reserved":
        node["schedulingConfig"] = {"reserved": True}
    # The weights' data disk (Cloud TPU v2 Node.dataDisks: AttachedDisk {sourceDisk, mode}).
    if data_disk is not None:
        node["dataDisks"] = [{"sourceDisk": data_disk, "mode": "READ_WRITE"}]
    body: dict = {
        "tpu": {
            "nodeSpec": [{"parent": f"projects/{plan.project}/locations/{plan.zone}", "nodeId": node_id, "node": node}]
        }
    }
    if plan.provisioning == "spot":
        body["spot"] = {}
    return body


def plan_tpu(spec: DeploymentSpec, stack: str, name: str) -> GcpTpuPlan:
    target = spec.targets[name]
    assert isinstance(target, GcpTpuTarget)
    model_name, model = spec.model_of(name)
    gen = catalog.tpu_generations()[target.generation]
    prefix = resource_prefix(spec, stack, name)
    weights = Weights(*model.copy_in("gs"))
    hosts = gen.hosts(target.shape)
    weights_bytes = sizing.footprint(model_name, model).weights_bytes
    data_disk = tpu_data_disk_gib(weights_bytes) if hosts == 1 else None
    script = render(
        "gcp_tpu_startup.sh.j2",
        stack=stack,
        target=name,
        model_name=model_name,
        weights_uri=weights.uri,
        image=target.image,
        registry=_registry_host(target.image),
        port=spec.serving.port,
        chips=gen.chips_of(target.shape),
        hosts=hosts,
        engine_args=[*engine_args(spec, model_name, model), *target.args],
        engine_runtime=engine_runtime_flags(spec.serving.engine),
        health_path=catalog.engines()["vllm"].health_path,
        data_disk=data_disk is not None,
        metrics_path=catalog.engines()["vllm"].metrics_path,
        collector_registry=collector_registry(target),
        **collector_template_vars(spec, target, prefix),
    )
    slices = tuple(gcp_name(prefix, f"{i}") for i in range(target.slices))
    return GcpTpuPlan(
        target=name,
        project=target.project,
        zone=target.zone,
        region=target.region,
        prefix=prefix,
        labels=gcp_labels(
            {**standard_tags(spec, stack, model_name, target.workload), gcp_obs.TARGET_RESOURCE_LABEL: prefix}
        ),
        generation=target.generation,
        topology=target.shape,
        accelerator_type=gen.accelerator_type(target.shape),
        runtime_version=target.runtime_version or gen.runtime_versions[0],
        hosts=hosts,
        slices=slices,
        provisioning=target.provisioning,
        port=spec.serving.port,
        weights=weights,
        image=target.image,
        artifact_repository=parse_artifact_registry(target.image),
        public_ip=target.network.public_ip,
        network=plan_network(target.network, target.project, target.region, prefix, spec.serving.port),
        startup_script=script,
        endpoint=plan_gcp_endpoint(spec, stack, name),
        data_disk_gib=data_disk,
        data_disk_type=TPU_DATA_DISK_TYPES[target.generation],
        **observability_fields(  # type: ignore[arg-type]
            spec, name, prefix, gcp_obs.scope("gcp-tpu", prefix, zone=target.zone, slices=slices)
        ),
    )
