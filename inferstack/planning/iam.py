"""IAM and KMS policy documents, as pure functions of names and ARNs.

Least privilege, spelled out: every statement names its actions (no ``*`` action anywhere) and,
wherever AWS allows it, its resources. The few actions that AWS only grants on ``*``
(``ecr:GetAuthorizationToken``, ``cloudwatch:PutMetricData``) are pinned by a condition or are
read-only tokens; Session Manager's agent actions act only on the calling instance's own channels
and are documented on ``*``. Components call these with resolved ARNs inside ``Output.apply``.
"""

from __future__ import annotations

import json
from typing import Any

Statement = dict[str, Any]

# Key administration without use: the account can manage the key (so it can never be locked
# out) but encrypts and decrypts nothing through this statement. Listed one by one: the
# wildcards of AWS's default administrator statement (`kms:Create*`) include kms:CreateGrant,
# with which an administrator could grant itself Decrypt without touching the key policy.
# Changing the policy itself (PutKeyPolicy) stays an administrator's right: it is what prevents
# lock-out, and, unlike a grant, it is a visible change of a reviewed document.
KMS_ADMIN_ACTIONS = [
    "kms:CancelKeyDeletion",
    "kms:CreateAlias",
    "kms:DeleteAlias",
    "kms:DescribeKey",
    "kms:DisableKey",
    "kms:DisableKeyRotation",
    "kms:EnableKey",
    "kms:EnableKeyRotation",
    "kms:GetKeyPolicy",
    "kms:GetKeyRotationStatus",
    "kms:ListAliases",
    "kms:ListGrants",
    "kms:ListKeyPolicies",
    "kms:ListKeyRotations",
    "kms:ListResourceTags",
    "kms:PutKeyPolicy",
    "kms:RevokeGrant",
    "kms:RotateKeyOnDemand",
    "kms:ScheduleKeyDeletion",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:UpdateAlias",
    "kms:UpdateKeyDescription",
]
KMS_USE_ACTIONS = ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*"]
ECR_PULL_ACTIONS = ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
# What SSM Agent needs for Session Manager and nothing more ("Create a custom IAM instance
# profile for Session Manager", AWS Systems Manager User Guide). The managed
# AmazonSSMManagedInstanceCore policy adds ssm:GetParameter(s) on every parameter of the
# account, documents, associations and inventory, none of which a serving node needs.
SESSION_MANAGER_ACTIONS = [
    "ssm:UpdateInstanceInformation",
    "ssmmessages:CreateControlChannel",
    "ssmmessages:CreateDataChannel",
    "ssmmessages:OpenControlChannel",
    "ssmmessages:OpenDataChannel",
]
# The Auto Scaling service-linked role: the principal that launches the fleet's encrypted volumes.
AUTOSCALING_SERVICE = "autoscaling.amazonaws.com"
AUTOSCALING_ROLE_NAME = "AWSServiceRoleForAutoScaling"
AUTOSCALING_ROLE_PATH = f"/aws-service-role/{AUTOSCALING_SERVICE}/"


def document(statements: list[Statement]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": statements}, sort_keys=True)


def assume_role(service: str, condition: dict[str, Any] | None = None) -> str:
    statement: Statement = {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
    if condition:
        statement["Condition"] = condition
    return document([statement])


def put_metric_statement(sid: str, namespace: str) -> Statement:
    """PutMetricData in one namespace: the action has no resource type, the `cloudwatch:namespace`
    condition key scopes it (CloudWatch "Using condition keys to limit access to CloudWatch
    namespaces")."""
    return {
        "Sid": sid,
        "Effect": "Allow",
        "Action": "cloudwatch:PutMetricData",
        "Resource": "*",
        "Condition": {"StringEquals": {"cloudwatch:namespace": namespace}},
    }


# IAM Roles Anywhere's service principal and what a role it vends must let it do ("Trust model",
# IAM Roles Anywhere User Guide: sts:AssumeRole, sts:TagSession for the certificate's principal
# tags, sts:SetSourceIdentity).
ROLES_ANYWHERE_PRINCIPAL = "rolesanywhere.amazonaws.com"
ROLES_ANYWHERE_ACTIONS = ["sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"]


def roles_anywhere_trust(trust_anchor_arn: str, certificate_cn: str) -> str:
    """Roles Anywhere may vend the role only for sessions of this trust anchor (aws:SourceArn, the
    confused-deputy condition) and of one certificate's subject (the x509Subject/CN principal tag
    Roles Anywhere sets from the certificate): another certificate of the same CA gets nothing."""
    return document(
        [
            {
                "Effect": "Allow",
                "Principal": {"Service": ROLES_ANYWHERE_PRINCIPAL},
                "Action": ROLES_ANYWHERE_ACTIONS,
                "Condition": {
                    "ArnEquals": {"aws:SourceArn": trust_anchor_arn},
                    "StringEquals": {"aws:PrincipalTag/x509Subject/CN": certificate_cn},
                },
            }
        ]
    )


def put_metric_policy(namespace: str) -> str:
    """A role whose one permission is PutMetricData in `namespace` (the overflow publisher's)."""
    return document([put_metric_statement("PublishWakeMetric", namespace)])


def flow_logs_trust(partition: str, account: str, region: str) -> str:
    """The flow-logs delivery role may be assumed by the flow-logs service for this account's
    flow logs only (the confused-deputy conditions of "IAM role for publishing flow logs to
    CloudWatch Logs", Amazon VPC User Guide)."""
    return assume_role(
        "vpc-flow-logs.amazonaws.com",
        {
            "StringEquals": {"aws:SourceAccount": account},
            "ArnLike": {"aws:SourceArn": f"arn:{partition}:ec2:{region}:{account}:vpc-flow-log/*"},
        },
    )


def kms_key_policy(partition: str, account: str, region: str, log_delivery: bool = False) -> str:
    """Key policy for a fleet's key: EBS volumes launched by Auto Scaling, the log groups and,
    with a private endpoint, the load balancer's access-log delivery."""
    root = f"arn:{partition}:iam::{account}:root"
    asg_role = f"arn:{partition}:iam::{account}:role{AUTOSCALING_ROLE_PATH}{AUTOSCALING_ROLE_NAME}"
    return document(
        [
            {
                "Sid": "KeyAdministration",
                "Effect": "Allow",
                "Principal": {"AWS": root},
                "Action": KMS_ADMIN_ACTIONS,
                "Resource": "*",
            },
            {
                "Sid": "AutoScalingEncryptsVolumes",
                "Effect": "Allow",
                "Principal": {"AWS": asg_role},
                "Action": KMS_USE_ACTIONS,
                "Resource": "*",
            },
            {
                "Sid": "AutoScalingAttachesVolumes",
                "Effect": "Allow",
                "Principal": {"AWS": asg_role},
                "Action": "kms:CreateGrant",
                "Resource": "*",
                "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}},
            },
            {
                "Sid": "CloudWatchLogsEncryptsThisAccountsGroups",
                "Effect": "Allow",
                "Principal": {"Service": f"logs.{region}.amazonaws.com"},
                "Action": KMS_USE_ACTIONS,
                "Resource": "*",
                "Condition": {
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": f"arn:{partition}:logs:{region}:{account}:log-group:*"
                    }
                },
            },
            {
                # SLO alarms notify the fleet's topic, which this key encrypts (SNS "Encryption at
                # rest": CloudWatch needs GenerateDataKey* and Decrypt on the topic's key).
                "Sid": "CloudWatchAlarmsPublishToEncryptedTopic",
                "Effect": "Allow",
                "Principal": {"Service": "cloudwatch.amazonaws.com"},
                "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
                "Resource": "*",
                "Condition": {"StringEquals": {"aws:SourceAccount": account}},
            },
            *(
                [
                    {
                        "Sid": "LoadBalancerAccessLogDelivery",
                        "Effect": "Allow",
                        "Principal": {"Service": "delivery.logs.amazonaws.com"},
                        "Action": [
                            "kms:Encrypt",
                            "kms:Decrypt",
                            "kms:ReEncrypt*",
                            "kms:GenerateDataKey*",
                            "kms:DescribeKey",
                        ],
                        "Resource": "*",
                        "Condition": {"StringEquals": {"aws:SourceAccount": account}},
                    }
                ]
                if log_delivery
                else []
            ),
        ]
    )


def node_policy(
    *,
    partition: str,
    bucket: str,
    prefix: str,
    ecr_repository_arn: str | None,
    log_group_arn: str,
    metrics_namespace: str,
    metrics_log_group_arn: str | None = None,
    weights_kms_key_arn: str | None = None,
    region: str = "",
    group_arn: str | None = None,
) -> str:
    """What a serving node may do: read its model, pull its image, publish its logs and signal, and
    complete its own group's lifecycle hooks (ready after launch, drained before termination)."""
    objects = f"arn:{partition}:s3:::{bucket}/{prefix}/*" if prefix else f"arn:{partition}:s3:::{bucket}/*"
    statements: list[Statement] = [
        {"Sid": "ReadModelWeights", "Effect": "Allow", "Action": "s3:GetObject", "Resource": objects},
        {
            "Sid": "ListModelPrefix",
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": f"arn:{partition}:s3:::{bucket}",
            "Condition": {"StringLike": {"s3:prefix": [f"{prefix}/*", prefix] if prefix else ["*"]}},
        },
        {
            "Sid": "WriteEngineLogs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": f"{log_group_arn}:log-stream:*",
        },
        *(
            # The CloudWatch agent's embedded-metric-format events (its Prometheus scrape); it
            # lists the group's streams to find its own.
            [
                {
                    "Sid": "WriteMetricEvents",
                    "Effect": "Allow",
                    "Action": ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                    "Resource": [metrics_log_group_arn, f"{metrics_log_group_arn}:log-stream:*"],
                }
            ]
            if metrics_log_group_arn is not None
            else []
        ),
        put_metric_statement("PublishScalingSignal", metrics_namespace),
        {
            "Sid": "SessionManager",
            "Effect": "Allow",
            "Action": SESSION_MANAGER_ACTIONS,
            # These act on the calling instance's own session channels; AWS documents them on "*".
            "Resource": "*",
        },
    ]
    if group_arn is not None:
        # CompleteLifecycleAction takes the autoScalingGroup resource type (Service Authorization
        # Reference, Amazon EC2 Auto Scaling), so only this group's hooks.
        statements.append(
            {
                "Sid": "CompleteOwnLifecycleHooks",
                "Effect": "Allow",
                "Action": "autoscaling:CompleteLifecycleAction",
                "Resource": group_arn,
            }
        )
    if weights_kms_key_arn is not None:
        statements.append(
            {
                "Sid": "DecryptModelWeightsThroughS3",
                "Effect": "Allow",
                "Action": "kms:Decrypt",
                "Resource": weights_kms_key_arn,
                "Condition": {"StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"}},
            }
        )
    if ecr_repository_arn is not None:
        statements += [
            {"Sid": "EcrLogin", "Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
            {"Sid": "PullEngineImage", "Effect": "Allow", "Action": ECR_PULL_ACTIONS, "Resource": ecr_repository_arn},
        ]
    return document(statements)


def log_delivery_policy(log_group_arn: str) -> str:
    return document(
        [
            {
                "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                "Resource": [log_group_arn, f"{log_group_arn}:*"],
            }
        ]
    )


def access_log_bucket_policy(bucket_arn: str, account: str) -> str:
    """Load balancer log delivery may write under nlb/ for this account; nothing over plain HTTP."""
    return document(
        [
            {
                "Sid": "LogDeliveryWrite",
                "Effect": "Allow",
                "Principal": {"Service": "delivery.logs.amazonaws.com"},
                "Action": "s3:PutObject",
                "Resource": f"{bucket_arn}/nlb/AWSLogs/{account}/*",
                "Condition": {"StringEquals": {"aws:SourceAccount": account}},
            },
            {
                "Sid": "LogDeliveryAclCheck",
                "Effect": "Allow",
                "Principal": {"Service": "delivery.logs.amazonaws.com"},
                "Action": "s3:GetBucketAcl",
                "Resource": bucket_arn,
                "Condition": {"StringEquals": {"aws:SourceAccount": account}},
            },
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [bucket_arn, f"{bucket_arn}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            },
        ]
    )
