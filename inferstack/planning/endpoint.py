"""The private endpoint of each target, decided from the spec's `endpoint` section.

AWS: an internal NLB with a TLS listener in front of the fleet, a PrivateLink endpoint service
that requires acceptance, interface endpoints in the consumer VPCs the spec names. GCP: an
internal HTTPS load balancer with a proxy-only subnet, a Private Service Connect attachment with
manual acceptance, PSC endpoints in the consumer networks the spec names.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from inferstack import catalog
from inferstack.planning.naming import gcp_name, resource_prefix
from inferstack.spec.models import (
    ACM_ARN,
    GCP_CERT,
    PCA_ARN,
    AwsGpuFleetTarget,
    DeploymentSpec,
    GcpGpuFleetTarget,
    GcpTpuTarget,
)

LISTENER_PORT = 443
AWS_TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
ACCESS_LOG_EXPIRATION_DAYS = 90
NONCURRENT_EXPIRATION_DAYS = 30
INCOMPLETE_UPLOAD_DAYS = 7


def region_of_certificate(certificate: str) -> str | None:
    for pattern in (ACM_ARN, GCP_CERT, PCA_ARN):
        m = re.match(pattern, certificate)
        if m:
            return m.group(1)
    return None


def certificate_owner(certificate: str) -> str:
    """The GCP project a regional SSL certificate lives in ('' for ACM: the account is implied)."""
    return certificate.split("/")[1] if certificate.startswith("projects/") else ""


def is_acm(certificate: str) -> bool:
    return re.match(ACM_ARN, certificate) is not None


def certificate_for(spec: DeploymentSpec, cloud: str, region: str, project: str = "") -> str | None:
    """The spec's certificate for a cloud, region and (GCP) project: a regional HTTPS proxy can
    only use a certificate of its own project. The checks guarantee at most one."""
    assert spec.endpoint is not None
    for cert in spec.endpoint.certificates:
        if (
            is_acm(cert) == (cloud == "aws")
            and region_of_certificate(cert) == region
            and (cloud == "aws" or certificate_owner(cert) == project)
        ):
            return cert
    return None


@dataclass(frozen=True)
class AwsEndpointConsumerPlan:
    vpc_id: str
    subnet_ids: tuple[str, ...]


# Pulumi's auto-name appends '-' and 7 random characters to a resource's logical name.
AUTO_NAME_SUFFIX = 8
ELB_NAME_LIMIT = 32  # load balancers and target groups (CreateLoadBalancer, CreateTargetGroup)


@dataclass(frozen=True)
class AwsEndpointPlan:
    # The logical name of the load balancer and target group, which Pulumi auto-names from it:
    # at most 24 characters, so that with the random suffix the name fits ELB's 32.
    lb_name: str
    certificate_arn: str | None  # from the spec, or None: issue one from private_ca_arn
    private_ca_arn: str | None
    domain_name: str
    allowed_principals: tuple[str, ...]
    consumers: tuple[AwsEndpointConsumerPlan, ...]
    deletion_protection: bool
    target_port: int
    health_path: str
    listener_port: int = LISTENER_PORT
    ssl_policy: str = AWS_TLS_POLICY


def _deletion_protection(spec: DeploymentSpec) -> bool:
    assert spec.endpoint is not None
    if spec.endpoint.deletion_protection is not None:
        return spec.endpoint.deletion_protection
    return spec.metadata.is_production


def plan_aws_endpoint(spec: DeploymentSpec, stack: str, name: str) -> AwsEndpointPlan | None:
    target = spec.targets[name]
    if spec.endpoint is None or not isinstance(target, AwsGpuFleetTarget):
        return None
    ep = spec.endpoint
    prefix = resource_prefix(spec, stack, name)
    principals = ("*",) if ep.allow_any_principal else tuple(sorted(ep.allowed_principals))
    return AwsEndpointPlan(
        lb_name=load_balancer_name(prefix),
        certificate_arn=certificate_for(spec, "aws", target.region),
        private_ca_arn=ep.private_ca_arn,
        domain_name=aws_domain_name(spec, stack, name),
        allowed_principals=principals,
        consumers=tuple(AwsEndpointConsumerPlan(c.vpc_id, tuple(c.subnet_ids)) for c in ep.aws_consumers),
        deletion_protection=_deletion_protection(spec),
        target_port=spec.serving.port,
        health_path=catalog.engines()[spec.serving.engine].health_path,
    )


def check_consumer_zones(
    vpc_id: str, subnet_ids: tuple[str, ...], consumer_zone_ids: list[str], fleet_zone_ids: list[str]
) -> list[str]:
    """The consumer's subnets, once each is known to be in a zone of the service's load balancer
    (an interface endpoint can only use those zones; AZ IDs compare across accounts)."""
    outside = [f"{s} ({z})" for s, z in zip(subnet_ids, consumer_zone_ids, strict=True) if z not in fleet_zone_ids]
    if outside:
        raise ValueError(
            f"endpoint.aws_consumers: the subnets {', '.join(outside)} of {vpc_id} are in Availability Zones "
            f"where the endpoint's load balancer has no subnet ({', '.join(fleet_zone_ids)}): an interface "
            "endpoint can only use those zones; name consumer subnets in them, or give the target more zones"
        )
    return list(subnet_ids)


@dataclass(frozen=True)
class GcpEndpointConsumerPlan:
    project: str
    network: str
    subnetwork: str


@dataclass(frozen=True)
class GcpEndpointPlan:
    name: str
    certificate: str
    consumer_projects: tuple[str, ...]
    consumers: tuple[GcpEndpointConsumerPlan, ...]
    proxy_cidr: str | None  # None: reuse the existing network's active proxy-only subnet
    psc_cidr: str
    deletion_protection: bool
    target_port: int
    health_path: str
    listener_port: int = LISTENER_PORT
    existing_network: str | None = None  # the name of a network inferstack did not create


def adjacent_ranges(subnet_cidr: str) -> tuple[str, str]:
    """The proxy-only /23 and the PSC NAT /24 right after a subnet (the /23 aligned on its own
    boundary): free in a VPC inferstack made. The checks make sure they stay private."""
    after = int(ipaddress.IPv4Network(subnet_cidr).broadcast_address) + 1
    proxy = ipaddress.IPv4Network((-(-after // 512) * 512, 23))
    psc = ipaddress.IPv4Network((int(proxy.broadcast_address) + 1, 24))
    return str(proxy), str(psc)


def endpoint_ranges(net) -> tuple[str, str]:
    """A GCP target's proxy-only and PSC ranges: the spec's, else the ones beside its subnet."""
    if net.proxy_cidr and net.psc_cidr:
        return net.proxy_cidr, net.psc_cidr
    proxy, psc = adjacent_ranges(net.subnet_cidr)
    return net.proxy_cidr or proxy, net.psc_cidr or psc


def aws_domain_name(spec: DeploymentSpec, stack: str, name: str) -> str:
    """The one name a target's endpoint service answers to: on its certificate, and the name of
    the private hosted zone in each consumer VPC. A VPC cannot hold two private zones of one name
    (Route 53: ConflictingDomainExists), so with several AWS targets each gets its own name
    under the spec's private_dns_name (a certificate from the spec must cover `*.<name>`)."""
    target = spec.targets[name]
    ep = spec.endpoint
    assert ep is not None
    if ep.private_dns_name is None:
        return f"{resource_prefix(spec, stack, name)}.{target.region}.internal"
    aws_targets = [t for t in spec.targets.values() if isinstance(t, AwsGpuFleetTarget)]
    return ep.private_dns_name if len(aws_targets) == 1 else f"{name}.{ep.private_dns_name}"


def load_balancer_name(prefix: str) -> str:
    """The stem Pulumi auto-names an ELB load balancer and target group from: with the random
    suffix at most 32 characters, and never 'internal-...', which AWS reserves."""
    limit = ELB_NAME_LIMIT - AUTO_NAME_SUFFIX
    name = gcp_name(prefix, limit=limit)
    return gcp_name("lb", prefix, limit=limit) if name.startswith("internal-") else name


def plan_gcp_endpoint(spec: DeploymentSpec, stack: str, name: str) -> GcpEndpointPlan | None:
    target = spec.targets[name]
    if spec.endpoint is None or not isinstance(target, (GcpGpuFleetTarget, GcpTpuTarget)):
        return None
    ep = spec.endpoint
    proxy_cidr: str | None
    proxy_cidr, psc_cidr = endpoint_ranges(target.network)
    if not target.network.creates_network:
        proxy_cidr = target.network.proxy_cidr  # None: the network's own proxy-only subnet serves
    certificate = certificate_for(spec, "gcp", target.region, target.project)
    assert certificate is not None  # the spec checks guarantee it
    return GcpEndpointPlan(
        name=gcp_name(resource_prefix(spec, stack, name), limit=50),
        certificate=certificate,
        consumer_projects=tuple(sorted(ep.consumer_projects)),
        consumers=tuple(GcpEndpointConsumerPlan(c.project, c.network, c.subnetwork) for c in ep.gcp_consumers),
        proxy_cidr=proxy_cidr,
        psc_cidr=psc_cidr,
        deletion_protection=_deletion_protection(spec),
        target_port=spec.serving.port,
        health_path=catalog.engines()[spec.serving.engine].health_path,
        existing_network=target.network.network,
    )
