"""The policy pack's config, derived from the spec, so that the PR pipeline's
`pulumi preview --policy-pack-config` and the offline check always agree.

Residency comes from the spec's residency section, never from its `exceptions`: an exception is
an opt-out the spec accepts and the pack still blocks, until a person overrides the config.
"""

from __future__ import annotations

from typing import Any

from inferstack import catalog
from inferstack.planning.naming import standard_tags
from inferstack.spec.models import DeploymentSpec

# The names the pack declares; a test checks each exists in the pack.
AWS_REGION = "residency-aws-resource-require-allowed-region"
GCP_LOCATION = "residency-gcp-resource-require-allowed-location"
REPLICAS = "residency-storage-replica-require-allowed-region"
S3_REPLICATION = "residency-aws-s3bucket-disallow-outside-replication"
VPN_PEERS = "residency-vpn-peer-require-allowed-ip"
TAGS = "tags-resource-require-standard-tags"
GPU_LIMIT = "cost-stack-gpu-count-limit"
LOG_RETENTION = "security-aws-cloudwatch-loggroup-retention-minimum"
K8S_LOCATION = "residency-kubernetes-namespace-require-allowed-location"
# Pulumi's key for the enforcement level of every policy of the pack (a policy's own entry
# overrides it): how guardrails.enforcement `strict` makes the advisory rules block.
ALL = "all"


def derive(spec: DeploymentSpec) -> dict[str, Any]:
    known = catalog.known_regions()
    allowed = spec.residency.allowed_regions
    aws = sorted(r for r in allowed if known.get(r) == "aws")
    gcp = sorted(r for r in allowed if known.get(r) == "gcp")
    from inferstack.kinds import kind_of

    gpus: dict[str, float] = {}
    for target in spec.targets.values():
        gpus.update(kind_of(target).accelerators(target))
    gpus = dict(sorted(gpus.items()))
    return {
        **({ALL: "mandatory"} if spec.strict_policy() else {}),
        AWS_REGION: {"allowedRegions": aws},
        GCP_LOCATION: {"allowedRegions": gcp, "allowedZones": [], "allowedMultiRegions": []},
        REPLICAS: {"allowedRegions": sorted(allowed)},
        S3_REPLICATION: {"allowedRegions": aws},
        # The overflow link's site devices: the only VPN peers the stack may have.
        VPN_PEERS: {"allowedPeerIps": sorted(spec.overflow.link.site_public_ips) if spec.overflow else []},
        TAGS: {"requiredTags": [k for k in standard_tags(spec, "-", "-") if k not in ("managed-by", "workload")]},
        GPU_LIMIT: {"maxGpus": spec.guardrails.max_gpus, "gpusPerInstanceType": gpus},
        # The retention the spec chose for its environment (a year in production unless set):
        # a log group the program keeps shorter than the stack's own setting is reported.
        LOG_RETENTION: {"minLogRetentionDays": spec.log_retention_days()},
        # On-prem sites: the countries residency allows a site in (none: every namespace is blocked).
        K8S_LOCATION: {"allowedLocations": sorted(spec.residency.allowed_sites)},
    }
