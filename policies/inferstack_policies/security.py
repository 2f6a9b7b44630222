"""Security defaults of cloud resources: no public exposure, IMDSv2, encryption with
customer-managed keys, TLS 1.2+, private endpoints that ask before they connect, no admin
wildcards, private and encrypted buckets.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator, Mapping
from typing import Any

from pulumi_policy import ResourceValidationArgs, Severity, StackValidationArgs

from ._rules import (
    DYNAMIC,
    GCP_TEMPLATES,
    LAUNCH_TEMPLATE,
    QUEUED_TPU,
    TPU_VM,
    get,
    items,
    queued_tpu_nodes,
    resource_rule,
    stack_rule,
    truthy,
)

EC2_INSTANCE = "aws:ec2/instance:Instance"
TPU_QUEUED = "gcp:tpu/v2QueuedResource:V2QueuedResource"


@resource_rule(
    "security-compute-instance-disallow-public-ip",
    "Serving nodes have no public IP: launch templates, instances, subnets, instance templates, TPU VMs.",
    severity=Severity.HIGH,
    remediation="remove the public IP (the spec's network.public_ip opt-out); reach nodes through the private endpoint.",
    types=(LAUNCH_TEMPLATE, EC2_INSTANCE, "aws:ec2/subnet:Subnet", *GCP_TEMPLATES, TPU_VM, TPU_QUEUED, DYNAMIC),
    checks={
        LAUNCH_TEMPLATE: ("networkInterfaces.associatePublicIpAddress",),
        EC2_INSTANCE: ("associatePublicIpAddress",),
        **{t: ("networkInterfaces.accessConfigs", "networkInterfaces.ipv6AccessConfigs") for t in GCP_TEMPLATES},
        TPU_VM: ("networkConfig.enableExternalIps",),
        QUEUED_TPU: ("networkConfig.enableExternalIps",),
    },
)
def no_public_ip(args: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterator[str]:
    p, t = args.props, args.resource_type
    if t == LAUNCH_TEMPLATE and any(
        truthy(get(ni, "associatePublicIpAddress")) for ni in items(p, "networkInterfaces")
    ):
        yield "A network interface associates a public IP."
    if t == EC2_INSTANCE and truthy(get(p, "associatePublicIpAddress")):
        yield "The instance associates a public IP."
    if t == "aws:ec2/subnet:Subnet" and truthy(get(p, "mapPublicIpOnLaunch")):
        yield "The subnet maps public IPs on launch."
    if t in GCP_TEMPLATES:
        for ni in items(p, "networkInterfaces"):
            if list(items(ni, "accessConfigs")) or list(items(ni, "ipv6AccessConfigs")):
                yield "A network interface has an access config (an external IP)."
    if t == TPU_VM and truthy(get(p, "networkConfig", "enableExternalIps")):
        yield "The TPU VM enables external IPs."
    if t == TPU_QUEUED:
        for spec in items(p, "tpu", "nodeSpecs"):
            if truthy(get(spec, "node", "networkConfig", "enableExternalIps")):
                yield "A queued TPU node enables external IPs."
    for node in queued_tpu_nodes(t, p):
        if truthy(get(node, "networkConfig", "enableExternalIps")):
            yield "A queued TPU node enables external IPs."


@resource_rule(
    "security-aws-ec2-require-imdsv2",
    "Instances require IMDSv2 tokens with a response hop limit of 1, so containers cannot reach the role.",
    severity=Severity.HIGH,
    remediation="set metadataOptions.httpTokens to 'required' and httpPutResponseHopLimit to 1.",
    types=(LAUNCH_TEMPLATE, EC2_INSTANCE),
    config={
        "maxHopLimit": {"type": "integer", "minimum": 1, "default": 1, "description": "Largest hop limit allowed."}
    },
    checks={
        t: ("metadataOptions.httpTokens", "metadataOptions.httpPutResponseHopLimit")
        for t in (LAUNCH_TEMPLATE, EC2_INSTANCE)
    },
)
def imdsv2(args: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterator[str]:
    meta = get(args.props, "metadataOptions") or {}
    if get(meta, "httpTokens") != "required":
        yield f"IMDSv2 is not required (httpTokens={get(meta, 'httpTokens')!r})."
    hops = get(meta, "httpPutResponseHopLimit")
    if hops is None or hops > config["maxHopLimit"]:
        yield f"The metadata hop limit is {hops!r}, above {config['maxHopLimit']}."


@resource_rule(
    "security-disk-require-cmk-encryption",
    "Volumes and boot disks are encrypted with a customer-managed KMS key.",
    severity=Severity.HIGH,
    remediation="encrypt the disk with the stack's KMS key (kmsKeyId / diskEncryptionKey.kmsKeySelfLink).",
    types=(LAUNCH_TEMPLATE, EC2_INSTANCE, "aws:ebs/volume:Volume", *GCP_TEMPLATES, "gcp:compute/disk:Disk"),
    checks={
        LAUNCH_TEMPLATE: ("blockDeviceMappings.ebs.encrypted", "blockDeviceMappings.ebs.kmsKeyId"),
        **{t: ("disks.diskEncryptionKey.kmsKeySelfLink",) for t in GCP_TEMPLATES},
    },
)
def disks_encrypted(args: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterator[str]:
    p, t = args.props, args.resource_type
    ebs_blocks: list[tuple[str, Any]] = []
    if t == LAUNCH_TEMPLATE:
        ebs_blocks = [
            (get(b, "deviceName", default="?"), get(b, "ebs")) for b in items(p, "blockDeviceMappings") if get(b, "ebs")
        ]
        if not ebs_blocks:
            yield "No block device mapping: instances boot the AMI's root volume, encrypted or not."
    elif t == EC2_INSTANCE:
        ebs_blocks = [("root", get(p, "rootBlockDevice") or {})]
        ebs_blocks += [(get(b, "deviceName", default="?"), b) for b in items(p, "ebsBlockDevices")]
    elif t == "aws:ebs/volume:Volume":
        ebs_blocks = [("volume", p)]
    for device, ebs in ebs_blocks:
        if not truthy(get(ebs, "encrypted")):
            yield f"EBS volume {device} is not encrypted."
        elif not get(ebs, "kmsKeyId"):
            yield f"EBS volume {device} uses the AWS-managed key, not a customer-managed one."
    if t in GCP_TEMPLATES:
        disks = list(items(p, "disks")) or ([get(p, "bootDisk")] if get(p, "bootDisk") else [])
        for i, disk in enumerate(disks):
            key = get(disk, "diskEncryptionKey", "kmsKeySelfLink") or get(disk, "kmsKeySelfLink")
            if not key:
                yield f"Disk {i} is not encrypted with a customer-managed key."
    if t == "gcp:compute/disk:Disk" and not get(p, "diskEncryptionKey", "kmsKeySelfLink"):
        yield "The disk is not encrypted with a customer-managed key."


@resource_rule(
    "security-kms-key-require-rotation",
    "Customer-managed keys rotate automatically (AWS yearly or sooner; GCP within the configured period).",
    severity=Severity.MEDIUM,
    remediation="turn on rotation: enableKeyRotation (AWS) or rotationPeriod (GCP).",
    types=("aws:kms/key:Key", "gcp:kms/cryptoKey:CryptoKey"),
    config={"maxRotationDays": {"type": "integer", "minimum": 1, "default": 365}},
)
def kms_rotation(args: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterator[str]:
    p = args.props
    if args.resource_type == "aws:kms/key:Key":
        spec = get(p, "customerMasterKeySpec") or get(p, "keySpec") or "SYMMETRIC_DEFAULT"
        if spec == "SYMMETRIC_DEFAULT" and not truthy(get(p, "enableKeyRotation")):
            yield "Key rotation is off."
        return
    period = get(p, "rotationPeriod")
    if not period:
        yield "The crypto key has no rotation period."
    elif float(str(period).rstrip("s")) > config["maxRotationDays"] * 86400:
        yield f"The rotation period {period} exceeds {config['maxRotationDays']} days."


# Google's load balancer and health-check probes: public ranges that must reach serving ports.
GOOGLE_HEALTH_CHECK_RANGES = ["35.191.0.0/16", "130.211.0.0/22"]


def public_part(cidr: str, allowed: list[str]) -> bool:
    """Whether a range reaches outside private address space (and the listed public ranges)."""
    try:
        net = ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return True  # not a range we can reason about: fail closed
    if net.is_private:
        return False
    return not any(
        net.version == a.version and net.subnet_of(a)  # type: ignore[arg-type]  # same version, checked first
        for a in map(ipaddress.ip_network, allowed)
    )


@resource_rule(
    "security-network-ingress-disallow-public",
    "No security group or firewall admits ingress from public address space (0.0.0.0/0, ::/0 or any "
    "non-private range), except Google's health checkers.",
    severity=Severity.CRITICAL,
    remediation="admit only the VPC, the load balancer or the listed consumer ranges.",
    types=(
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
        "aws:ec2/securityGroupRule:SecurityGroupRule",
        "aws:ec2/securityGroup:SecurityGroup",
        "gcp:compute/firewall:Firewall",
    ),
    config={
        "allowedPublicRanges": {"type": "array", "items": {"type": "string"}, "default": GOOGLE_HEALTH_CHECK_RANGES}
    },
)
def no_public_ingress(args: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterator[str]:
    p, t = args.props, args.resource_type
    ranges: list[str] = []
    if t == "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule":
        ranges = [r for r in (get(p, "cidrIpv4"), get(p, "cidrIpv6")) if r]
    elif t == "aws:ec2/securityGroupRule:SecurityGroupRule" and get(p, "type") == "ingress":
        ranges = [*items(p, "cidrBlocks"), *items(p, "ipv6CidrBlocks")]
    elif t == "aws:ec2/securityGroup:SecurityGroup":
        for rule in items(p, "ingress"):
            ranges += [*items(rule, "cidrBlocks"), *items(rule, "ipv6CidrBlocks")]
    elif t == "gcp:compute/firewall:Firewall":
        if (get(p, "direction") or "INGRESS") == "INGRESS" and list(items(p, "allows")):
            ranges = list(items(p, "sourceRanges"))
            if not ranges and not list(items(p, "sourceTags")) and not list(items(p, "sourceServiceAccounts")):
                yield "An allow rule with no source admits 0.0.0.0/0 (GCP's default source)."
    for cidr in ranges:
        if public_part(cidr, config["allowedPublicRanges"]):
            yield f"Ingress is open to the public range {cidr}."


DEFAULT_TLS_POLICIES = [
    "ELBSecurityPolicy-TLS13-1-2-2021-06",
    "ELBSecurityPolicy-TLS13-1-2-Res-2021-06",
    "ELBSecurityPolicy-TLS13-1-2-Ext1-2021-06",
    "ELBSecurityPolicy-TLS13-1-2-Ext2-2021-06",
    "ELBSecurityPolicy-TLS13-1-3-2021-06",
    "ELBSecurityPolicy-TLS-1-2-2017-01",
    "ELBSecurityPolicy-TLS-1-2-Ext-2018-06",
    "ELBSecurityPolicy-FS-1-2-2019-08",
    "ELBSecurityPolicy-FS-1-2-Res-2020-10",
]


@resource_rule(
    "security-lb-listener-require-tls12",
    "Load balancer listeners speak TLS 1.2 or newer only; no plaintext proxies.",
    severity=Severity.HIGH,
    remediation="use a TLS/HTTPS listener with a TLS 1.2+ security policy (or an SSL policy with minTlsVersion TLS_1_2).",
    types=(
        "aws:lb/listener:Listener",
        "aws:alb/listener:Listener",
        "gcp:compute/sSLPolicy:SSLPolicy",
        "gcp:compute/regionSslPolicy:RegionSslPolicy",
        "gcp:compute/targetHttpProxy:TargetHttpProxy",
        "gcp:compute/regionTargetHttpProxy:RegionTargetHttpProxy",
        "gcp:compute/targetHttpsProxy:TargetHttpsProxy",
        "gcp:compute/regionTargetHttpsProxy:RegionTargetHttpsProxy",
    ),
    config={"allowedSslPolicies": {"type": "array", "items": {"type": "string"}, "default": DEFAULT_TLS_POLICIES}},
)
def tls_listeners(args: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterator[str]:
    p, t = args.props, args.resource_type
    if t.endswith("/listener:Listener"):
        protocol = get(p, "protocol")
        if protocol not in ("TLS", "HTTPS"):
            yield f"The listener speaks {protocol!r}, not TLS."
        elif get(p, "sslPolicy") not in config["allowedSslPolicies"]:
            yield f"The listener's security policy {get(p, 'sslPolicy')!r} allows TLS below 1.2."
    elif t in ("gcp:compute/sSLPolicy:SSLPolicy", "gcp:compute/regionSslPolicy:RegionSslPolicy"):
        if get(p, "minTlsVersion") not in ("TLS_1_2", "TLS_1_3"):
            yield f"The SSL policy's minimum TLS version is {get(p, 'minTlsVersion')!r}."
    elif t.endswith("TargetHttpsProxy"):
        if not get(p, "sslPolicy"):
            yield "The HTTPS proxy has no SSL policy, and GCP's default one accepts TLS 1.0."
    else:
        yield "A plaintext HTTP proxy serves the model."


@resource_rule(
    "security-aws-vpcendpointservice-require-acceptance",
    "PrivateLink endpoint services require acceptance and name their principals (no wildcard).",
    severity=Severity.HIGH,
    remediation="set acceptanceRequired: true and list the consumer accounts or roles explicitly.",
    types=(
        "aws:ec2/vpcEndpointService:VpcEndpointService",
        "aws:ec2/vpcEndpointServiceAllowedPrinciple:VpcEndpointServiceAllowedPrinciple",
    ),
)
def endpoint_service(args: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterator[str]:
    p = args.props
    if args.resource_type == "aws:ec2/vpcEndpointService:VpcEndpointService":
        if not truthy(get(p, "acceptanceRequired")):
            yield "Connections are accepted without review."
        if "*" in list(items(p, "allowedPrincipals")):
            yield "Any AWS principal may connect ('*')."
    elif get(p, "principalArn") == "*":
        yield "Any AWS principal may connect ('*')."


@resource_rule(
    "security-gcp-serviceattachment-require-manual-acceptance",
    "Private Service Connect attachments accept only the listed consumer projects.",
    severity=Severity.HIGH,
    remediation="set connectionPreference: ACCEPT_MANUAL with a consumer accept list.",
    types=("gcp:compute/serviceAttachment:ServiceAttachment",),
)
def psc_manual(args: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterator[str]:
    if get(args.props, "connectionPreference") != "ACCEPT_MANUAL":
        yield f"connectionPreference is {get(args.props, 'connectionPreference')!r}."


IAM_POLICY_TYPES = (
    "aws:iam/policy:Policy",
    "aws:iam/rolePolicy:RolePolicy",
    "aws:iam/userPolicy:UserPolicy",
    "aws:iam/groupPolicy:GroupPolicy",
    "aws:iam/role:Role",
)
IAM_ATTACHMENT_TYPES = (
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
    "aws:iam/userPolicyAttachment:UserPolicyAttachment",
    "aws:iam/groupPolicyAttachment:GroupPolicyAttachment",
    "aws:iam/policyAttachment:PolicyAttachment",
)
ADMIN_MANAGED_POLICIES = ["AdministratorAccess", "PowerUserAccess", "IAMFullAccess"]


def _as_list(value: Any) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def admin_statements(document: Any) -> list[dict]:
    """Allow statements that grant every action (or every action but a few) on every resource."""
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except ValueError:
            return []
    out = []
    for s in _as_list(get(document, "Statement") or []):
        if get(s, "Effect") != "Allow":
            continue
        actions, resources = _as_list(get(s, "Action")), _as_list(get(s, "Resource"))
        everything = any(a in ("*", "*:*") for a in actions) or get(s, "NotAction") is not None
        if everything and "*" in resources:
            out.append(s)
    return out


@resource_rule(
    "security-aws-iam-policy-disallow-admin-wildcard",
    "No IAM policy allows every action ('*', or NotAction) on every resource ('*'), and no "
    "administrator managed policy is attached.",
    severity=Severity.CRITICAL,
    remediation="name the actions and resources the principal needs.",
    types=(*IAM_POLICY_TYPES, *IAM_ATTACHMENT_TYPES),
    config={"deniedManagedPolicies": {"type": "array", "items": {"type": "string"}, "default": ADMIN_MANAGED_POLICIES}},
)
def no_admin_wildcard(args: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterator[str]:
    if args.resource_type in IAM_ATTACHMENT_TYPES:
        arn = str(get(args.props, "policyArn") or "")
        if arn.rsplit("/", 1)[-1] in config["deniedManagedPolicies"] and ":iam::aws:policy/" in arn:
            yield f"Attaches the AWS managed policy {arn.rsplit('/', 1)[-1]}."
        return
    documents = [get(args.props, "policy")] + [get(p, "policy") for p in items(args.props, "inlinePolicies")]
    for doc in filter(None, documents):
        for statement in admin_statements(doc):
            yield f"Statement {get(statement, 'Sid') or '(no Sid)'} allows every action on '*'."


@resource_rule(
    "security-gcp-storagebucket-require-private-encrypted",
    "GCS buckets enforce public access prevention, uniform access and a customer-managed key.",
    severity=Severity.HIGH,
    remediation="set publicAccessPrevention: enforced, uniformBucketLevelAccess: true and encryption.defaultKmsKeyName.",
    types=("gcp:storage/bucket:Bucket",),
)
def gcs_private(args: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterator[str]:
    p = args.props
    if get(p, "publicAccessPrevention") != "enforced":
        yield "Public access prevention is not enforced."
    if not truthy(get(p, "uniformBucketLevelAccess")):
        yield "Uniform bucket-level access is off."
    if not get(p, "encryption", "defaultKmsKeyName"):
        yield "No customer-managed default key."


S3_BUCKETS = ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2")
PAB = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
SSE = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
PAB_FIELDS = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")


def _bucket_targets(resource, buckets_by_name: dict) -> set[str]:
    """URNs of the buckets a bucket-settings resource applies to: by dependency, else by name."""
    found = {r.urn for r in resource.property_dependencies.get("bucket", []) if r.resource_type in S3_BUCKETS}
    name = get(resource.props, "bucket")
    if name in buckets_by_name:
        found.add(buckets_by_name[name])
    return found


@stack_rule(
    "security-aws-s3bucket-require-private-encrypted",
    "Every S3 bucket has all four public access blocks on and default encryption with a KMS key.",
    severity=Severity.HIGH,
    remediation="add a BucketPublicAccessBlock (all four true) and a BucketServerSideEncryptionConfiguration with aws:kms.",
)
def s3_private(args: StackValidationArgs, config: Mapping[str, Any]) -> Iterator[tuple[str, str | None]]:
    buckets = [r for r in args.resources if r.resource_type in S3_BUCKETS]
    by_name = {get(b.props, "bucket"): b.urn for b in buckets if get(b.props, "bucket")}
    blocked, encrypted = set(), set()
    for r in args.resources:
        if r.resource_type == PAB and all(truthy(get(r.props, f)) for f in PAB_FIELDS):
            blocked |= _bucket_targets(r, by_name)
        if r.resource_type == SSE:
            for rule in items(r.props, "rules"):
                default = get(rule, "applyServerSideEncryptionByDefault") or {}
                if get(default, "sseAlgorithm") in ("aws:kms", "aws:kms:dsse") and get(default, "kmsMasterKeyId"):
                    encrypted |= _bucket_targets(r, by_name)
    for b in buckets:
        if b.urn not in blocked:
            yield f"Bucket {b.name} does not block public access.", b.urn
        if b.urn not in encrypted:
            yield f"Bucket {b.name} has no default KMS encryption.", b.urn
