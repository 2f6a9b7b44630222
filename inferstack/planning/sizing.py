"""Does a model fit an accelerator, and how long does a node take to start serving it?

The numbers are deliberately simple and conservative; each constant says where it comes from.
They decide two things a user would otherwise learn from a failed rollout: an instance type that
cannot hold the model (rejected by the spec checks), and a health-check grace period shorter than
the time it takes to download and load the weights (instances killed in a loop).
"""

from __future__ import annotations

from dataclasses import dataclass

from inferstack import catalog
from inferstack.catalog import GIB
from inferstack.spec.models import Model

BYTES_PER_PARAM = {"bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0, "int4": 0.5}

# vLLM's default --gpu-memory-utilization; TGI and SGLang reserve a similar share.
USABLE_FRACTION = 0.90
# Activations, CUDA graphs and allocator slack, as a share of the weights (observed 5-15%).
RUNTIME_OVERHEAD = 0.10
# The KV cache is kept in 16-bit unless an engine is told otherwise.
KV_BYTES_PER_VALUE = 2


@dataclass(frozen=True)
class Footprint:
    """Accelerator memory a model needs to serve one sequence at full context."""

    weights_bytes: int
    kv_cache_bytes: int | None  # None: architecture unknown, KV cache not sized
    overhead_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + (self.kv_cache_bytes or 0) + self.overhead_bytes

    def describe(self) -> str:
        kv = f"{self.kv_cache_bytes / GIB:.1f} GiB KV cache" if self.kv_cache_bytes is not None else "KV cache unsized"
        return f"~{self.total_bytes / GIB:.1f} GiB ({self.weights_bytes / GIB:.1f} GiB weights, {kv})"


def architecture_of(model_name: str, model: Model) -> catalog.ModelArchitecture | None:
    """The spec's architecture if given, else the catalog's entry for the model's name, but only
    when the parameter counts agree within 10%: a key named after one model serving another
    must not borrow its KV-cache shape."""
    if model.architecture is not None:
        a = model.architecture
        return catalog.ModelArchitecture(model_name, a.layers, a.kv_heads, a.head_dim)
    known = catalog.model_architectures().get(model_name.lower())
    if known is None or abs(known.parameters - model.parameters) > 0.1 * known.parameters:
        return None
    return known


def footprint(model_name: str, model: Model) -> Footprint:
    weights = int(model.parameters * BYTES_PER_PARAM[model.precision])
    arch = architecture_of(model_name, model)
    kv = None
    if arch is not None:
        kv = 2 * arch.layers * arch.kv_heads * arch.head_dim * KV_BYTES_PER_VALUE * model.context_length
    return Footprint(weights, kv, int(weights * RUNTIME_OVERHEAD))


def usable_bytes(instance: catalog.AwsInstanceType) -> int:
    return int(instance.total_accelerator_memory_bytes * USABLE_FRACTION)


def fits(fp: Footprint, instance: catalog.AwsInstanceType) -> bool:
    return fp.total_bytes <= usable_bytes(instance)


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
