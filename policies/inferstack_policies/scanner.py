"""Rules an IaC scanner applies to the other resources this product creates: CloudWatch log
groups (retention and a KMS key), SNS topics (a KMS key) and S3 buckets (a TLS-only policy).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from pulumi_policy import EnforcementLevel, ResourceValidationArgs, Severity, StackValidationArgs
from pulumi_policy.proxy import UnknownValueError

from ._rules import get, resource_rule, stack_rule
from .security import S3_BUCKETS, _as_list, _bucket_targets

LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
SNS_TOPIC = "aws:sns/topic:Topic"
BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"


@resource_rule(
    "security-aws-cloudwatch-loggroup-require-retention-kms",
    "CloudWatch log groups set a retention (without one, or with 0, events are kept forever) and "
    "encrypt with a customer-managed KMS key (kmsKeyId).",
    severity=Severity.MEDIUM,
    remediation="set retentionInDays (the spec's observability.log_retention_days) and kmsKeyId to the stack's key.",
    types=(LOG_GROUP,),
)
def log_group_retention_kms(args: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterator[str]:
    if not get(args.props, "retentionInDays"):
        yield "The log group keeps its events forever (no retentionInDays)."
    if not get(args.props, "kmsKeyId"):
        yield "The log group is not encrypted with a customer-managed key (no kmsKeyId)."


@resource_rule(
    "security-aws-cloudwatch-loggroup-retention-minimum",
    "CloudWatch log groups keep events at least minLogRetentionDays (default 365, a year as scanners "
    "and most audit regimes ask). Advisory, not mandatory: how long logs must be kept is a compliance "
    "and cost choice per environment (a dev stack keeps 30 days by default), so inferstack policy-config "
    "derives the minimum from the spec's observability.log_retention_days for its environment, and a "
    "shorter retention is reported for review rather than blocking the deploy.",
    severity=Severity.LOW,
    remediation="raise retentionInDays, or set observability.log_retention_days in the spec deliberately.",
    types=(LOG_GROUP,),
    enforcement=EnforcementLevel.ADVISORY,
    config={
        "minLogRetentionDays": {
            "type": "integer",
            "minimum": 1,
            "default": 365,
            "description": "Fewest days a log group may keep its events.",
        }
    },
)
def log_group_retention_minimum(args: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterator[str]:
    days = get(args.props, "retentionInDays")
    if days and int(days) < config["minLogRetentionDays"]:
        yield f"The log group keeps events {days} days, fewer than {config['minLogRetentionDays']}."


@resource_rule(
    "security-aws-sns-topic-require-kms",
    "SNS topics encrypt messages at rest with a KMS key (kmsMasterKeyId).",
    severity=Severity.MEDIUM,
    remediation="set kmsMasterKeyId to the stack's key (whose policy lets the publishing services use it).",
    types=(SNS_TOPIC,),
)
def sns_kms(args: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterator[str]:
    if not get(args.props, "kmsMasterKeyId"):
        yield "The topic is not encrypted (no kmsMasterKeyId)."


def denies_insecure_transport(document: Any, bucket_arn: str | None) -> bool:
    """Whether a bucket policy denies every action over plain HTTP (aws:SecureTransport false)
    on the bucket and its objects (the statement AWS's S3 security guidance shows)."""
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except ValueError:
            return False
    for s in _as_list(get(document, "Statement") or []):
        if get(s, "Effect") != "Deny" or get(s, "Principal") not in ("*", {"AWS": "*"}):
            continue
        if not {"s3:*", "*"} & set(_as_list(get(s, "Action"))):
            continue
        condition = get(s, "Condition", "Bool", "aws:SecureTransport")
        if str(condition).lower() != "false":
            continue
        resources = {str(r) for r in _as_list(get(s, "Resource"))}
        if "*" in resources:
            return True
        if bucket_arn is not None:
            if {bucket_arn, f"{bucket_arn}/*"} <= resources:
                return True
        elif any(r.endswith("/*") for r in resources) and any(not r.endswith("/*") for r in resources):
            return True  # the bucket's ARN is not an input: the bucket and its objects, by shape
    return False


def _known(props: Any, key: str) -> str | None:
    try:
        value = get(props, key)
    except UnknownValueError:
        return None
    return value if isinstance(value, str) else None


@stack_rule(
    "security-aws-s3bucket-require-tls-only",
    "Every S3 bucket has a bucket policy that denies all requests over plain HTTP (Deny s3:* when "
    "aws:SecureTransport is false). A bucket with no policy at all is a violation at preview too; a "
    "policy document still unknown at preview is checked when it is known (the offline check, and the "
    "stack check at the end of `pulumi up`).",
    severity=Severity.HIGH,
    remediation="add a Deny statement for s3:* on the bucket and bucket/* with Condition "
    "Bool aws:SecureTransport=false to the bucket's one BucketPolicy.",
)
def s3_tls_only(args: StackValidationArgs, config: Mapping[str, Any]) -> Iterator[tuple[str, str | None]]:
    buckets = [r for r in args.resources if r.resource_type in S3_BUCKETS]
    by_name = {get(b.props, "bucket"): b.urn for b in buckets if get(b.props, "bucket")}
    arns = {b.urn: _known(b.props, "arn") for b in buckets}
    tls_only, unknown = set(), set()
    for r in args.resources:
        if r.resource_type != BUCKET_POLICY:
            continue
        targets = _bucket_targets(r, by_name)
        try:
            document = get(r.props, "policy")
        except UnknownValueError:
            unknown |= targets
            continue
        for urn in targets:
            if denies_insecure_transport(document, arns.get(urn)):
                tls_only.add(urn)
    for b in buckets:
        if b.urn in tls_only:
            continue
        # Not fail-closed, unlike residency: a bucket policy names the bucket's ARN, which no
        # preview of a new stack knows, so failing closed would block the first preview of
        # every stack with a bucket in a PR pipeline. The policy's existence is still required
        # here; its content is verified wherever it is known.
        if b.urn not in unknown:
            yield f"Bucket {b.name} has no policy denying plain-HTTP requests.", b.urn
