"""What one replica of a target is, for the scaling simulation: how long it takes to serve after a
launch (or a warm-pool start), and how much it serves.

Start-up is the same estimate the readiness uses (the AWS launch hook and grace, the GCP
initial delay), read from the planning functions that decide those, never recomputed here.
Serving capacity comes from the spec's `traffic.targets.<name>.replica` when stated; otherwise it
is planning.sizing's estimate (sizing.replica_capacity, the one estimate there is: the cheapest-fit
choice and the cost per token count on the same figures).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from inferstack import catalog
from inferstack.planning import sizing
from inferstack.planning.onprem import PoolPlan
from inferstack.spec.models import DeploymentSpec, Traffic


@dataclass(frozen=True)
class ReplicaModel:
    target: str
    startup_seconds: int  # launch to serving
    warm_start_seconds: int | None  # a warm-pool (stopped, initialised) instance to serving; None: no pool
    concurrent_sequences: int
    output_tokens_per_second: float  # the whole replica at full concurrency
    prefill_tokens_per_second: float
    estimated: bool  # capacity from the estimate above rather than the spec
    formula: str
    # On-prem pools: replicas the pool's devices hold at once (nothing else caps a pool: its nodes
    # exist, no node boots), and how that figure comes about.
    device_cap: int | None = None
    cap_reason: str | None = None

    def service_seconds(self, input_tokens: int, output_tokens: int) -> int:
        """Seconds a request holds one of the replica's slots (prefill + decode at full batch)."""
        return sizing.service_seconds(self.capacity, input_tokens, output_tokens)

    @property
    def capacity(self) -> sizing.ReplicaCapacity:
        return sizing.ReplicaCapacity(
            self.concurrent_sequences,
            self.output_tokens_per_second,
            self.prefill_tokens_per_second,
            self.estimated,
            self.formula,
        )

    def prefill_seconds(self, input_tokens: int) -> float:
        return input_tokens / self.prefill_tokens_per_second


def warm_start_seconds(instance_types: tuple[str, ...], weights_bytes: int, volume_mib: int) -> int:
    """A stopped warm-pool instance already holds the image and the weights on its EBS root volume:
    boot, then load the weights from disk and warm the engine up (same per-family timings as the
    launch estimate; slowest type of the fleet)."""
    mib = weights_bytes / catalog.MIB
    worst = 0.0
    for itype in instance_types:
        t = catalog.aws_node_timings_of(itype)
        worst = max(
            worst,
            t.boot_seconds + t.warmup_seconds + mib / min(t.load_mib_per_second, volume_mib, t.ebs_mib_per_second),
        )
    return math.ceil(worst)


def replica_model(spec: DeploymentSpec, stack: str, name: str, traffic: Traffic | None = None) -> ReplicaModel:
    """`traffic`: the profile's token counts size the KV cache per sequence (default: the spec's)."""
    from inferstack.kinds import kind_of  # the table draws its startup hook from this module

    target = spec.targets[name]
    kind = kind_of(target)
    startup, warm = kind.startup(spec, stack, name)
    memory, accelerators, device = kind.accelerator_memory(spec, name)
    return _model(spec, name, name, traffic, startup, warm, memory, accelerators, device)


def pool_replica_model(spec: DeploymentSpec, name: str, pool: PoolPlan, traffic: Traffic | None = None) -> ReplicaModel:
    """One replica of an on-prem pool (`pool` from planning.onprem.pools.plan_pools): the memory its
    devices give it (whole GPUs at the tensor-parallel degree, a MIG slice, or a time slice's share),
    the start-up budget the workload's startup probe allows (a pod starts on a node that is already
    up: pulling the image and loading the weights, no boot), and the pool's devices as its cap."""
    fp = sizing.footprint(*spec.model_of(name))
    startup = spec.serving.health_check_grace_seconds or sizing.startup_seconds(fp)  # workload.startup_seconds
    memory = pool.memory_bytes_per_device * pool.devices_per_replica
    # A MIG or time slice has a share of its GPU's bandwidth and FLOPs: counted as its share of the
    # GPU's memory (an estimate: a MIG slice's compute share is its slices of seven).
    gpu = catalog.gpu_models()[pool.gpu]
    devices = pool.devices_per_replica * pool.memory_bytes_per_device / gpu.memory_bytes
    rep = _model(spec, name, f"{name}/{pool.name}", traffic, startup, None, memory, devices, pool.gpu)
    cap = pool.max_replicas_on_pool
    why = (
        f"{pool.node_count} node(s) x {pool.devices_per_node} {pool.resource} / {pool.devices_per_replica} per replica"
    )
    return dataclasses.replace(rep, device_cap=cap, cap_reason=why)


def _model(
    spec: DeploymentSpec,
    name: str,
    label: str,
    traffic: Traffic | None,
    startup: int,
    warm: int | None,
    memory: int,
    accelerators: float,
    device: str,
) -> ReplicaModel:
    traffic = traffic or spec.traffic
    model_name, model = spec.model_of(name)
    if traffic is not None:
        input_tokens, output_tokens = traffic.input_tokens, traffic.output_tokens
    else:  # no profile: a sequence at full context, mostly prompt
        input_tokens, output_tokens = max(1, model.context_length * 3 // 4), max(1, model.context_length // 4)
    stated = traffic.targets[name].replica if traffic and name in traffic.targets else None
    cap = sizing.replica_capacity(
        model_name,
        model,
        memory,
        accelerators,
        catalog.accelerator_performance().get(device),
        input_tokens,
        output_tokens,
        stated_sequences=stated.concurrent_sequences if stated else None,
        stated_output_tokens_per_second=stated.output_tokens_per_second if stated else None,
    )
    return ReplicaModel(
        target=label,
        startup_seconds=startup,
        warm_start_seconds=warm,
        concurrent_sequences=cap.concurrent_sequences,
        output_tokens_per_second=cap.output_tokens_per_second,
        prefill_tokens_per_second=cap.prefill_tokens_per_second,
        estimated=cap.estimated,
        formula=cap.formula,
    )
