"""AwsPrivateNetwork: a VPC whose serving nodes reach AWS services without any internet route.

Private subnets only (no internet gateway, no NAT), one per availability zone; gateway and
interface endpoints give the nodes S3, ECR, STS, CloudWatch and Session Manager; the VPC's
default security group is emptied so nothing lands in it by accident; flow logs go to a
KMS-encrypted log group. With an existing VPC, the component only looks it up.

Subnets go only in standard Availability Zones that need no opt-in: DescribeAvailabilityZones
also lists the Local Zones and Wavelength Zones an account opted into, and one of those can sort
first (a Local Zone has no PrivateLink, few GPU types, and its own rules for load balancers).
`zone_ids` are the subnets' AZ IDs, which name the same physical zone in every account (zone
names are shuffled per account): the private endpoint checks its consumers' subnets against them.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from inferstack.planning import iam
from inferstack.planning.aws_fleet import NetworkPlan

# DescribeAvailabilityZones filters (EC2 API reference): Availability Zones proper, which never
# need an opt-in, as opposed to Local and Wavelength Zones ("opted-in" / "not-opted-in").
STANDARD_ZONE_FILTERS = [
    aws.GetAvailabilityZonesFilterArgs(name="opt-in-status", values=["opt-in-not-required"]),
    aws.GetAvailabilityZonesFilterArgs(name="zone-type", values=["availability-zone"]),
]


class AwsPrivateNetwork(pulumi.ComponentResource):
    vpc_id: pulumi.Output[str]
    vpc_cidr: pulumi.Output[str]
    subnet_ids: pulumi.Output[list[str]]
    zone_ids: pulumi.Output[list[str]]
    s3_prefix_list_id: pulumi.Output[str] | None
    # Lists of known length, in subnet order: the private subnets, and the route tables they use,
    # each table once (the link propagates routes into each table, and attaches or places
    # something in each subnet).
    route_table_ids: list[pulumi.Output[str]]
    subnet_id_list: list[pulumi.Output[str]]
    endpoint_security_group_id: pulumi.Output[str] | None  # the interface endpoints' (None: existing VPC)

    def __init__(
        self,
        name: str,
        plan: NetworkPlan,
        region: str,
        tags: dict[str, str],
        kms_key_arn: pulumi.Input[str],
        log_retention_days: int,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("inferstack:network:AwsPrivateNetwork", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.s3_prefix_list_id = None
        self.endpoint_security_group_id = None

        invoke = pulumi.InvokeOutputOptions(parent=self)
        if not plan.creates_vpc:
            assert plan.vpc_id is not None  # the spec requires vpc_id when no VPC is created
            existing = aws.ec2.get_vpc_output(id=plan.vpc_id, opts=invoke)
            self.vpc_id = pulumi.Output.from_input(plan.vpc_id)
            self.vpc_cidr = existing.cidr_block
            self.subnet_ids = pulumi.Output.from_input(list(plan.subnet_ids))
            self.zone_ids = subnet_zone_ids(plan.subnet_ids, invoke)
            # The tables the subnets use (an explicit association, else the VPC's main table), each
            # once: an existing VPC's subnets often share one, and the overflow link adds a route or
            # a propagation per table (CreateRoute of a destination a table already has fails with
            # RouteAlreadyExists). Looked up here, not as outputs, so the list's length is known.
            tables = [
                aws.ec2.get_route_table(subnet_id=s, opts=pulumi.InvokeOptions(parent=self)).route_table_id
                for s in plan.subnet_ids
            ]
            self.route_table_ids = [pulumi.Output.from_input(t) for t in dict.fromkeys(tables)]
            self.subnet_id_list = [pulumi.Output.from_input(s) for s in plan.subnet_ids]
            self.register_outputs(
                {
                    "vpc_id": self.vpc_id,
                    "vpc_cidr": self.vpc_cidr,
                    "subnet_ids": self.subnet_ids,
                    "zone_ids": self.zone_ids,
                }
            )
            return

        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=plan.vpc_cidr,
            enable_dns_support=True,  # interface endpoints' private DNS needs both
            enable_dns_hostnames=True,
            tags={**tags, "Name": name},
            opts=child,
        )
        aws.ec2.DefaultSecurityGroup(f"{name}-default-sg", vpc_id=vpc.id, tags=tags, opts=child)

        zones = aws.get_availability_zones_output(state="available", filters=STANDARD_ZONE_FILTERS, opts=invoke)
        subnets, route_tables = [], []
        for i, cidr in enumerate(plan.subnet_cidrs):
            subnet = aws.ec2.Subnet(
                f"{name}-private-{i}",
                vpc_id=vpc.id,
                cidr_block=cidr,
                availability_zone=zones.names[i],
                map_public_ip_on_launch=False,
                tags={**tags, "Name": f"{name}-private-{i}", "tier": "private"},
                opts=child,
            )
            # A route table per subnet with only the local route: no internet gateway, no NAT.
            table = aws.ec2.RouteTable(
                f"{name}-private-{i}", vpc_id=vpc.id, tags={**tags, "Name": f"{name}-private-{i}"}, opts=child
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-private-{i}", subnet_id=subnet.id, route_table_id=table.id, opts=child
            )
            subnets.append(subnet)
            route_tables.append(table)

        s3 = aws.ec2.VpcEndpoint(
            f"{name}-s3",
            vpc_id=vpc.id,
            service_name=f"com.amazonaws.{region}.s3",
            vpc_endpoint_type="Gateway",
            route_table_ids=[t.id for t in route_tables],
            tags={**tags, "Name": f"{name}-s3"},
            opts=child,
        )
        endpoint_sg = aws.ec2.SecurityGroup(
            f"{name}-endpoints",
            vpc_id=vpc.id,
            description="inferstack: interface endpoints, HTTPS from inside the VPC only",
            tags=tags,
            opts=child,
        )
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-endpoints-https",
            security_group_id=endpoint_sg.id,
            description="HTTPS to AWS service endpoints from inside the VPC",
            ip_protocol="tcp",
            from_port=443,
            to_port=443,
            cidr_ipv4=vpc.cidr_block,
            tags=tags,
            opts=child,
        )
        for service in plan.interface_endpoints:
            aws.ec2.VpcEndpoint(
                f"{name}-{service.replace('.', '-')}",
                vpc_id=vpc.id,
                service_name=f"com.amazonaws.{region}.{service}",
                vpc_endpoint_type="Interface",
                private_dns_enabled=True,
                subnet_ids=[s.id for s in subnets],
                security_group_ids=[endpoint_sg.id],
                tags={**tags, "Name": f"{name}-{service}"},
                opts=child,
            )

        self._flow_logs(name, vpc, region, tags, kms_key_arn, log_retention_days, invoke, child)

        self.vpc_id = vpc.id
        self.vpc_cidr = vpc.cidr_block
        self.subnet_ids = pulumi.Output.all(*[s.id for s in subnets])
        self.zone_ids = zones.zone_ids.apply(lambda ids: list(ids[: len(plan.subnet_cidrs)]))
        self.s3_prefix_list_id = s3.prefix_list_id
        self.route_table_ids = [t.id for t in route_tables]
        self.subnet_id_list = [s.id for s in subnets]
        self.endpoint_security_group_id = endpoint_sg.id
        self.register_outputs(
            {
                "vpc_id": self.vpc_id,
                "vpc_cidr": self.vpc_cidr,
                "subnet_ids": self.subnet_ids,
                "zone_ids": self.zone_ids,
                "s3_prefix_list_id": self.s3_prefix_list_id,
            }
        )

    def _flow_logs(self, name, vpc, region, tags, kms_key_arn, retention_days, invoke, child) -> None:
        """All traffic of the VPC to CloudWatch Logs, encrypted with the stack's key."""
        group = aws.cloudwatch.LogGroup(
            f"{name}-flow-logs",
            retention_in_days=retention_days,
            kms_key_id=kms_key_arn,
            tags=tags,
            opts=child,
        )
        role = aws.iam.Role(
            f"{name}-flow-logs",
            description="inferstack: VPC flow logs delivery",
            # Only this account's flow logs may use the role (the confused-deputy conditions).
            assume_role_policy=pulumi.Output.all(
                aws.get_partition_output(opts=invoke).partition, aws.get_caller_identity_output(opts=invoke).account_id
            ).apply(lambda a: iam.flow_logs_trust(a[0], a[1], region)),
            tags=tags,
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-flow-logs", role=role.id, policy=group.arn.apply(iam.log_delivery_policy), opts=child
        )
        aws.ec2.FlowLog(
            f"{name}-flow-logs",
            vpc_id=vpc.id,
            traffic_type="ALL",
            log_destination_type="cloud-watch-logs",
            log_destination=group.arn,
            iam_role_arn=role.arn,
            tags=tags,
            opts=child,
        )


def subnet_zone_ids(subnet_ids, invoke: pulumi.InvokeOutputOptions) -> pulumi.Output[list[str]]:
    """The AZ IDs of existing subnets, in the order given."""
    return pulumi.Output.all(*[aws.ec2.get_subnet_output(id=s, opts=invoke).availability_zone_id for s in subnet_ids])
