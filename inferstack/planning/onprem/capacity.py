"""Host capacity of a pool's nodes: how many replicas their CPUs and memory hold, next to the
devices (pools.py) they hold.

A replica's pod asks the scheduler for CPU and memory as well as GPUs: a node whose GPUs hold 8
replicas but whose allocatable memory holds 5 leaves 3 Pending forever. The requests are read from
the planned Deployment itself, so this check never disagrees with what the workload planner
decided. A pod's effective request is the larger of its containers' sum (plus sidecar init
containers, `restartPolicy: Always`, which run beside them) and its largest ordinary init container
(Kubernetes docs, "Init Containers": "Resource sharing within containers").
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from inferstack.planning.onprem import Manifest, PoolPlan
from inferstack.planning.onprem.pools import POOL_LABEL

# Kubernetes resource.Quantity: a decimal with an optional binary (Ki..Ei) or decimal (m, k..E) suffix.
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?$")
_SUFFIX: dict[str | None, float] = {
    None: 1,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
    **{s: 1024 ** (i + 1) for i, s in enumerate(("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"))},
}


def quantity(value: str | float) -> float:
    """A Kubernetes quantity as a number: "500m" -> 0.5, "24Gi" -> 24 * 2**30."""
    if isinstance(value, int | float):
        return float(value)
    match = _QUANTITY.match(value)
    if match is None:
        raise ValueError(f"not a Kubernetes quantity: {value!r}")
    return float(match.group(1)) * _SUFFIX[match.group(2)]


@dataclass(frozen=True)
class PodRequests:
    cpus: float
    memory_bytes: float


def _requests(container: Mapping[str, Any], name: str) -> float:
    value = ((container.get("resources") or {}).get("requests") or {}).get(name)
    return quantity(value) if value is not None else 0.0


def pod_requests(pod: Mapping[str, Any]) -> PodRequests:
    """The effective CPU and memory request of one pod spec (module docstring)."""
    out = []
    for name in ("cpu", "memory"):
        init = pod.get("initContainers") or []
        running = [*(pod.get("containers") or []), *(c for c in init if c.get("restartPolicy") == "Always")]
        ordinary = [c for c in init if c.get("restartPolicy") != "Always"]
        out.append(max([sum(_requests(c, name) for c in running), *(_requests(c, name) for c in ordinary)]))
    return PodRequests(cpus=out[0], memory_bytes=out[1])


def replica_requests(manifests: Sequence[Manifest], pool: PoolPlan) -> PodRequests | None:
    """What one replica of `pool` requests, from its planned Deployment (None: no Deployment)."""
    for m in manifests:
        if m.kind == "Deployment" and (m.body["metadata"].get("labels") or {}).get(POOL_LABEL) == pool.name:
            return pod_requests(m.body["spec"]["template"]["spec"])
    return None


def replicas_per_node_by_host(requests: PodRequests, node_cpus: int | None, node_memory_gib: int | None) -> int | None:
    """Replicas one node's allocatable CPUs and memory hold (None when the spec states neither)."""
    fits = []
    if node_cpus is not None and requests.cpus > 0:
        fits.append(int(node_cpus // requests.cpus))
    if node_memory_gib is not None and requests.memory_bytes > 0:
        fits.append(int(node_memory_gib * 2**30 // requests.memory_bytes))
    return min(fits) if fits else None
