"""AwsPrivateEndpoint: the only way into an AWS fleet, over PrivateLink.

An internal Network Load Balancer in the fleet's private subnets (cross-zone, access logs to an
encrypted, private, versioned bucket with a lifecycle, deletion protection in production) with a
TLS 1.2+ listener and a certificate from the spec or issued from the spec's ACM private CA; a
target group on the serving port health-checking the engine; the fleet's group attached to it;
an endpoint service that requires acceptance and names its principals; and interface endpoints
in the consumer VPCs the spec names, accepted because the spec names them.

The certificate's name resolves in each consumer VPC through a private hosted zone of that name
with an alias to the VPC's interface endpoint. The endpoint service gets no private DNS name:
that needs a TXT record in the domain's public zone for verification, which the spec does not
own, and an unverified name serves no one. Consumers outside the spec get the service name and
the domain as outputs and make their own zone (or verify the domain themselves).

The load balancer and target group are auto-named (see `load_balancer_name`): a fixed name
would make every replacing change fail, since the new resource is created before the old one is
deleted and ELB names are unique per account and region.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from inferstack.components.aws_network import subnet_zone_ids
from inferstack.planning import iam
from inferstack.planning.endpoint import (
    ACCESS_LOG_EXPIRATION_DAYS,
    INCOMPLETE_UPLOAD_DAYS,
    NONCURRENT_EXPIRATION_DAYS,
    AwsEndpointPlan,
    check_consumer_zones,
)


class AwsPrivateEndpoint(pulumi.ComponentResource):
    consumer_dns_names: pulumi.Output[list[str]]
    consumer_zone_ids: pulumi.Output[list[str]]
    domain_name: str
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
        zone_ids: pulumi.Input[list[str]],
        kms_key_arn: pulumi.Input[str],
        tags: dict[str, str],
        deregistration_delay: int = 60,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("inferstack:endpoint:AwsPrivateEndpoint", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        logs, logs_policy = self._access_log_bucket(name, kms_key_arn, tags, child)

        self.security_group = aws.ec2.SecurityGroup(
            f"{name}-nlb",
            vpc_id=vpc_id,
            description="inferstack: private endpoint load balancer",
            tags=tags,
            opts=child,
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

        # Auto-named from a stem of at most 24 characters: replace-safe, and within ELB's 32.
        nlb = aws.lb.LoadBalancer(
            plan.lb_name,
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
            plan.lb_name,
            port=plan.target_port,
            protocol="TCP",
            vpc_id=vpc_id,
            target_type="instance",
            # The fleet's drain time: long enough for a streamed reply to finish (AwsFleetPlan.readiness).
            deregistration_delay=deregistration_delay,
            health_check=aws.lb.TargetGroupHealthCheckArgs(
                protocol="HTTP",
                path=plan.health_path,
                port=str(plan.target_port),
                healthy_threshold=2,
                unhealthy_threshold=3,
                interval=15,
            ),
            tags=tags,
            opts=child,
        )
        certificate: pulumi.Input[str] | None = plan.certificate_arn
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
            tags=tags,
            opts=child,
        )
        consumers = [
            self._consumer(name, i, consumer, plan.domain_name, service, zone_ids, tags, child)
            for i, consumer in enumerate(plan.consumers)
        ]
        self.consumer_dns_names = pulumi.Output.all(*[dns for dns, _ in consumers])
        self.consumer_zone_ids = pulumi.Output.all(*[zone for _, zone in consumers])
        self.domain_name = plan.domain_name

        self.service_name = service.service_name
        self.dns_name = nlb.dns_name
        self.zone_id = nlb.zone_id  # the load balancer's own hosted zone: an alias record's target
        self.listener_port = plan.listener_port
        self.security_group_id = self.security_group.id
        self.target_group_arn = group.arn
        self.load_balancer_arn_suffix = nlb.arn_suffix  # the LoadBalancer dimension of AWS/NetworkELB metrics
        self.register_outputs(
            {
                "service_name": self.service_name,
                "dns_name": self.dns_name,
                "security_group_id": self.security_group_id,
                "target_group_arn": self.target_group_arn,
                "consumer_dns_names": self.consumer_dns_names,
                "consumer_zone_ids": self.consumer_zone_ids,
                "domain_name": self.domain_name,
            }
        )

    def _access_log_bucket(self, name, kms_key_arn, tags, child):
        bucket = aws.s3.Bucket(f"{name}-access-logs", force_destroy=False, tags=tags, opts=child)
        aws.s3.BucketPublicAccessBlock(
            f"{name}-access-logs",
            bucket=bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child,
        )
        aws.s3.BucketOwnershipControls(
            f"{name}-access-logs",
            bucket=bucket.id,
            rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),
            opts=child,
        )
        aws.s3.BucketVersioning(
            f"{name}-access-logs",
            bucket=bucket.id,
            versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(status="Enabled"),
            opts=child,
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-access-logs",
            bucket=bucket.id,
            rules=[
                aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                    apply_server_side_encryption_by_default=aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                        sse_algorithm="aws:kms", kms_master_key_id=kms_key_arn
                    ),
                    bucket_key_enabled=True,
                )
            ],
            opts=child,
        )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-access-logs",
            bucket=bucket.id,
            rules=[
                aws.s3.BucketLifecycleConfigurationRuleArgs(
                    id="expire-access-logs",
                    status="Enabled",
                    filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
                    expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(days=ACCESS_LOG_EXPIRATION_DAYS),
                    noncurrent_version_expiration=aws.s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
                        noncurrent_days=NONCURRENT_EXPIRATION_DAYS
                    ),
                    # Parts of an upload that never completed are stored (and billed) until aborted.
                    abort_incomplete_multipart_upload=aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                        days_after_initiation=INCOMPLETE_UPLOAD_DAYS
                    ),
                )
            ],
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

    def _consumer(self, name, i, consumer, domain, service, fleet_zone_ids, tags, child):
        """An interface endpoint in a consumer VPC, and the private hosted zone that makes the
        certificate's name resolve there; returns (the endpoint's own DNS name, the zone id)."""
        invoke = pulumi.InvokeOutputOptions(parent=self)
        found = aws.ec2.get_vpc_output(id=consumer.vpc_id, opts=invoke)
        # An interface endpoint works only in zones where the service's load balancer has a
        # subnet; AZ IDs, not names, because names differ between accounts.
        consumer_zones = subnet_zone_ids(consumer.subnet_ids, invoke)
        subnet_ids = pulumi.Output.all(consumer_zones, fleet_zone_ids).apply(
            lambda z: check_consumer_zones(consumer.vpc_id, consumer.subnet_ids, z[0], z[1])
        )
        sg = aws.ec2.SecurityGroup(
            f"{name}-consumer-{i}",
            vpc_id=consumer.vpc_id,
            description="inferstack: interface endpoint to the model, HTTPS from this VPC",
            tags=tags,
            opts=child,
        )
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-consumer-{i}-tls",
            security_group_id=sg.id,
            description="TLS to the model from this VPC",
            ip_protocol="tcp",
            from_port=443,
            to_port=443,
            cidr_ipv4=found.cidr_block,
            tags=tags,
            opts=child,
        )
        endpoint = aws.ec2.VpcEndpoint(
            f"{name}-consumer-{i}",
            vpc_id=consumer.vpc_id,
            service_name=service.service_name,
            vpc_endpoint_type="Interface",
            subnet_ids=subnet_ids,
            security_group_ids=[sg.id],
            private_dns_enabled=False,
            tags=tags,
            opts=child,
        )
        # The spec names this consumer, so its connection is accepted here; any other waits.
        aws.ec2.VpcEndpointConnectionAccepter(
            f"{name}-consumer-{i}", vpc_endpoint_service_id=service.id, vpc_endpoint_id=endpoint.id, opts=child
        )
        # The certificate's name, private to this VPC (which needs DNS support and hostnames on),
        # an alias of the endpoint's regional name: no TXT verification, no public record.
        zone = aws.route53.Zone(
            f"{name}-consumer-{i}",
            name=domain,
            comment="inferstack: the model endpoint name inside this VPC",
            vpcs=[aws.route53.ZoneVpcArgs(vpc_id=consumer.vpc_id)],
            tags=tags,
            opts=child,
        )
        regional = endpoint.dns_entries.apply(regional_entry)
        aws.route53.Record(
            f"{name}-consumer-{i}",
            zone_id=zone.zone_id,
            name=domain,
            type="A",
            aliases=[
                aws.route53.RecordAliasArgs(
                    name=regional.dns_name,
                    zone_id=regional.hosted_zone_id,
                    evaluate_target_health=True,
                )
            ],
            opts=child,
        )
        return regional.dns_name, zone.zone_id


def regional_entry(entries):
    """The endpoint's regional DNS entry: the zonal ones carry the zone's name in theirs
    (vpce-…-eu-central-1a.vpce-svc-…), so the regional one is the shortest."""
    return min(entries, key=lambda e: len(e.dns_name))
