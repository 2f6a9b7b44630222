"""A hand-built GCP overflow link plan, and the link component run over it under the mocks."""

from __future__ import annotations

from dataclasses import replace

import pulumi
import pulumi_gcp as gcp

from inferstack.components.overflow_gcp_link import GcpOverflowLink, link_outputs
from inferstack.offline.engine import Plan, record
from inferstack.planning.overflow.gcp_link import GcpLinkPlan, plan_tunnels

PROJECT = "acme-ml"
REGION = "europe-west4"
NETWORK = f"https://www.googleapis.com/compute/v1/projects/{PROJECT}/global/networks/assistant-dev-chat"
SUBNET = "10.80.0.0/20"
FORWARDING_RULE = f"projects/{PROJECT}/regions/{REGION}/forwardingRules/assistant-dev-chat-ilb"
SITE_IPS = ("84.17.40.10", "84.17.40.20")
INSIDE = ("169.254.10.0/30", "169.254.11.0/30", "169.254.12.0/30", "169.254.13.0/30")
LABELS = {"stack": "dev", "team": "ml", "workload": "overflow-link", "managed-by": "inferstack"}


def link_plan(devices: int = 1, tunnels: int = 2, **changes) -> GcpLinkPlan:
    plan = GcpLinkPlan(
        target="chat",
        project=PROJECT,
        region=REGION,
        name="assistant-dev-chat-vpn",
        labels=LABELS,
        site_public_ips=SITE_IPS[:devices],
        site_asn=65010,
        router_asn=64514,
        onprem_cidrs=("10.20.0.0/16", "10.21.0.0/16"),
        tunnels=plan_tunnels(devices, INSIDE[:tunnels]),
        listener_port=443,
        psc_cidr="10.80.18.0/24",
        preshared_keys_config_key=None,
    )
    return replace(plan, **changes)


def record_link(plan: GcpLinkPlan, secrets: dict[str, str] | None = None) -> Plan:
    """The component under the mocks, with the target's provider, its outputs exported."""

    def program() -> None:
        provider = gcp.Provider("gcp-acme-ml-europe-west4", project=PROJECT, region=REGION)
        link = GcpOverflowLink(
            "chat-link",
            plan,
            network=NETWORK,
            subnet_cidr=SUBNET,
            forwarding_rule=FORWARDING_RULE,
            opts=pulumi.ResourceOptions(provider=provider),
        )
        for key, value in link_outputs(link).items():
            pulumi.export(key, value)

    monitor = record(program, "dev", secrets or {})
    resources = sorted((r.to_json() for r in monitor.registrations), key=lambda r: r["urn"])
    return Plan(stack="dev", spec_path="test", spec_sha256="0" * 64, resources=resources, outputs=monitor.stack_outputs)
