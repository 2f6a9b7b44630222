"""The serving engine's command line, shared by every target kind."""

from __future__ import annotations

import math

from inferstack import catalog
from inferstack.planning import sizing
from inferstack.spec.models import DeploymentSpec, Model


def engine_args(spec: DeploymentSpec, model_name: str, model: Model, platform_args: tuple[str, ...] = ()) -> list[str]:
    """The engine's command line: the catalog's arguments for the engine, then the spec's own.

    ``{tensor_parallel}`` stays a placeholder: a mixed fleet's instance types carry different
    GPU counts, so the node fills it in at boot (see `inferstack.render.BOOT_TIME_ARGS`).
    """
    engine = catalog.engines()[spec.serving.engine]
    values = {
        "model_dir": f"/models/{model_name}",
        "model_name": model_name,
        "port": str(spec.serving.port),
        "context_length": str(model.context_length),
    }
    args = [a.format(**values, tensor_parallel="{tensor_parallel}") for a in engine.args]
    if model.kv_cache_precision == "fp8" and engine.kv_cache_fp8_args:  # the checks refuse fp8 without one
        args += engine.kv_cache_fp8_args
    # `platform_args`: what the platform decides (a GPU's memory share); the spec's own come last.
    return [*engine.entrypoint, *args, *platform_args, *spec.serving.args]


def memory_fraction_args(engine: catalog.Engine, replicas_per_gpu: int) -> tuple[str, ...]:
    """Replicas that time-slice one GPU share its memory: each engine takes its share of the usable
    fraction the fit check counts on (sizing.USABLE_FRACTION), or the first to start takes it all
    and the others fail to allocate. The checks refuse time-slicing for an engine with no such flag."""
    if replicas_per_gpu <= 1 or engine.memory_fraction_arg is None:
        return ()
    share = math.floor(sizing.USABLE_FRACTION / replicas_per_gpu * 1000) / 1000
    return (engine.memory_fraction_arg, f"{share:.3f}")


# The engine's writable places. Its root filesystem is read-only; compiled kernels (Triton,
# torch.compile/Inductor, vLLM's own cache) are written and then *executed* from these, so:
# - the caches live on a named Docker volume: it sits under /var/lib/docker on the host's local
#   disk, which is mounted exec on Amazon Linux, Ubuntu and Container-Optimized OS alike (COS's
#   stateful partition and its /tmp are noexec), and it survives an engine restart, so a crash
#   does not pay the compile again;
# - /tmp is a tmpfs mounted with exec (Docker's default tmpfs is noexec), for libraries that put
#   a scratch .so there; nosuid and nodev keep it from being more than scratch space.
ENGINE_CACHE_VOLUME = "inferstack-cache"
ENGINE_CACHE_DIR = "/cache"
ENGINE_TMP_DIR = "/tmp"
ENGINE_TMP_GIB = 16
ENGINE_TMPFS = f"{ENGINE_TMP_DIR}:rw,exec,nosuid,nodev,size={ENGINE_TMP_GIB}g"
# The writable places as (path, GiB) pairs, for platforms that mount volumes rather than pass
# `docker run` flags (on-prem Kubernetes: one emptyDir each). The compile caches get room for
# Triton, Inductor and vLLM kernels of a large model.
ENGINE_CACHE_GIB = 32
ENGINE_WRITABLE_DIRS = ((ENGINE_CACHE_DIR, ENGINE_CACHE_GIB), (ENGINE_TMP_DIR, ENGINE_TMP_GIB))
# Shared memory for NCCL and the engine's worker processes: what the cloud nodes pass as
# `--shm-size 16g` (templates/*.sh.j2).
ENGINE_SHM_GIB = 16
COMMON_ENGINE_ENV = {
    "HOME": ENGINE_CACHE_DIR,
    "XDG_CACHE_HOME": ENGINE_CACHE_DIR,
    "HF_HOME": f"{ENGINE_CACHE_DIR}/huggingface",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
    "TRITON_CACHE_DIR": f"{ENGINE_CACHE_DIR}/triton",
    "TORCHINDUCTOR_CACHE_DIR": f"{ENGINE_CACHE_DIR}/inductor",
    "VLLM_CACHE_ROOT": f"{ENGINE_CACHE_DIR}/vllm",
}


def engine_env(engine_name: str) -> dict[str, str]:
    """Environment of the engine container: cache locations, then the engine's offline switches."""
    return {**COMMON_ENGINE_ENV, **dict(catalog.engines()[engine_name].env)}


def engine_runtime_flags(engine_name: str) -> list[str]:
    """`docker run` flags for the engine's writable mounts and environment, on every cloud: one
    definition so AWS, GCP GPU and TPU nodes cannot drift apart."""
    flags = ["--volume", f"{ENGINE_CACHE_VOLUME}:{ENGINE_CACHE_DIR}", "--tmpfs", ENGINE_TMPFS]
    for key, value in sorted(engine_env(engine_name).items()):
        flags += ["--env", f"{key}={value}"]
    return flags
