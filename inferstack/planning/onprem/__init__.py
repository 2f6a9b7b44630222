"""On-prem Kubernetes: every object of an `onprem-k8s` target, decided offline.

A plan is data. Kubernetes objects are dicts exactly as the API server receives them (apiVersion,
kind, metadata, spec), so the same plan is applied by pulumi-kubernetes, written by `inferstack
render`, validated against the cluster version's OpenAPI schema in the tests and checked by the
policy pack. Nodes are the exception: inferstack never owns a node, so a pool's labels and taints
are patches (NodePatch), and the GPU operator is a Helm chart (a Release when applied, a GitOps
object when rendered).

Modules: `pools` (what each pool offers: devices, the extended resource a replica asks for),
`nodes` (node patches, the GPU operator, MIG and time-slicing config, RuntimeClass), `workload`
(namespace, quota, the engine's Deployments, Service, PDB, NetworkPolicy, autoscaling, route).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Manifest:
    """One Kubernetes object, as the API server receives it."""

    body: Mapping[str, Any]
    # How long `pulumi up` waits for the object to be ready, when its planner knows better than
    # the object itself (an autoscaled Deployment's rollout at its max replicas: planning.onprem.rollout).
    await_seconds: int | None = None

    @property
    def api_version(self) -> str:
        return self.body["apiVersion"]

    @property
    def kind(self) -> str:
        return self.body["kind"]

    @property
    def name(self) -> str:
        return self.body["metadata"]["name"]

    @property
    def namespace(self) -> str | None:
        return self.body["metadata"].get("namespace")


@dataclass(frozen=True)
class NodePatch:
    """Labels and taints inferstack puts on a node it does not own (pulumi-kubernetes NodePatch)."""

    node: str
    labels: Mapping[str, str]
    taints: tuple[Mapping[str, str], ...] = ()  # {key, value, effect}


@dataclass(frozen=True)
class HelmChart:
    """A chart installed as a Helm release (apply mode)."""

    release: str
    namespace: str
    chart: str
    version: str
    repository: str
    values: Mapping[str, Any]


@dataclass(frozen=True)
class PoolPlan:
    """What one GPU pool offers the engine."""

    name: str
    nodes: tuple[str, ...]  # named nodes (patched); empty when the pool is selected by existing labels
    node_selector: Mapping[str, str]  # what the pool's Deployment selects on
    node_count: int
    gpu: str  # catalog GPU model
    gpus_per_node: int
    sharing: str  # whole | mig | time-slicing
    mig_profile: str | None
    time_slices: int | None
    resource: str  # the extended resource a replica requests: nvidia.com/gpu, nvidia.com/mig-<profile> or nvidia.com/gpu.shared (time slices)
    devices_per_node: int  # schedulable units of `resource` per node
    devices_per_replica: int  # tensor-parallel degree (whole GPUs) or 1 (a MIG slice, a time slice)
    memory_bytes_per_device: int  # accelerator memory one device gives a replica
    min_replicas: int
    max_replicas: int
    taint: (
        Mapping[str, str] | None
    )  # inferstack's taint on the pool's nodes (dedicated_taint); serving pods tolerate it
    tolerations: tuple[Mapping[str, str], ...] = ()  # the site's own taints on the nodes, as tolerations

    @property
    def pod_tolerations(self) -> tuple[dict[str, str], ...]:
        """What the pool's engine pods tolerate: the site's taints, then inferstack's own."""
        own = (
            (
                {
                    "key": self.taint["key"],
                    "operator": "Equal",
                    "value": self.taint.get("value", ""),
                    "effect": self.taint["effect"],
                },
            )
            if self.taint is not None
            else ()
        )
        return (*(dict(t) for t in self.tolerations), *own)

    @property
    def max_replicas_on_pool(self) -> int:
        """Replicas the pool's devices can hold at once."""
        return (self.devices_per_node // self.devices_per_replica) * self.node_count


@dataclass(frozen=True)
class OnPremPlan:
    target: str
    location: str  # the site's country; residency and the pack see it as the namespace's label
    namespace: str
    mode: str  # apply | render
    render_dir: str | None
    kubeconfig_config_key: str
    context: str | None
    kubernetes_version: str
    labels: Mapping[str, str]  # standard labels on every object
    pools: tuple[PoolPlan, ...]
    node_patches: tuple[NodePatch, ...]
    gpu_operator: HelmChart | None  # apply mode with a managed operator; render mode declares it as a manifest
    manifests: tuple[Manifest, ...] = field(default=())  # in apply order: namespaces and classes first
