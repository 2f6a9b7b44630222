"""GcpTpuSlice: Cloud TPU slices serving one model.

Single-host on-demand slices are TPU VM nodes; multi-host slices and spot or reserved capacity
are queued resources, which wait for capacity instead of failing the deployment. Every node has
no external IP, no IP forwarding, the private subnet and a dedicated service account, in a zone
inside residency; its startup script (templates/gcp_tpu_startup.sh.j2) starts vLLM for TPU on
every host, worker 0 serving. A single-host slice keeps the weights on a data disk of its own
(encrypted with the target's KMS key); a multi-host slice gets a firewall rule that lets its
hosts reach each other (Ray, the TPU runtime's collectives), service account to service account.

Compute Engine TPU machine types instead (the review's suggestion: serve single-host slices as
VMs in a managed instance group, reusing the GPU fleet's group, autoscaler and load-balancer
backend instead of a hybrid NEG on a TPU VM's address). Google now documents it as the way ahead
("TPU resources in Compute Engine": a single-host slice is a Compute Engine VM instance, a
multi-host slice a MIG with an accelerator topology in a workload policy; "Attach durable block
storage to a TPU VM": the Cloud TPU API "is no longer under active development" and does not
support TPU7x and later). Decided: the right next step, not done in this change; it needs its
own machine-type catalog (ct5lp-hightpu-*, ct6e-standard-*), zones, images and checks, and what is
left to confirm first is whether an autoscaled regional MIG of such VMs is supported as a load
balancer backend. Until then single-host slices stay TPU VMs here.
"""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp

from inferstack.components.gcp_endpoint import GcpPrivateEndpoint, endpoint_outputs
from inferstack.components.gcp_gpu_fleet import CLOUD_PLATFORM_SCOPE, GcpBootDiskKey, node_metadata
from inferstack.components.gcp_identity import GcpNodeIdentity
from inferstack.components.gcp_network import GcpPrivateNetwork
from inferstack.components.gcp_observability import slo_alert_policies
from inferstack.components.gcp_queued_resource import TpuQueuedResource
from inferstack.planning.gcp import QUEUED_RESOURCE_TYPE, GcpTpuPlan, queued_resource_body


class GcpTpuSlice(pulumi.ComponentResource):
    nodes: pulumi.Output[list[str]]
    service_account: pulumi.Output[str]

    def __init__(self, name: str, plan: GcpTpuPlan, opts: pulumi.ResourceOptions | None = None):
        super().__init__("inferstack:tpu:GcpTpuSlice", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        identity = GcpNodeIdentity(
            f"{name}-identity",
            project=plan.project,
            prefix=plan.prefix,
            weights=plan.weights,
            repository=plan.artifact_repository,
            collector_repository=plan.collector_repository,
            opts=child,
        )
        network = GcpPrivateNetwork(f"{name}-net", plan.network, identity.email, opts=child)
        # The TPU API takes the disk as "projects/P/zones/Z/disks/NAME" (AttachedDisk.sourceDisk);
        # built from the disk's name output, so the node waits for the disk.
        self.disks: dict[str, pulumi.Output[str]] = {}
        if plan.data_disk_gib is not None:
            key = GcpBootDiskKey(
                f"{name}-kms",
                project=plan.project,
                region=plan.region,
                prefix=plan.prefix,
                labels=plan.labels,
                opts=child,
            )
            for i, node_id in enumerate(plan.slices):
                disk = gcp.compute.Disk(
                    f"{name}-weights-{i}",
                    name=plan.data_disk_name(node_id),
                    project=plan.project,
                    zone=plan.zone,
                    description=f"inferstack {plan.prefix}: the model's weights for slice {node_id}",
                    type=plan.data_disk_type,
                    size=plan.data_disk_gib,
                    disk_encryption_key=gcp.compute.DiskDiskEncryptionKeyArgs(kms_key_self_link=key.self_link),
                    labels=plan.labels,
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[key]),
                )
                self.disks[node_id] = disk.name.apply(lambda n: f"projects/{plan.project}/zones/{plan.zone}/disks/{n}")
        if plan.hosts > 1:
            # Ray (GCS 6379, object manager and worker ports chosen at random) and the TPU
            # runtime's host-to-host traffic use ports that are not fixed: every TCP and UDP port,
            # between the slice's own hosts only (its dedicated service account on both ends).
            gcp.compute.Firewall(
                f"{name}-allow-slice",
                project=plan.project,
                network=network.network_self_link,
                description=f"inferstack {plan.prefix}: hosts of the slice reach each other (Ray, TPU runtime)",
                direction="INGRESS",
                priority=1000,
                allows=[gcp.compute.FirewallAllowArgs(protocol="tcp"), gcp.compute.FirewallAllowArgs(protocol="udp")],
                source_service_accounts=[identity.email],
                target_service_accounts=[identity.email],
                opts=child,
            )
        if plan.uses_queued_resource:
            nodes = [
                self._queued(name, i, node_id, plan, identity, network, child) for i, node_id in enumerate(plan.slices)
            ]
            self.nodes = pulumi.Output.all(*[n.queuedResourceId for n in nodes])
        else:
            vms = [self._vm(name, i, node_id, plan, identity, network, child) for i, node_id in enumerate(plan.slices)]
            self.nodes = pulumi.Output.all(*[n.name for n in vms])
        self.endpoint = None
        if plan.endpoint is not None:
            # The checks guarantee single-host on-demand slices here: TPU VMs with an address.
            self.endpoint = GcpPrivateEndpoint(
                f"{name}-endpoint",
                plan.endpoint,
                project=plan.project,
                region=plan.region,
                network=network.network_self_link,
                subnetwork=network.subnetwork_self_link,
                service_account=identity.email,
                labels=plan.labels,
                tpu_endpoints=[(vm.network_endpoints.apply(lambda eps: eps[0].ip_address), plan.zone) for vm in vms],
                opts=child,
            )
        slo_alert_policies(name, plan, child)
        self.service_account = identity.email
        self.network = network  # the overflow link attaches to it
        self.register_outputs({"nodes": self.nodes, "service_account": self.service_account})

    def _vm(self, name, i, node_id, plan: GcpTpuPlan, identity, network, child) -> gcp.tpu.V2Vm:
        return gcp.tpu.V2Vm(
            f"{name}-slice-{i}",
            name=node_id,
            project=plan.project,
            zone=plan.zone,
            description=f"inferstack {plan.prefix}: {plan.generation} {plan.topology} serving slice",
            accelerator_type=plan.accelerator_type,
            runtime_version=plan.runtime_version,
            network_config=gcp.tpu.V2VmNetworkConfigArgs(
                network=network.network_self_link,
                subnetwork=network.subnetwork_self_link,
                enable_external_ips=plan.public_ip,
                can_ip_forward=False,
            ),
            scheduling_config=gcp.tpu.V2VmSchedulingConfigArgs(
                spot=plan.provisioning == "spot", reserved=plan.provisioning == "reserved"
            ),
            service_account=gcp.tpu.V2VmServiceAccountArgs(email=identity.email, scopes=[CLOUD_PLATFORM_SCOPE]),
            shielded_instance_config=gcp.tpu.V2VmShieldedInstanceConfigArgs(enable_secure_boot=True),
            data_disks=[gcp.tpu.V2VmDataDiskArgs(source_disk=self.disks[node_id], mode="READ_WRITE")]
            if node_id in self.disks
            else None,
            metadata=node_metadata(plan.startup_script),
            labels=plan.labels,
            opts=child,
        )

    def _queued(self, name, i, node_id, plan: GcpTpuPlan, identity, network, child) -> TpuQueuedResource:
        disk = self.disks.get(node_id)
        body = pulumi.Output.all(network.network_self_link, network.subnetwork_self_link, identity.email, disk).apply(
            lambda links: queued_resource_body(
                plan, node_id, network=links[0], subnetwork=links[1], service_account=links[2], data_disk=links[3]
            )
        )
        return TpuQueuedResource(
            f"{name}-slice-{i}",
            {
                "project": plan.project,
                "zone": plan.zone,
                "queuedResourceId": node_id,
                "resourceType": QUEUED_RESOURCE_TYPE,
                "body": body,
            },
            opts=child,
        )


def deploy(name: str, plan, ctx) -> dict[str, pulumi.Input]:
    """The target kind's entry point (inferstack.kinds): the slices, their stack outputs."""
    tpu = GcpTpuSlice(name, plan, opts=pulumi.ResourceOptions(provider=ctx.gcp(plan.project, plan.region)))
    ctx.deployed[name] = tpu
    return {"nodes": tpu.nodes, "service_account": tpu.service_account, **endpoint_outputs(tpu.endpoint)}
