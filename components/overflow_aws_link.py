"""AwsOverflowLink: the site reaches one AWS burst target's private endpoint over Site-to-Site VPN.

In the fleet's region and VPC (the provider passed in `opts` is the target's): a customer gateway
per site device; a virtual private gateway on the VPC with route propagation into each private
route table, or the spec's transit gateway with an attachment of the private subnets and routes to
the site's networks through it; a VPN connection per device (two tunnels, BGP, IKEv2 and the
ciphers of planning.overflow.aws_link only, a pre-shared key each, always a Pulumi secret, tunnel
logs to a log group encrypted with the fleet's key); then what the site may reach, and nothing else:

- the endpoint's load balancer on its TLS listener (443), from the site's networks: its security
  group gains that rule, and a private hosted zone of the endpoint's name in the fleet's VPC
  aliases the load balancer, so the gateway connects to the name its certificate carries;
- the CloudWatch (monitoring) interface endpoint on 443 for the publisher's wake metric, and an
  IAM Roles Anywhere interface endpoint (its own security group) for its credentials;
- a Route 53 Resolver inbound endpoint on 53 (UDP and TCP), so the site's DNS forwards the
  endpoint's name and the API endpoints' private names to the VPC.

The fleet keeps no internet route: BGP brings only the site's networks into its route tables.

Tunnel logs are vended logs ("Enable logging from AWS services", CloudWatch Logs User Guide): no IAM
role here, but whoever runs `pulumi up` needs logs:CreateLogDelivery (and, the first time,
logs:PutResourcePolicy, logs:DescribeResourcePolicies and logs:DescribeLogGroups, with which AWS adds
the log group's resource policy for delivery.logs.amazonaws.com). The group is encrypted with the
fleet's key, whose policy lets logs.<region>.amazonaws.com use it for this account's log groups
(planning.iam.kms_key_policy).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from inferstack.components.overflow_gcp_link import CONFIG_NAMESPACE, PresharedKeysError, parse_preshared_keys
from inferstack.planning.overflow.aws_link import (
    CUSTOMER_GATEWAY_TYPE,
    DPD_TIMEOUT_ACTION,
    DPD_TIMEOUT_SECONDS,
    HTTPS_PORT,
    LOG_FORMAT,
    RESOLVER_PORT,
    ROLES_ANYWHERE_SERVICE,
    STARTUP_ACTION,
    AwsLinkPlan,
    aws_first_character,
    preshared_key_problem,
)

# CreateCustomerGateway: BgpAsn takes 1..2,147,483,647; larger (4-byte) ASNs go in BgpAsnExtended.
BGP_ASN_MAX = 2_147_483_647
# Route 53 Resolver quotas: "IP addresses per endpoint", 6 (CreateResolverEndpoint takes at least 2).
RESOLVER_MAX_IPS = 6
PHASE1_LIFETIME_SECONDS = 28_800  # the defaults, stated so the site's team configures the same
PHASE2_LIFETIME_SECONDS = 3_600


class AwsOverflowLink(pulumi.ComponentResource):
    tunnels: pulumi.Output[list[dict]]
    resolver_ips: pulumi.Output[list[str]]
    amazon_side_asn: pulumi.Output[int]
    vpn_connection_ids: pulumi.Output[list[str]]
    preshared_keys: pulumi.Output[list[str]]  # a secret: the site's devices need them

    def __init__(
        self,
        name: str,
        plan: AwsLinkPlan,
        *,
        vpc_id: pulumi.Input[str],
        subnet_ids: Sequence[pulumi.Input[str]],
        route_table_ids: Sequence[pulumi.Input[str]],
        kms_key_arn: pulumi.Input[str],
        load_balancer_security_group_id: pulumi.Input[str],
        load_balancer_dns_name: pulumi.Input[str],
        load_balancer_zone_id: pulumi.Input[str],
        api_endpoints_security_group_id: pulumi.Input[str] | None,
        opts: pulumi.ResourceOptions | None = None,
    ):
        """All inputs but the plan come from the fleet's components at run time: its VPC, private
        subnets and their route tables, its KMS key, its endpoint's load balancer, and the security
        group of its network's interface endpoints (None for an existing VPC, which has none)."""
        super().__init__("inferstack:overflow:AwsOverflowLink", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = plan.tags
        # Each table once: one route or propagation per table (a repeated CreateRoute fails).
        route_table_ids = list(dict.fromkeys(route_table_ids))

        def named(suffix: str) -> dict[str, str]:
            return {**tags, "Name": f"{plan.name}-{suffix}"}

        logs = aws.cloudwatch.LogGroup(
            f"{name}-tunnel-logs",
            name=plan.log_group_name,
            retention_in_days=plan.log_retention_days,
            kms_key_id=kms_key_arn,
            tags=tags,
            opts=child,
        )
        gateway: dict[str, pulumi.Input[str]]
        aws_asn: pulumi.Output[int]
        attachment = None
        if plan.transit_gateway_id is None:
            vgw = aws.ec2.VpnGateway(
                f"{name}-vgw",
                vpc_id=vpc_id,
                amazon_side_asn=str(plan.amazon_side_asn),
                tags=named("vgw"),
                opts=child,
            )
            gateway = {"vpn_gateway_id": vgw.id}
            assert plan.amazon_side_asn is not None  # planned whenever there is no transit gateway
            aws_asn = pulumi.Output.from_input(plan.amazon_side_asn)
            # BGP's routes to the site land in every private route table; nothing else does.
            for i, table in enumerate(route_table_ids):
                aws.ec2.VpnGatewayRoutePropagation(
                    f"{name}-propagation-{i}", vpn_gateway_id=vgw.id, route_table_id=table, opts=child
                )
        else:
            # The transit gateway's owner associates and propagates its attachments (its default
            # route table, unless they turned that off); the VPC's side is ours: an attachment in
            # the private subnets and a route per site network in each private route table.
            attachment = aws.ec2transitgateway.VpcAttachment(
                f"{name}-tgw",
                transit_gateway_id=plan.transit_gateway_id,
                vpc_id=vpc_id,
                subnet_ids=list(subnet_ids),
                dns_support="enable",
                tags=named("tgw"),
                opts=child,
            )
            gateway = {"transit_gateway_id": plan.transit_gateway_id}
            tgw = aws.ec2transitgateway.get_transit_gateway_output(
                id=plan.transit_gateway_id, opts=pulumi.InvokeOutputOptions(parent=self)
            )
            aws_asn = tgw.amazon_side_asn.apply(lambda a: check_transit_gateway_asn(plan, int(a)))
            for i, table in enumerate(route_table_ids):
                for j, cidr in enumerate(plan.onprem_cidrs):
                    aws.ec2.Route(
                        f"{name}-site-{i}-{j}",
                        route_table_id=table,
                        destination_cidr_block=cidr,
                        transit_gateway_id=plan.transit_gateway_id,
                        opts=pulumi.ResourceOptions(parent=self, depends_on=[attachment]),
                    )

        keys = self._preshared_keys(name, plan)
        connections = []
        for c in plan.connections:
            asn = (
                {"bgp_asn": str(plan.site_asn)}
                if plan.site_asn <= BGP_ASN_MAX
                else {"bgp_asn_extended": str(plan.site_asn)}
            )
            cgw = aws.ec2.CustomerGateway(
                f"{name}-site-{c.device}",
                ip_address=c.site_public_ip,
                type=CUSTOMER_GATEWAY_TYPE,
                # CreateCustomerGateway answers a request identical to an existing gateway's (type,
                # address, ASN) with that gateway instead of a new one: the site's device may already
                # have one for another VPN, which this stack would then adopt and delete on destroy.
                # A device name of this stack's own makes the request, and the gateway, ours.
                device_name=f"{plan.name}-site-{c.device}",
                tags=named(f"site-{c.device}"),
                opts=child,
                **asn,
            )
            tunnel_args: dict[str, object] = {}
            for t in c.tunnels:
                n = t.index
                log_args = getattr(aws.ec2, f"VpnConnectionTunnel{n}LogOptionsArgs")
                cw_args = getattr(aws.ec2, f"VpnConnectionTunnel{n}LogOptionsCloudwatchLogOptionsArgs")
                tunnel_args |= {
                    f"tunnel{n}_inside_cidr": t.inside_cidr,
                    f"tunnel{n}_preshared_key": keys[2 * c.device + n - 1],
                    f"tunnel{n}_ike_versions": list(plan.ike_versions),
                    f"tunnel{n}_phase1_encryption_algorithms": list(plan.phase1_encryption),
                    f"tunnel{n}_phase2_encryption_algorithms": list(plan.phase2_encryption),
                    f"tunnel{n}_phase1_integrity_algorithms": list(plan.integrity),
                    f"tunnel{n}_phase2_integrity_algorithms": list(plan.integrity),
                    f"tunnel{n}_phase1_dh_group_numbers": list(plan.dh_groups),
                    f"tunnel{n}_phase2_dh_group_numbers": list(plan.dh_groups),
                    f"tunnel{n}_phase1_lifetime_seconds": PHASE1_LIFETIME_SECONDS,
                    f"tunnel{n}_phase2_lifetime_seconds": PHASE2_LIFETIME_SECONDS,
                    f"tunnel{n}_startup_action": STARTUP_ACTION,
                    f"tunnel{n}_dpd_timeout_seconds": DPD_TIMEOUT_SECONDS,
                    f"tunnel{n}_dpd_timeout_action": DPD_TIMEOUT_ACTION,
                    # IKE/IPsec and, since the link is BGP, its sessions' state too, to one group
                    # (CloudWatchLogOptionsSpecification: LogEnabled and BgpLogEnabled, json|text).
                    f"tunnel{n}_log_options": log_args(
                        cloudwatch_log_options=cw_args(
                            log_enabled=True,
                            log_group_arn=logs.arn,
                            log_output_format=LOG_FORMAT,
                            bgp_log_enabled=True,
                            bgp_log_group_arn=logs.arn,
                            bgp_log_output_format=LOG_FORMAT,
                        )
                    ),
                }
            connections.append(
                aws.ec2.VpnConnection(
                    f"{name}-vpn-{c.device}",
                    customer_gateway_id=cgw.id,
                    type=CUSTOMER_GATEWAY_TYPE,
                    static_routes_only=False,  # BGP: the site announces its networks, AWS the VPC
                    tags=named(f"vpn-{c.device}"),
                    # The SDK marks the keys and customerGatewayConfiguration (which holds them)
                    # secret outputs; the inputs are secrets already.
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[attachment] if attachment is not None else []),
                    **gateway,
                    **tunnel_args,
                )  # type: ignore[call-overload]
            )

        self._site_reach(
            name, plan, vpc_id, load_balancer_security_group_id, api_endpoints_security_group_id, subnet_ids, child
        )
        self._dns(name, plan, vpc_id, load_balancer_dns_name, load_balancer_zone_id, child)
        resolver = self._resolver(name, plan, vpc_id, subnet_ids, child)

        outside = pulumi.Output.all(*[pulumi.Output.all(v.tunnel1_address, v.tunnel2_address) for v in connections])
        self.tunnels = pulumi.Output.all(outside, aws_asn).apply(lambda a: site_tunnels(plan, a[0], a[1]))
        self.resolver_ips = resolver.ip_addresses.apply(lambda ips: sorted(i.ip for i in ips or [] if i.ip))
        self.amazon_side_asn = aws_asn
        self.vpn_connection_ids = pulumi.Output.all(*[v.id for v in connections])
        self.preshared_keys = pulumi.Output.secret(pulumi.Output.all(*keys))
        self.register_outputs(
            {
                "tunnels": self.tunnels,
                "resolver_ips": self.resolver_ips,
                "amazon_side_asn": self.amazon_side_asn,
                "vpn_connection_ids": self.vpn_connection_ids,
                "preshared_keys": self.preshared_keys,
            }
        )

    def _preshared_keys(self, name: str, plan: AwsLinkPlan) -> list[pulumi.Output[str]]:
        """One key per tunnel, in connection then tunnel order, always a Pulumi secret: from the
        spec's secret config key (checked against AWS's rules), else generated here (pulumi-random's
        RandomPassword keeps `result` secret in the state)."""
        count = plan.tunnel_count
        key = plan.preshared_keys_config_key
        if key is not None:
            value = pulumi.Config(CONFIG_NAMESPACE).require_secret(key)
            keys = value.apply(lambda v: _aws_keys(parse_preshared_keys(v, count, key), key))
            return [pulumi.Output.secret(keys.apply(_nth(i))) for i in range(count)]
        return [
            pulumi.Output.secret(
                random.RandomPassword(
                    f"{name}-psk-{i}",
                    length=plan.psk_length,
                    special=False,  # AWS allows only '.' and '_' besides letters and digits
                    opts=pulumi.ResourceOptions(parent=self),
                ).result.apply(aws_first_character)
            )
            for i in range(count)
        ]

    def _site_reach(self, name, plan: AwsLinkPlan, vpc_id, lb_sg, api_sg, subnet_ids, child) -> None:
        """The site's networks on 443 to the endpoint's load balancer (its listener), the
        monitoring interface endpoint, and a Roles Anywhere interface endpoint of its own."""
        tags = plan.tags
        for j, cidr in enumerate(plan.onprem_cidrs):
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-site-tls-{j}",
                security_group_id=lb_sg,
                description=f"TLS {plan.listener_port} to the model endpoint from the site over the VPN",
                ip_protocol="tcp",
                from_port=plan.listener_port,
                to_port=plan.listener_port,
                cidr_ipv4=cidr,
                tags=tags,
                opts=child,
            )
            if api_sg is not None:
                # The network's interface endpoints share one group: the site reaches them all on
                # 443 (each call still needs IAM credentials); the publisher uses monitoring.
                aws.vpc.SecurityGroupIngressRule(
                    f"{name}-site-apis-{j}",
                    security_group_id=api_sg,
                    description="HTTPS to AWS service endpoints from the site over the VPN",
                    ip_protocol="tcp",
                    from_port=HTTPS_PORT,
                    to_port=HTTPS_PORT,
                    cidr_ipv4=cidr,
                    tags=tags,
                    opts=child,
                )
        sg = aws.ec2.SecurityGroup(
            f"{name}-rolesanywhere",
            vpc_id=vpc_id,
            description="inferstack: IAM Roles Anywhere endpoint, HTTPS from the site only",
            tags=tags,
            opts=child,
        )
        for j, cidr in enumerate(plan.onprem_cidrs):
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-rolesanywhere-{j}",
                security_group_id=sg.id,
                description="HTTPS to IAM Roles Anywhere from the site over the VPN",
                ip_protocol="tcp",
                from_port=HTTPS_PORT,
                to_port=HTTPS_PORT,
                cidr_ipv4=cidr,
                tags=tags,
                opts=child,
            )
        aws.ec2.VpcEndpoint(
            f"{name}-rolesanywhere",
            vpc_id=vpc_id,
            service_name=f"com.amazonaws.{plan.region}.{ROLES_ANYWHERE_SERVICE}",
            vpc_endpoint_type="Interface",
            private_dns_enabled=True,  # the site resolves it through the inbound resolver
            subnet_ids=list(subnet_ids),
            security_group_ids=[sg.id],
            tags={**tags, "Name": f"{plan.name}-{ROLES_ANYWHERE_SERVICE}"},
            opts=child,
        )

    def _dns(self, name, plan: AwsLinkPlan, vpc_id, lb_dns, lb_zone, child) -> None:
        """The endpoint's certificate name inside the fleet's VPC: an alias of its load balancer,
        which the site resolves through the inbound resolver (no public record)."""
        zone = aws.route53.Zone(
            f"{name}-endpoint-name",
            name=plan.domain_name,
            comment="inferstack: the model endpoint name for the site, over the VPN",
            vpcs=[aws.route53.ZoneVpcArgs(vpc_id=vpc_id)],
            tags=plan.tags,
            opts=child,
        )
        aws.route53.Record(
            f"{name}-endpoint-name",
            zone_id=zone.zone_id,
            name=plan.domain_name,
            type="A",
            aliases=[aws.route53.RecordAliasArgs(name=lb_dns, zone_id=lb_zone, evaluate_target_health=True)],
            opts=child,
        )

    def _resolver(self, name, plan: AwsLinkPlan, vpc_id, subnet_ids, child) -> aws.route53.ResolverEndpoint:
        """An inbound endpoint: at least two addresses, in two zones where the fleet has two
        subnets ("Considerations when creating inbound and outbound endpoints")."""
        sg = aws.ec2.SecurityGroup(
            f"{name}-resolver",
            vpc_id=vpc_id,
            description="inferstack: Route 53 Resolver inbound endpoint, DNS from the site only",
            tags=plan.tags,
            opts=child,
        )
        for j, cidr in enumerate(plan.onprem_cidrs):
            for protocol in ("udp", "tcp"):
                aws.vpc.SecurityGroupIngressRule(
                    f"{name}-resolver-{protocol}-{j}",
                    security_group_id=sg.id,
                    description=f"DNS over {protocol.upper()} from the site over the VPN",
                    ip_protocol=protocol,
                    from_port=RESOLVER_PORT,
                    to_port=RESOLVER_PORT,
                    cidr_ipv4=cidr,
                    tags=plan.tags,
                    opts=child,
                )
        # One address per private subnet, at most RESOLVER_MAX_IPS of them (an existing VPC may list
        # more subnets than an endpoint takes addresses); one subnet: two addresses in it, the fewest
        # the service takes.
        subnets = list(subnet_ids)[:RESOLVER_MAX_IPS]
        if len(subnets) == 1:
            subnets = subnets * 2
        return aws.route53.ResolverEndpoint(
            f"{name}-resolver",
            name=plan.resolver_name,
            direction="INBOUND",
            protocols=["Do53"],
            security_group_ids=[sg.id],
            ip_addresses=[aws.route53.ResolverEndpointIpAddressArgs(subnet_id=s) for s in subnets],
            tags=plan.tags,
            opts=child,
        )


def _nth(i: int) -> Callable[[list[str]], str]:
    return lambda keys: keys[i]


def _aws_keys(keys: list[str], config_key: str) -> list[str]:
    for i, k in enumerate(keys):
        problem = preshared_key_problem(k)
        if problem is not None:
            raise PresharedKeysError(
                f"stack config {CONFIG_NAMESPACE}:{config_key}[{i}] is not a key AWS accepts: {problem}"
            )
    return keys


def check_transit_gateway_asn(plan: AwsLinkPlan, asn: int) -> int:
    """The spec's transit gateway speaks BGP with its own ASN, known only at deploy time: the
    site's must differ (equal ASNs would make the sessions iBGP, which the tunnels do not speak)."""
    if asn == plan.site_asn:
        raise ValueError(
            f"transit gateway {plan.transit_gateway_id} has ASN {asn}, the site's own (overflow.link.site_asn): "
            "give the site a different ASN"
        )
    return asn


def site_tunnels(plan: AwsLinkPlan, outside: list[list[str]], aws_asn: int) -> list[dict]:
    """What the site's network team configures per tunnel: which of its devices, AWS's public
    address, the BGP addresses and ASNs, the proposals AWS accepts. Never the pre-shared key."""
    return [
        {
            "site_device": c.device,
            "site_public_ip": c.site_public_ip,
            "tunnel": t.index,
            "aws_public_ip": outside[c.device][t.index - 1] if c.device < len(outside) else None,
            "inside_cidr": t.inside_cidr,
            "site_bgp_ip": t.site_ip,
            "aws_bgp_ip": t.aws_ip,
            "site_asn": plan.site_asn,
            "aws_asn": aws_asn,
            "ike_versions": list(plan.ike_versions),
            "encryption": list(plan.phase1_encryption),
            "integrity": list(plan.integrity),
            "dh_groups": list(plan.dh_groups),
        }
        for c in plan.connections
        for t in c.tunnels
    ]


def link_outputs(link: AwsOverflowLink) -> dict[str, pulumi.Input]:
    """The link as stack outputs for the site's network team; the keys are a secret output
    (`pulumi stack output --show-secrets`), masked in every plan."""
    return {
        "aws_vpn_tunnels": link.tunnels,
        "aws_vpn_asn": link.amazon_side_asn,
        "aws_vpn_connections": link.vpn_connection_ids,
        "aws_resolver_ips": link.resolver_ips,
        "aws_vpn_preshared_keys": link.preshared_keys,
    }
