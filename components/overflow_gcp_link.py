"""GcpOverflowLink: the site reaches one GCP burst target's private endpoint over HA VPN.

In the target's project, network and region (the provider passed in `opts` is the target's):
an HA VPN gateway, an external VPN gateway for the site's devices, a Cloud Router that advertises
only what the site must reach, the tunnels (IKEv2, a pre-shared key each, generated in the stack
or read from a secret config key, always a Pulumi secret), a router interface and BGP peer per
tunnel, and a regional network firewall policy on the endpoint's forwarding rule.

Why the firewall policy and not a VPC firewall rule: the endpoint is an internal Application
Load Balancer, whose managed Envoy proxies terminate the site's connections and open new ones to
the backends from the proxy-only subnet ("Proxy-only subnets for Envoy-based load balancers").
The backends never see an on-prem address, so a VPC rule naming the site's ranges would match
nothing there; the endpoint's own rule already admits the proxies. The site's traffic meets the
proxies, and rules for those live in a network firewall policy with target type
INTERNAL_MANAGED_LB; with no such rule, ingress to the proxies is allowed, so restricting a
forwarding rule takes an allow for the wanted sources and a lower-priority deny for 0.0.0.0/0
("Use regional network firewall policies to protect internal Application Load Balancers").
Everything else of the network stays closed to the site by its deny-all VPC rule (gcp_network).
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pulumi
import pulumi_gcp as gcp
import pulumi_random as random

from inferstack.planning.overflow.gcp_link import (
    ADVERTISED_ROUTE_PRIORITY,
    ALLOW_PSC_PRIORITY,
    ALLOW_SITE_PRIORITY,
    DENY_REST_PRIORITY,
    GcpLinkPlan,
)

CONFIG_NAMESPACE = "inferstack"


class PresharedKeysError(ValueError):
    """The secret config value is not a list of one key per tunnel."""


def parse_preshared_keys(value: str, tunnels: int, key: str) -> list[str]:
    """The config key's value: a JSON list of one non-empty key per tunnel, in tunnel order.
    The message names the key and the count, never the value."""
    try:
        keys = json.loads(value)
    except ValueError:
        keys = None
    if not isinstance(keys, list) or len(keys) != tunnels or not all(isinstance(k, str) and k for k in keys):
        raise PresharedKeysError(
            f"stack config {CONFIG_NAMESPACE}:{key} must be a secret JSON list of {tunnels} non-empty pre-shared "
            f"keys, one per tunnel: pulumi config set --secret {CONFIG_NAMESPACE}:{key} '[\"...\", ...]'"
        )
    return keys


class GcpOverflowLink(pulumi.ComponentResource):
    ha_vpn_interfaces: pulumi.Output[list[str]]
    router_asn: pulumi.Output[int]
    tunnels: pulumi.Output[list[dict]]
    advertised_ranges: pulumi.Output[list[str]]

    def __init__(
        self,
        name: str,
        plan: GcpLinkPlan,
        *,
        network: pulumi.Input[str],
        subnet_cidr: pulumi.Input[str],
        forwarding_rule: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ):
        """`network`: the target network's self link; `subnet_cidr`: its private subnet's range,
        where the endpoint's address lives; `forwarding_rule`: the endpoint's forwarding rule
        (self link or id). All three come from the target's components at run time."""
        super().__init__("inferstack:overflow:GcpOverflowLink", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        gateway = gcp.compute.HaVpnGateway(
            f"{name}-gateway",
            network=network,
            stack_type="IPV4_ONLY",
            description=f"inferstack: HA VPN from the site to {plan.target}",
            labels=plan.labels,
            project=plan.project,
            region=plan.region,
            opts=child,
        )
        # A global resource by the API's design (externalVpnGateways has no region); it only
        # records the site's public addresses. Everything that carries traffic is regional.
        site = gcp.compute.ExternalVpnGateway(
            f"{name}-site",
            project=plan.project,
            redundancy_type=plan.redundancy_type,
            interfaces=[
                gcp.compute.ExternalVpnGatewayInterfaceArgs(id=i, ip_address=ip)
                for i, ip in enumerate(plan.site_public_ips)
            ],
            description="inferstack: the site's VPN devices",
            labels=plan.labels,
            opts=child,
        )
        # Advertised to the site: the target's private subnet, where the endpoint's forwarding rule
        # takes its address, and restricted.googleapis.com for the publisher. Not the proxy-only or
        # PSC NAT subnets: the site never addresses the proxies, their replies come from the
        # forwarding rule's address. CUSTOM mode with no group keeps every other subnet unannounced.
        advertised = pulumi.Output.all(subnet_cidr, *plan.extra_advertised).apply(list)
        ranges = [(subnet_cidr, f"{plan.target} private subnet")]
        ranges += [(r, "restricted.googleapis.com") for r in plan.extra_advertised]
        router = gcp.compute.Router(
            f"{name}-router",
            network=network,
            description=f"inferstack: BGP with the site for {plan.target}",
            bgp=gcp.compute.RouterBgpArgs(
                asn=plan.router_asn,
                advertise_mode="CUSTOM",
                advertised_ip_ranges=[
                    gcp.compute.RouterBgpAdvertisedIpRangeArgs(range=r, description=why) for r, why in ranges
                ],
            ),
            project=plan.project,
            region=plan.region,
            opts=child,
        )
        secrets = self._preshared_keys(name, plan)
        for tunnel, secret in zip(plan.tunnels, secrets, strict=True):
            vpn = gcp.compute.VPNTunnel(
                f"{name}-tunnel-{tunnel.index}",
                vpn_gateway=gateway.id,
                vpn_gateway_interface=tunnel.ha_interface,
                peer_external_gateway=site.id,
                peer_external_gateway_interface=tunnel.site_interface,
                shared_secret=secret,
                router=router.id,
                ike_version=plan.ike_version,
                description=f"inferstack: HA VPN interface {tunnel.ha_interface} to site device {tunnel.site_interface}",
                labels=plan.labels,
                opts=child,
                project=plan.project,
                region=plan.region,
            )
            interface = gcp.compute.RouterInterface(
                f"{name}-bgp-{tunnel.index}",
                router=router.name,
                ip_range=f"{tunnel.cloud_router_ip}/30",
                vpn_tunnel=vpn.name,
                opts=child,
                project=plan.project,
                region=plan.region,
            )
            gcp.compute.RouterPeer(
                f"{name}-peer-{tunnel.index}",
                router=router.name,
                interface=interface.name,
                ip_address=tunnel.cloud_router_ip,
                peer_ip_address=tunnel.site_ip,
                peer_asn=plan.site_asn,
                advertised_route_priority=ADVERTISED_ROUTE_PRIORITY,
                opts=child,
                project=plan.project,
                region=plan.region,
            )
        self._firewall(name, plan, network, forwarding_rule, child)

        self.ha_vpn_interfaces = gateway.vpn_interfaces.apply(
            lambda interfaces: [i.ip_address for i in sorted(interfaces or [], key=lambda i: i.id or 0) if i.ip_address]
        )
        self.router_asn = pulumi.Output.from_input(plan.router_asn)
        self.tunnels = self.ha_vpn_interfaces.apply(lambda ips: site_tunnels(plan, ips))
        self.advertised_ranges = advertised
        self.register_outputs(
            {
                "ha_vpn_interfaces": self.ha_vpn_interfaces,
                "router_asn": self.router_asn,
                "tunnels": self.tunnels,
                "advertised_ranges": self.advertised_ranges,
            }
        )

    def _preshared_keys(self, name: str, plan: GcpLinkPlan) -> list[pulumi.Output[str]]:
        """One key per tunnel, always a Pulumi secret: from the spec's secret config key, else
        generated here (pulumi-random's RandomPassword keeps `result` secret in the state)."""
        count = len(plan.tunnels)
        key = plan.preshared_keys_config_key
        if key is not None:
            value = pulumi.Config(CONFIG_NAMESPACE).require_secret(key)
            keys = value.apply(lambda v: parse_preshared_keys(v, count, key))
            return [pulumi.Output.secret(keys.apply(_nth(i))) for i in range(count)]
        return [
            pulumi.Output.secret(
                random.RandomPassword(
                    f"{name}-psk-{i}",
                    length=plan.psk_length,
                    special=False,
                    opts=pulumi.ResourceOptions(parent=self),
                ).result
            )
            for i in range(count)
        ]

    def _firewall(self, name, plan: GcpLinkPlan, network, forwarding_rule, child) -> None:
        policy = gcp.compute.RegionNetworkFirewallPolicy(
            f"{name}-policy",
            description=f"inferstack: the site reaches only {plan.target}'s endpoint",
            project=plan.project,
            region=plan.region,
            opts=child,
        )
        # One regional network firewall policy per network and region: an existing network that
        # already has one refuses this association (the plan cannot see it; the API says so).
        gcp.compute.RegionNetworkFirewallPolicyAssociation(
            f"{name}-policy",
            attachment_target=network,
            firewall_policy=policy.id,
            project=plan.project,
            region=plan.region,
            opts=child,
        )
        port = [str(plan.listener_port)]
        rules = (
            ("site", ALLOW_SITE_PRIORITY, "allow", list(plan.onprem_cidrs), "tcp", port, "the site's networks"),
            ("psc", ALLOW_PSC_PRIORITY, "allow", [plan.psc_cidr], "tcp", port, "Private Service Connect consumers"),
            ("rest", DENY_REST_PRIORITY, "deny", ["0.0.0.0/0"], "all", None, "every other source"),
        )
        for suffix, priority, action, sources, protocol, ports, who in rules:
            gcp.compute.RegionNetworkFirewallPolicyRule(
                f"{name}-{suffix}",
                firewall_policy=policy.name,
                priority=priority,
                action=action,
                direction="INGRESS",
                description=f"inferstack: {action} {who} to the endpoint",
                target_type="INTERNAL_MANAGED_LB",
                target_forwarding_rules=[forwarding_rule],
                match=gcp.compute.RegionNetworkFirewallPolicyRuleMatchArgs(
                    src_ip_ranges=sources,
                    layer4_configs=[
                        gcp.compute.RegionNetworkFirewallPolicyRuleMatchLayer4ConfigArgs(
                            ip_protocol=protocol, ports=ports
                        )
                    ],
                ),
                enable_logging=True,
                opts=child,
                project=plan.project,
                region=plan.region,
            )


def _nth(i: int) -> Callable[[list[str]], str]:
    return lambda keys: keys[i]


def site_tunnels(plan: GcpLinkPlan, ha_ips: list[str]) -> list[dict]:
    """What the site's network team configures per tunnel: which of its devices, the Google end's
    public address, the BGP addresses and ASNs. Never the pre-shared key."""
    return [
        {
            "tunnel": t.index,
            "site_device": t.site_interface,
            "site_public_ip": plan.site_public_ips[t.site_interface],
            "google_interface": t.ha_interface,
            "google_public_ip": ha_ips[t.ha_interface] if t.ha_interface < len(ha_ips) else None,
            "inside_cidr": t.inside_cidr,
            "site_bgp_ip": t.site_ip,
            "google_bgp_ip": t.cloud_router_ip,
            "site_asn": plan.site_asn,
            "google_asn": plan.router_asn,
            "ike_version": plan.ike_version,
        }
        for t in plan.tunnels
    ]


def link_outputs(link: GcpOverflowLink) -> dict[str, pulumi.Input]:
    """The link as stack outputs for the site's network team (no secret among them)."""
    return {
        "gcp_vpn_interfaces": link.ha_vpn_interfaces,
        "gcp_router_asn": link.router_asn,
        "gcp_vpn_tunnels": link.tunnels,
        "gcp_advertised_ranges": link.advertised_ranges,
    }
