"""The node-hardening and scanner rules, each with a passing and a violating resource (or stack),
including the three broken plans the pack once let through: Secure Boot off, project-wide SSH
keys allowed, the default compute service account."""

from __future__ import annotations

import json

import pytest

from policy_harness import resource, run_resource, run_stack

IT = "gcp:compute/instanceTemplate:InstanceTemplate"
RIT = "gcp:compute/regionInstanceTemplate:RegionInstanceTemplate"
TPU = "gcp:tpu/v2Vm:V2Vm"
DYN = "pulumi-python:dynamic:Resource"
LT = "aws:ec2/launchTemplate:LaunchTemplate"
SA = "fleet@p.iam.gserviceaccount.com"
META = {"enable-oslogin": "TRUE", "block-project-ssh-keys": "TRUE", "serial-port-enable": "FALSE"}


def template(**change) -> dict:
    """An instance template as the GCP GPU fleet writes it, with `change` applied."""
    props = {
        "shieldedInstanceConfig": {"enableSecureBoot": True, "enableVtpm": True, "enableIntegrityMonitoring": True},
        "metadata": dict(META),
        "canIpForward": False,
        "serviceAccount": {"email": SA, "scopes": ["https://www.googleapis.com/auth/cloud-platform"]},
    }
    props.update(change)
    return props


def tpu(**change) -> dict:
    props = {
        "shieldedInstanceConfig": {"enableSecureBoot": True},
        "metadata": dict(META),
        "networkConfig": {"canIpForward": False, "enableExternalIps": False},
        "serviceAccount": {"email": SA},
    }
    props.update(change)
    return props


def queued(**change) -> dict:
    """The queued-resource dynamic resource's inputs, the body as tests/test_api_limits.py reads it."""
    return {
        "resourceType": "tpu.googleapis.com/QueuedResource",
        "zone": "europe-west4-b",
        "body": {"tpu": {"nodeSpec": [{"parent": "p", "nodeId": "n", "node": tpu(**change)}]}},
    }


def meta(**change) -> dict:
    return {**META, **change}


SHIELDED = "security-gcp-compute-require-shielded-vm"
OSLOGIN = "security-gcp-compute-require-os-login"
SSH = "security-gcp-compute-block-project-ssh-keys"
SERIAL = "security-gcp-compute-disallow-serial-port"
FORWARD = "security-gcp-compute-disallow-ip-forwarding"
ACCOUNT = "security-gcp-compute-require-dedicated-service-account"
KEYPAIR = "security-aws-ec2-disallow-key-pair"
LOGS = "security-aws-cloudwatch-loggroup-require-retention-kms"
RETENTION = "security-aws-cloudwatch-loggroup-retention-minimum"
SNS = "security-aws-sns-topic-require-kms"
TLS = "security-aws-s3bucket-require-tls-only"
LG = "aws:cloudwatch/logGroup:LogGroup"

# (policy, type, passing props, violating props, words in the violation, config)
HARDENING_CASES = [
    (
        SHIELDED,
        IT,
        template(),
        template(
            shieldedInstanceConfig={"enableSecureBoot": False, "enableVtpm": True, "enableIntegrityMonitoring": True}
        ),
        "enableSecureBoot",
        {},
    ),
    (SHIELDED, RIT, template(), template(shieldedInstanceConfig={"enableSecureBoot": True}), "enableVtpm", {}),
    (
        SHIELDED,
        IT,
        template(),
        template(shieldedInstanceConfig={"enableSecureBoot": True, "enableVtpm": True}),
        "enableIntegrityMonitoring",
        {},
    ),
    (
        SHIELDED,
        TPU,
        tpu(),
        tpu(shieldedInstanceConfig={}),
        "TPU VM does not set shieldedInstanceConfig.enableSecureBoot",
        {},
    ),
    (SHIELDED, DYN, queued(), queued(shieldedInstanceConfig={"enableSecureBoot": False}), "queued TPU node", {}),
    (OSLOGIN, IT, template(), template(metadata=meta(**{"enable-oslogin": "FALSE"})), "does not enable OS Login", {}),
    (OSLOGIN, TPU, tpu(), tpu(metadata={}), "does not enable OS Login", {}),
    (OSLOGIN, DYN, queued(), queued(metadata=meta(**{"enable-oslogin": "false"})), "queued TPU node", {}),
    (SSH, IT, template(), template(metadata=meta(**{"block-project-ssh-keys": "FALSE"})), "project-wide SSH keys", {}),
    (SSH, TPU, tpu(), tpu(metadata={"enable-oslogin": "TRUE"}), "project-wide SSH keys", {}),
    (SSH, DYN, queued(), queued(metadata={"enable-oslogin": "TRUE"}), "project-wide SSH keys", {}),
    (
        SERIAL,
        IT,
        template(metadata={"enable-oslogin": "TRUE", "block-project-ssh-keys": "TRUE"}),
        template(metadata=meta(**{"serial-port-enable": "TRUE"})),
        "serial port",
        {},
    ),
    (SERIAL, TPU, tpu(), tpu(metadata=meta(**{"serial-port-enable": "1"})), "serial port", {}),
    (SERIAL, DYN, queued(), queued(metadata=meta(**{"serial-port-enable": "true"})), "serial port", {}),
    (FORWARD, IT, template(), template(canIpForward=True), "forwards IP packets", {}),
    (FORWARD, "gcp:compute/instance:Instance", template(), template(canIpForward="true"), "instance forwards", {}),
    (FORWARD, TPU, tpu(), tpu(networkConfig={"canIpForward": True}), "forwards IP packets", {}),
    (FORWARD, DYN, queued(), queued(networkConfig={"canIpForward": True}), "forwards IP packets", {}),
    (
        ACCOUNT,
        IT,
        template(),
        template(serviceAccount={"email": "123456789012-compute@developer.gserviceaccount.com"}),
        "default compute service account",
        {},
    ),
    (
        ACCOUNT,
        IT,
        template(),
        {k: v for k, v in template().items() if k != "serviceAccount"},
        "names no service account",
        {},
    ),
    (ACCOUNT, RIT, template(), template(serviceAccount={"email": "default"}), "names no service account", {}),
    (
        ACCOUNT,
        TPU,
        tpu(),
        tpu(serviceAccount={"email": "42-compute@developer.gserviceaccount.com"}),
        "default compute",
        {},
    ),
    (ACCOUNT, DYN, queued(), queued(serviceAccount={}), "names no service account", {}),
    (KEYPAIR, LT, {"imageId": "ami-1"}, {"imageId": "ami-1", "keyName": "ops"}, "key pair 'ops'", {}),
    (KEYPAIR, "aws:ec2/instance:Instance", {}, {"keyName": "ops"}, "key pair", {}),
    (LOGS, LG, {"retentionInDays": 365, "kmsKeyId": "arn:k"}, {"retentionInDays": 365}, "no kmsKeyId", {}),
    (LOGS, LG, {"retentionInDays": 30, "kmsKeyId": "arn:k"}, {"kmsKeyId": "arn:k"}, "forever", {}),
    (
        LOGS,
        LG,
        {"retentionInDays": 30, "kmsKeyId": "arn:k"},
        {"retentionInDays": 0, "kmsKeyId": "arn:k"},
        "forever",
        {},
    ),
    (RETENTION, LG, {"retentionInDays": 400}, {"retentionInDays": 30}, "30 days, fewer than 365", {}),
    (RETENTION, LG, {"retentionInDays": 30}, {"retentionInDays": 14}, "fewer than 30", {"minLogRetentionDays": 30}),
    (SNS, "aws:sns/topic:Topic", {"kmsMasterKeyId": "alias/k"}, {"name": "t"}, "no kmsMasterKeyId", {}),
]


@pytest.mark.parametrize(
    "policy,token,good,bad,words,config",
    HARDENING_CASES,
    ids=[f"{c[0]}:{c[1].rsplit(':', 1)[-1]}:{i}" for i, c in enumerate(HARDENING_CASES)],
)
def test_hardening_rule(policy, token, good, bad, words, config):
    assert run_resource(policy, token, good, config=config) == []
    found = run_resource(policy, token, bad, config=config)
    assert found and any(words in m for m in found), found


def test_the_three_broken_plans_are_blocked():
    """The red-team's plans: each fails exactly the rule it breaks, and no other node rule."""
    broken = {
        SHIELDED: template(
            shieldedInstanceConfig={"enableSecureBoot": False, "enableVtpm": True, "enableIntegrityMonitoring": True}
        ),
        SSH: template(metadata=meta(**{"block-project-ssh-keys": "FALSE"})),
        ACCOUNT: template(serviceAccount={"email": "1-compute@developer.gserviceaccount.com"}),
    }
    for rule, props in broken.items():
        failing = {p for p in (SHIELDED, OSLOGIN, SSH, SERIAL, FORWARD, ACCOUNT) if run_resource(p, IT, props)}
        assert failing == {rule}


def test_other_resources_are_left_alone():
    other = {"resourceType": "something/else", "body": {"tpu": {"nodeSpec": [{"node": {}}]}}}
    for policy in (SHIELDED, OSLOGIN, SSH, ACCOUNT):
        assert run_resource(policy, DYN, other) == []
        assert run_resource(policy, "gcp:compute/network:Network", {}) == []


def _tls_policy(arn: str) -> str:
    return json.dumps(
        {
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "delivery.logs.amazonaws.com"},
                    "Action": "s3:PutObject",
                    "Resource": f"{arn}/nlb/*",
                },
                {
                    "Sid": "DenyInsecureTransport",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:*",
                    "Resource": [arn, f"{arn}/*"],
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                },
            ]
        }
    )


def test_s3_buckets_deny_plain_http():
    bucket = resource("aws:s3/bucket:Bucket", {"bucket": "logs"}, "logs")
    ok = resource(
        "aws:s3/bucketPolicy:BucketPolicy", {"bucket": "logs", "policy": _tls_policy("arn:aws:s3:::logs")}, "p"
    )
    assert run_stack(TLS, [bucket, ok]) == []
    # Joined through the dependency on the bucket too (its name unknown until created).
    by_dep = resource(
        "aws:s3/bucketPolicy:BucketPolicy", {"policy": _tls_policy("arn:aws:s3:::x")}, "p2", deps={"bucket": [bucket]}
    )
    assert run_stack(TLS, [bucket, by_dep]) == []
    ((message, urn),) = run_stack(TLS, [bucket])
    assert "no policy denying plain-HTTP" in message and urn == bucket.urn
    allow_only = json.loads(_tls_policy("arn:aws:s3:::logs"))
    allow_only["Statement"][1]["Condition"] = {"Bool": {"aws:SecureTransport": "true"}}
    wrong = resource("aws:s3/bucketPolicy:BucketPolicy", {"bucket": "logs", "policy": json.dumps(allow_only)}, "p")
    assert len(run_stack(TLS, [bucket, wrong])) == 1
    objects_only = json.loads(_tls_policy("arn:aws:s3:::logs"))
    objects_only["Statement"][1]["Resource"] = "arn:aws:s3:::logs/*"
    partial = resource("aws:s3/bucketPolicy:BucketPolicy", {"bucket": "logs", "policy": json.dumps(objects_only)}, "p")
    assert len(run_stack(TLS, [bucket, partial])) == 1


def test_s3_tls_only_defers_a_policy_unknown_at_preview_but_not_a_missing_one():
    """A new stack's first preview knows no bucket ARN, so its policy document is unknown: that
    must not block the PR pipeline. A bucket with no policy at all still fails at preview."""
    from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, unknown_checking_proxy

    bucket = resource("aws:s3/bucket:Bucket", {"bucket": "logs"}, "logs")
    unknown = resource(
        "aws:s3/bucketPolicy:BucketPolicy",
        unknown_checking_proxy({"bucket": "logs", "policy": UNKNOWN_STRING_VALUE}),
        "p",
    )
    assert run_stack(TLS, [bucket, unknown]) == []
    ((message, _),) = run_stack(TLS, [bucket])
    assert "no policy" in message


def test_a_service_account_unknown_at_preview_is_one_the_program_creates():
    from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, unknown_checking_proxy

    props = unknown_checking_proxy(template(serviceAccount={"email": UNKNOWN_STRING_VALUE}))
    assert run_resource(ACCOUNT, IT, props) == []


STACK_TESTED = {TLS}
