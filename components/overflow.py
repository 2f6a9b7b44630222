"""The hybrid overflow's cloud side, joined to the burst targets once they exist: for each burst
target, the site-to-site link of its cloud and the identity the publisher writes its wake metric
as; then the identity ConfigMap on the primary's cluster. (The gateway runs on the primary's
cluster and is part of the primary's plan: planning.onprem.plan.)"""

from __future__ import annotations

import pulumi

from inferstack.components.overflow_aws_link import AwsOverflowLink
from inferstack.components.overflow_aws_link import link_outputs as aws_link_outputs
from inferstack.components.overflow_gcp_link import GcpOverflowLink, link_outputs
from inferstack.components.overflow_identity import (
    AwsPublisherIdentity,
    GcpPublisherIdentity,
    publisher_identity_config_map,
)
from inferstack.planning.overflow.aws_link import plan_aws_link
from inferstack.planning.overflow.gcp_link import plan_gcp_link
from inferstack.planning.overflow.identity import plan_identities
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
    outputs |= _identities(spec, stack, ctx)
    return outputs


def _identities(spec: DeploymentSpec, stack: str, ctx) -> dict[str, pulumi.Input]:
    """The publisher's identity in each burst target's cloud, then identity.json beside the gateway
    (after the primary's objects: its namespace is the gateway's)."""
    plan = plan_identities(spec, stack)
    if plan is None:
        return {}
    documents: dict[str, dict[str, pulumi.Output[dict]]] = {"aws": {}, "gcp": {}}
    for a in plan.aws:
        made = AwsPublisherIdentity(f"{a.target}-publisher", a, opts=pulumi.ResourceOptions(provider=ctx.aws(a.region)))
        documents["aws"][a.target] = made.document
    for g in plan.gcp:
        target = spec.targets[g.target]
        made_gcp = GcpPublisherIdentity(
            f"{g.target}-publisher",
            g,
            opts=pulumi.ResourceOptions(provider=ctx.gcp(g.project, target.region)),
        )
        documents["gcp"][g.target] = made_gcp.document
    primary = ctx.deployed[spec.overflow.primary]  # type: ignore[union-attr]
    config_map = publisher_identity_config_map(
        "overflow-publisher-identity",
        plan,
        documents,
        opts=pulumi.ResourceOptions(provider=primary.k8s_provider, depends_on=[primary]),
    )
    return {
        **{f"{t}.publisher_role_arn": d.apply(lambda v: v["roleArn"]) for t, d in documents["aws"].items()},
        **{
            f"{t}.publisher_audience": d.apply(lambda v: v["credentialConfig"]["audience"])
            for t, d in documents["gcp"].items()
        },
        "publisher_identity_config_map": config_map.metadata.apply(lambda m: f"{m.namespace}/{m.name}"),
    }


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
