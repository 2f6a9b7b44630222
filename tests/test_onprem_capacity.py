"""Host capacity of on-prem pools: the replicas a pool may run must fit its nodes' CPUs and memory
as well as their GPUs, read from the planned Deployment's own requests."""

from __future__ import annotations

import pytest
from test_onprem_nodes import findings, pool, with_pools

from inferstack.planning.onprem.capacity import PodRequests, pod_requests, quantity, replicas_per_node_by_host

SMALL = {"parameters": "8B", "precision": "bf16", "context_length": 8192, "source": "s3://models-eu/8b/"}


@pytest.mark.parametrize(
    "value, number",
    [("2", 2), ("500m", 0.5), ("24Gi", 24 * 2**30), ("512Mi", 512 * 2**20), ("1k", 1000), ("1.5", 1.5), (3, 3)],
)
def test_quantities(value, number):
    assert quantity(value) == number


def test_a_bad_quantity_is_an_error():
    with pytest.raises(ValueError, match="not a Kubernetes quantity"):
        quantity("2 cores")


def _c(cpu: str, memory: str, **extra) -> dict:
    return {"resources": {"requests": {"cpu": cpu, "memory": memory}}, **extra}


def test_a_pods_request_is_its_containers_or_its_largest_init_container():
    pod = {"containers": [_c("2", "8Gi"), _c("500m", "1Gi")], "initContainers": [_c("1", "16Gi")]}
    assert pod_requests(pod) == PodRequests(cpus=2.5, memory_bytes=16 * 2**30)
    # A sidecar (restartPolicy Always) runs beside the containers: it adds to them.
    sidecar = {"containers": [_c("2", "8Gi")], "initContainers": [_c("1", "1Gi", restartPolicy="Always")]}
    assert pod_requests(sidecar) == PodRequests(cpus=3, memory_bytes=9 * 2**30)


def test_replicas_per_node_take_the_tighter_of_cpu_and_memory():
    r = PodRequests(cpus=2, memory_bytes=24 * 2**30)
    assert replicas_per_node_by_host(r, 16, 96) == 4  # 8 by CPU, 4 by memory
    assert replicas_per_node_by_host(r, 6, None) == 3
    assert replicas_per_node_by_host(r, None, None) is None


def site(mx: int, **node) -> object:
    # 2 nodes of 8 H100s, an 8B model on one GPU a replica: the GPUs hold 16 replicas.
    return with_pools({"h100": pool("H100-80GB", nodes=["n-1", "n-2"], mx=mx, **node)}, **{"llama-3-8b": SMALL})


def test_nodes_that_hold_the_replicas_pass():
    assert [f for f in findings(site(16, node_cpus=64, node_memory_gib=1024)) if f.severity == "error"] == []
    assert [f for f in findings(site(16)) if f.severity == "error"] == []  # nothing stated, nothing checked


def test_too_few_cpus_for_the_replicas_the_gpus_hold_is_an_error_naming_the_field():
    found = [f for f in findings(site(16, node_cpus=8, node_memory_gib=1024)) if f.severity == "error"]
    assert [f.loc for f in found] == [("targets", "site", "pools", "h100", "node_cpus")]
    message = found[0].message
    assert "GPUs hold 8 replicas" in message and "hold 4" in message and "at most 8 of replicas.max 16" in message
    # Fewer replicas fit, and the spec says so: lowering max is a fix.
    assert [f for f in findings(site(8, node_cpus=8)) if f.severity == "error"] == []


def test_too_little_memory_is_an_error_on_memory():
    found = [f for f in findings(site(16, node_cpus=64, node_memory_gib=64)) if f.severity == "error"]
    assert [f.loc for f in found] == [("targets", "site", "pools", "h100", "node_memory_gib")]
    assert "Pending" in found[0].message
