"""The AWS side of the site-to-site link: what one AWS burst target needs so the site reaches its
private endpoint over Site-to-Site VPN, decided from the spec without touching Pulumi.

One link per AWS burst target, in the fleet's region and VPC: a customer gateway per site device,
a virtual private gateway on the fleet's VPC (or, when the spec names one, the spec's transit
gateway with an attachment of the fleet's private subnets), a VPN connection per device with two
tunnels and BGP, tunnel logs to a KMS-encrypted log group, a Route 53 Resolver inbound endpoint
(the site resolves the endpoint's name and the API endpoints' private names), a private hosted
zone for the endpoint's name in the fleet's VPC, the IAM Roles Anywhere interface endpoint for
the site's publisher, and the security group rules that admit the site's networks on 443 only.

Tunnel options ("Tunnel options for your Site-to-Site VPN connection", AWS Site-to-Site VPN User
Guide; pulumi-aws ec2.VpnConnection tunnel1_* arguments): IKEv2 only; AES-256 (GCM or CBC) with
SHA-2 integrity; Diffie-Hellman groups 19-21 (the elliptic-curve ones) and 14-16 (MODP 2048-4096
bits, for devices without ECP). AWS accepts and defaults to weaker values (IKEv1, AES128, SHA1,
groups 2 and 5); each list here is what the tunnel may negotiate, so those never are.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass

from inferstack.errors import Finding
from inferstack.planning.aws_fleet import log_group_name
from inferstack.planning.endpoint import plan_aws_endpoint
from inferstack.planning.naming import resource_prefix, standard_tags
from inferstack.spec.models import AwsGpuFleetTarget, DeploymentSpec

CUSTOMER_GATEWAY_TYPE = "ipsec.1"  # the only type CreateCustomerGateway and CreateVpnConnection accept
IKE_VERSIONS = ("ikev2",)
PHASE1_ENCRYPTION = ("AES256-GCM-16", "AES256")
PHASE2_ENCRYPTION = ("AES256-GCM-16", "AES256")
INTEGRITY = ("SHA2-256", "SHA2-384", "SHA2-512")
DH_GROUPS = (14, 15, 16, 19, 20, 21)
# 'start': AWS initiates IKE, so the tunnels come up without waiting for traffic from the site.
STARTUP_ACTION = "start"
DPD_TIMEOUT_SECONDS = 30  # the smallest AWS accepts (>= 30)
DPD_TIMEOUT_ACTION = "restart"  # re-initiate IKE after a dead peer, rather than leave the tunnel down
LOG_FORMAT = "json"
# AWS PSK rules (VpnTunnelOptionsSpecification PreSharedKey): 8-64 characters of letters,
# digits, '.' and '_', not starting with '0'. Generated keys are 32 letters and digits with a
# letter first (pulumi-random has no "not starting with 0" switch; see the component).
PSK_LENGTH = 32
# Amazon-side ASN: a private one (64512-65534) unlike the site's. 64512 is AWS's default.
AMAZON_SIDE_ASNS = (64512, 64513)
# CreateCustomerGateway (EC2 API reference, BgpAsn): ASNs AWS keeps for itself, where; None: every
# region. A customer gateway with one of them is refused.
RESERVED_SITE_ASNS: dict[int, str | None] = {
    7224: None,
    9059: "eu-west-1",
    10124: "ap-northeast-1",
    17943: "ap-southeast-1",
}
RESOLVER_PORT = 53
HTTPS_PORT = 443
# IAM Roles Anywhere over PrivateLink ("IAM Roles Anywhere and interface VPC endpoints"):
# the publisher's CreateSession goes to rolesanywhere.<region>.amazonaws.com.
ROLES_ANYWHERE_SERVICE = "rolesanywhere"
# The APIs the site's publisher calls over the link; the fleet's network already has an
# interface endpoint for each but Roles Anywhere (aws_fleet.INTERFACE_ENDPOINT_SERVICES).
SITE_API_SERVICES = ("monitoring", ROLES_ANYWHERE_SERVICE)


@dataclass(frozen=True)
class AwsTunnelPlan:
    index: int  # 1 or 2: the connection's tunnel1_* / tunnel2_* arguments
    inside_cidr: str
    aws_ip: str  # the /30's first host: the virtual private (or transit) gateway's BGP address
    site_ip: str  # its second host: the customer gateway device's


@dataclass(frozen=True)
class AwsConnectionPlan:
    device: int  # which site device (the spec's site_public_ips order)
    site_public_ip: str
    tunnels: tuple[AwsTunnelPlan, AwsTunnelPlan]


@dataclass(frozen=True)
class AwsLinkPlan:
    target: str
    region: str
    name: str  # the stem of the link's logical and Name-tag names
    tags: dict[str, str]
    site_asn: int
    amazon_side_asn: int | None  # the virtual private gateway's; None: the transit gateway's own
    onprem_cidrs: tuple[str, ...]
    connections: tuple[AwsConnectionPlan, ...]
    transit_gateway_id: str | None  # None: a virtual private gateway on the fleet's VPC
    listener_port: int  # the endpoint's TLS listener: the only port of the fleet the site may reach
    domain_name: str  # the endpoint's certificate name, which the gateway connects to
    log_group_name: str
    log_retention_days: int
    resolver_name: str
    preshared_keys_config_key: str | None  # None: generate two keys per connection in the stack
    ike_versions: tuple[str, ...] = IKE_VERSIONS
    phase1_encryption: tuple[str, ...] = PHASE1_ENCRYPTION
    phase2_encryption: tuple[str, ...] = PHASE2_ENCRYPTION
    integrity: tuple[str, ...] = INTEGRITY
    dh_groups: tuple[int, ...] = DH_GROUPS
    psk_length: int = PSK_LENGTH

    @property
    def tunnel_count(self) -> int:
        return 2 * len(self.connections)


def amazon_side_asn(site_asn: int) -> int:
    """A private 16-bit ASN for the AWS end (CreateVpnGateway AmazonSideAsn: 64512-65534 or
    4200000000-4294967294), never the site's: BGP between equal ASNs is iBGP, which the tunnels
    do not speak. (With a transit gateway its own ASN applies; the spec owner set it.)"""
    return next(asn for asn in AMAZON_SIDE_ASNS if asn != site_asn)


def plan_connections(
    site_ips: list[str] | tuple[str, ...], inside_cidrs: list[str] | tuple[str, ...]
) -> tuple[AwsConnectionPlan, ...]:
    """Device i's connection takes inside ranges 2i and 2i+1 (the spec's checks make them fit)."""
    out = []
    for device, ip in enumerate(site_ips):
        tunnels = []
        for k in (0, 1):
            cidr = inside_cidrs[2 * device + k]
            hosts = list(ipaddress.IPv4Network(cidr).hosts())
            tunnels.append(AwsTunnelPlan(k + 1, cidr, str(hosts[0]), str(hosts[1])))
        out.append(AwsConnectionPlan(device, ip, (tunnels[0], tunnels[1])))
    return tuple(out)


def plan_aws_link(spec: DeploymentSpec, stack: str, name: str) -> AwsLinkPlan | None:
    """The link of one burst target; None when the spec has no AWS link or the target is not an
    AWS fleet. The spec's checks guarantee the endpoint section and the ranges' count."""
    overflow = spec.overflow
    if overflow is None or overflow.link.aws is None or name not in overflow.burst:
        return None
    target = spec.targets[name]
    if not isinstance(target, AwsGpuFleetTarget):
        return None
    endpoint = plan_aws_endpoint(spec, stack, name)
    assert endpoint is not None  # a burst target without a private endpoint is a spec error
    link = overflow.link
    aws = link.aws
    assert aws is not None
    model_name, _ = spec.model_of(name)
    prefix = resource_prefix(spec, stack, name)
    return AwsLinkPlan(
        target=name,
        region=target.region,
        name=f"{prefix}-vpn",
        tags=standard_tags(spec, stack, model_name, "overflow-link"),
        site_asn=link.site_asn,
        amazon_side_asn=amazon_side_asn(link.site_asn) if aws.transit_gateway_id is None else None,
        onprem_cidrs=tuple(link.onprem_cidrs),
        connections=plan_connections(link.site_public_ips, aws.tunnel_inside_cidrs),
        transit_gateway_id=aws.transit_gateway_id,
        listener_port=endpoint.listener_port,
        domain_name=endpoint.domain_name,
        log_group_name=f"{log_group_name(spec, stack, name)}/vpn",
        log_retention_days=spec.log_retention_days(),
        # Route 53 Resolver endpoint Name: at most 64 characters (CreateResolverEndpoint).
        resolver_name=f"{prefix}-inbound",
        preshared_keys_config_key=aws.preshared_keys_config_key,
    )


def aws_link_findings(spec: DeploymentSpec) -> Iterator[Finding]:
    """One AWS burst target: each gets its own VPN connections, and link.aws holds the inside
    ranges of one set (a second would repeat the site's BGP addresses). And a site ASN that AWS
    accepts for a customer gateway in that target's region, and no endpoint consumer in that
    target's own VPC (its hosted zone would clash with the link's). An existing VPC gets a warning
    of what the link cannot add to it."""
    overflow = spec.overflow
    if overflow is None:
        return
    aws_burst = [(i, n) for i, n in enumerate(overflow.burst) if isinstance(spec.targets.get(n), AwsGpuFleetTarget)]
    if not aws_burst:
        return
    target = spec.targets[aws_burst[0][1]]
    assert isinstance(target, AwsGpuFleetTarget)
    # The link's private hosted zone of the endpoint's name goes in the fleet's VPC; a consumer
    # in that same VPC already gets a zone of that name there, and Route 53 refuses a second
    # (CreateHostedZone: ConflictingDomainExists). The consumer's zone would not alias the load
    # balancer the site is admitted to, so the link cannot reuse it.
    consumers = spec.endpoint.aws_consumers if spec.endpoint is not None else []
    for i, consumer in enumerate(consumers):
        if target.network.vpc_id is not None and consumer.vpc_id == target.network.vpc_id:
            yield Finding(
                ("endpoint", "aws_consumers", i, "vpc_id"),
                f"{consumer.vpc_id} is the VPC of burst target {aws_burst[0][1]!r}: the VPN link gives it a private "
                "hosted zone of the endpoint's name, and Route 53 refuses a second zone of that name in one VPC; "
                "remove this consumer (the VPC reaches its own load balancer directly)",
            )
    if target.network.vpc_id is not None:
        # An existing VPC: the stack looks it up and adds nothing to its network but the link.
        # AttachVpnGateway: one virtual private gateway per VPC at a time; Transit Gateways
        # quotas: one VPC attachment per VPC and transit gateway.
        aws = overflow.link.aws
        gateway = (
            "a virtual private gateway is attached to it (a VPC takes only one at a time: if it has one already, "
            "give link.aws.transit_gateway_id instead); "
            if aws is None or aws.transit_gateway_id is None
            else f"it is attached to {aws.transit_gateway_id} (a transit gateway takes one attachment per VPC: if "
            "it is attached already, that attachment fails); "
        )
        yield Finding(
            ("targets", aws_burst[0][1], "network", "vpc_id"),
            f"the VPN link to this existing VPC: {gateway}the site's publisher needs an interface endpoint "
            f"com.amazonaws.{target.region}.monitoring in it, private DNS on, admitting link.onprem_cidrs on "
            "443 (a VPC inferstack creates has one; the link adds the Roles Anywhere endpoint itself)",
            "warning",
        )
    asn = overflow.link.site_asn
    if asn in RESERVED_SITE_ASNS:
        where = RESERVED_SITE_ASNS[asn]
        if where is None or where == target.region:
            yield Finding(
                ("overflow", "link", "site_asn"),
                f"AWS reserves ASN {asn} {'in every region' if where is None else 'in ' + where} and refuses a "
                "customer gateway with it: give the site another ASN (a private one, 64512-65534, if it has none)",
            )
    for i, name in aws_burst[1:]:
        yield Finding(
            ("overflow", "burst", i),
            f"{name!r} would be a second AWS burst target: each gets its own VPN connections, and "
            f"link.aws.tunnel_inside_cidrs holds the ranges of one; keep one AWS burst target ({aws_burst[0][1]!r})",
        )


_PSK = re.compile(r"[A-Za-z0-9._]{8,64}")


def preshared_key_problem(key: str) -> str | None:
    """Why AWS would refuse this pre-shared key (VpnTunnelOptionsSpecification PreSharedKey), or
    None. The reason names the rule, never the key."""
    if not _PSK.fullmatch(key):
        return "8 to 64 letters, digits, '.' and '_'"
    if key.startswith("0"):
        return "not starting with 0"
    return None


def aws_first_character(key: str) -> str:
    """A generated key made acceptable: AWS refuses a leading '0', which a random alphanumeric
    key has with probability 1/62; that one character becomes 'A' (less than a bit of the key's
    190 bits of entropy is lost)."""
    return "A" + key[1:] if key.startswith("0") else key
