"""Data residency: every resource, replica and VPN peer stays where the stack's data may live.

The allowed sets come from the pack config, which `inferstack policy-config` derives from the
spec's residency section. With no config, nothing is allowed: residency fails closed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from pulumi_policy import ResourceValidationArgs, Severity, StackValidationArgs
from pulumi_policy.proxy import UnknownValueError

from ._rules import (
    DYNAMIC,
    K8S_LOCATION_LABEL,
    K8S_NAMESPACE,
    get,
    is_queued_tpu,
    items,
    provider_of,
    resource_rule,
    stack_rule,
)

REGIONS_SCHEMA = {
    "type": "array",
    "items": {"type": "string"},
    "default": [],
    "description": "Regions data may live in (inferstack policy-config derives them from the spec's residency).",
}

# AWS services whose resources are global, with no region to check.
AWS_GLOBAL_PREFIXES = ("aws:iam/", "aws:route53/", "aws:cloudfront/", "aws:organizations/", "aws:budgets/")
GCP_LOCATION_FIELDS = ("region", "zone", "location")
_GCP_ZONE = re.compile(r"^([a-z]+-[a-z]+\d+)-[a-z]$")


class RegionUnknown(Exception):
    """Raised when a resource's region cannot be read: a value unknown at preview."""


def aws_region(props: Mapping[str, Any], provider_props: Mapping[str, Any] | None) -> str | None:
    """A resource's own `region` input (pulumi-aws v7) or else its provider's."""
    try:
        region = get(props, "region") or get(provider_props or {}, "region")
    except UnknownValueError as e:
        raise RegionUnknown(str(e)) from None
    return region


def gcp_locations(props: Mapping[str, Any], provider_props: Mapping[str, Any] | None) -> list[str]:
    """Every location a GCP resource names (region, zone, location), or else its provider's."""
    try:
        own = [str(get(props, f)).lower() for f in GCP_LOCATION_FIELDS if get(props, f)]
        if own:
            return own
        return [str(get(provider_props or {}, f)).lower() for f in ("zone", "region") if get(provider_props or {}, f)][
            :1
        ]
    except UnknownValueError as e:
        raise RegionUnknown(str(e)) from None


def gcp_location_allowed(location: str, config: Mapping[str, Any]) -> bool:
    regions = {r.lower() for r in config["allowedRegions"]}
    zones = {z.lower() for z in config["allowedZones"]}
    multi = {m.lower() for m in config["allowedMultiRegions"]}
    zone = _GCP_ZONE.match(location)
    if zone:
        return zone.group(1) in regions and (not zones or location in zones)
    return location in regions or location in multi


def _is_aws_regional(token: str) -> bool:
    return provider_of(token) == "aws" and not token.startswith(AWS_GLOBAL_PREFIXES)


def _provider_props(args) -> Mapping[str, Any] | None:
    return args.provider.props if args.provider is not None else None


@resource_rule(
    "residency-aws-resource-require-allowed-region",
    "Every regional AWS resource, and every AWS provider, is in an allowed region.",
    severity=Severity.CRITICAL,
    remediation="deploy the resource in one of the allowed regions (the spec's residency), through an explicit provider.",
    types=("aws:", "pulumi:providers:aws"),
    config={"allowedRegions": REGIONS_SCHEMA},
)
def aws_region_allowed(args: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterator[str]:
    if not _is_aws_regional(args.resource_type):
        return
    provider = None if args.resource_type.startswith("pulumi:providers:") else _provider_props(args)
    region = aws_region(args.props, provider)
    if region is None:
        yield "Its region cannot be determined: no region input and no provider region (the ambient default would decide)."
    elif region not in config["allowedRegions"]:
        yield f"Region {region!r} is outside the allowed regions {sorted(config['allowedRegions'])}."
    # Resources that reach into another region: peerings, cross-region endpoints, endpoint services.
    others = [get(args.props, "peerRegion"), get(args.props, "serviceRegion"), *items(args.props, "supportedRegions")]
    for other in filter(None, others):
        if other not in config["allowedRegions"]:
            yield f"It reaches into {other!r}, outside the allowed regions {sorted(config['allowedRegions'])}."


@resource_rule(
    "residency-gcp-resource-require-allowed-location",
    "Every GCP resource's region, zone or location (key rings, buckets, TPUs, subnets, routers, "
    "instances) is allowed; multi-regions only when listed.",
    severity=Severity.CRITICAL,
    remediation="use a region or zone inside the allowed set (the spec's residency); avoid multi-region locations.",
    types=("gcp:", "pulumi:providers:gcp", DYNAMIC),
    config={
        "allowedRegions": REGIONS_SCHEMA,
        "allowedZones": {
            **REGIONS_SCHEMA,
            "description": "Allowed zones; empty allows every zone of an allowed region.",
        },
        "allowedMultiRegions": {**REGIONS_SCHEMA, "description": "Multi- or dual-region locations allowed, e.g. EU."},
    },
)
def gcp_location_allowed_rule(args: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterator[str]:
    if args.resource_type == DYNAMIC and not is_queued_tpu(args.resource_type, args.props):
        return
    provider = None if args.resource_type.startswith("pulumi:providers:") else _provider_props(args)
    for location in gcp_locations(args.props, provider):
        if not gcp_location_allowed(location, config):
            yield f"Location {location!r} is outside the allowed regions {sorted(config['allowedRegions'])}."
    for location in items(args.props, "customPlacementConfig", "dataLocations"):
        if not gcp_location_allowed(str(location).lower(), config):
            yield f"Data location {location!r} of the dual-region bucket is outside the allowed regions."


@resource_rule(
    "residency-vpn-peer-require-allowed-ip",
    "VPN peers (AWS customer gateways, GCP external VPN gateways and tunnels) are the allowed on-prem addresses.",
    severity=Severity.HIGH,
    remediation="point the VPN at an allowed peer address (the spec's overflow link), or add the peer to the spec.",
    types=(
        "aws:ec2/customerGateway:CustomerGateway",
        "gcp:compute/externalVpnGateway:ExternalVpnGateway",
        "gcp:compute/vpnTunnel:VpnTunnel",
    ),
    config={"allowedPeerIps": {**REGIONS_SCHEMA, "description": "Public IPs of the allowed VPN peers."}},
)
def vpn_peer_allowed(args: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterator[str]:
    peers = [get(args.props, "ipAddress"), get(args.props, "peerIp")]
    peers += [get(i, "ipAddress") for i in items(args.props, "interfaces")]
    for peer in filter(None, peers):
        if peer not in config["allowedPeerIps"]:
            yield f"VPN peer {peer} is not an allowed peer {sorted(config['allowedPeerIps'])}."


@resource_rule(
    "residency-storage-replica-require-allowed-region",
    "Replicas (DynamoDB global tables, ECR replication) stay in allowed regions.",
    severity=Severity.CRITICAL,
    remediation="replicate only to allowed regions, or not at all.",
    types=(
        "aws:dynamodb/table:Table",
        "aws:dynamodb/tableReplica:TableReplica",
        "aws:ecr/replicationConfiguration:ReplicationConfiguration",
    ),
    config={"allowedRegions": REGIONS_SCHEMA},
)
def replicas_allowed(args: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterator[str]:
    regions = [get(r, "regionName") for r in items(args.props, "replicas")]
    for rule in items(args.props, "replicationConfiguration", "rules"):
        regions += [get(d, "region") for d in items(rule, "destinations")]
    if args.resource_type == "aws:dynamodb/tableReplica:TableReplica":
        regions.append(aws_region(args.props, _provider_props(args)))
    for region in regions:
        if region not in config["allowedRegions"]:
            yield f"A replica in {region!r} is outside the allowed regions {sorted(config['allowedRegions'])}."


@stack_rule(
    "residency-aws-s3bucket-disallow-outside-replication",
    "S3 replication only to buckets this stack declares in an allowed region.",
    severity=Severity.CRITICAL,
    remediation="replicate to a bucket declared in this stack, in an allowed region.",
    config={"allowedRegions": REGIONS_SCHEMA},
)
def s3_replication_allowed(args: StackValidationArgs, config: Mapping[str, Any]) -> Iterator[tuple[str, str | None]]:
    buckets = {}
    for r in args.resources:
        if r.resource_type in ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2") and get(r.props, "bucket"):
            buckets[f"arn:aws:s3:::{get(r.props, 'bucket')}"] = r
    for r in args.resources:
        if r.resource_type != "aws:s3/bucketReplicationConfig:BucketReplicationConfig":
            continue
        for rule in items(r.props, "rules"):
            dest = get(rule, "destination", "bucket")
            target = buckets.get(dest)
            if target is None:
                yield f"Replication to {dest} cannot be checked: that bucket is not declared in this stack.", r.urn
                continue
            region = aws_region(target.props, target.provider.props if target.provider else None)
            if region not in config["allowedRegions"]:
                yield f"Replication to {dest} in {region!r} leaves the allowed regions.", r.urn


@stack_rule(
    "residency-stack-require-known-region",
    "Fails closed: every cloud resource's region must be known at preview, or residency cannot be checked.",
    severity=Severity.CRITICAL,
    remediation="give the resource (or its provider) a literal region, not one computed during the deployment.",
)
def regions_known(args: StackValidationArgs, config: Mapping[str, Any]) -> Iterator[tuple[str, str | None]]:
    for r in args.resources:
        provider = r.provider.props if r.provider is not None else None
        try:
            if _is_aws_regional(r.resource_type):
                if r.resource_type.startswith("pulumi:providers:"):
                    provider = None
                if aws_region(r.props, provider) is None:
                    yield f"{r.resource_type} {r.name} has no region and no provider region.", r.urn
            elif provider_of(r.resource_type) == "gcp" or is_queued_tpu(r.resource_type, r.props):
                if not gcp_locations(r.props, provider):
                    yield f"{r.resource_type} {r.name} names no location and its provider none.", r.urn
        except RegionUnknown:
            yield f"{r.resource_type} {r.name}: its region is unknown at preview.", r.urn


@resource_rule(
    "residency-kubernetes-namespace-require-allowed-location",
    f"Every Kubernetes namespace the stack declares names its site's location ({K8S_LOCATION_LABEL} label), "
    "and that location is allowed; a namespace without the label fails closed.",
    severity=Severity.CRITICAL,
    remediation=f"run the target on a site whose country is inside the spec's residency, and keep the "
    f"{K8S_LOCATION_LABEL} label inferstack puts on its namespaces.",
    types=(K8S_NAMESPACE,),
    config={
        "allowedLocations": {
            **REGIONS_SCHEMA,
            "description": "Site locations (countries) data may live in (inferstack policy-config derives them "
            "from the spec's residency).",
        }
    },
)
def k8s_namespace_location(args: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterator[str]:
    try:
        location = get(args.props, "metadata", "labels", K8S_LOCATION_LABEL)
    except UnknownValueError:
        yield f"Its {K8S_LOCATION_LABEL} label is unknown at preview, so its location cannot be checked."
        return
    if not location:
        yield f"It has no {K8S_LOCATION_LABEL} label: where its data lives cannot be checked."
    elif location not in config["allowedLocations"]:
        yield f"Location {location!r} is outside the allowed locations {sorted(config['allowedLocations'])}."
