"""What one replica of a target is, for the scaling simulation: how long it takes to serve after a
launch (or a warm-pool start), and how much it serves.

Start-up is the same estimate the readiness uses (the AWS launch hook and grace, the GCP
initial delay), read from the planning functions that decide those, never recomputed here.
Serving capacity comes from the spec's `traffic.targets.<name>.replica` when stated; otherwise it
is the ESTIMATE below, kept in one place beside the sizing figures for the sizing issue to refine.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from inferstack import catalog
from inferstack.planning import sizing
from inferstack.planning.onprem import PoolPlan
from inferstack.spec.models import DeploymentSpec, Traffic

# -- ESTIMATE of serving capacity (no benchmark behind it; state your own in the spec) ----------
# Concurrency: what the KV cache left after the weights and overhead holds, at the profile's
# input + output tokens per sequence, capped at vLLM's default --max-num-seqs:
#     sequences = min(MAX_NUM_SEQS, (usable memory - weights - overhead) / (KV bytes per token × tokens))
# Decode: memory-bound; at full batch each sequence gets about DECODE_TOKENS_PER_SECOND_PER_SEQUENCE:
#     output tokens/s per replica = sequences × DECODE_TOKENS_PER_SECOND_PER_SEQUENCE
# Prefill: PREFILL_TOKENS_PER_SECOND_PER_ACCELERATOR per GPU (or TPU chip) of the replica.
MAX_NUM_SEQS = 256
DECODE_TOKENS_PER_SECOND_PER_SEQUENCE = 25.0
PREFILL_TOKENS_PER_SECOND_PER_ACCELERATOR = 4000.0
# With an unknown architecture (KV cache unsized), a conservative guess of the concurrency.
UNKNOWN_ARCHITECTURE_SEQUENCES = 16


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
        per_sequence = self.output_tokens_per_second / self.concurrent_sequences
        return max(1, math.ceil(input_tokens / self.prefill_tokens_per_second + output_tokens / per_sequence))

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
    memory, accelerators = kind.accelerator_memory(spec, name)
    return _model(spec, name, name, traffic, startup, warm, memory, accelerators)


def pool_replica_model(spec: DeploymentSpec, name: str, pool: PoolPlan, traffic: Traffic | None = None) -> ReplicaModel:
    """One replica of an on-prem pool (`pool` from planning.onprem.pools.plan_pools): the memory its
    devices give it (whole GPUs at the tensor-parallel degree, a MIG slice, or a time slice's share),
    the start-up budget the workload's startup probe allows (a pod starts on a node that is already
    up: pulling the image and loading the weights, no boot), and the pool's devices as its cap."""
    fp = sizing.footprint(*spec.model_of(name))
    startup = spec.serving.health_check_grace_seconds or sizing.startup_seconds(fp)  # workload.startup_seconds
    memory = pool.memory_bytes_per_device * pool.devices_per_replica
    # Prefill runs on the replica's GPUs; a MIG or time slice counts as one (an estimate either way).
    rep = _model(spec, name, f"{name}/{pool.name}", traffic, startup, None, memory, pool.devices_per_replica)
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
) -> ReplicaModel:
    traffic = traffic or spec.traffic
    model_name, model = spec.model_of(name)
    fp = sizing.footprint(model_name, model)
    tokens = (traffic.input_tokens + traffic.output_tokens) if traffic else model.context_length
    arch = sizing.architecture_of(model_name, model)
    if arch is not None:
        kv_per_token = 2 * arch.layers * arch.kv_heads * arch.head_dim * sizing.KV_BYTES_PER_VALUE
        room = memory * sizing.USABLE_FRACTION - fp.weights_bytes - fp.overhead_bytes
        est_seqs = max(1, min(MAX_NUM_SEQS, int(room // (kv_per_token * tokens))))
    else:
        est_seqs = UNKNOWN_ARCHITECTURE_SEQUENCES
    stated = traffic.targets[name].replica if traffic and name in traffic.targets else None
    seqs = (stated and stated.concurrent_sequences) or est_seqs
    tps = (stated and stated.output_tokens_per_second) or seqs * DECODE_TOKENS_PER_SECOND_PER_SEQUENCE
    estimated = not (stated and stated.concurrent_sequences and stated.output_tokens_per_second)
    formula = (
        f"estimate: sequences = min({MAX_NUM_SEQS}, KV room / KV per sequence at {tokens} tokens); "
        f"output tokens/s = sequences × {DECODE_TOKENS_PER_SECOND_PER_SEQUENCE:g}; prefill "
        f"{PREFILL_TOKENS_PER_SECOND_PER_ACCELERATOR:g} tokens/s per accelerator"
        if estimated
        else "from the spec's traffic.targets.replica"
    )
    return ReplicaModel(
        target=label,
        startup_seconds=startup,
        warm_start_seconds=warm,
        concurrent_sequences=seqs,
        output_tokens_per_second=tps,
        prefill_tokens_per_second=PREFILL_TOKENS_PER_SECOND_PER_ACCELERATOR * max(1.0, accelerators),
        estimated=estimated,
        formula=formula,
    )
