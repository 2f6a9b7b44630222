"""Required tags and labels: every taggable resource says which stack, environment, team, model
and data class it belongs to, for cost attribution and for the residency audit trail.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from pulumi_policy import ResourceValidationArgs, Severity

from ._rules import DYNAMIC, get, is_queued_tpu, items, provider_of, queued_tpu_nodes, resource_rule

REQUIRED_TAGS = ["stack", "environment", "team", "model", "data-classification"]

# AWS resource types that take no `tags` (read off the provider schema; a test keeps this list
# in step with pulumi-aws for every type inferstack registers). Everything else must be tagged.
AWS_UNTAGGABLE = frozenset(
    {
        "aws:autoscaling/attachment:Attachment",
        "aws:cloudwatch/dashboard:Dashboard",
        "aws:autoscaling/lifecycleHook:LifecycleHook",
        "aws:autoscaling/policy:Policy",
        "aws:ec2/mainRouteTableAssociation:MainRouteTableAssociation",
        "aws:ec2/route:Route",
        "aws:ec2/routeTableAssociation:RouteTableAssociation",
        "aws:ec2/securityGroupRule:SecurityGroupRule",
        "aws:ec2/vpcEndpointConnectionAccepter:VpcEndpointConnectionAccepter",
        "aws:ec2/vpcEndpointServiceAllowedPrinciple:VpcEndpointServiceAllowedPrinciple",
        "aws:ec2/vpnConnectionRoute:VpnConnectionRoute",
        "aws:ec2/vpnGatewayRoutePropagation:VpnGatewayRoutePropagation",
        "aws:iam/policyAttachment:PolicyAttachment",
        "aws:iam/rolePolicy:RolePolicy",
        "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
        "aws:kms/alias:Alias",
        "aws:lb/targetGroupAttachment:TargetGroupAttachment",
        "aws:route53/record:Record",
        "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
        "aws:s3/bucketOwnershipControls:BucketOwnershipControls",
        "aws:s3/bucketPolicy:BucketPolicy",
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
        "aws:s3/bucketReplicationConfig:BucketReplicationConfig",
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        "aws:s3/bucketVersioning:BucketVersioning",
    }
)

# GCP resource types that carry `labels` and so must carry the required set.
GCP_LABELED = frozenset(
    {
        "gcp:compute/instance:Instance",
        "gcp:compute/instanceTemplate:InstanceTemplate",
        "gcp:compute/regionInstanceTemplate:RegionInstanceTemplate",
        "gcp:compute/disk:Disk",
        "gcp:compute/forwardingRule:ForwardingRule",
        "gcp:compute/address:Address",
        "gcp:storage/bucket:Bucket",
        "gcp:kms/cryptoKey:CryptoKey",
        "gcp:tpu/v2Vm:V2Vm",
    }
)


# Kubernetes objects carry the standard labels in metadata.labels. Left out: Helm releases and
# charts (not API objects: the chart labels what it installs) and node patches (the node is not
# inferstack's; a patch adds only the pool's scheduling labels).
K8S_UNLABELED = frozenset(
    {"kubernetes:helm.sh/v3:Release", "kubernetes:helm.sh/v4:Chart", "kubernetes:core/v1:NodePatch"}
)


def tags_of(args: ResourceValidationArgs) -> dict[str, Any] | None:
    """The tags (AWS) or labels (GCP) a resource declares; None when it cannot carry any."""
    token = args.resource_type
    if token == "aws:autoscaling/group:Group":
        return {get(t, "key"): get(t, "value") for t in items(args.props, "tags")}
    if provider_of(token) == "aws" and not token.startswith("pulumi:providers:") and token not in AWS_UNTAGGABLE:
        return dict(get(args.props, "tags") or {})
    if token in GCP_LABELED:
        return dict(get(args.props, "labels") or {})
    if is_queued_tpu(token, args.props):
        nodes = queued_tpu_nodes(token, args.props)
        return dict(get(nodes[0], "labels") or {}) if nodes else {}
    if provider_of(token) == "kubernetes" and not token.startswith("pulumi:providers:") and token not in K8S_UNLABELED:
        return dict(get(args.props, "metadata", "labels") or {})
    return None


@resource_rule(
    "tags-resource-require-standard-tags",
    "Every taggable resource carries the standard tags (labels on GCP and Kubernetes) for cost attribution.",
    severity=Severity.MEDIUM,
    remediation="tag it with stack, environment, team, model and data-classification (inferstack does so by default).",
    types=("aws:", "gcp:", "kubernetes:", DYNAMIC),
    config={"requiredTags": {"type": "array", "items": {"type": "string"}, "default": REQUIRED_TAGS}},
)
def standard_tags(args: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterator[str]:
    tags = tags_of(args)
    if tags is None:
        return
    missing = [k for k in config["requiredTags"] if not tags.get(k)]
    if missing:
        yield f"Missing tags: {', '.join(missing)}."
