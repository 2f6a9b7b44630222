"""The table of target kinds: for each `kind:` of the spec, its model, planner, component and
hooks. Adding a kind adds its own modules and one entry here; nothing else branches on the kind.

The hooks are what the cross-cutting parts of inferstack need of a target:
- `plan(spec, stack, name)`: the pure plan its component takes;
- `component`: the module whose `deploy(name, plan, ctx)` registers the component and returns its
  stack outputs (imported only when a program runs, so that `validate` and `cost` never load the
  cloud SDKs);
- `check(spec, name, target)`: the kind's own spec checks (findings);
- `cost(name, target)`: $/hour at min and max;
- `accelerators(target)`: accelerators per shape, for the pack's GPU guardrail;
- `accelerator_memory(spec, name)`: (bytes, accelerators, device) one replica has, for the replica
  model (device: the catalog name of its accelerator, data/accelerator_performance.yaml);
- `startup(spec, stack, name)`: seconds a new replica takes to serve, and a warm start if any;
- `fixed_replicas(target)`: replicas of a kind without an autoscaler (None: the plan's scaling
  configuration says).

Modules that the table itself draws hooks from (checks, cost, replica) import it inside their
aggregate functions, which is what keeps the imports acyclic.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from inferstack import catalog
from inferstack.planning import aws_fleet, cost, gcp, sizing
from inferstack.planning.onprem.plan import plan_onprem
from inferstack.spec import checks
from inferstack.spec.models import (
    AwsGpuFleetTarget,
    DeploymentSpec,
    GcpGpuFleetTarget,
    GcpTpuTarget,
    OnPremK8sTarget,
)

if TYPE_CHECKING:
    import pulumi


class BuildContext(Protocol):
    """What a component's `deploy` gets from the program: explicit providers and per-stack singletons."""

    def aws(self, region: str) -> pulumi.ProviderResource: ...
    def gcp(self, project: str, region: str) -> pulumi.ProviderResource: ...
    def once(self, key: str, make: Callable[[], Any]) -> Any: ...

    # Each target's component by name, for what joins targets (the overflow link) after they exist.
    deployed: dict[str, Any]


@dataclass(frozen=True)
class TargetKind:
    kind: str
    model: type
    plan: Callable[[DeploymentSpec, str, str], Any]
    component: str
    check: Callable[[DeploymentSpec, str, Any], list[checks.Finding]]
    cost: Callable[[str, Any], cost.TargetCost]
    accelerators: Callable[[Any], Mapping[str, float]]
    accelerator_memory: Callable[[DeploymentSpec, str], tuple[int, float, str]]
    startup: Callable[[DeploymentSpec, str, str], tuple[int, int | None]]
    fixed_replicas: Callable[[Any], int | None] = lambda target: None
    region_field: str = "region"  # the spec field residency findings point at

    def deploy(self, name: str, plan: Any, ctx: BuildContext) -> Mapping[str, pulumi.Input]:
        return importlib.import_module(self.component).deploy(name, plan, ctx)


def _aws_memory(spec: DeploymentSpec, name: str) -> tuple[int, float, str]:
    target = spec.targets[name]
    assert isinstance(target, AwsGpuFleetTarget)
    it = catalog.aws_instance_types()[target.types[0]]
    return it.total_accelerator_memory_bytes, it.accelerator_count, it.accelerator


def _gcp_memory(spec: DeploymentSpec, name: str) -> tuple[int, float, str]:
    target = spec.targets[name]
    assert isinstance(target, GcpGpuFleetTarget)
    if target.accelerator is not None:
        acc = catalog.gcp_guest_accelerators()[target.accelerator.type]
        return acc.memory_mib * catalog.MIB * target.accelerator.count, target.accelerator.count, acc.gpu
    mt = catalog.gcp_machine_types()[target.machine]
    return mt.total_accelerator_memory_bytes, mt.accelerator_count, mt.accelerator


def _tpu_memory(spec: DeploymentSpec, name: str) -> tuple[int, float, str]:
    target = spec.targets[name]
    assert isinstance(target, GcpTpuTarget)
    gen = catalog.tpu_generations()[target.generation]
    chips = gen.chips_of(target.shape)
    return gen.hbm_gib_per_chip * catalog.GIB * chips, chips, gen.name


def _onprem_memory(spec: DeploymentSpec, name: str) -> tuple[int, float, str]:
    """The smallest replica of the target's pools (a MIG slice, a time slice or whole GPUs)."""
    from inferstack.planning.onprem.pools import plan_pools

    pool = min(plan_pools(spec, name), key=lambda p: (p.memory_bytes_per_device * p.devices_per_replica, p.name))
    return pool.memory_bytes_per_device * pool.devices_per_replica, pool.devices_per_replica, pool.gpu


def _aws_accelerators(target: AwsGpuFleetTarget) -> dict[str, float]:
    return {t: catalog.aws_instance_types()[t].gpu_count for t in target.types}


def _gcp_accelerators(target: GcpGpuFleetTarget) -> dict[str, float]:
    # A guest accelerator on an N1 machine is priced and limited by the accelerator, not the machine.
    if target.accelerator is not None:
        return {}
    return {target.machine: catalog.gcp_machine_types()[target.machine].gpu_count}


def _tpu_accelerators(target: GcpTpuTarget) -> dict[str, float]:
    gen = catalog.tpu_generations()[target.generation]
    return {gen.accelerator_type(target.shape): gen.chips_of(target.shape)}


def _aws_startup(spec: DeploymentSpec, stack: str, name: str) -> tuple[int, int | None]:
    from inferstack.planning.replica import warm_start_seconds

    plan = aws_fleet.plan_aws_fleet(spec, stack, name)
    warm = None
    if plan.warm_pool_size:
        weights = sizing.footprint(*spec.model_of(name)).weights_bytes
        warm = warm_start_seconds(plan.instance_types, weights, plan.root_volume.throughput_mib)
    return plan.readiness.startup_seconds, warm


def _gcp_startup(spec: DeploymentSpec, stack: str, name: str) -> tuple[int, int | None]:
    return gcp.plan_gcp_fleet(spec, stack, name).initial_delay_seconds, None


def _estimated_startup(spec: DeploymentSpec, stack: str, name: str) -> tuple[int, int | None]:
    return sizing.startup_seconds(sizing.footprint(*spec.model_of(name))), None


KINDS: dict[str, TargetKind] = {
    k.kind: k
    for k in (
        TargetKind(
            kind="aws-gpu-fleet",
            model=AwsGpuFleetTarget,
            plan=aws_fleet.plan_aws_fleet,
            component="inferstack.components.aws_gpu_fleet",
            check=checks.check_aws_fleet,
            cost=cost.estimate_aws,
            accelerators=_aws_accelerators,
            accelerator_memory=_aws_memory,
            startup=_aws_startup,
        ),
        TargetKind(
            kind="gcp-gpu-fleet",
            model=GcpGpuFleetTarget,
            plan=gcp.plan_gcp_fleet,
            component="inferstack.components.gcp_gpu_fleet",
            check=checks.check_gcp_fleet,
            cost=cost.estimate_gcp_fleet,
            accelerators=_gcp_accelerators,
            accelerator_memory=_gcp_memory,
            startup=_gcp_startup,
        ),
        TargetKind(
            kind="gcp-tpu",
            model=GcpTpuTarget,
            plan=gcp.plan_tpu,
            component="inferstack.components.gcp_tpu",
            check=checks.check_tpu,
            cost=cost.estimate_tpu,
            accelerators=_tpu_accelerators,
            accelerator_memory=_tpu_memory,
            startup=_estimated_startup,
            fixed_replicas=lambda target: target.slices,
            region_field="zone",
        ),
        TargetKind(
            kind="onprem-k8s",
            model=OnPremK8sTarget,
            plan=plan_onprem,
            component="inferstack.components.onprem_k8s",
            check=checks.check_onprem,
            cost=cost.estimate_onprem,
            # Owned GPUs: the pack's GPU ceiling is about what the stack may rent, and a site's
            # pools are bounded by the nodes they list (the spec rejects more replicas).
            accelerators=lambda target: {},
            accelerator_memory=_onprem_memory,
            startup=_estimated_startup,
            region_field="location",
        ),
    )
}


def kind_of(target: Any) -> TargetKind:
    return KINDS[target.kind]
