"""How much accelerator memory a model needs, on how many devices, how fast a replica serves,
and how long a node takes to start serving it.

Pure arithmetic on the spec and the catalog, every constant with where it comes from. It decides
what a user would otherwise learn from a failed rollout (a shape that cannot hold the model, a
tensor-parallel degree the engine refuses, a health-check grace shorter than the weights take to
load) and what the cheapest-fit choice (planning.shapes) and the scaling rehearsal count on.

Memory of one replica:
    weights  = parameters x bytes per parameter (the model's precision)
    KV cache = sequences x context tokens x 2 (K and V) x layers x KV heads x head dim x KV bytes
    overhead = RUNTIME_OVERHEAD x weights (activations, CUDA graphs, allocator slack)
against USABLE_FRACTION of the replica's accelerator memory (the engine's own share).

Throughput of one replica, an ESTIMATE (no benchmark behind it; state a measured figure in
`traffic.targets.<name>.replica` and it wins), a roofline in the style of the usual LLM inference
arithmetic (decode is bound by memory bandwidth, prefill by compute):
    decode step     = (active weight bytes + KV bytes the batch reads) / (devices x bandwidth x BANDWIDTH_EFFICIENCY)
    output tokens/s = sequences / decode step
    prefill tokens/s = devices x peak FLOPs x PREFILL_MFU / (2 x active parameters)
    requests/s      = min(sequences / latency, 1 / (input / prefill tokens/s + output / output tokens/s))
The prefill rate is the whole replica's, shared by every prompt it takes in (as the decode rate is
shared by the sequences it decodes), not each slot's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

from inferstack import catalog
from inferstack.catalog import GIB
from inferstack.spec.models import Model

BYTES_PER_PARAM = {"bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0, "int4": 0.5}
# The KV cache: `auto` keeps it in the model's 16-bit activation dtype (vLLM, SGLang and TGI
# default), `fp8` halves it (the engine's --kv-cache-dtype, data/engines.yaml).
KV_BYTES_PER_VALUE = {"auto": 2, "fp8": 1}

# vLLM's default --gpu-memory-utilization; TGI and SGLang reserve a similar share.
USABLE_FRACTION = 0.90
# Activations, CUDA graphs and allocator slack, as a share of the weights (observed 5-15%).
RUNTIME_OVERHEAD = 0.10

# -- the throughput ESTIMATE (see the module docstring) --------------------------------------
# Decode reads every weight once a step; engines reach 70-80% of the peak HBM bandwidth doing it
# (an 8B bf16 model decodes ~15 tokens/s on one L4, whose 300 GB/s allow 19). The lower end.
BANDWIDTH_EFFICIENCY = 0.7
# Prefill is a large GEMM: 30-50% model FLOPs utilisation is what serving engines report.
PREFILL_MFU = 0.35
# Sharding over devices costs all-reduces each layer; what is left of linear scaling per replica
# of more than one device.
TENSOR_PARALLEL_EFFICIENCY = 0.85
# Concurrency is capped at vLLM's default --max-num-seqs.
MAX_NUM_SEQS = 256
# With an unknown architecture (KV cache unsized), a conservative guess of the concurrency.
UNKNOWN_ARCHITECTURE_SEQUENCES = 16


@dataclass(frozen=True)
class Footprint:
    """Accelerator memory a replica needs: the weights, and the KV cache of `sequences`
    sequences at `context` tokens each."""

    weights_bytes: int
    kv_cache_bytes: int | None  # None: architecture unknown, KV cache not sized
    overhead_bytes: int
    sequences: int = 1
    context: int = 0

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + (self.kv_cache_bytes or 0) + self.overhead_bytes

    def describe(self) -> str:
        if self.kv_cache_bytes is None:
            kv = "KV cache unsized (architecture unknown)"
        else:
            seqs = f"{self.sequences} sequences" if self.sequences != 1 else "one sequence"
            kv = f"{self.kv_cache_bytes / GIB:.1f} GiB KV cache for {seqs} of {self.context} tokens"
        return (
            f"~{self.total_bytes / GIB:.1f} GiB ({self.weights_bytes / GIB:.1f} GiB weights, {kv}, "
            f"{self.overhead_bytes / GIB:.1f} GiB overhead)"
        )


def _catalog_key(name: str) -> str:
    """Spec keys are DNS labels (no dots): llama-3-1-8b stands for Llama-3.1-8B."""
    return name.lower().replace(".", "-")


@cache
def _architectures() -> dict[str, catalog.ModelArchitecture]:
    return {_catalog_key(k): v for k, v in catalog.model_architectures().items()}


def architecture_of(model_name: str, model: Model) -> catalog.ModelArchitecture | None:
    """The spec's architecture if given, else the catalog's entry for `model.catalog_name` or the
    model's key, but only when the parameter counts agree within 10%: a key named after one model
    serving another must not borrow its KV-cache shape."""
    if model.architecture is not None:
        a = model.architecture
        return catalog.ModelArchitecture(
            model_name,
            a.layers,
            a.kv_heads,
            a.head_dim,
            parameters=model.parameters,
            attention_heads=a.attention_heads or 0,
            active_parameters=a.active_parameters or model.parameters,
        )
    known = _architectures().get(_catalog_key(model.catalog_name or model_name))
    if known is None or abs(known.parameters - model.parameters) > 0.1 * known.parameters:
        return None
    return known


def kv_bytes_per_token(arch: catalog.ModelArchitecture, kv_precision: str) -> int:
    """K and V of every layer's KV heads: vLLM's AttentionSpec page size over its block size."""
    return 2 * arch.layers * arch.kv_heads * arch.head_dim * KV_BYTES_PER_VALUE[kv_precision]


def weights_bytes(model: Model) -> int:
    return int(model.parameters * BYTES_PER_PARAM[model.precision])


def footprint(model_name: str, model: Model, sequences: int | None = None, context: int | None = None) -> Footprint:
    """What one replica must hold: by default the spec's `concurrency` sequences at the model's
    full context."""
    seqs = model.concurrency if sequences is None else sequences
    tokens = model.context_length if context is None else context
    weights = weights_bytes(model)
    arch = architecture_of(model_name, model)
    kv = None if arch is None else seqs * tokens * kv_bytes_per_token(arch, model.kv_cache_precision)
    return Footprint(weights, kv, int(weights * RUNTIME_OVERHEAD), seqs, tokens)


def usable_bytes(memory_bytes: int) -> int:
    return int(memory_bytes * USABLE_FRACTION)


def fits(fp: Footprint, memory_bytes: int) -> bool:
    """Does `fp` fit the engine's share of `memory_bytes` of accelerator memory (a whole replica's)?"""
    return fp.total_bytes <= usable_bytes(memory_bytes)


def tensor_parallel_refusal(arch: catalog.ModelArchitecture | None, degree: int) -> str | None:
    """Why an engine refuses to shard the model over `degree` devices, or None. vLLM and SGLang
    split the attention heads evenly over the ranks, and the KV heads too, replicating them when
    there are fewer KV heads than ranks (so the degree must divide them or be a multiple of them)."""
    if arch is None or degree == 1:
        return None
    if arch.attention_heads and arch.attention_heads % degree:
        return f"{degree} devices do not divide the model's {arch.attention_heads} attention heads"
    if arch.kv_heads % degree and degree % arch.kv_heads:
        return f"{degree} devices neither divide nor are a multiple of the model's {arch.kv_heads} KV heads"
    return None


def tensor_parallel_degree(
    fp: Footprint, arch: catalog.ModelArchitecture | None, device_bytes: int, max_devices: int
) -> int | None:
    """The smallest number of devices of one node (`device_bytes` each) that holds `fp` and that the
    engine can shard the model over; None when no count up to `max_devices` does."""
    for degree in range(1, max_devices + 1):
        if tensor_parallel_refusal(arch, degree) is None and fits(fp, device_bytes * degree):
            return degree
    return None


@dataclass(frozen=True)
class ReplicaCapacity:
    """What one replica serves: the sequences it decodes at once, its output and prefill rates."""

    concurrent_sequences: int
    output_tokens_per_second: float  # the whole replica at full concurrency
    prefill_tokens_per_second: float
    estimated: bool
    formula: str


def replica_capacity(
    model_name: str,
    model: Model,
    memory_bytes: int,
    devices: float,
    accelerator: catalog.AcceleratorPerformance | None,
    input_tokens: int,
    output_tokens: int,
    stated_sequences: int | None = None,
    stated_output_tokens_per_second: float | None = None,
) -> ReplicaCapacity:
    """The replica's serving rates: the spec's measured figures where stated, else the estimate.

    Concurrency: what the KV cache left after the weights and overhead holds at the profile's input
    + output tokens per sequence, capped at MAX_NUM_SEQS. `devices`: the accelerators the replica's
    bandwidth and FLOPs add up over (a fraction for a shared GPU)."""
    fp = footprint(model_name, model, sequences=1)
    tokens = input_tokens + output_tokens
    arch = architecture_of(model_name, model)
    kv_token = kv_bytes_per_token(arch, model.kv_cache_precision) if arch is not None else None
    if kv_token is not None:
        room = usable_bytes(memory_bytes) - fp.weights_bytes - fp.overhead_bytes
        est_seqs = max(1, min(MAX_NUM_SEQS, int(room // (kv_token * tokens))))
    else:
        est_seqs = UNKNOWN_ARCHITECTURE_SEQUENCES
    seqs = stated_sequences or est_seqs
    active = arch.active_parameters if arch is not None and arch.active_parameters else model.parameters
    active_bytes = active * BYTES_PER_PARAM[model.precision]
    scale = max(devices, 1e-9) * (TENSOR_PARALLEL_EFFICIENCY if devices > 1 else 1.0)
    if accelerator is None or accelerator.memory_gbps is None or accelerator.tflops_16bit is None:
        # No figures for the device: the rates of the slowest GPU the catalog knows, and it says so.
        accelerator = catalog.slowest_accelerator()
        device_note = f" (no figures for this device: {accelerator.name}'s)"
    else:
        device_note = ""
    # Each sequence reads its KV cache every step: on average half its output in, plus the prompt.
    kv_read = seqs * (input_tokens + output_tokens / 2) * (kv_token or 0)
    bandwidth = (accelerator.memory_gbps or 0.0) * 1e9  # slowest_accelerator has one
    step = (active_bytes + kv_read) / (scale * bandwidth * BANDWIDTH_EFFICIENCY)
    est_tps = seqs / step
    flops = accelerator.tflops_for(model.precision) * 1e12
    prefill = scale * flops * PREFILL_MFU / (2 * active)
    tps = stated_output_tokens_per_second or est_tps
    estimated = not (stated_sequences and stated_output_tokens_per_second)
    formula = (
        f"estimate on {accelerator.name}{device_note}: sequences = min({MAX_NUM_SEQS}, KV room / KV per "
        f"sequence at {tokens} tokens); output tokens/s = sequences / decode step, decode step = (active "
        f"weights + KV read) / (devices x {accelerator.memory_gbps:g} GB/s x {BANDWIDTH_EFFICIENCY:g}); "
        f"prefill = devices x {accelerator.tflops_for(model.precision):g} TFLOPS x {PREFILL_MFU:g} / "
        "(2 x active parameters)"
        + (f"; {TENSOR_PARALLEL_EFFICIENCY:g} tensor-parallel efficiency" if devices > 1 else "")
        if estimated
        else "from the spec's traffic.targets.replica"
    )
    return ReplicaCapacity(seqs, tps, prefill, estimated, formula)


def latency_seconds(capacity: ReplicaCapacity, input_tokens: int, output_tokens: int) -> float:
    """Seconds one request takes at full batch: its prompt at the prefill rate, then its output at
    its share (one of `concurrent_sequences`) of the decode rate."""
    per_sequence = capacity.output_tokens_per_second / capacity.concurrent_sequences
    return input_tokens / capacity.prefill_tokens_per_second + output_tokens / per_sequence


def requests_per_second(capacity: ReplicaCapacity, input_tokens: int, output_tokens: int) -> float:
    """Requests one replica completes a second: its slots over a request's latency, but never more
    than its compute allows. Prefill is not per slot: the replica's prefill rate is shared by every
    prompt it takes in, as its decode rate is by every sequence it decodes, so a request costs the
    replica input / prefill + output / decode seconds of its whole capacity:
        min(slots / latency, 1 / (input / prefill tokens/s + output / decode tokens/s))."""
    by_slots = capacity.concurrent_sequences / latency_seconds(capacity, input_tokens, output_tokens)
    by_compute = 1.0 / (
        input_tokens / capacity.prefill_tokens_per_second + output_tokens / capacity.output_tokens_per_second
    )
    return min(by_slots, by_compute)


def output_tokens_per_second_served(capacity: ReplicaCapacity, input_tokens: int, output_tokens: int) -> float:
    """Output tokens a second one replica delivers on requests of this size (its prefill included)."""
    return requests_per_second(capacity, input_tokens, output_tokens) * output_tokens


def service_seconds(capacity: ReplicaCapacity, input_tokens: int, output_tokens: int) -> int:
    """Seconds a request holds one of the replica's slots, rounded up: the slots over the replica's
    requests per second, so that slots / service seconds is the replica's rate (at least a
    request's latency; longer when the prefill shared by the replica is what bounds it)."""
    rate = requests_per_second(capacity, input_tokens, output_tokens)
    return max(1, math.ceil(capacity.concurrent_sequences / rate - 1e-9))


def replicas_for(
    capacity: ReplicaCapacity, requests_per_hour: float, input_tokens: int, output_tokens: int, utilization: float
) -> int:
    """Replicas that serve `requests_per_hour` with each replica busy `utilization` of the time."""
    per_replica = requests_per_second(capacity, input_tokens, output_tokens) * 3600
    return max(1, math.ceil(requests_per_hour / (per_replica * utilization)))


# Node start-up, measured in seconds, for the health-check grace period:
BOOT_SECONDS = 90  # EC2 GPU instance to cloud-init running, DLAMI on Nitro
IMAGE_PULL_SECONDS = 120  # an ~10 GB engine image over a VPC endpoint
ENGINE_WARMUP_SECONDS = 120  # CUDA graph capture and profiling run (vLLM, SGLang)
WEIGHTS_BYTES_PER_SECOND = 250 * 1024**2  # `aws s3 sync` with default concurrency, one node
LOAD_BYTES_PER_SECOND = 1 * GIB  # local NVMe/gp3 to GPU memory
MIN_GRACE_SECONDS = 300
MAX_GRACE_SECONDS = 7200  # EC2 Auto Scaling accepts up to 7200 s of grace


def startup_seconds(fp: Footprint) -> int:
    """Seconds from launch to a healthy engine, rounded up to a whole minute, within ASG bounds."""
    raw = (
        BOOT_SECONDS
        + IMAGE_PULL_SECONDS
        + ENGINE_WARMUP_SECONDS
        + fp.weights_bytes / WEIGHTS_BYTES_PER_SECOND
        + fp.weights_bytes / LOAD_BYTES_PER_SECOND
    )
    minutes = -(-int(raw) // 60)
    return max(MIN_GRACE_SECONDS, min(MAX_GRACE_SECONDS, minutes * 60))
