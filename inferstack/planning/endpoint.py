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
from inferstack.planning.naming import gcp_name
from inferstack.planning.naming import resource_prefix
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


@dataclass(frozen=True)
class AwsEndpointPlan:
    lb_name: str  # at most 32 characters (ELB limit)
    certificate_arn: str | None  # from the spec, or None: issue one from private_ca_arn
    private_ca_arn: str | None
    domain_name: str
    allowed_principals: tuple[str, ...]
    private_dns_name: str | None
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
    return spec.metadata.environment in ("prod", "production")


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
        domain_name=ep.private_dns_name or f"{prefix}.{target.region}.internal",
        allowed_principals=principals,
        private_dns_name=ep.private_dns_name,
        consumers=tuple(AwsEndpointConsumerPlan(c.vpc_id, tuple(c.subnet_ids)) for c in ep.aws_consumers),
        deletion_protection=_deletion_protection(spec),
        target_port=spec.serving.port,
        health_path=catalog.engines()[spec.serving.engine].health_path,
    )


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


def load_balancer_name(prefix: str) -> str:
    """An ELB name: at most 32 characters, and never 'internal-...', which AWS reserves."""
    name = gcp_name(prefix, limit=32)
    return gcp_name("lb", prefix, limit=32) if name.startswith("internal-") else name


def plan_gcp_endpoint(spec: DeploymentSpec, stack: str, name: str) -> GcpEndpointPlan | None:
    target = spec.targets[name]
    if spec.endpoint is None or not isinstance(target, (GcpGpuFleetTarget, GcpTpuTarget)):
        return None
    ep = spec.endpoint
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
