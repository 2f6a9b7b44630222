"""The hybrid overflow's cloud side, joined to the burst targets once they exist: for each burst
target, the site-to-site link of its cloud. (The gateway runs on the primary's cluster and is part
of the primary's plan: planning.onprem.plan.)"""

from __future__ import annotations

import pulumi

from inferstack.components.overflow_aws_link import AwsOverflowLink
from inferstack.components.overflow_aws_link import link_outputs as aws_link_outputs
from inferstack.components.overflow_gcp_link import GcpOverflowLink, link_outputs
from inferstack.planning.overflow.aws_link import plan_aws_link
from inferstack.planning.overflow.gcp_link import plan_gcp_link
from inferstack.spec.models import DeploymentSpec


def deploy_overflow(spec: DeploymentSpec, stack: str, ctx) -> dict[str, pulumi.Input]:
    assert spec.overflow is not None
    outputs: dict[str, pulumi.Input] = {}
    for name in spec.overflow.burst:
        aws_plan = plan_aws_link(spec, stack, name)
        if aws_plan is not None:
            outputs |= _aws_link(name, aws_plan, ctx)
        gcp_plan = plan_gcp_link(spec, stack, name)
        if gcp_plan is not None:
            target = ctx.deployed[name]
            assert target.endpoint is not None  # the checks require the endpoint section
            link = GcpOverflowLink(
                f"{name}-link",
                gcp_plan,
                network=target.network.network_self_link,
                subnet_cidr=target.network.subnet_cidr,
                forwarding_rule=target.endpoint.forwarding_rule,
                opts=pulumi.ResourceOptions(provider=ctx.gcp(gcp_plan.project, gcp_plan.region)),
            )
            outputs |= {f"{name}.{key}": value for key, value in link_outputs(link).items()}
    return outputs


def _aws_link(name: str, plan, ctx) -> dict[str, pulumi.Input]:
    """The AWS burst fleet's link, on its VPC, private subnets and route tables, to its endpoint."""
    fleet = ctx.deployed[name]
    assert fleet.endpoint is not None  # the checks require the endpoint section
    network = fleet.network
    link = AwsOverflowLink(
        f"{name}-link",
        plan,
        vpc_id=network.vpc_id,
        subnet_ids=network.subnet_id_list,
        route_table_ids=network.route_table_ids,
        kms_key_arn=fleet.kms_key_arn,
        load_balancer_security_group_id=fleet.endpoint.security_group_id,
        load_balancer_dns_name=fleet.endpoint.dns_name,
        load_balancer_zone_id=fleet.endpoint.zone_id,
        api_endpoints_security_group_id=network.endpoint_security_group_id,
        opts=pulumi.ResourceOptions(provider=ctx.aws(plan.region)),
    )
    return {f"{name}.{key}": value for key, value in aws_link_outputs(link).items()}
