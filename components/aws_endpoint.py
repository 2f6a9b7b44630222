"""AwsPrivateEndpoint: the only way into an AWS fleet, over PrivateLink.

An internal Network Load Balancer in the fleet's private subnets (cross-zone, access logs to an
encrypted, private, versioned bucket with a lifecycle, deletion protection in production) with a
TLS 1.2+ listener and a certificate from the spec or issued from the spec's ACM private CA; a
target group on the serving port health-checking the engine; the fleet's group attached to it;
an endpoint service that requires acceptance and names its principals; and interface endpoints
in the consumer VPCs the spec names, accepted because the spec names them.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from inferstack.planning import iam
from inferstack.planning.endpoint import ACCESS_LOG_EXPIRATION_DAYS, NONCURRENT_EXPIRATION_DAYS, AwsEndpointPlan


class AwsPrivateEndpoint(pulumi.ComponentResource):
    consumer_dns_names: pulumi.Output[list[str]]
    service_name: pulumi.Output[str]
    dns_name: pulumi.Output[str]
    security_group_id: pulumi.Output[str]
    target_group_arn: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        plan: AwsEndpointPlan,
        *,
        vpc_id: pulumi.Input[str],
        vpc_cidr: pulumi.Input[str],
        subnet_ids: pulumi.Input[list[str]],
        kms_key_arn: pulumi.Input[str],
        tags: dict[str, str],
        deregistration_delay: int = 60,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("inferstack:endpoint:AwsPrivateEndpoint", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        logs, logs_policy = self._access_log_bucket(name, kms_key_arn, tags, child)

        self.security_group = aws.ec2.SecurityGroup(
            f"{name}-nlb", vpc_id=vpc_id, description="inferstack: private endpoint load balancer", tags=tags, opts=child
        )
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-nlb-tls",
            security_group_id=self.security_group.id,
            description=f"TLS {plan.listener_port} from inside the VPC (PrivateLink consumers are admitted by the endpoint service)",
            ip_protocol="tcp",
            from_port=plan.listener_port,
            to_port=plan.listener_port,
            cidr_ipv4=vpc_cidr,
            tags=tags,
            opts=child,
        )
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-nlb-to-nodes",
            security_group_id=self.security_group.id,
            description=f"To the serving nodes on {plan.target_port}",
            ip_protocol="tcp",
            from_port=plan.target_port,
            to_port=plan.target_port,
            cidr_ipv4=vpc_cidr,
            tags=tags,
            opts=child,
        )

        nlb = aws.lb.LoadBalancer(
            f"{name}-nlb",
            name=plan.lb_name,
            internal=True,
            load_balancer_type="network",
            subnets=subnet_ids,
            security_groups=[self.security_group.id],
            enable_cross_zone_load_balancing=True,
            enable_deletion_protection=plan.deletion_protection,
            # PrivateLink traffic is admitted by the endpoint service (acceptance, principals).
            enforce_security_group_inbound_rules_on_private_link_traffic="off",
            access_logs=aws.lb.LoadBalancerAccessLogsArgs(bucket=logs.bucket, prefix="nlb", enabled=True),
            tags=tags,
            # Log delivery checks the bucket policy when the load balancer is created.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[logs_policy]),
        )
        group = aws.lb.TargetGroup(
            f"{name}-targets",
            name=plan.lb_name,  # auto-names would overrun the 32-character limit
            port=plan.target_port,
            protocol="TCP",
            vpc_id=vpc_id,
            target_type="instance",
            # The fleet's drain time: long enough for a streamed reply to finish (AwsFleetPlan.readiness).
            deregistration_delay=deregistration_delay,
            health_check=aws.lb.TargetGroupHealthCheckArgs(
                protocol="HTTP", path=plan.health_path, port=str(plan.target_port), healthy_threshold=2,
                unhealthy_threshold=3, interval=15,
            ),
            tags=tags,
            opts=child,
        )
        certificate = plan.certificate_arn
        if certificate is None:
            issued = aws.acm.Certificate(
                f"{name}-cert",
                domain_name=plan.domain_name,
                certificate_authority_arn=plan.private_ca_arn,
                tags=tags,
                opts=child,
            )
            certificate = issued.arn
        aws.lb.Listener(
            f"{name}-tls",
            load_balancer_arn=nlb.arn,
            port=plan.listener_port,
            protocol="TLS",
            ssl_policy=plan.ssl_policy,
            certificate_arn=certificate,
            default_actions=[aws.lb.ListenerDefaultActionArgs(type="forward", target_group_arn=group.arn)],
            tags=tags,
            opts=child,
        )
        service = aws.ec2.VpcEndpointService(
            f"{name}-service",
            acceptance_required=True,
            network_load_balancer_arns=[nlb.arn],
            allowed_principals=list(plan.allowed_principals),
            private_dns_name=plan.private_dns_name,
            tags=tags,
            opts=child,
        )
        consumer_dns = [self._consumer(name, i, consumer, service, tags, child) for i, consumer in enumerate(plan.consumers)]
        self.consumer_dns_names = pulumi.Output.all(*consumer_dns)

        self.service_name = service.service_name
        self.dns_name = nlb.dns_name
        self.security_group_id = self.security_group.id
        self.target_group_arn = group.arn
        self.load_balancer_arn_suffix = nlb.arn_suffix  # the LoadBalancer dimension of AWS/NetworkELB metrics
        self.register_outputs({
            "service_name": self.service_name,
            "dns_name": self.dns_name,
            "security_group_id": self.security_group_id,
            "target_group_arn": self.target_group_arn,
            "consumer_dns_names": self.consumer_dns_names,
        })

    def _access_log_bucket(self, name, kms_key_arn, tags, child):
        bucket = aws.s3.Bucket(f"{name}-access-logs", force_destroy=False, tags=tags, opts=child)
        aws.s3.BucketPublicAccessBlock(
            f"{name}-access-logs", bucket=bucket.id, block_public_acls=True, block_public_policy=True,
            ignore_public_acls=True, restrict_public_buckets=True, opts=child,
        )
        aws.s3.BucketOwnershipControls(
            f"{name}-access-logs", bucket=bucket.id,
            rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"), opts=child,
        )
        aws.s3.BucketVersioning(
            f"{name}-access-logs", bucket=bucket.id,
            versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(status="Enabled"), opts=child,
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-access-logs",
            bucket=bucket.id,
            rules=[aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                apply_server_side_encryption_by_default=aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                    sse_algorithm="aws:kms", kms_master_key_id=kms_key_arn
                ),
                bucket_key_enabled=True,
            )],
            opts=child,
        )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-access-logs",
            bucket=bucket.id,
            rules=[aws.s3.BucketLifecycleConfigurationRuleArgs(
                id="expire-access-logs",
                status="Enabled",
                filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
                expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(days=ACCESS_LOG_EXPIRATION_DAYS),
                noncurrent_version_expiration=aws.s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
                    noncurrent_days=NONCURRENT_EXPIRATION_DAYS
                ),
            )],
            opts=child,
        )
        identity = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self))
        policy = aws.s3.BucketPolicy(
            f"{name}-access-logs",
            bucket=bucket.id,
            policy=pulumi.Output.all(bucket.arn, identity.account_id).apply(
                lambda a: iam.access_log_bucket_policy(a[0], a[1])
            ),
            opts=child,
        )
        return bucket, policy

    def _consumer(self, name, i, consumer, service, tags, child) -> pulumi.Output[str]:
        """An interface endpoint in a consumer VPC; returns the DNS name consumers connect to."""
        found = aws.ec2.get_vpc_output(id=consumer.vpc_id, opts=pulumi.InvokeOutputOptions(parent=self))
        sg = aws.ec2.SecurityGroup(
            f"{name}-consumer-{i}", vpc_id=consumer.vpc_id,
            description="inferstack: interface endpoint to the model, HTTPS from this VPC", tags=tags, opts=child,
        )
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-consumer-{i}-tls", security_group_id=sg.id, description="TLS to the model from this VPC",
            ip_protocol="tcp", from_port=443, to_port=443, cidr_ipv4=found.cidr_block, tags=tags, opts=child,
        )
        endpoint = aws.ec2.VpcEndpoint(
            f"{name}-consumer-{i}",
            vpc_id=consumer.vpc_id,
            service_name=service.service_name,
            vpc_endpoint_type="Interface",
            subnet_ids=list(consumer.subnet_ids),
            security_group_ids=[sg.id],
            private_dns_enabled=False,
            tags=tags,
            opts=child,
        )
        # The spec names this consumer, so its connection is accepted here; any other waits.
        aws.ec2.VpcEndpointConnectionAccepter(
            f"{name}-consumer-{i}", vpc_endpoint_service_id=service.id, vpc_endpoint_id=endpoint.id, opts=child
        )
        return endpoint.dns_entries.apply(lambda entries: entries[0].dns_name if entries else "")
