"""The hybrid overflow's cloud side, joined to the burst targets once they exist: for each burst
target, the site-to-site link of its cloud. (The gateway runs on the primary's cluster and is part
of the primary's plan: planning.onprem.plan.)"""

from __future__ import annotations

import pulumi

from inferstack.components.overflow_gcp_link import GcpOverflowLink, link_outputs
from inferstack.planning.overflow.gcp_link import plan_gcp_link
from inferstack.spec.models import DeploymentSpec


def deploy_overflow(spec: DeploymentSpec, stack: str, ctx) -> dict[str, pulumi.Input]:
    assert spec.overflow is not None
    outputs: dict[str, pulumi.Input] = {}
    for name in spec.overflow.burst:
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
