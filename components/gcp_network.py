"""GcpPrivateNetwork: a custom-mode VPC whose nodes have no external IPs and still reach
Google APIs and Artifact Registry, over Private Google Access.

One private subnet in the target's region (Private Google Access on, flow logs on); firewall
rules that deny all ingress at the lowest priority and allow the serving port only from
Google's health-check ranges and from inside the subnet; Cloud NAT only when the spec opts in.
The VPC keeps its default route to the internet gateway: Private Google Access to the default
googleapis.com addresses needs it, and with no external IP and no NAT nothing else can use it.
With an existing network, the component only looks the subnet up.
"""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp

from inferstack.planning.gcp import HEALTH_CHECK_RANGES, GcpNetworkPlan

# Every subnet the stack creates logs its flows, except proxy-only ones, which cannot.
SUBNET_FLOW_LOGS = gcp.compute.SubnetworkLogConfigArgs(
    aggregation_interval="INTERVAL_5_SEC", flow_sampling=0.5, metadata="INCLUDE_ALL_METADATA"
)


class GcpPrivateNetwork(pulumi.ComponentResource):
    network_self_link: pulumi.Output[str]
    subnetwork_self_link: pulumi.Output[str]
    subnet_cidr: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        plan: GcpNetworkPlan,
        target_service_account: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("inferstack:network:GcpPrivateNetwork", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        if plan.creates_network:
            network = gcp.compute.Network(
                f"{name}-vpc",
                name=plan.name,
                project=plan.project,
                auto_create_subnetworks=False,
                routing_mode="REGIONAL",
                description="inferstack: private serving network",
                opts=child,
            )
            subnet = gcp.compute.Subnetwork(
                f"{name}-private",
                name=plan.name,
                project=plan.project,
                region=plan.region,
                network=network.id,
                ip_cidr_range=plan.subnet_cidr,
                private_ip_google_access=True,
                log_config=SUBNET_FLOW_LOGS,
                opts=child,
            )
            self.network_self_link = network.self_link
            self.subnetwork_self_link = subnet.self_link
            self.subnet_cidr = subnet.ip_cidr_range
            network_ref = network.self_link
        else:
            invoke = pulumi.InvokeOutputOptions(parent=self)
            existing = gcp.compute.get_subnetwork_output(
                name=plan.subnetwork, project=plan.project, region=plan.region, opts=invoke
            )
            found = gcp.compute.get_network_output(name=plan.network, project=plan.project, opts=invoke)
            self.network_self_link = found.self_link
            self.subnetwork_self_link = existing.self_link
            self.subnet_cidr = existing.ip_cidr_range
            network_ref = found.self_link

        gcp.compute.Firewall(
            f"{name}-deny-ingress",
            project=plan.project,
            network=network_ref,
            description="inferstack: deny all ingress unless a rule above allows it",
            direction="INGRESS",
            priority=65534,
            denies=[gcp.compute.FirewallDenyArgs(protocol="all")],
            source_ranges=["0.0.0.0/0"],
            log_config=gcp.compute.FirewallLogConfigArgs(metadata="INCLUDE_ALL_METADATA"),
            opts=child,
        )
        for suffix, who, ranges in (
            ("allow-health-checks", "Google's health checkers", list(HEALTH_CHECK_RANGES)),
            ("allow-subnet", "inside the subnet", [self.subnet_cidr]),
        ):
            gcp.compute.Firewall(
                f"{name}-{suffix}",
                project=plan.project,
                network=network_ref,
                description=f"inferstack: serving port {plan.serving_port} from {who}",
                direction="INGRESS",
                priority=1000,
                allows=[gcp.compute.FirewallAllowArgs(protocol="tcp", ports=[str(plan.serving_port)])],
                source_ranges=ranges,
                target_service_accounts=[target_service_account],
                opts=child,
            )

        if plan.cloud_nat:
            router = gcp.compute.Router(
                f"{name}-router", project=plan.project, region=plan.region, network=network_ref, opts=child
            )
            gcp.compute.RouterNat(
                f"{name}-nat",
                project=plan.project,
                region=plan.region,
                router=router.name,
                nat_ip_allocate_option="AUTO_ONLY",
                source_subnetwork_ip_ranges_to_nat="ALL_SUBNETWORKS_ALL_IP_RANGES",
                log_config=gcp.compute.RouterNatLogConfigArgs(enable=True, filter="ERRORS_ONLY"),
                opts=child,
            )

        self.register_outputs(
            {
                "network_self_link": self.network_self_link,
                "subnetwork_self_link": self.subnetwork_self_link,
                "subnet_cidr": self.subnet_cidr,
            }
        )
