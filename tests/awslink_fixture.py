"""A hand-built AWS overflow link plan, and the link component run over it under the mocks."""

from __future__ import annotations

from dataclasses import replace

import pulumi
import pulumi_aws as aws

from inferstack.components.overflow_aws_link import AwsOverflowLink, link_outputs
from inferstack.offline.engine import Plan, record
from inferstack.planning.overflow.aws_link import AwsLinkPlan, plan_connections

REGION = "eu-central-1"
VPC = "vpc-0a1b2c3d4e5f60718"
SUBNETS = ("subnet-0a1b2c3d4e5f60711", "subnet-0a1b2c3d4e5f60722")
ROUTE_TABLES = ("rtb-0a1b2c3d4e5f60711", "rtb-0a1b2c3d4e5f60722")
KMS = f"arn:aws:kms:{REGION}:123456789012:key/0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d"
NLB_SG = "sg-0a1b2c3d4e5f60733"
API_SG = "sg-0a1b2c3d4e5f60744"
NLB_DNS = "assistant-dev-chat-0a1b2c3.elb.eu-central-1.amazonaws.com"
NLB_ZONE = "Z3F0SRJ5LGBH90"
SITE_IPS = ("198.51.100.10", "198.51.100.11")
INSIDE = ("169.254.10.0/30", "169.254.10.4/30", "169.254.10.8/30", "169.254.10.12/30")
ONPREM = ("10.20.0.0/16", "10.21.0.0/16")
TGW = "tgw-0a1b2c3d4e5f60718"
TAGS = {"stack": "dev", "team": "ml", "workload": "overflow-link", "managed-by": "inferstack"}


def link_plan(devices: int = 2, **changes) -> AwsLinkPlan:
    plan = AwsLinkPlan(
        target="chat",
        region=REGION,
        name="assistant-dev-chat-vpn",
        tags=TAGS,
        site_asn=65010,
        amazon_side_asn=64512,
        onprem_cidrs=ONPREM,
        connections=plan_connections(SITE_IPS[:devices], INSIDE[: 2 * devices]),
        transit_gateway_id=None,
        listener_port=443,
        domain_name="llm.acme.internal",
        log_group_name="/inferstack/assistant/dev/chat/vpn",
        log_retention_days=90,
        resolver_name="assistant-dev-chat-inbound",
        preshared_keys_config_key=None,
    )
    return replace(plan, **changes)


def record_link(
    plan: AwsLinkPlan,
    secrets: dict[str, str] | None = None,
    subnets: tuple[str, ...] = SUBNETS,
    api_sg=API_SG,
    route_tables: tuple[str, ...] | None = None,
) -> Plan:
    """The component under the mocks, with the target's provider, its outputs exported.
    `route_tables`: the subnets' tables (default: one of ROUTE_TABLES per subnet)."""

    def program() -> None:
        provider = aws.Provider(f"aws-{REGION}", region=REGION)
        link = AwsOverflowLink(
            "chat-link",
            plan,
            vpc_id=VPC,
            subnet_ids=list(subnets),
            route_table_ids=list(route_tables if route_tables is not None else ROUTE_TABLES[: len(subnets)]),
            kms_key_arn=KMS,
            load_balancer_security_group_id=NLB_SG,
            load_balancer_dns_name=NLB_DNS,
            load_balancer_zone_id=NLB_ZONE,
            api_endpoints_security_group_id=api_sg,
            opts=pulumi.ResourceOptions(provider=provider),
        )
        for key, value in link_outputs(link).items():
            pulumi.export(key, value)

    monitor = record(program, "dev", secrets or {})
    resources = sorted((r.to_json() for r in monitor.registrations), key=lambda r: r["urn"])
    return Plan(stack="dev", spec_path="test", spec_sha256="0" * 64, resources=resources, outputs=monitor.stack_outputs)
