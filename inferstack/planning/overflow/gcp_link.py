"""The GCP side of the site-to-site link: what one GCP burst target needs so the site reaches its
private endpoint over HA VPN, decided from the spec without touching Pulumi.

One link per GCP burst target (a gcp-gpu-fleet, or a single-host on-demand gcp-tpu slice behind
the endpoint), in the target's project, network and region: an HA VPN gateway, an external VPN
gateway describing the site's devices, a Cloud Router with BGP, the tunnels with a router
interface and a BGP peer each, and a regional network firewall policy on the endpoint's
forwarding rule that admits the site's networks on the listener port and nothing else.

Why the VPN always sits in the target's region, and what follows for global access: a regional
internal Application Load Balancer reaches clients behind Cloud VPN only when the tunnel is in
the load balancer's region, unless the forwarding rule has global access ("Internal Application
Load Balancer overview": clients in a connected network; global access). The link is built in
the target's region, as is the endpoint, so the two never differ and the forwarding rule keeps
`allow_global_access=False`; the spec has no way to ask otherwise, so there is no knob.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass

from inferstack.errors import Finding
from inferstack.planning.endpoint import plan_gcp_endpoint
from inferstack.planning.naming import gcp_labels, gcp_name, resource_prefix, standard_tags
from inferstack.spec.models import DeploymentSpec, GcpGpuFleetTarget, GcpTpuTarget

# ExternalVpnGateway.redundancyType (Compute API, externalVpnGateways; pulumi-gcp
# compute.ExternalVpnGateway.redundancy_type): interface ids 0 for SINGLE_IP_INTERNALLY_REDUNDANT,
# 0 and 1 for TWO_IPS_REDUNDANCY (ExternalVpnGatewayInterface.id).
REDUNDANCY = {1: "SINGLE_IP_INTERNALLY_REDUNDANT", 2: "TWO_IPS_REDUNDANCY"}
IKE_VERSION = 2
# "Generate a strong pre-shared key" (Cloud VPN docs): 32 characters. Letters and digits only:
# every peer device accepts them, and base64's '+', '/' and '=' trip some vendors' parsers.
PSK_LENGTH = 32
# restricted.googleapis.com (VPC Service Controls, "Private connectivity": IPv4 199.36.153.4/30):
# Private Google Access for on-premises hosts needs the range advertised to the site over the
# tunnels ("Configure Private Google Access for on-premises hosts"). The publisher writes the wake
# metric through it (Cloud Monitoring, STS and IAM credentials are VPC Service Controls services),
# and it never offers the APIs VPC Service Controls cannot guard, unlike private.googleapis.com.
RESTRICTED_GOOGLE_APIS = "199.36.153.4/30"
ADVERTISED_ROUTE_PRIORITY = 100  # the same on every session: the site balances over the tunnels
# Rule priorities in the link's firewall policy: lower numbers first (firewall policy rules,
# 0..2147483547); the deny comes last and catches every source the allows do not name.
ALLOW_SITE_PRIORITY = 1000
ALLOW_PSC_PRIORITY = 1100
DENY_REST_PRIORITY = 2000


def tunnel_pairs(devices: int, tunnels: int) -> tuple[tuple[int, int], ...]:
    """(HA VPN interface, site interface) of each tunnel, for 99.99% availability ("HA VPN
    topologies", Guarantee 99.99% availability): with one site interface, a tunnel from each HA VPN
    interface to it; with two, interface 0 to 0 and 1 to 1; four tunnels add the crossed pairs (the
    full mesh the page describes). The first two never change when the mesh is added, so growing
    from two tunnels to four replaces nothing."""
    if devices == 1 and tunnels == 2:
        return ((0, 0), (1, 0))
    if devices == 2 and tunnels == 2:
        return ((0, 0), (1, 1))
    if devices == 2 and tunnels == 4:
        return ((0, 0), (1, 1), (0, 1), (1, 0))
    raise ValueError(f"{tunnels} tunnels do not fit {devices} site device(s)")  # the spec refuses it first


@dataclass(frozen=True)
class GcpTunnelPlan:
    index: int
    ha_interface: int  # the HA VPN gateway's interface (0 or 1)
    site_interface: int  # the external VPN gateway's interface: which site device
    inside_cidr: str  # the /30 of the BGP session
    cloud_router_ip: str  # its first host: the Cloud Router's end
    site_ip: str  # its second host: the site device's end


@dataclass(frozen=True)
class GcpLinkPlan:
    target: str
    project: str
    region: str
    name: str  # the stem of the link's physical names
    labels: dict[str, str]
    site_public_ips: tuple[str, ...]
    site_asn: int
    router_asn: int
    onprem_cidrs: tuple[str, ...]
    tunnels: tuple[GcpTunnelPlan, ...]
    listener_port: int  # the endpoint's forwarding rule port: the only one the site may reach
    psc_cidr: str  # the endpoint's PSC NAT range: its consumers keep their way in
    preshared_keys_config_key: str | None  # None: generate one key per tunnel in the stack
    ike_version: int = IKE_VERSION
    psk_length: int = PSK_LENGTH
    # Advertised besides the target's private subnet (a runtime value: the network may exist).
    extra_advertised: tuple[str, ...] = (RESTRICTED_GOOGLE_APIS,)

    @property
    def redundancy_type(self) -> str:
        return REDUNDANCY[len(self.site_public_ips)]


def plan_tunnels(devices: int, inside_cidrs: list[str] | tuple[str, ...]) -> tuple[GcpTunnelPlan, ...]:
    pairs = tunnel_pairs(devices, len(inside_cidrs))
    tunnels = []
    for i, ((ha, site), cidr) in enumerate(zip(pairs, inside_cidrs, strict=True)):
        hosts = list(ipaddress.IPv4Network(cidr).hosts())
        tunnels.append(GcpTunnelPlan(i, ha, site, cidr, str(hosts[0]), str(hosts[1])))
    return tuple(tunnels)


def plan_gcp_link(spec: DeploymentSpec, stack: str, name: str) -> GcpLinkPlan | None:
    """The link of one burst target; None when the spec has no GCP link or the target is not a
    GCP one. A GCP burst target is a fleet, or a TPU slice on one host, on demand: the spec's
    checks refuse a queued or multi-host slice as a burst target, and one without an endpoint."""
    overflow = spec.overflow
    if overflow is None or overflow.link.gcp is None or name not in overflow.burst:
        return None
    target = spec.targets[name]
    if not isinstance(target, (GcpGpuFleetTarget, GcpTpuTarget)):
        return None
    gcp = overflow.link.gcp
    endpoint = plan_gcp_endpoint(spec, stack, name)
    assert endpoint is not None  # a burst target without a private endpoint is a spec error
    link = overflow.link
    model_name, _ = spec.model_of(name)
    prefix = resource_prefix(spec, stack, name)
    return GcpLinkPlan(
        target=name,
        project=target.project,
        region=target.region,
        name=gcp_name(prefix, "vpn", limit=50),
        labels=gcp_labels(standard_tags(spec, stack, model_name, "overflow-link")),
        site_public_ips=tuple(link.site_public_ips),
        site_asn=link.site_asn,
        router_asn=gcp.router_asn,
        onprem_cidrs=tuple(link.onprem_cidrs),
        tunnels=plan_tunnels(len(link.site_public_ips), gcp.tunnel_inside_cidrs),
        listener_port=endpoint.listener_port,
        psc_cidr=endpoint.psc_cidr,
        preshared_keys_config_key=gcp.preshared_keys_config_key,
    )


def gcp_link_findings(spec: DeploymentSpec) -> Iterator[Finding]:
    """One GCP burst target: each gets its own HA VPN and BGP sessions, and link.gcp holds the inside
    ranges of one (a second would repeat the site's BGP addresses). The rules every cloud's link
    shares (a link per cloud in use, site ranges apart from the clouds') are spec.checks.check_overflow's."""
    overflow = spec.overflow
    if overflow is None:
        return
    gcp_burst = [
        (i, name)
        for i, name in enumerate(overflow.burst)
        if isinstance(spec.targets.get(name), (GcpGpuFleetTarget, GcpTpuTarget))
    ]
    for i, name in gcp_burst[1:]:
        yield Finding(
            ("overflow", "burst", i),
            f"{name!r} would be a second GCP burst target: each gets its own HA VPN and BGP sessions, and "
            f"link.gcp.tunnel_inside_cidrs holds the ranges of one; keep one GCP burst target ({gcp_burst[0][1]!r})",
        )
