"""Every rule of the pack with a passing and a violating resource (or stack)."""

from __future__ import annotations

import json

import pytest

from inferstack.policy_pack.inferstack_policies import RULES
from policy_harness import POLICIES, provider, resource, run_resource, run_stack

LT = "aws:ec2/launchTemplate:LaunchTemplate"
EU = {"allowedRegions": ["eu-central-1"]}
TAGS = {"stack": "dev", "environment": "dev", "team": "ml", "model": "m", "data-classification": "internal"}
DIGEST = "sha256:" + "a" * 64

QUEUED_TPU_TYPE = "pulumi-python:dynamic:Resource"
QUEUED = {"resourceType": "tpu.googleapis.com/QueuedResource", "zone": "europe-west4-b"}


def _queued_body(labels=None, external=False) -> dict:
    node = {"networkConfig": {"enableExternalIps": external}, "labels": labels or {}}
    return {"tpu": {"nodeSpec": [{"node": node}]}}


# (policy, type, passing props, violating props, expected words in the violation, config, provider props)
RESOURCE_CASES = [
    (
        "residency-aws-resource-require-allowed-region",
        "aws:ec2/vpc:Vpc",
        {},
        {},
        "outside the allowed regions",
        EU,
        ({"region": "eu-central-1"}, {"region": "us-east-1"}),
    ),
    (
        "residency-aws-resource-require-allowed-region",
        "aws:ec2/vpc:Vpc",
        {"region": "eu-central-1"},
        {"region": "us-west-2"},
        "'us-west-2' is outside",
        EU,
        ({"region": "us-east-1"}, {"region": "eu-central-1"}),
    ),
    (
        "residency-aws-resource-require-allowed-region",
        "pulumi:providers:aws",
        {"region": "eu-central-1"},
        {},
        "cannot be determined",
        EU,
        None,
    ),
    (
        "residency-gcp-resource-require-allowed-location",
        "gcp:kms/keyRing:KeyRing",
        {"location": "europe-west4"},
        {"location": "global"},
        "'global' is outside",
        {"allowedRegions": ["europe-west4"]},
        None,
    ),
    (
        "residency-gcp-resource-require-allowed-location",
        "gcp:tpu/v2Vm:V2Vm",
        {"zone": "europe-west4-a"},
        {"zone": "us-central2-b"},
        "'us-central2-b' is outside",
        {"allowedRegions": ["europe-west4"]},
        None,
    ),
    (
        "residency-gcp-resource-require-allowed-location",
        "gcp:storage/bucket:Bucket",
        {"location": "EUROPE-WEST4"},
        {"location": "EU"},
        "'eu' is outside",
        {"allowedRegions": ["europe-west4"]},
        None,
    ),
    (
        "residency-vpn-peer-require-allowed-ip",
        "aws:ec2/customerGateway:CustomerGateway",
        {"ipAddress": "203.0.113.10"},
        {"ipAddress": "198.51.100.7"},
        "198.51.100.7 is not an allowed peer",
        {"allowedPeerIps": ["203.0.113.10"]},
        None,
    ),
    (
        "residency-vpn-peer-require-allowed-ip",
        "gcp:compute/externalVpnGateway:ExternalVpnGateway",
        {"interfaces": [{"ipAddress": "203.0.113.10"}]},
        {"interfaces": [{"ipAddress": "192.0.2.1"}]},
        "192.0.2.1",
        {"allowedPeerIps": ["203.0.113.10"]},
        None,
    ),
    (
        "residency-storage-replica-require-allowed-region",
        "aws:dynamodb/table:Table",
        {"replicas": [{"regionName": "eu-central-1"}]},
        {"replicas": [{"regionName": "us-east-1"}]},
        "replica in 'us-east-1'",
        EU,
        None,
    ),
    (
        "security-compute-instance-disallow-public-ip",
        LT,
        {"networkInterfaces": [{"associatePublicIpAddress": "false"}]},
        {"networkInterfaces": [{"associatePublicIpAddress": "true"}]},
        "associates a public IP",
        {},
        None,
    ),
    (
        "security-compute-instance-disallow-public-ip",
        "gcp:compute/instanceTemplate:InstanceTemplate",
        {"networkInterfaces": [{"subnetwork": "s"}]},
        {"networkInterfaces": [{"accessConfigs": [{}]}]},
        "external IP",
        {},
        None,
    ),
    (
        "security-compute-instance-disallow-public-ip",
        "gcp:tpu/v2Vm:V2Vm",
        {"networkConfig": {"enableExternalIps": False}},
        {"networkConfig": {"enableExternalIps": True}},
        "external IPs",
        {},
        None,
    ),
    (
        "security-compute-instance-disallow-public-ip",
        "aws:ec2/subnet:Subnet",
        {"mapPublicIpOnLaunch": False},
        {"mapPublicIpOnLaunch": True},
        "maps public IPs",
        {},
        None,
    ),
    (
        "security-aws-ec2-require-imdsv2",
        LT,
        {"metadataOptions": {"httpTokens": "required", "httpPutResponseHopLimit": 1}},
        {"metadataOptions": {"httpTokens": "optional", "httpPutResponseHopLimit": 2}},
        "IMDSv2 is not required",
        {},
        None,
    ),
    (
        "security-aws-ec2-require-imdsv2",
        "aws:ec2/instance:Instance",
        {"metadataOptions": {"httpTokens": "required", "httpPutResponseHopLimit": 1}},
        {},
        "hop limit is None",
        {},
        None,
    ),
    (
        "security-disk-require-cmk-encryption",
        LT,
        {"blockDeviceMappings": [{"deviceName": "/dev/xvda", "ebs": {"encrypted": "true", "kmsKeyId": "arn:k"}}]},
        {"blockDeviceMappings": [{"deviceName": "/dev/xvda", "ebs": {"encrypted": "true"}}]},
        "AWS-managed key",
        {},
        None,
    ),
    (
        "security-disk-require-cmk-encryption",
        "gcp:compute/instanceTemplate:InstanceTemplate",
        {"disks": [{"diskEncryptionKey": {"kmsKeySelfLink": "projects/p/k"}}]},
        {"disks": [{"boot": True}]},
        "Disk 0 is not encrypted",
        {},
        None,
    ),
    (
        "security-kms-key-require-rotation",
        "aws:kms/key:Key",
        {"enableKeyRotation": True},
        {"enableKeyRotation": False},
        "rotation is off",
        {},
        None,
    ),
    (
        "security-kms-key-require-rotation",
        "gcp:kms/cryptoKey:CryptoKey",
        {"rotationPeriod": "7776000s"},
        {"rotationPeriod": "63072000s"},
        "exceeds 365 days",
        {},
        None,
    ),
    (
        "security-network-ingress-disallow-public",
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
        {"cidrIpv4": "10.0.0.0/16"},
        {"cidrIpv4": "0.0.0.0/0"},
        "public range 0.0.0.0/0",
        {},
        None,
    ),
    (
        "security-network-ingress-disallow-public",
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
        {"referencedSecurityGroupId": "sg-1"},
        {"cidrIpv4": "0.0.0.0/1"},
        "public range 0.0.0.0/1",
        {},
        None,
    ),
    (
        "security-network-ingress-disallow-public",
        "gcp:compute/firewall:Firewall",
        {"allows": [{"protocol": "tcp"}], "sourceRanges": ["35.191.0.0/16", "130.211.0.0/22"]},
        {"allows": [{"protocol": "tcp"}]},
        "no source admits 0.0.0.0/0",
        {},
        None,
    ),
    (
        "security-network-ingress-disallow-public",
        "gcp:compute/firewall:Firewall",
        {"allows": [{"protocol": "tcp"}], "sourceRanges": ["10.0.0.0/8"]},
        {"allows": [{"protocol": "tcp"}], "sourceRanges": ["::/0"]},
        "public range ::/0",
        {},
        None,
    ),
    (
        "security-network-ingress-disallow-public",
        "aws:ec2/securityGroup:SecurityGroup",
        {"ingress": [{"cidrBlocks": ["10.0.0.0/8"]}]},
        {"ingress": [{"cidrBlocks": ["0.0.0.0/0"]}]},
        "open to",
        {},
        None,
    ),
    (
        "security-lb-listener-require-tls12",
        "aws:lb/listener:Listener",
        {"protocol": "TLS", "sslPolicy": "ELBSecurityPolicy-TLS13-1-2-2021-06"},
        {"protocol": "TLS", "sslPolicy": "ELBSecurityPolicy-2016-08"},
        "allows TLS below 1.2",
        {},
        None,
    ),
    (
        "security-lb-listener-require-tls12",
        "aws:lb/listener:Listener",
        {"protocol": "HTTPS", "sslPolicy": "ELBSecurityPolicy-TLS13-1-3-2021-06"},
        {"protocol": "TCP"},
        "not TLS",
        {},
        None,
    ),
    (
        "security-lb-listener-require-tls12",
        "gcp:compute/sSLPolicy:SSLPolicy",
        {"minTlsVersion": "TLS_1_2"},
        {"minTlsVersion": "TLS_1_0"},
        "TLS_1_0",
        {},
        None,
    ),
    (
        "security-aws-vpcendpointservice-require-acceptance",
        "aws:ec2/vpcEndpointService:VpcEndpointService",
        {"acceptanceRequired": True, "allowedPrincipals": ["arn:aws:iam::111122223333:root"]},
        {"acceptanceRequired": False, "allowedPrincipals": ["*"]},
        "without review",
        {},
        None,
    ),
    (
        "security-aws-vpcendpointservice-require-acceptance",
        "aws:ec2/vpcEndpointServiceAllowedPrinciple:VpcEndpointServiceAllowedPrinciple",
        {"principalArn": "arn:aws:iam::111122223333:root"},
        {"principalArn": "*"},
        "Any AWS principal",
        {},
        None,
    ),
    (
        "security-gcp-serviceattachment-require-manual-acceptance",
        "gcp:compute/serviceAttachment:ServiceAttachment",
        {"connectionPreference": "ACCEPT_MANUAL"},
        {"connectionPreference": "ACCEPT_AUTOMATIC"},
        "ACCEPT_AUTOMATIC",
        {},
        None,
    ),
    (
        "security-aws-iam-policy-disallow-admin-wildcard",
        "aws:iam/rolePolicy:RolePolicy",
        {"policy": json.dumps({"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]})},
        {"policy": json.dumps({"Statement": [{"Sid": "Admin", "Effect": "Allow", "Action": "*", "Resource": "*"}]})},
        "Admin allows every action on '*'",
        {},
        None,
    ),
    (
        "security-aws-iam-policy-disallow-admin-wildcard",
        "aws:iam/rolePolicy:RolePolicy",
        {"policy": json.dumps({"Statement": [{"Effect": "Deny", "NotAction": "s3:*", "Resource": "*"}]})},
        {
            "policy": json.dumps(
                {"Statement": [{"Sid": "AllBut", "Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}]}
            )
        },
        "AllBut allows every action",
        {},
        None,
    ),
    (
        "security-aws-iam-policy-disallow-admin-wildcard",
        "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
        {"policyArn": "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"},
        {"policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"},
        "AdministratorAccess",
        {},
        None,
    ),
    (
        "security-lb-listener-require-tls12",
        "gcp:compute/regionTargetHttpsProxy:RegionTargetHttpsProxy",
        {"sslPolicy": "projects/p/regions/r/sslPolicies/tls12"},
        {},
        "default one accepts TLS 1.0",
        {},
        None,
    ),
    (
        "security-disk-require-cmk-encryption",
        LT,
        {"blockDeviceMappings": [{"deviceName": "/dev/xvda", "ebs": {"encrypted": "true", "kmsKeyId": "arn:k"}}]},
        {"imageId": "ami-1"},
        "No block device mapping",
        {},
        None,
    ),
    (
        "residency-aws-resource-require-allowed-region",
        "aws:ec2/vpcPeeringConnection:VpcPeeringConnection",
        {"peerRegion": "eu-central-1"},
        {"peerRegion": "us-east-1"},
        "reaches into 'us-east-1'",
        EU,
        ({"region": "eu-central-1"}, {"region": "eu-central-1"}),
    ),
    (
        "security-gcp-storagebucket-require-private-encrypted",
        "gcp:storage/bucket:Bucket",
        {
            "publicAccessPrevention": "enforced",
            "uniformBucketLevelAccess": True,
            "encryption": {"defaultKmsKeyName": "k"},
        },
        {
            "publicAccessPrevention": "inherited",
            "uniformBucketLevelAccess": True,
            "encryption": {"defaultKmsKeyName": "k"},
        },
        "not enforced",
        {},
        None,
    ),
    (
        "tags-resource-require-standard-tags",
        "aws:ec2/vpc:Vpc",
        {"tags": TAGS},
        {"tags": {"stack": "dev"}},
        "Missing tags: environment, team, model, data-classification",
        {},
        None,
    ),
    (
        "tags-resource-require-standard-tags",
        "aws:autoscaling/group:Group",
        {"tags": [{"key": k, "value": v} for k, v in TAGS.items()]},
        {"tags": []},
        "Missing tags",
        {},
        None,
    ),
    (
        "tags-resource-require-standard-tags",
        "gcp:compute/instanceTemplate:InstanceTemplate",
        {"labels": TAGS},
        {},
        "Missing tags: stack",
        {},
        None,
    ),
    (
        "tags-resource-require-standard-tags",
        QUEUED_TPU_TYPE,
        {**QUEUED, "body": _queued_body(labels=TAGS)},
        {**QUEUED, "body": _queued_body(labels={})},
        "Missing tags: stack",
        {},
        None,
    ),
    (
        "security-compute-instance-disallow-public-ip",
        QUEUED_TPU_TYPE,
        {**QUEUED, "body": _queued_body()},
        {**QUEUED, "body": _queued_body(external=True)},
        "queued TPU node enables external IPs",
        {},
        None,
    ),
    (
        "residency-gcp-resource-require-allowed-location",
        QUEUED_TPU_TYPE,
        {**QUEUED, "zone": "europe-west4-b"},
        {**QUEUED, "zone": "us-west4-a"},
        "'us-west4-a' is outside",
        {"allowedRegions": ["europe-west4"]},
        None,
    ),
]


@pytest.mark.parametrize(
    ("policy", "token", "good", "bad", "words", "config", "providers"),
    RESOURCE_CASES,
    ids=[f"{c[0]}:{c[1].rsplit(':', 1)[-1]}" for c in RESOURCE_CASES],
)
def test_resource_rule(policy, token, good, bad, words, config, providers):
    good_provider = provider(**providers[0]) if providers else None
    bad_provider = provider(**providers[1]) if providers else None
    assert run_resource(policy, token, good, config=config, prov=good_provider) == []
    found = run_resource(policy, token, bad, config=config, prov=bad_provider)
    assert found and any(words in m for m in found), found
    assert all(" Fix: " in m for m in found)  # every message carries its remediation


def test_residency_fails_closed_without_config():
    found = run_resource("residency-aws-resource-require-allowed-region", "aws:ec2/vpc:Vpc", {"region": "eu-central-1"})
    assert found and "outside the allowed regions []" in found[0]


def test_global_services_have_no_region_to_check():
    assert run_resource("residency-aws-resource-require-allowed-region", "aws:iam/role:Role", {}, config=EU) == []


# -- stack rules ---------------------------------------------------------------------------------


def test_stack_requires_known_regions_and_fails_closed_on_unknown():
    from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, unknown_checking_proxy

    known = resource("aws:ec2/vpc:Vpc", {}, prov=provider(region="eu-central-1"))
    assert run_stack("residency-stack-require-known-region", [known]) == []
    unknown = resource("aws:ec2/vpc:Vpc", unknown_checking_proxy({"region": UNKNOWN_STRING_VALUE}), name="u")
    missing = resource("aws:ec2/subnet:Subnet", {}, name="m")
    found = run_stack("residency-stack-require-known-region", [known, unknown, missing])
    assert [urn.rsplit("::", 1)[1] for _, urn in found] == ["u", "m"]
    assert "unknown at preview" in found[0][0] and "no region" in found[1][0]


def test_s3_replication_only_to_declared_buckets_in_allowed_regions():
    eu_bucket = resource("aws:s3/bucket:Bucket", {"bucket": "eu-copy"}, "eu", prov=provider(region="eu-central-1"))
    us_bucket = resource("aws:s3/bucket:Bucket", {"bucket": "us-copy"}, "us", prov=provider(region="us-east-1"))

    def repl(dest):
        return resource(
            "aws:s3/bucketReplicationConfig:BucketReplicationConfig",
            {"rules": [{"destination": {"bucket": f"arn:aws:s3:::{dest}"}}]},
            f"to-{dest}",
        )

    policy = "residency-aws-s3bucket-disallow-outside-replication"
    assert run_stack(policy, [eu_bucket, repl("eu-copy")], config=EU) == []
    assert "leaves the allowed regions" in run_stack(policy, [us_bucket, repl("us-copy")], config=EU)[0][0]
    assert "not declared in this stack" in run_stack(policy, [repl("elsewhere")], config=EU)[0][0]


def test_s3_buckets_block_public_access_and_encrypt_with_kms():
    bucket = resource("aws:s3/bucket:Bucket", {"bucket": "logs"}, "logs")
    pab = resource(
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
        {f: True for f in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")},
        "logs-pab",
        deps={"bucket": [bucket]},
    )
    sse = resource(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        {
            "bucket": "logs",
            "rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "aws:kms", "kmsMasterKeyId": "arn:k"}}],
        },
        "logs-sse",
    )
    policy = "security-aws-s3bucket-require-private-encrypted"
    assert run_stack(policy, [bucket, pab, sse]) == []
    found = run_stack(policy, [bucket, sse])
    assert len(found) == 1 and "does not block public access" in found[0][0]


def _group(name, types, max_size, tags=None, distribution=None):
    props = {
        "maxSize": max_size,
        "tags": [{"key": k, "value": v} for k, v in (tags or {}).items()],
        "mixedInstancesPolicy": {
            "launchTemplate": {"overrides": [{"instanceType": t} for t in types]},
            "instancesDistribution": distribution or {},
        },
    }
    return resource("aws:autoscaling/group:Group", props, name)


def test_gpu_ceiling_sums_groups_at_max_capacity():
    config = {"maxGpus": 16, "gpusPerInstanceType": {"g6.xlarge": 1, "p4de.24xlarge": 8}}
    ok = [_group("a", ["g6.xlarge"], 8), _group("b", ["p4de.24xlarge"], 1)]
    assert run_stack("cost-stack-gpu-count-limit", ok, config=config) == []
    found = run_stack("cost-stack-gpu-count-limit", ok + [_group("c", ["p4de.24xlarge"], 1)], config=config)
    assert "runs 24 GPUs/TPU chips, above the ceiling of 16" in found[0][0]
    unknown = run_stack("cost-stack-gpu-count-limit", [_group("d", ["x1.large"], 1)], config=config)
    assert "no count for ['x1.large']" in unknown[0][0]


def test_gpu_ceiling_counts_gcp_groups_through_their_template_and_tpu_chips():
    template = resource("gcp:compute/instanceTemplate:InstanceTemplate", {"machineType": "g2-standard-24"}, "tpl")
    group = resource(
        "gcp:compute/regionInstanceGroupManager:RegionInstanceGroupManager", {}, "mig", deps={"versions": [template]}
    )
    scaler = resource(
        "gcp:compute/regionAutoscaler:RegionAutoscaler",
        {"autoscalingPolicy": {"maxReplicas": 5}},
        "scaler",
        deps={"target": [group]},
    )
    tpu = resource("gcp:tpu/v2Vm:V2Vm", {"acceleratorType": "v6e-8"}, "slice")
    queued = resource(
        "pulumi-python:dynamic:Resource",
        {
            "resourceType": "tpu.googleapis.com/QueuedResource",
            "body": {"tpu": {"nodeSpec": [{"node": {"acceleratorType": "v5litepod-16"}}]}},
        },
        "queued",
    )
    config = {"maxGpus": 30, "gpusPerInstanceType": {"g2-standard-24": 2, "v6e-8": 8, "v5litepod-16": 16}}
    found = run_stack("cost-stack-gpu-count-limit", [template, group, scaler, tpu, queued], config=config)
    assert len(found) == 1 and "runs 34 GPUs/TPU chips, above the ceiling of 30" in found[0][0]  # 2x5 + 8 + 16


def test_batch_groups_must_be_spot():
    spot = {"onDemandBaseCapacity": 0, "onDemandPercentageAboveBaseCapacity": 0}
    ok = _group("batch", ["g6.xlarge"], 2, {"workload": "batch"}, spot)
    bad = _group("batch2", ["g6.xlarge"], 2, {"workload": "batch"}, {"onDemandPercentageAboveBaseCapacity": 50})
    serving = _group("serve", ["g6.xlarge"], 2, {}, {"onDemandPercentageAboveBaseCapacity": 100})
    assert run_stack("cost-compute-pool-require-spot-for-batch", [ok, serving]) == []
    assert len(run_stack("cost-compute-pool-require-spot-for-batch", [bad])) == 1


def test_gcp_and_tpu_batch_pools_must_be_spot():
    batch = {"workload": "batch"}
    ok = [
        resource(
            "gcp:compute/instanceTemplate:InstanceTemplate",
            {"labels": batch, "scheduling": {"provisioningModel": "SPOT"}},
            "t",
        ),
        resource("gcp:tpu/v2Vm:V2Vm", {"labels": batch, "schedulingConfig": {"spot": True}}, "v"),
        resource(
            "pulumi-python:dynamic:Resource",
            {
                "resourceType": "tpu.googleapis.com/QueuedResource",
                "body": {"spot": {}, "tpu": {"nodeSpec": [{"node": {"labels": batch}}]}},
            },
            "q",
        ),
        resource("gcp:tpu/v2Vm:V2Vm", {"labels": {"workload": "serving"}, "schedulingConfig": {"spot": False}}, "s"),
    ]
    assert run_stack("cost-compute-pool-require-spot-for-batch", ok) == []
    bad = [
        resource(
            "gcp:compute/instanceTemplate:InstanceTemplate",
            {"labels": batch, "scheduling": {"provisioningModel": "STANDARD"}},
            "t",
        ),
        resource("gcp:tpu/v2Vm:V2Vm", {"labels": batch, "schedulingConfig": {"spot": False}}, "v"),
        resource(
            "pulumi-python:dynamic:Resource",
            {
                "resourceType": "tpu.googleapis.com/QueuedResource",
                "body": {"tpu": {"nodeSpec": [{"node": {"labels": batch, "schedulingConfig": {"reserved": True}}}]}},
            },
            "q",
        ),
    ]
    assert [urn.rsplit("::", 1)[1] for _, urn in run_stack("cost-compute-pool-require-spot-for-batch", bad)] == [
        "t",
        "v",
        "q",
    ]


# -- the pack's metadata -------------------------------------------------------------------------


def test_every_rule_is_named_and_documented_like_a_compliance_pack():
    import re

    assert set(RULES) == set(POLICIES)
    for name, rule in RULES.items():
        assert re.fullmatch(r"(residency|security|tags|cost|observability)-[a-z0-9]+(-[a-z0-9]+){3,}", name), name
        assert rule.description and rule.remediation and rule.severity is not None
        for key, schema in rule.config.items():
            assert "default" in schema, f"{name}.{key} has no default"


def test_residency_and_security_are_mandatory_cost_is_advisory():
    from pulumi_policy import EnforcementLevel

    for name, rule in RULES.items():
        advisory = name.startswith("cost-") or name in ADVISORY_BY_DESIGN
        expected = EnforcementLevel.ADVISORY if advisory else EnforcementLevel.MANDATORY
        assert rule.enforcement == expected, name


# How long logs must be kept is a per-environment choice the spec makes; the rule says why.
ADVISORY_BY_DESIGN = {
    "security-aws-cloudwatch-loggroup-retention-minimum",
    # A team may watch latency with its own tooling; the plan then cannot show it, which is worth a review.
    "observability-serving-target-require-latency-alarm",
}


def test_every_rule_has_a_test_above():
    from test_hardening_rules import HARDENING_CASES, STACK_TESTED
    from test_kubernetes_rules import K8S_TESTED

    tested = (
        {c[0] for c in RESOURCE_CASES}
        | K8S_TESTED
        | {c[0] for c in HARDENING_CASES}
        | STACK_TESTED
        | {
            "residency-stack-require-known-region",
            "residency-aws-s3bucket-disallow-outside-replication",
            "security-aws-s3bucket-require-private-encrypted",
            "cost-stack-gpu-count-limit",
            "cost-compute-pool-require-spot-for-batch",
            "observability-serving-target-require-latency-alarm",
        }
    )
    assert tested == set(RULES)


def test_other_dynamic_resources_are_left_alone():
    other = {"resourceType": "something/else", "zone": "us-west4-a"}
    for policy in (
        "residency-gcp-resource-require-allowed-location",
        "tags-resource-require-standard-tags",
        "security-compute-instance-disallow-public-ip",
    ):
        assert run_resource(policy, "pulumi-python:dynamic:Resource", other, config=EU) == []


def test_a_serving_group_needs_a_latency_alarm_and_a_batch_pool_does_not():
    group = resource(
        "aws:autoscaling/group:Group", {"name": "g", "tags": [{"key": "workload", "value": "serving"}]}, "g"
    )
    batch = resource("aws:autoscaling/group:Group", {"name": "b", "tags": [{"key": "workload", "value": "batch"}]}, "b")
    alarm = resource(
        "aws:cloudwatch/metricAlarm:MetricAlarm",
        {
            "metricQueries": [
                {
                    "id": "m",
                    "metric": {
                        "metricName": "request_latency_seconds",
                        "dimensions": {"AutoScalingGroupName": "g"},
                        "stat": "p95",
                    },
                }
            ]
        },
        "a",
    )
    other = resource(
        "aws:cloudwatch/metricAlarm:MetricAlarm",
        {"metricName": "InFlightRequests", "dimensions": {"AutoScalingGroupName": "g"}},
        "o",
    )
    rule = "observability-serving-target-require-latency-alarm"
    assert run_stack(rule, [group, batch, alarm]) == []
    found = run_stack(rule, [group, batch, other])
    assert found == [(f"The serving group g has no latency alarm. Fix: {RULES[rule].remediation}", group.urn)]


def test_an_on_prem_serving_deployment_needs_a_latency_alert_in_its_namespace():
    deployment = resource(
        "kubernetes:apps/v1:Deployment",
        {"metadata": {"namespace": "ns", "labels": {"workload": "serving"}}},
        "d",
    )
    rules = {
        "groups": [
            {
                "rules": [
                    {
                        "alert": "LatencyP95",
                        "expr": "histogram_quantile(0.95, rate(vllm:e2e_request_latency_seconds_bucket[1h])) > 30",
                    }
                ]
            }
        ]
    }
    here = resource(
        "kubernetes:monitoring.coreos.com/v1:PrometheusRule", {"metadata": {"namespace": "ns"}, "spec": rules}, "r"
    )
    elsewhere = resource(
        "kubernetes:monitoring.coreos.com/v1:PrometheusRule", {"metadata": {"namespace": "other"}, "spec": rules}, "r2"
    )
    rule = "observability-serving-target-require-latency-alarm"
    assert run_stack(rule, [deployment, here]) == []
    assert len(run_stack(rule, [deployment, elsewhere])) == 1


def test_a_gcp_serving_target_needs_a_cloud_monitoring_latency_alert_on_its_label():
    labels = {"workload": "serving", "inferstack-target": "assistant-research-chat"}
    template = resource("gcp:compute/instanceTemplate:InstanceTemplate", {"labels": labels}, "t")
    queued = resource(
        "pulumi-python:dynamic:Resource",
        {
            "resourceType": "tpu.googleapis.com/QueuedResource",
            "body": {"tpu": {"nodeSpec": [{"node": {"labels": {**labels, "inferstack-target": "r"}}}]}},
        },
        "q",
    )
    batch = resource(
        "gcp:tpu/v2Vm:V2Vm", {"labels": {"workload": "batch", "inferstack-target": "assistant-batch"}}, "b"
    )

    def policy(target: str, query: str):
        condition = {"conditionPrometheusQueryLanguage": {"query": query, "labels": {"inferstack_target": target}}}
        return resource("gcp:monitoring/alertPolicy:AlertPolicy", {"conditions": [condition]}, f"p-{target}")

    latency = "histogram_quantile(0.95, sum by (le) (rate(vllm:e2e_request_latency_seconds_bucket[1h]))) > 30"
    rule = "observability-serving-target-require-latency-alarm"
    watched = [policy("assistant-research-chat", latency), policy("r", latency)]
    assert run_stack(rule, [template, queued, batch, *watched]) == []
    # An error-rate policy is no latency alert, and a policy on another target watches nothing here.
    errors = policy("assistant-research-chat", 'sum(rate(http_requests_total{status=~"5.."}[1h])) > 0.05')
    found = run_stack(rule, [template, queued, batch, errors, policy("other", latency)])
    assert [m.split(" Fix:")[0] for m, _ in found] == [
        "The serving target assistant-research-chat has no Cloud Monitoring latency alert.",
        "The serving target r has no Cloud Monitoring latency alert.",
    ]
