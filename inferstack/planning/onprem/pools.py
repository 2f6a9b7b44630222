"""What each GPU pool of an on-prem target offers a replica, decided from the spec and the catalog.

The GPU operator advertises a pool's GPUs to the scheduler as extended resources; which name a
replica asks for depends on how the GPUs are shared:

- whole GPUs: `nvidia.com/gpu`, one per GPU; a replica takes the smallest tensor-parallel
  degree that holds the model (planning.sizing) and divides its attention heads (vLLM and
  SGLang shard heads evenly across ranks, so a degree that does not divide them fails at load).
- MIG: the operator runs with `mig.strategy: mixed`, so each slice is `nvidia.com/mig-<profile>`
  (NVIDIA GPU Operator, "GPU Operator with MIG"; k8s-device-plugin README, MIG strategies). The
  mixed strategy is chosen over `single` because under `single` a MIG slice is advertised as
  `nvidia.com/gpu` too: a replica sized for a 3g.40gb slice and one sized for a whole H100 would
  ask for the same name, a quota on `nvidia.com/gpu` would count slices as GPUs, and a whole-GPU
  pool next to a MIG pool in one cluster could not be told apart by the resource a pod requests.
- time-slicing: the device plugin's `renameByDefault: true` advertises each GPU's N replicas as
  `nvidia.com/gpu.shared` (k8s-device-plugin README, "Shared Access to GPUs with CUDA
  Time-Slicing"), so nothing that asks for a whole `nvidia.com/gpu` lands on a shared one by
  accident; `failRequestsGreaterThanOne: true` refuses a pod asking for two slices (two slices
  of one GPU are not twice the GPU). Time slices share the GPU's memory with no isolation, so
  the memory a replica may count on is the GPU's divided by the replicas.

A pool's named nodes carry the label `inferstack.io/pool=<value>` (patched; the Deployment
selects on it). Taints are the site's by default: a Node's `spec.taints` is one atomic list, owned
whole by whoever applies it, and on a real cluster other managers (the administrator, the node
lifecycle controller, a device or network operator) already own it, so a patch of it either fails
on the conflict or, forced, wipes their taints. The pool lists the site's taints in `tolerations`,
which its engine pods and the GPU operator's agents carry. Only `dedicated_taint: true` (apply
mode, nodes whose taints nothing else sets) adds the NoSchedule taint
`inferstack.io/dedicated=<value>`, applied without forcing. A pool selected by labels the cluster
already sets is not patched: its selector is the spec's.
"""

from __future__ import annotations

from inferstack import catalog
from inferstack.planning import sizing
from inferstack.planning.naming import gcp_name
from inferstack.planning.onprem import PoolPlan
from inferstack.spec.models import DeploymentSpec, MigSharing, NodePool, OnPremK8sTarget, TimeSlicing

POOL_LABEL = "inferstack.io/pool"
DEDICATED_TAINT = "inferstack.io/dedicated"
GPU_RESOURCE = "nvidia.com/gpu"
SHARED_GPU_RESOURCE = "nvidia.com/gpu.shared"  # time-slicing with renameByDefault: true
MIG_STRATEGY = "mixed"


def mig_resource(profile: str) -> str:
    """The extended resource of one MIG slice under the mixed strategy."""
    return f"nvidia.com/mig-{profile}"


def pool_label_value(spec: DeploymentSpec, target: str, pool: str) -> str:
    """The value of the pool label and taint: deployment, target and pool, so two deployments
    sharing a cluster never claim each other's nodes. A label value is at most 63 characters of
    [a-z0-9-] here (gcp_name keeps that, cutting with a hash of the whole when longer)."""
    return gcp_name(spec.metadata.name, target, pool)


def tensor_parallel_degree(spec: DeploymentSpec, name: str, gpu: catalog.GpuModel, gpus_per_node: int) -> int | None:
    """The smallest number of whole GPUs in one node that holds the target's model and that the
    engine can shard it over (sizing.tensor_parallel_refusal); None when no count up to the node's does."""
    model_name, model = spec.model_of(name)
    fp = sizing.footprint(model_name, model)
    return sizing.tensor_parallel_degree(fp, sizing.architecture_of(model_name, model), gpu.memory_bytes, gpus_per_node)


def plan_pool(spec: DeploymentSpec, name: str, pool_name: str, pool: NodePool) -> PoolPlan:
    gpu = catalog.gpu_models()[pool.gpu]
    sharing = pool.sharing
    mig_profile = time_slices = None
    if isinstance(sharing, MigSharing):
        # A CUDA process uses one MIG device, so a replica is one slice, never several.
        profile = gpu.mig_profiles[sharing.profile]
        mig_profile = profile.name
        resource = mig_resource(profile.name)
        devices_per_node = profile.instances * pool.gpus_per_node
        per_replica = 1
        memory = profile.memory_mib * catalog.MIB
    elif isinstance(sharing, TimeSlicing):
        time_slices = sharing.replicas
        resource = SHARED_GPU_RESOURCE
        devices_per_node = sharing.replicas * pool.gpus_per_node
        per_replica = 1
        memory = gpu.memory_bytes // sharing.replicas
    else:
        resource = GPU_RESOURCE
        devices_per_node = pool.gpus_per_node
        degree = tensor_parallel_degree(spec, name, gpu, pool.gpus_per_node)
        if degree is None:  # check_spec rejects such a pool before anything is planned
            raise ValueError(f"targets.{name}.pools.{pool_name}: the model does not fit one node's GPUs")
        per_replica = degree
        memory = gpu.memory_bytes
    value = pool_label_value(spec, name, pool_name)
    patched = pool.nodes is not None
    return PoolPlan(
        name=pool_name,
        nodes=tuple(pool.nodes or ()),
        node_selector={POOL_LABEL: value} if patched else dict(sorted((pool.node_selector or {}).items())),
        node_count=pool.size,
        gpu=gpu.name,
        gpus_per_node=pool.gpus_per_node,
        sharing=sharing.mode,
        mig_profile=mig_profile,
        time_slices=time_slices,
        resource=resource,
        devices_per_node=devices_per_node,
        devices_per_replica=per_replica,
        memory_bytes_per_device=memory,
        min_replicas=pool.replicas.min,
        max_replicas=pool.replicas.max,
        taint={"key": DEDICATED_TAINT, "value": value, "effect": "NoSchedule"}
        if patched and pool.dedicated_taint
        else None,
        tolerations=tuple(t.body() for t in pool.tolerations),
    )


def plan_pools(spec: DeploymentSpec, name: str) -> tuple[PoolPlan, ...]:
    """Every pool of target `name`, in the order of their names (reordering the spec renames nothing)."""
    target = spec.targets[name]
    assert isinstance(target, OnPremK8sTarget)
    return tuple(plan_pool(spec, name, p, target.pools[p]) for p in sorted(target.pools))
