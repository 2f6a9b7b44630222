"""GcpPrivateEndpoint: the only way into a GCP target, over Private Service Connect.

An internal HTTPS load balancer in the target's VPC (proxy-only subnet, a regional SSL
certificate from the spec behind an SSL policy of TLS 1.2 or newer, a backend service that
health-checks the engine), a Private Service Connect NAT subnet and a service attachment that
accepts only the consumer projects the spec lists, after manual review; and a PSC endpoint in
each consumer network the spec names. Backends: the fleet's managed instance group, or a TPU
VM's address in a hybrid network endpoint group (TPU VMs are not Compute Engine instances).
"""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_gcp as gcp

from inferstack.components.gcp_network import SUBNET_FLOW_LOGS
from inferstack.errors import CloudCheckError
from inferstack.planning.endpoint import GcpEndpointPlan
from inferstack.planning.naming import gcp_name

PSC_CONNECTION_LIMIT = 10
# One active REGIONAL_MANAGED_PROXY subnet per VPC network and region ("Proxy-only subnets for
# Envoy-based load balancers", Cloud Load Balancing docs); the subnetworks.list filter finds it.
ACTIVE_PROXY_ONLY = '(purpose = "REGIONAL_MANAGED_PROXY") AND (role = "ACTIVE")'


def proxy_only_range(found: list, *, network: str, region: str, ours: str | None) -> str | None:
    """The range of the network's active proxy-only subnet in the region, checked against what the
    spec asks. `ours` is the subnet this stack creates (None: reuse the network's own).
    Returns the range to reuse, or None when the stack's own subnet is the only one."""
    theirs = [s for s in found if s.network_name == network and s.name != ours]
    if ours is None and not theirs:
        raise CloudCheckError(
            f"network {network!r} has no active proxy-only subnet in {region}, which the endpoint's load "
            "balancer needs: set proxy_cidr on the target's network to create one, or create it with the network"
        )
    if ours is not None and theirs:
        raise CloudCheckError(
            f"network {network!r} already has the active proxy-only subnet {theirs[0].name!r} "
            f"({theirs[0].ip_cidr_range}) in {region}, and a VPC may have only one per region: remove proxy_cidr "
            "from the target's network to reuse it"
        )
    return theirs[0].ip_cidr_range if theirs else None


class GcpPrivateEndpoint(pulumi.ComponentResource):
    service_attachment: pulumi.Output[str]
    address: pulumi.Output[str]
    consumer_addresses: pulumi.Output[list[str]]

    def __init__(
        self,
        name: str,
        plan: GcpEndpointPlan,
        *,
        project: str,
        region: str,
        network: pulumi.Input[str],
        subnetwork: pulumi.Input[str],
        service_account: pulumi.Input[str],
        labels: dict[str, str],
        instance_group: pulumi.Input[str] | None = None,
        tpu_endpoints: Sequence[tuple[pulumi.Input[str], str]] = (),
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("inferstack:endpoint:GcpPrivateEndpoint", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        # Deletion protection (production by default): Pulumi refuses to delete the load balancer.
        guarded = pulumi.ResourceOptions(parent=self, protect=plan.deletion_protection)
        proxy_subnet, proxy_range = self._proxy_only(name, plan, project, region, network, child)
        psc_subnet = gcp.compute.Subnetwork(
            f"{name}-psc-nat",
            project=project,
            region=region,
            network=network,
            ip_cidr_range=plan.psc_cidr,
            purpose="PRIVATE_SERVICE_CONNECT",
            # Flow logs on the NAT subnet too (an IaC scanner's finding): only the managed-proxy
            # purposes are excluded from log_config (pulumi-gcp Subnetwork.log_config).
            log_config=SUBNET_FLOW_LOGS,
            opts=child,
        )
        gcp.compute.Firewall(
            f"{name}-allow-proxies",
            project=project,
            network=network,
            description=f"inferstack: serving port {plan.target_port} from the endpoint's load balancer proxies",
            direction="INGRESS",
            priority=1000,
            allows=[gcp.compute.FirewallAllowArgs(protocol="tcp", ports=[str(plan.target_port)])],
            source_ranges=[proxy_range],
            target_service_accounts=[service_account],
            opts=child,
        )

        health = gcp.compute.RegionHealthCheck(
            f"{name}-health",
            project=project,
            region=region,
            http_health_check=gcp.compute.RegionHealthCheckHttpHealthCheckArgs(
                port=plan.target_port, request_path=plan.health_path
            ),
            log_config=gcp.compute.RegionHealthCheckLogConfigArgs(enable=True),
            opts=child,
        )
        backend = gcp.compute.RegionBackendService(
            f"{name}-backend",
            project=project,
            region=region,
            load_balancing_scheme="INTERNAL_MANAGED",
            protocol="HTTP",
            port_name="serving" if instance_group is not None else None,
            health_checks=health.id,
            timeout_sec=600,  # long generations stream for minutes
            backends=self._backends(name, project, network, plan, instance_group, tpu_endpoints, child),
            log_config=gcp.compute.RegionBackendServiceLogConfigArgs(enable=True, sample_rate=1.0),
            opts=guarded,
        )
        ssl_policy = gcp.compute.RegionSslPolicy(
            f"{name}-tls",
            project=project,
            region=region,
            min_tls_version="TLS_1_2",
            profile="RESTRICTED",
            opts=child,
        )
        url_map = gcp.compute.RegionUrlMap(
            f"{name}-urls", project=project, region=region, default_service=backend.id, opts=child
        )
        proxy = gcp.compute.RegionTargetHttpsProxy(
            f"{name}-https",
            project=project,
            region=region,
            url_map=url_map.id,
            ssl_certificates=[plan.certificate],
            ssl_policy=ssl_policy.id,
            opts=child,
        )
        rule = gcp.compute.ForwardingRule(
            f"{name}-ilb",
            project=project,
            region=region,
            load_balancing_scheme="INTERNAL_MANAGED",
            ip_protocol="TCP",
            port_range=str(plan.listener_port),
            target=proxy.id,
            network=network,
            subnetwork=subnetwork,
            allow_global_access=False,
            labels=labels,
            opts=pulumi.ResourceOptions(parent=self, depends_on=proxy_subnet, protect=plan.deletion_protection),
        )
        attachment = gcp.compute.ServiceAttachment(
            f"{name}-psc",
            project=project,
            region=region,
            description="inferstack: the model, for the consumer projects in the spec",
            connection_preference="ACCEPT_MANUAL",
            consumer_accept_lists=[
                gcp.compute.ServiceAttachmentConsumerAcceptListArgs(
                    project_id_or_num=consumer, connection_limit=PSC_CONNECTION_LIMIT
                )
                for consumer in plan.consumer_projects
            ],
            nat_subnets=[psc_subnet.id],
            target_service=rule.id,
            enable_proxy_protocol=False,
            opts=guarded,
        )
        consumer_addresses = []
        for i, consumer in enumerate(plan.consumers):
            address = gcp.compute.Address(
                f"{name}-consumer-{i}",
                project=consumer.project,
                region=region,
                address_type="INTERNAL",
                subnetwork=f"projects/{consumer.project}/regions/{region}/subnetworks/{consumer.subnetwork}",
                labels=labels,
                opts=child,
            )
            consumer_addresses.append(address.address)
            gcp.compute.ForwardingRule(
                f"{name}-consumer-{i}",
                project=consumer.project,
                region=region,
                load_balancing_scheme="",  # a PSC endpoint: forwards to the attachment, not a backend
                network=f"projects/{consumer.project}/global/networks/{consumer.network}",
                ip_address=address.id,
                target=attachment.id,
                labels=labels,
                opts=child,
            )

        self.service_attachment = attachment.self_link
        self.address = rule.ip_address
        self.forwarding_rule = rule.self_link  # the overflow link's firewall policy targets it
        self.consumer_addresses = pulumi.Output.all(*consumer_addresses)
        self.register_outputs(
            {
                "service_attachment": self.service_attachment,
                "address": self.address,
                "consumer_addresses": self.consumer_addresses,
            }
        )

    def _proxy_only(self, name, plan: GcpEndpointPlan, project, region, network, child):
        """The load balancer's proxy-only subnet: created in a network the stack owns (one per
        target network, so one per region), and in an existing network either created (the spec
        gives proxy_cidr) or reused (it does not), after a lookup that enforces one per region."""
        created: list[gcp.compute.Subnetwork] = []
        ours = None
        if plan.proxy_cidr is not None:
            ours = gcp_name(plan.name, "proxy")
            created.append(
                gcp.compute.Subnetwork(
                    f"{name}-proxy-only",
                    name=ours,
                    project=project,
                    region=region,
                    network=network,
                    ip_cidr_range=plan.proxy_cidr,
                    purpose="REGIONAL_MANAGED_PROXY",
                    role="ACTIVE",
                    # No log_config: flow logging "isn't supported if the subnet purpose field is set
                    # to REGIONAL_MANAGED_PROXY or GLOBAL_MANAGED_PROXY" (google_compute_subnetwork /
                    # pulumi-gcp Subnetwork.log_config); the API would refuse it. The load balancer's
                    # own request logs (the backend service's log_config) cover this hop.
                    opts=child,
                )
            )
        existing = plan.existing_network
        if existing is None:
            return created, plan.proxy_cidr
        found = gcp.compute.get_subnetworks_output(
            project=project, region=region, filter=ACTIVE_PROXY_ONLY, opts=pulumi.InvokeOutputOptions(parent=self)
        ).subnetworks.apply(
            lambda subnets: proxy_only_range(subnets, network=existing, region=region, ours=ours) or plan.proxy_cidr
        )
        return created, found

    def _backends(self, name, project, network, plan, instance_group, tpu_endpoints, child):
        if instance_group is not None:
            return [
                gcp.compute.RegionBackendServiceBackendArgs(
                    group=instance_group, balancing_mode="UTILIZATION", capacity_scaler=1.0
                )
            ]
        backends = []
        for i, (address, zone) in enumerate(tpu_endpoints):
            neg = gcp.compute.NetworkEndpointGroup(
                f"{name}-tpu-{i}",
                project=project,
                zone=zone,
                network=network,
                network_endpoint_type="NON_GCP_PRIVATE_IP_PORT",
                default_port=plan.target_port,
                opts=child,
            )
            gcp.compute.NetworkEndpoint(
                f"{name}-tpu-{i}",
                project=project,
                zone=zone,
                network_endpoint_group=neg.name,
                ip_address=address,
                port=plan.target_port,
                opts=child,
            )
            backends.append(
                gcp.compute.RegionBackendServiceBackendArgs(
                    group=neg.id, balancing_mode="RATE", max_rate_per_endpoint=100, capacity_scaler=1.0
                )
            )
        return backends


def endpoint_outputs(endpoint: GcpPrivateEndpoint | None) -> dict[str, pulumi.Input]:
    """A GCP target's endpoint, as stack outputs (none without an endpoint)."""
    if endpoint is None:
        return {}
    return {
        "service_attachment": endpoint.service_attachment,
        "endpoint_address": endpoint.address,
        "consumer_addresses": endpoint.consumer_addresses,
    }
