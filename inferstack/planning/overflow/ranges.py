"""The address ranges of the burst targets' networks that the overflow link routes to."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

from inferstack.planning.aws_fleet import DEFAULT_VPC_CIDR
from inferstack.planning.endpoint import endpoint_ranges
from inferstack.planning.overflow.gcp_link import RESTRICTED_GOOGLE_APIS
from inferstack.spec.models import AwsGpuFleetTarget, DeploymentSpec, GcpTargetBase


def cloud_ranges(spec: DeploymentSpec) -> Iterator[tuple[str, list[ipaddress.IPv4Network]]]:
    """Per burst target the stack creates the network of: its ranges (an existing VPC's or
    network's ranges are known at deploy time only)."""
    assert spec.overflow is not None
    for name in spec.overflow.burst:
        target = spec.targets.get(name)
        if isinstance(target, AwsGpuFleetTarget) and target.network.creates_vpc:
            yield name, [ipaddress.IPv4Network(target.network.cidr or DEFAULT_VPC_CIDR)]
        elif isinstance(target, GcpTargetBase) and target.network.creates_network:
            net = target.network
            yield name, [ipaddress.IPv4Network(r) for r in (net.subnet_cidr, *endpoint_ranges(net))]


def gateway_egress_ranges(spec: DeploymentSpec) -> list[str]:
    """Where the gateway's pods may open connections over the link: the burst targets' networks
    (their endpoints, and on AWS the VPC endpoints of the APIs), and Google's restricted VIP when a
    burst target is on GCP."""
    out = {str(r) for _, ranges in cloud_ranges(spec) for r in ranges}
    assert spec.overflow is not None
    if any(getattr(spec.targets.get(n), "cloud", None) == "gcp" for n in spec.overflow.burst):
        out.add(RESTRICTED_GOOGLE_APIS)  # the GCP link advertises it: the publisher's API calls
    return sorted(out)
