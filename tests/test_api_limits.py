"""Every name, description, tag and label of every resource of every example plan, against the
limits the cloud APIs document for that resource type and property.

A plan registers under mocks whatever strings it is given; the API refuses them at `pulumi up`
(an apostrophe in a security group rule's description, a 33-character target group name). The
table below says, per resource type token and input property, which documented limit applies,
with the document it comes from. A resource type that is not in the table, or a name-like
property the table does not cover, fails `test_the_table_covers_every_named_property`: a new
resource cannot bring this class of defect back unnoticed.

Properties a resource leaves out that Pulumi auto-names (`auto=True`) are checked on the name
Pulumi would make: the logical name, '-' and 7 random characters (hex here).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from awslink_fixture import TGW
from awslink_fixture import link_plan as aws_link_plan
from awslink_fixture import record_link as record_aws_link

from conftest import EXAMPLE_STACKS, plan_of_file
from gcplink_fixture import link_plan, record_link
from onprem_fixture import onprem_plan, record_plan

Check = Callable[[Any], Iterator[str]]
AUTO_SUFFIX = "-0a1b2c3"  # what Pulumi's auto-naming appends: '-' and 7 random characters


# -- checks ----------------------------------------------------------------------------------


def text(lo: int, hi: int, allowed: str | None = None, hint: str = "", forbid_prefix: tuple[str, ...] = ()) -> Check:
    """A string of lo..hi characters, every one matching the character class `allowed`."""
    bad_char = re.compile(f"[^{allowed}]") if allowed else None

    def check(value: Any) -> Iterator[str]:
        if not isinstance(value, str):
            yield f"is not a string ({value!r})"
            return
        if not lo <= len(value) <= hi:
            yield f"has {len(value)} characters, allowed {lo}..{hi}: {value!r}"
        if bad_char and (m := bad_char.search(value)):
            yield f"has {m.group()!r}, outside {hint or allowed}: {value!r}"
        for prefix in forbid_prefix:
            if value.lower().startswith(prefix):
                yield f"starts with the reserved {prefix!r}: {value!r}"

    return check


def regex(pattern: str, hint: str, hi: int) -> Check:
    compiled = re.compile(pattern)

    def check(value: Any) -> Iterator[str]:
        if not isinstance(value, str) or not compiled.fullmatch(value) or len(value) > hi:
            yield f"is not {hint} (at most {hi} characters): {value!r}"

    return check


def both(*checks: Check) -> Check:
    def check(value: Any) -> Iterator[str]:
        for c in checks:
            yield from c(value)

    return check


def mapping(key: Check, value: Check) -> Check:
    """Tags and labels: a map whose keys and values each have their own limit."""

    def check(tags: Any) -> Iterator[str]:
        if not isinstance(tags, dict):
            yield f"is not a map ({tags!r})"
            return
        for k, v in tags.items():
            yield from (f"key {p}" for p in key(k))
            yield from (f"value of {k!r} {p}" for p in value(v))

    return check


def each(check: Check, *, key: str | None = None) -> Check:
    """Every item of a list (or every item's `key`)."""

    def run(items: Any) -> Iterator[str]:
        for i, item in enumerate(items or []):
            value = item.get(key) if key else item
            yield from (f"[{i}] {p}" for p in check(value))

    return run


def dns_name(hi: int = 253) -> Check:
    """A DNS name: labels of 1..63 letters, digits and hyphens, not starting or ending with one."""
    label = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
    return regex(rf"{label}(\.{label})*\.?", "a DNS name", hi)


# AWS tags ("Tagging best practices: tag naming limits and requirements"; EC2 API Reference, Tag:
# keys at most 127 characters on EC2, 128 elsewhere; the stricter applies). Letters, digits,
# spaces and _ . : / = + - @; no aws: prefix.
AWS_TAG_CHARS = r"\w .:/=+\-@"
AWS_TAGS = mapping(
    text(1, 127, AWS_TAG_CHARS, "letters, digits, spaces and _ . : / = + - @", ("aws:",)),
    text(0, 256, AWS_TAG_CHARS, "letters, digits, spaces and _ . : / = + - @", ("aws:",)),
)


def ASG_TAGS(tags: Any) -> Iterator[str]:
    """Auto Scaling group tags are a list of {key, value, propagateAtLaunch} (Auto Scaling API
    Reference, Tag: key 1-128, value 0-256): the same limits as a map."""
    yield from AWS_TAGS({t["key"]: t["value"] for t in tags or []})


# EC2 security group and rule descriptions (EC2 API Reference, CreateSecurityGroup
# GroupDescription, IpRange/UserIdGroupPair/PrefixListId Description): up to 255 characters,
# a-z, A-Z, 0-9, spaces and ._-:/()#,@[]+=&;{}!$*
EC2_SG_TEXT = text(0, 255, r"a-zA-Z0-9 ._\-:/()#,@\[\]+=&;{}!$*", "EC2's security group character set")
# Security group names: the same set, at most 255, not starting with sg- (CreateSecurityGroup GroupName).
EC2_SG_NAME = text(1, 255, r"a-zA-Z0-9 ._\-:/()#,@\[\]+=&;{}!$*", "EC2's security group character set", ("sg-",))
# ELB load balancer and target group names (ELBv2 API Reference, CreateLoadBalancer Name,
# CreateTargetGroup Name): at most 32 alphanumerics and hyphens, not beginning or ending with a
# hyphen; a load balancer's name must not begin with "internal-".
ELB_NAME = regex(r"(?!internal-)[A-Za-z0-9](?:[A-Za-z0-9-]{0,30}[A-Za-z0-9])?", "an ELB name", 32)
# IAM (IAM API Reference, CreateRole RoleName 1-64, CreateInstanceProfile and PutRolePolicy
# names 1-128: [\w+=,.@-]+; Description up to 1000 characters of tab, newline and printable
# Latin-1).
IAM_CHARS = r"\w+=,.@\-"
IAM_ROLE_NAME = text(1, 64, IAM_CHARS, "[\\w+=,.@-]")
IAM_NAME_128 = text(1, 128, IAM_CHARS, "[\\w+=,.@-]")
IAM_DESCRIPTION = text(0, 1000, r"\t\n\r\x20-\x7e\xa1-\xff", "tab, newline and printable Latin-1")
# KMS aliases ("Create aliases", KMS Developer Guide): 1-256 characters, alphanumerics, / _ -,
# starting alias/, never alias/aws/ (reserved for AWS managed keys).
KMS_ALIAS = both(
    regex(r"alias/[A-Za-z0-9/_\-]+", "alias/ and alphanumerics, / _ -", 256),
    text(1, 256, forbid_prefix=("alias/aws/",)),
)
KMS_DESCRIPTION = text(0, 8192)  # KMS API Reference, CreateKey Description
# CloudWatch Logs (CreateLogGroup logGroupName): 1-512 of [.\-_/#A-Za-z0-9].
LOG_GROUP_NAME = text(1, 512, r".\-_/#A-Za-z0-9", "[.-_/#A-Za-z0-9]")
# CloudWatch alarms (PutMetricAlarm): AlarmName 1-255, AlarmDescription 0-1024, MetricName and
# Namespace 1-255 (a namespace may not start with "AWS/" for custom metrics: PutMetricData).
ALARM_NAME = text(1, 255, r"\x20-\x7e", "printable ASCII")
ALARM_DESCRIPTION = text(0, 1024)
METRIC_NAME = text(1, 255)
# Auto Scaling (CreateAutoScalingGroup AutoScalingGroupName, PutScalingPolicy PolicyName): 1-255
# characters without control characters other than tab and newlines.
ASG_NAME = text(1, 255, r"\t\n\r\x20-\ud7ff\ue000-\ufffd", "no control characters")
# Lifecycle hooks (Amazon EC2 Auto Scaling API Reference, PutLifecycleHook): LifecycleHookName
# 1-255 of [A-Za-z0-9\-_\/]; NotificationMetadata at most 1023.
LIFECYCLE_HOOK_NAME = text(1, 255, r"A-Za-z0-9\-_/", "[A-Za-z0-9-_/]")
LIFECYCLE_HOOK_METADATA = text(0, 1023)
# Launch templates (EC2 API Reference, CreateLaunchTemplate): LaunchTemplateName 3-128 of
# [a-zA-Z0-9().\-/_]; VersionDescription at most 255.
LAUNCH_TEMPLATE_NAME = text(3, 128, r"a-zA-Z0-9().\-/_", "[a-zA-Z0-9().-/_]")
LAUNCH_TEMPLATE_DESCRIPTION = text(0, 255)
# S3 general purpose bucket naming rules: 3-63 lower-case letters, digits, dots and hyphens,
# beginning and ending with a letter or digit, no "xn--" prefix, no "-s3alias" suffix.
S3_BUCKET = both(
    regex(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]", "an S3 bucket name", 63),
    text(3, 63, forbid_prefix=("xn--", "sthree-")),
)
# Route 53 (CreateHostedZone Name: a domain name up to 255 characters, labels of 63; HostedZoneConfig
# Comment at most 256).
ROUTE53_NAME = dns_name(255)
ROUTE53_COMMENT = text(0, 256)
# IAM Roles Anywhere (CreateTrustAnchor, CreateProfile: name 1-255 of ^[ a-zA-Z0-9-_]*$;
# SourceData x509CertificateData 1-8000).
ROLES_ANYWHERE_NAME = text(1, 255, r" a-zA-Z0-9\-_", "[ a-zA-Z0-9-_]")
# Workload Identity Federation (IAM REST workloadIdentityPools.create / providers.create:
# workloadIdentityPoolId and workloadIdentityPoolProviderId 4-32 of [a-z0-9-], "gcp-" reserved;
# displayName at most 32 characters, description at most 256).
WIF_ID = both(regex(r"[a-z0-9-]{4,32}", "a pool or provider ID", 32), text(4, 32, forbid_prefix=("gcp-",)))
WIF_DISPLAY = text(0, 32)
WIF_DESCRIPTION = text(0, 256)
# Route 53 Resolver (CreateResolverEndpoint Name; the Resolver API's names, as ResolverRuleConfig
# states them): at most 64 letters, digits, hyphens, underscores and spaces, not only digits.
RESOLVER_NAME = both(
    regex(r"(?!^[0-9]+$)[a-zA-Z0-9\-_ ]+", "a Resolver name", 64),
    text(0, 64),
)
# ACM (RequestCertificate DomainName): 1-253 characters, a DNS name.
ACM_DOMAIN = dns_name(253)

# GCP resource names ("Naming resources", Compute Engine documentation; RFC 1035): 1-63
# characters, a lower-case letter first, then lower-case letters, digits and hyphens, not
# ending with a hyphen.
GCP_NAME = regex(r"[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?", "an RFC 1035 name", 63)
# Instance template name_prefix (pulumi-gcp compute.InstanceTemplate): at most 37 characters
# keep the full random suffix (longer ones get a shortened, collision-prone UUID; 54 is the cap).
GCP_TEMPLATE_PREFIX = regex(r"[a-z][-a-z0-9]*", "an RFC 1035 name prefix", 37)
# Managed instance group base instance name (Compute API, InstanceGroupManager
# baseInstanceName): 1-58 characters, RFC 1035 (the group appends '-' and four characters).
GCP_BASE_INSTANCE_NAME = regex(r"[a-z](?:[-a-z0-9]{0,56}[a-z0-9])?", "an RFC 1035 name of at most 58", 58)
# Labels ("Labels overview: requirements for labels"): keys 1-63, starting with a lower-case
# letter, of lower-case letters, digits, _ and -; values 0-63 of the same set.
GCP_LABELS = mapping(
    regex(r"[a-z][a-z0-9_\-]{0,62}", "a label key", 63),
    regex(r"[a-z0-9_\-]{0,63}", "a label value", 63),
)
# Cloud KMS key rings and keys (Cloud KMS API, KeyRing and CryptoKey ids): [a-zA-Z0-9_-]{1,63}.
GCP_KMS_ID = regex(r"[A-Za-z0-9_\-]{1,63}", "a Cloud KMS id", 63)
# Service accounts (IAM API, projects.serviceAccounts.create accountId): 6-30 characters,
# [a-z]([-a-z0-9]*[a-z0-9]); displayName at most 100.
GCP_SA_ID = both(regex(r"[a-z](?:[-a-z0-9]*[a-z0-9])", "a service account id", 30), text(6, 30))
GCP_SA_DISPLAY = text(0, 100)
# TPU nodes (TPU API v2, Node): description at most 512 characters; node and queued-resource ids
# are resource names in the RFC 1035 form the Compute names use.
TPU_DESCRIPTION = text(0, 512)
# Compute Engine resource descriptions ("An optional description of this resource"): the
# Compute API reference states no limit. 2048 is inferstack's own bound (descriptions are one
# line of prose), not the API's: a description past it is a bug here, not a refusal there.
GCP_DESCRIPTION = text(0, 2048)

# Kubernetes ("Object Names and IDs", kubernetes.io/docs/concepts/overview/working-with-objects/names/;
# "Labels and Selectors": syntax and character set; "Annotations": syntax and character set).
# Most objects are named by a DNS subdomain (RFC 1123: at most 253 lower-case alphanumerics, '-'
# and '.', alphanumeric at both ends); namespaces by an RFC 1123 label (63, no '.'); Services by an
# RFC 1035 label (63, a letter first). Label and annotation keys are an optional DNS-subdomain
# prefix and '/', then a name of at most 63 alphanumerics, '-', '_' and '.' (alphanumeric at both
# ends); label values are at most 63 of the same, or empty. Taint keys and values follow the label
# rules (kubectl taint; API validation of Taint).
K8S_SUBDOMAIN = regex(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*", "a DNS subdomain", 253)
K8S_LABEL_NAME = regex(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", "an RFC 1123 label", 63)
K8S_SERVICE_NAME = regex(r"[a-z]([-a-z0-9]*[a-z0-9])?", "an RFC 1035 label", 63)
_K8S_NAME_PART = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
K8S_QUALIFIED_NAME = regex(
    rf"([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?{_K8S_NAME_PART}",
    "a qualified name (prefix/ and a name of at most 63)",
    253 + 1 + 63,
)
K8S_LABEL_VALUE = regex(rf"({_K8S_NAME_PART})?", "a label value (at most 63)", 63)
K8S_LABELS = mapping(K8S_QUALIFIED_NAME, K8S_LABEL_VALUE)
K8S_ANNOTATIONS = mapping(K8S_QUALIFIED_NAME, text(0, 256 * 1024))
# Helm release names: at most 53 characters (Helm, pkg/action: releaseNameMaxLen = 53, the room
# charts leave for suffixes on the objects named after the release), a DNS subdomain.
HELM_RELEASE_NAME = both(K8S_SUBDOMAIN, text(1, 53))


def _k8s(name: Check = K8S_SUBDOMAIN, *extra: Rule) -> tuple[Rule, ...]:
    """An object's metadata: its name, namespace, labels and annotations, and the pod template's."""
    return (
        Rule("metadata.name", name),
        Rule("metadata.namespace", K8S_LABEL_NAME),
        Rule("metadata.labels", K8S_LABELS),
        Rule("metadata.annotations", K8S_ANNOTATIONS),
        *extra,
    )


# -- the table ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    path: str  # an input property: dotted, [] for every item of a list
    check: Check
    auto: bool = False  # absent: Pulumi auto-names it from the logical name


def _rules(*rules: Rule) -> tuple[Rule, ...]:
    return rules


TAGS = Rule("tags", AWS_TAGS)
LABELS = Rule("labels", GCP_LABELS)
AUTO_GCP_NAME = Rule("name", GCP_NAME, auto=True)

LIMITS: dict[str, tuple[Rule, ...]] = {
    # AWS
    "aws:acm/certificate:Certificate": _rules(Rule("domainName", ACM_DOMAIN), TAGS),
    "aws:autoscaling/group:Group": _rules(Rule("name", ASG_NAME, auto=True), Rule("tags", ASG_TAGS)),
    "aws:autoscaling/policy:Policy": _rules(Rule("name", ASG_NAME, auto=True)),
    "aws:autoscaling/lifecycleHook:LifecycleHook": _rules(
        Rule("name", LIFECYCLE_HOOK_NAME),
        Rule("notificationMetadata", LIFECYCLE_HOOK_METADATA),
    ),
    "aws:cloudwatch/logGroup:LogGroup": _rules(Rule("name", LOG_GROUP_NAME, auto=True), TAGS),
    # PutCompositeAlarm: AlarmName 1-255 printable ASCII, AlarmDescription up to 1024, AlarmRule up
    # to 10240 characters.
    "aws:cloudwatch/compositeAlarm:CompositeAlarm": _rules(
        Rule("alarmName", ALARM_NAME),
        Rule("alarmDescription", ALARM_DESCRIPTION),
        Rule("alarmRule", text(1, 10240)),
        TAGS,
    ),
    # PutDashboard: DashboardName up to 255 of A-Z, a-z, 0-9, '-' and '_'.
    "aws:cloudwatch/dashboard:Dashboard": _rules(
        Rule("dashboardName", text(1, 255, r"A-Za-z0-9_-", "letters, digits, '-' and '_'")),
    ),
    # CreateTopic: Name 1-256 of A-Z, a-z, 0-9, '-' and '_'.
    "aws:sns/topic:Topic": _rules(
        Rule("name", text(1, 256, r"A-Za-z0-9_-", "letters, digits, '-' and '_'"), auto=True),
        TAGS,
    ),
    "aws:cloudwatch/metricAlarm:MetricAlarm": _rules(
        Rule("name", ALARM_NAME, auto=True),
        Rule("alarmDescription", ALARM_DESCRIPTION),
        Rule("metricName", METRIC_NAME),
        Rule("namespace", METRIC_NAME),
        Rule("metricQueries[].metric.metricName", METRIC_NAME),
        Rule("metricQueries[].metric.namespace", METRIC_NAME),
        TAGS,
    ),
    # Site-to-Site VPN: a customer gateway's DeviceName (up to 255 characters) and tags; virtual
    # private gateways and VPN connections carry only tags; propagation and routes name nothing.
    "aws:ec2/customerGateway:CustomerGateway": _rules(TAGS, Rule("deviceName", text(0, 255))),
    "aws:ec2/vpnGateway:VpnGateway": _rules(TAGS),
    "aws:ec2/vpnConnection:VpnConnection": _rules(TAGS),
    "aws:ec2/vpnGatewayRoutePropagation:VpnGatewayRoutePropagation": (),
    "aws:ec2/route:Route": (),
    "aws:ec2transitgateway/vpcAttachment:VpcAttachment": _rules(TAGS),
    "aws:route53/resolverEndpoint:ResolverEndpoint": _rules(Rule("name", RESOLVER_NAME), TAGS),
    "aws:rolesanywhere/trustAnchor:TrustAnchor": _rules(
        Rule("name", ROLES_ANYWHERE_NAME), Rule("source.sourceData.x509CertificateData", text(1, 8000)), TAGS
    ),
    "aws:rolesanywhere/profile:Profile": _rules(Rule("name", ROLES_ANYWHERE_NAME), TAGS),
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup": _rules(TAGS),
    "aws:ec2/flowLog:FlowLog": _rules(TAGS),
    "aws:ec2/launchTemplate:LaunchTemplate": _rules(
        Rule("name", LAUNCH_TEMPLATE_NAME, auto=True),
        Rule("description", LAUNCH_TEMPLATE_DESCRIPTION),
        TAGS,
        Rule("tagSpecifications[].tags", AWS_TAGS),
    ),
    "aws:ec2/routeTable:RouteTable": _rules(TAGS),
    "aws:ec2/routeTableAssociation:RouteTableAssociation": (),
    "aws:ec2/securityGroup:SecurityGroup": _rules(
        Rule("name", EC2_SG_NAME, auto=True), Rule("description", EC2_SG_TEXT), TAGS
    ),
    "aws:ec2/subnet:Subnet": _rules(TAGS),
    "aws:ec2/vpc:Vpc": _rules(TAGS),
    "aws:ec2/vpcEndpoint:VpcEndpoint": _rules(TAGS),
    "aws:ec2/vpcEndpointConnectionAccepter:VpcEndpointConnectionAccepter": (),
    "aws:ec2/vpcEndpointService:VpcEndpointService": _rules(Rule("privateDnsName", dns_name()), TAGS),
    "aws:iam/instanceProfile:InstanceProfile": _rules(Rule("name", IAM_NAME_128, auto=True), TAGS),
    "aws:iam/role:Role": _rules(
        # name_prefix: 64 less the 26-character unique suffix terraform-provider-aws appends.
        Rule("name", IAM_ROLE_NAME, auto=True),
        Rule("namePrefix", text(1, 38, IAM_CHARS)),
        Rule("description", IAM_DESCRIPTION),
        TAGS,
    ),
    "aws:iam/rolePolicy:RolePolicy": _rules(Rule("name", IAM_NAME_128, auto=True)),
    "aws:iam/serviceLinkedRole:ServiceLinkedRole": _rules(Rule("description", IAM_DESCRIPTION), TAGS),
    "aws:kms/alias:Alias": _rules(Rule("name", KMS_ALIAS)),
    "aws:kms/key:Key": _rules(Rule("description", KMS_DESCRIPTION), TAGS),
    "aws:lb/listener:Listener": _rules(TAGS),
    "aws:lb/loadBalancer:LoadBalancer": _rules(Rule("name", ELB_NAME, auto=True), TAGS),
    "aws:lb/targetGroup:TargetGroup": _rules(Rule("name", ELB_NAME, auto=True), TAGS),
    "aws:route53/record:Record": _rules(Rule("name", ROUTE53_NAME)),
    "aws:route53/zone:Zone": _rules(Rule("name", ROUTE53_NAME), Rule("comment", ROUTE53_COMMENT), TAGS),
    "aws:s3/bucket:Bucket": _rules(Rule("bucket", S3_BUCKET, auto=True), TAGS),
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": (),
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": (),
    "aws:s3/bucketPolicy:BucketPolicy": (),
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": (),
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": (),
    "aws:s3/bucketVersioning:BucketVersioning": (),
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": _rules(Rule("description", EC2_SG_TEXT), TAGS),
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": _rules(Rule("description", EC2_SG_TEXT), TAGS),
    # GCP
    "gcp:artifactregistry/repositoryIamMember:RepositoryIamMember": (),
    "gcp:compute/address:Address": _rules(AUTO_GCP_NAME, Rule("description", GCP_DESCRIPTION), LABELS),
    "gcp:compute/disk:Disk": _rules(Rule("name", GCP_NAME), Rule("description", GCP_DESCRIPTION), LABELS),
    "gcp:compute/firewall:Firewall": _rules(AUTO_GCP_NAME, Rule("description", GCP_DESCRIPTION)),
    "gcp:compute/externalVpnGateway:ExternalVpnGateway": _rules(
        AUTO_GCP_NAME, Rule("description", GCP_DESCRIPTION), LABELS
    ),
    "gcp:compute/forwardingRule:ForwardingRule": _rules(AUTO_GCP_NAME, Rule("description", GCP_DESCRIPTION), LABELS),
    "gcp:compute/haVpnGateway:HaVpnGateway": _rules(AUTO_GCP_NAME, Rule("description", GCP_DESCRIPTION), LABELS),
    "gcp:compute/healthCheck:HealthCheck": _rules(AUTO_GCP_NAME, Rule("description", GCP_DESCRIPTION)),
    "gcp:compute/instanceTemplate:InstanceTemplate": _rules(
        Rule("name", GCP_NAME),
        Rule("namePrefix", GCP_TEMPLATE_PREFIX),
        Rule("description", GCP_DESCRIPTION),
        LABELS,
    ),
    "gcp:compute/network:Network": _rules(AUTO_GCP_NAME, Rule("description", GCP_DESCRIPTION)),
    "gcp:compute/networkEndpoint:NetworkEndpoint": (),
    "gcp:compute/networkEndpointGroup:NetworkEndpointGroup": _rules(AUTO_GCP_NAME),
    "gcp:compute/regionAutoscaler:RegionAutoscaler": _rules(AUTO_GCP_NAME),
    "gcp:compute/regionBackendService:RegionBackendService": _rules(
        AUTO_GCP_NAME, Rule("portName", GCP_NAME), Rule("description", GCP_DESCRIPTION)
    ),
    "gcp:compute/regionHealthCheck:RegionHealthCheck": _rules(AUTO_GCP_NAME),
    # Network firewall policies (Compute API, regionNetworkFirewallPolicies): the policy's name is
    # RFC 1035, 1-63; an association's name and a rule's ruleName and description state no limit,
    # so the names get the RFC 1035 rule the other Compute names do and descriptions inferstack's bound.
    "gcp:compute/regionNetworkFirewallPolicy:RegionNetworkFirewallPolicy": _rules(
        AUTO_GCP_NAME, Rule("description", GCP_DESCRIPTION)
    ),
    "gcp:compute/regionNetworkFirewallPolicyAssociation:RegionNetworkFirewallPolicyAssociation": _rules(AUTO_GCP_NAME),
    "gcp:compute/regionNetworkFirewallPolicyRule:RegionNetworkFirewallPolicyRule": _rules(
        Rule("ruleName", GCP_NAME), Rule("description", GCP_DESCRIPTION)
    ),
    "gcp:compute/regionInstanceGroupManager:RegionInstanceGroupManager": _rules(
        AUTO_GCP_NAME,
        Rule("baseInstanceName", GCP_BASE_INSTANCE_NAME),
        Rule("namedPorts[].name", GCP_NAME),
    ),
    "gcp:compute/regionSslPolicy:RegionSslPolicy": _rules(AUTO_GCP_NAME),
    "gcp:compute/regionTargetHttpsProxy:RegionTargetHttpsProxy": _rules(AUTO_GCP_NAME),
    "gcp:compute/regionUrlMap:RegionUrlMap": _rules(AUTO_GCP_NAME),
    # Cloud Router (Compute API, routers): the router's name, and each interface's and BGP peer's
    # name, are RFC 1035, 1-63.
    "gcp:compute/router:Router": _rules(AUTO_GCP_NAME, Rule("description", GCP_DESCRIPTION)),
    "gcp:compute/routerInterface:RouterInterface": _rules(AUTO_GCP_NAME),
    "gcp:compute/routerPeer:RouterPeer": _rules(AUTO_GCP_NAME),
    "gcp:compute/serviceAttachment:ServiceAttachment": _rules(AUTO_GCP_NAME, Rule("description", GCP_DESCRIPTION)),
    "gcp:compute/subnetwork:Subnetwork": _rules(AUTO_GCP_NAME, Rule("description", GCP_DESCRIPTION)),
    # VPN tunnels (Compute API, vpnTunnels): name RFC 1035, 1-63; labels as everywhere.
    "gcp:compute/vPNTunnel:VPNTunnel": _rules(AUTO_GCP_NAME, Rule("description", GCP_DESCRIPTION), LABELS),
    "gcp:kms/cryptoKey:CryptoKey": _rules(Rule("name", GCP_KMS_ID, auto=True), LABELS),
    "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember": (),
    "gcp:kms/keyRing:KeyRing": _rules(Rule("name", GCP_KMS_ID, auto=True)),
    "gcp:projects/iAMMember:IAMMember": (),
    # serviceAccounts.create: description at most 256 characters.
    "gcp:serviceaccount/account:Account": _rules(
        Rule("accountId", GCP_SA_ID), Rule("displayName", GCP_SA_DISPLAY), Rule("description", WIF_DESCRIPTION)
    ),
    "gcp:serviceaccount/iAMMember:IAMMember": (),
    "gcp:iam/workloadIdentityPool:WorkloadIdentityPool": _rules(
        Rule("workloadIdentityPoolId", WIF_ID), Rule("displayName", WIF_DISPLAY), Rule("description", WIF_DESCRIPTION)
    ),
    "gcp:iam/workloadIdentityPoolProvider:WorkloadIdentityPoolProvider": _rules(
        Rule("workloadIdentityPoolId", WIF_ID),
        Rule("workloadIdentityPoolProviderId", WIF_ID),
        Rule("displayName", WIF_DISPLAY),
        Rule("description", WIF_DESCRIPTION),
    ),
    "gcp:storage/bucketIAMMember:BucketIAMMember": (),
    "gcp:tpu/v2Vm:V2Vm": _rules(AUTO_GCP_NAME, Rule("description", TPU_DESCRIPTION), LABELS),
    # Cloud Monitoring v3 AlertPolicy: displayName at most 512 characters (condition displayName
    # too); Documentation.subject at most 255, content at most 8,192 characters (and 10,240
    # bytes); userLabels like resource labels; a PromQL condition's labels are Prometheus label
    # names (the condition carries a Prometheus alerting rule), its alertRule a Prometheus metric
    # name ("must be a valid UTF-8 string, a Prometheus metric name").
    "gcp:monitoring/alertPolicy:AlertPolicy": _rules(
        Rule("displayName", text(1, 512)),
        Rule("conditions[].displayName", text(1, 512)),
        Rule("documentation.subject", text(0, 255)),
        Rule("documentation.content", text(0, 8192)),
        Rule("userLabels", GCP_LABELS),
        Rule(
            "conditions[].conditionPrometheusQueryLanguage.labels",
            mapping(regex(r"[a-zA-Z_][a-zA-Z0-9_]*", "a Prometheus label name", 1024), text(0, 1024)),
        ),
        Rule(
            "conditions[].conditionPrometheusQueryLanguage.alertRule",
            regex(r"[a-zA-Z_:][a-zA-Z0-9_:]*", "a Prometheus metric name", 1024),
        ),
        Rule("conditions[].conditionPrometheusQueryLanguage.ruleGroup", text(1, 1024)),
    ),
    # Dashboard names are the server's; displayName lives in the JSON (checked in test_gcp_observability).
    "gcp:monitoring/dashboard:Dashboard": (),
    # The queued TPU slice (a dynamic resource): the request body the TPU API receives.
    "pulumi-python:dynamic:Resource": _rules(
        Rule("queuedResourceId", GCP_NAME),
        Rule("body.tpu.nodeSpec[].nodeId", GCP_NAME),
        Rule("body.tpu.nodeSpec[].multiNodeParams.nodeIdPrefix", GCP_NAME),
        Rule("body.tpu.nodeSpec[].node.description", TPU_DESCRIPTION),
        Rule("body.tpu.nodeSpec[].node.labels", GCP_LABELS),
    ),
    # pulumi-random's RandomPassword names nothing in any cloud (its result is a secret).
    "random:index/randomPassword:RandomPassword": (),
    "random:index/randomId:RandomId": (),
    "pulumi:providers:aws": (),
    "pulumi:providers:gcp": (),
    # Kubernetes (on-prem targets)
    "kubernetes:core/v1:Namespace": _k8s(K8S_LABEL_NAME),
    "kubernetes:core/v1:ConfigMap": _k8s(),
    "kubernetes:core/v1:ServiceAccount": _k8s(K8S_SUBDOMAIN),
    "kubernetes:core/v1:Service": _k8s(K8S_SERVICE_NAME),
    "kubernetes:core/v1:ResourceQuota": _k8s(),
    "kubernetes:core/v1:LimitRange": _k8s(),
    "kubernetes:core/v1:NodePatch": _k8s(
        K8S_SUBDOMAIN, Rule("spec.taints[].key", K8S_QUALIFIED_NAME), Rule("spec.taints[].value", K8S_LABEL_VALUE)
    ),
    "kubernetes:apps/v1:Deployment": _k8s(K8S_SUBDOMAIN, Rule("spec.template.metadata.labels", K8S_LABELS)),
    "kubernetes:policy/v1:PodDisruptionBudget": _k8s(),
    "kubernetes:networking.k8s.io/v1:NetworkPolicy": _k8s(),
    "kubernetes:networking.k8s.io/v1:Ingress": _k8s(),
    # PriorityClass.description is free text (no limit in the API).
    "kubernetes:scheduling.k8s.io/v1:PriorityClass": _k8s(K8S_SUBDOMAIN, Rule("description", text(0, 2048))),
    "kubernetes:node.k8s.io/v1:RuntimeClass": _k8s(K8S_SUBDOMAIN, Rule("handler", K8S_LABEL_NAME)),
    "kubernetes:autoscaling/v2:HorizontalPodAutoscaler": _k8s(),
    "kubernetes:keda.sh/v1alpha1:ScaledObject": _k8s(),
    "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute": _k8s(),
    "kubernetes:gateway.networking.k8s.io/v1beta1:ReferenceGrant": _k8s(),
    "kubernetes:source.toolkit.fluxcd.io/v1:HelmRepository": _k8s(),
    "kubernetes:helm.toolkit.fluxcd.io/v2:HelmRelease": _k8s(),
    "kubernetes:argoproj.io/v1alpha1:Application": _k8s(),
    "kubernetes:monitoring.coreos.com/v1:ServiceMonitor": _k8s(),
    "kubernetes:monitoring.coreos.com/v1:PrometheusRule": _k8s(),
    "kubernetes:helm.sh/v3:Release": _rules(Rule("name", HELM_RELEASE_NAME), Rule("namespace", K8S_LABEL_NAME)),
    "pulumi:providers:kubernetes": (),
}

# Name-like inputs that name ANOTHER resource (checked where that resource is registered) or a
# service, per type. Anything name-like that is neither a rule nor listed here fails the
# coverage test.
REFERENCES: dict[str, frozenset[str]] = {
    "aws:autoscaling/policy:Policy": frozenset({"autoscalingGroupName"}),
    "aws:autoscaling/lifecycleHook:LifecycleHook": frozenset({"autoscalingGroupName"}),
    "aws:ec2/vpcEndpoint:VpcEndpoint": frozenset({"serviceName"}),
    "aws:iam/serviceLinkedRole:ServiceLinkedRole": frozenset({"awsServiceName"}),
    **{
        f"aws:s3/{kind[0].lower() + kind[1:]}:{kind}": frozenset({"bucket"})
        for kind in (
            "BucketLifecycleConfiguration",
            "BucketOwnershipControls",
            "BucketPolicy",
            "BucketPublicAccessBlock",
            "BucketServerSideEncryptionConfiguration",
            "BucketVersioning",
        )
    },
    "gcp:storage/bucketIAMMember:BucketIAMMember": frozenset({"bucket"}),
}

NAME_LIKE = re.compile(
    r"(name|Name|namePrefix|description|Description|comment|tags|labels|tagSpecifications|accountId|"
    r"displayName|queuedResourceId|bucket)$"
)


# -- walking the plans ------------------------------------------------------------------------------


def values_at(inputs: dict[str, Any], path: str) -> Iterator[Any]:
    """The values at a dotted path, every item of a list where the path says []."""
    items: list[Any] = [inputs]
    for part in path.split("."):
        many = part.endswith("[]")
        key = part.removesuffix("[]")
        nxt: list[Any] = []
        for item in items:
            if not isinstance(item, dict) or item.get(key) is None:
                continue
            value = item[key]
            nxt.extend(value if many else [value])
        items = nxt
    return iter(items)


def problems(resource: dict[str, Any]) -> Iterator[str]:
    """Every limit a registered resource breaks, as 'type name path: problem'."""
    rules = LIMITS.get(resource["type"], ())
    inputs = resource["inputs"]
    for rule in rules:
        found = list(values_at(inputs, rule.path))
        if not found and rule.auto and "." not in rule.path and f"{rule.path}Prefix" not in inputs:
            found = [resource["name"] + AUTO_SUFFIX]  # what Pulumi would name it
        for value in found:
            if isinstance(value, str) and value.startswith("[unknown"):
                continue
            for problem in rule.check(value):
                yield f"{resource['type']} {resource['name']} {rule.path} {problem}"


def uncovered(resource: dict[str, Any]) -> list[str]:
    """Name-like inputs of a resource that no rule of the table checks."""
    token = resource["type"]
    if token not in LIMITS:
        return [f"{token}: not in the table (add its limits, or () if it names nothing)"]
    covered = {rule.path.split(".")[0].removesuffix("[]") for rule in LIMITS[token]} | REFERENCES.get(
        token, frozenset()
    )
    return [f"{token}.{key}" for key in resource["inputs"] if NAME_LIKE.search(key) and key not in covered]


def onprem_resources() -> list[dict[str, Any]]:
    """The on-prem component's resources over the hand-built plan with every kind, in both modes
    (until an example stack has an on-prem target, this is where the Kubernetes rules run)."""
    return [r for mode in ("apply", "render") for r in record_plan(onprem_plan(mode)).resources if r["custom"]]


def gcp_link_resources() -> list[dict[str, Any]]:
    """The GCP overflow link over the hand-built plan with four tunnels (until an example stack
    has an overflow section, this is where its resources' limits run)."""
    return [r for r in record_link(link_plan(devices=2, tunnels=4)).resources if r["custom"]]


def aws_link_resources() -> list[dict[str, Any]]:
    """The AWS overflow link over the hand-built plan, with a virtual private gateway and with a
    transit gateway (hybrid.yaml has the first only)."""
    plans = (aws_link_plan(), aws_link_plan(transit_gateway_id=TGW, amazon_side_asn=None))
    return [r for p in plans for r in record_aws_link(p).resources if r["custom"]]


def all_resources() -> list[dict[str, Any]]:
    """Every cloud resource (components are Pulumi's own and have no API limits)."""
    return (
        [r for path in EXAMPLE_STACKS for r in plan_of_file(str(path)).resources if r["custom"]]
        + onprem_resources()
        + gcp_link_resources()
        + aws_link_resources()
    )


@pytest.mark.parametrize("stack", EXAMPLE_STACKS, ids=lambda p: p.stem)
def test_every_name_description_tag_and_label_is_within_its_documented_limit(stack):
    found = [p for r in plan_of_file(str(stack)).resources if r["custom"] for p in problems(r)]
    assert found == []


def test_every_kubernetes_name_and_label_of_the_onprem_component_is_within_its_limit():
    assert [p for r in onprem_resources() for p in problems(r)] == []


def test_every_name_description_and_label_of_the_gcp_overflow_link_is_within_its_limit():
    assert [p for r in gcp_link_resources() for p in problems(r)] == []


def test_every_name_description_and_tag_of_the_aws_overflow_link_is_within_its_limit():
    assert [p for r in aws_link_resources() for p in problems(r)] == []


def test_a_resolver_name_of_digits_or_past_64_characters_fails():
    assert list(RESOLVER_NAME("assistant-dev-chat-inbound")) == []
    assert list(RESOLVER_NAME("12345"))
    assert list(RESOLVER_NAME("a" * 65))
    assert list(RESOLVER_NAME("it's"))


def test_the_table_covers_every_named_property():
    missing = sorted({m for r in all_resources() for m in uncovered(r)})
    assert missing == []


# -- the table itself catches what it is for --------------------------------------------------------


def _resource(token: str, logical: str = "x", **inputs: Any) -> dict[str, Any]:
    return {"type": token, "name": logical, "inputs": inputs}


def test_an_unknown_resource_type_with_a_name_fails_until_the_table_covers_it():
    new = _resource("aws:newservice/widget:Widget", name="w", description="a widget")
    assert uncovered(new) == [
        "aws:newservice/widget:Widget: not in the table (add its limits, or () if it names nothing)"
    ]
    # A known type with a name-like input the table does not check fails too.
    assert uncovered(_resource("aws:kms/key:Key", description="k", customerMasterKeySpecName="x")) == [
        "aws:kms/key:Key.customerMasterKeySpecName"
    ]


@pytest.mark.parametrize(
    "resource",
    [
        # the three rule descriptions that had an apostrophe
        _resource(
            "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
            description="Serving port 8000 from the private endpoint's load balancer only",
        ),
        _resource(
            "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
            description="HTTPS to the VPC's interface endpoints (ECR, STS, CloudWatch, SSM)",
        ),
        _resource("aws:ec2/securityGroup:SecurityGroup", description="x" * 256),
        # a fixed 33-character target group name, and one AWS reserves
        _resource("aws:lb/targetGroup:TargetGroup", name="a" * 33),
        _resource("aws:lb/loadBalancer:LoadBalancer", name="internal-x"),
        _resource("aws:lb/loadBalancer:LoadBalancer", name="edge-"),
        # an auto-named load balancer whose logical name leaves no room for the random suffix
        _resource("aws:lb/loadBalancer:LoadBalancer", logical="a" * 25),
        _resource("aws:iam/role:Role", logical="r" * 57),
        _resource("aws:kms/alias:Alias", name="alias/aws/mine"),
        _resource("aws:cloudwatch/logGroup:LogGroup", name="/inferstack/a b"),
        _resource("aws:s3/bucket:Bucket", logical="Access-Logs"),
        _resource("aws:ec2/vpc:Vpc", tags={"aws:owner": "x"}),
        _resource("aws:ec2/vpc:Vpc", tags={"team": "ml's"}),
        _resource("aws:route53/zone:Zone", name="-bad.example"),
        _resource("gcp:compute/network:Network", name="Chat"),
        _resource("gcp:compute/subnetwork:Subnetwork", name="s" * 64),
        _resource("gcp:compute/forwardingRule:ForwardingRule", labels={"Team": "x"}),
        _resource("gcp:serviceaccount/account:Account", accountId="is-a"),
        _resource("gcp:tpu/v2Vm:V2Vm", description="d" * 513),
        _resource("gcp:compute/vPNTunnel:VPNTunnel", logical="t" * 56),  # no room for the auto-name suffix
        _resource("gcp:compute/routerPeer:RouterPeer", name="Peer-0"),
        _resource("kubernetes:core/v1:Service", metadata={"name": "8000-engine", "namespace": "a"}),
        _resource("kubernetes:core/v1:Namespace", metadata={"name": "dev.site"}),
        _resource("kubernetes:core/v1:ConfigMap", metadata={"name": "Config", "namespace": "a"}),
        _resource("kubernetes:apps/v1:Deployment", metadata={"name": "e", "labels": {"model": "m" * 64}}),
        _resource("kubernetes:apps/v1:Deployment", metadata={"name": "e", "labels": {"team": "ml platform"}}),
        _resource(
            "kubernetes:apps/v1:Deployment",
            metadata={"name": "e"},
            spec={"template": {"metadata": {"labels": {"-bad": "x"}}}},
        ),
        _resource(
            "kubernetes:core/v1:NodePatch", metadata={"name": "n"}, spec={"taints": [{"key": "a b", "value": "v"}]}
        ),
        _resource("kubernetes:helm.sh/v3:Release", name="g" * 54, namespace="gpu-operator"),
        _resource(
            "pulumi-python:dynamic:Resource",
            queuedResourceId="q",
            body={"tpu": {"nodeSpec": [{"nodeId": "Node_1", "node": {"description": "ok"}}]}},
        ),
    ],
    ids=lambda r: f"{r['type'].rsplit(':', 1)[1]}",
)
def test_each_kind_of_limit_catches_a_value_the_api_refuses(resource):
    assert list(problems(resource)), resource


def test_values_the_api_accepts_pass():
    ok = [
        _resource(
            "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
            description="Serving port 8000 from the private endpoint load balancer only",
        ),
        _resource("aws:lb/targetGroup:TargetGroup", name="a" * 24),
        _resource("aws:kms/alias:Alias", name="alias/inferstack/assistant-dev-burst"),
        _resource("aws:route53/zone:Zone", name="burst.llm.prod.acme.example", comment="c"),
        _resource("gcp:serviceaccount/account:Account", accountId="is-assistant-dev", displayName="x"),
    ]
    assert [p for r in ok for p in problems(r)] == []
