"""GcpGpuFleet: a regional managed instance group of GPU VMs serving one model, secure by default.

It takes a `GcpGpuFleetPlan` and an explicit provider (one per project and region), and creates:
a dedicated service account, a KMS key ring and rotating key for the boot disks (granted to the
Compute Engine service agent), the private network (or a lookup), an instance template (Shielded
VM, OS Login, no project SSH keys, no serial port, no external IP, GPUs with host maintenance
set to terminate, spot when asked), a health check, the regional group with auto-healing and a
proactive rolling update, and an autoscaler on the spec's signal.
"""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp

from inferstack.components.gcp_endpoint import GcpPrivateEndpoint, endpoint_outputs
from inferstack.components.gcp_identity import GcpNodeIdentity
from inferstack.components.gcp_network import GcpPrivateNetwork
from inferstack.components.gcp_observability import slo_alert_policies
from inferstack.planning.gcp import KMS_ROTATION_SECONDS, GcpGpuFleetPlan
from inferstack.planning.naming import gcp_name

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"


def node_metadata(startup_script: str) -> dict[str, str]:
    """Instance metadata that closes the usual doors: OS Login instead of keys, no serial port."""
    return {
        "enable-oslogin": "TRUE",
        "block-project-ssh-keys": "TRUE",
        "serial-port-enable": "FALSE",
        "startup-script": startup_script,
    }


class GcpBootDiskKey(pulumi.ComponentResource):
    """A key ring and a rotating key in the fleet's region, usable by Compute Engine for disks."""

    self_link: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        *,
        project: str,
        region: str,
        prefix: str,
        labels: dict[str, str],
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("inferstack:kms:GcpBootDiskKey", name, None, opts)
        # Key rings and keys cannot be deleted in GCP; protect them so a `pulumi destroy` says so.
        keep = pulumi.ResourceOptions(parent=self, protect=True)
        ring = gcp.kms.KeyRing(f"{name}-ring", project=project, location=region, name=gcp_name(prefix), opts=keep)
        key = gcp.kms.CryptoKey(
            f"{name}-key",
            key_ring=ring.id,
            name="boot-disks",
            purpose="ENCRYPT_DECRYPT",
            rotation_period=f"{KMS_ROTATION_SECONDS}s",
            labels=labels,
            opts=keep,
        )
        number = gcp.organizations.get_project_output(project_id=project, opts=pulumi.InvokeOutputOptions(parent=self))
        gcp.kms.CryptoKeyIAMMember(
            f"{name}-compute-agent",
            crypto_key_id=key.id,
            role="roles/cloudkms.cryptoKeyEncrypterDecrypter",
            member=number.number.apply(lambda n: f"serviceAccount:service-{n}@compute-system.iam.gserviceaccount.com"),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.self_link = key.id
        self.register_outputs({"self_link": self.self_link})


class GcpGpuFleet(pulumi.ComponentResource):
    group_name: pulumi.Output[str]
    instance_template: pulumi.Output[str]
    service_account: pulumi.Output[str]

    def __init__(self, name: str, plan: GcpGpuFleetPlan, opts: pulumi.ResourceOptions | None = None):
        super().__init__("inferstack:fleet:GcpGpuFleet", name, None, opts)
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
        key = GcpBootDiskKey(
            f"{name}-kms", project=plan.project, region=plan.region, prefix=plan.prefix, labels=plan.labels, opts=child
        )
        network = GcpPrivateNetwork(f"{name}-net", plan.network, identity.email, opts=child)
        template = self._template(name, plan, identity, key, network, child)

        health = gcp.compute.HealthCheck(
            f"{name}-health",
            project=plan.project,
            description=f"inferstack {plan.prefix}: engine health",
            check_interval_sec=15,
            timeout_sec=5,
            healthy_threshold=1,
            unhealthy_threshold=4,
            http_health_check=gcp.compute.HealthCheckHttpHealthCheckArgs(port=plan.port, request_path=plan.health_path),
            log_config=gcp.compute.HealthCheckLogConfigArgs(enable=True),
            opts=child,
        )
        # Surge one VM per zone (a regional group refuses a surge below its zone count).
        zone_count = len(plan.zones)
        group = gcp.compute.RegionInstanceGroupManager(
            f"{name}-mig",
            name=plan.group_name,
            project=plan.project,
            region=plan.region,
            base_instance_name=gcp_name(plan.prefix, limit=50),
            # Only the zones that have the GPU (catalog), in a shape that places VMs where the
            # capacity is: BALANCED (why not ANY for Spot: planning.gcp.distribution_shape).
            distribution_policy_zones=list(plan.zones),
            distribution_policy_target_shape=plan.distribution_shape,
            versions=[
                gcp.compute.RegionInstanceGroupManagerVersionArgs(
                    name="primary", instance_template=template.self_link_unique
                )
            ],
            target_size=plan.initial_size,
            named_ports=[gcp.compute.RegionInstanceGroupManagerNamedPortArgs(name="serving", port=plan.port)],
            auto_healing_policies=gcp.compute.RegionInstanceGroupManagerAutoHealingPoliciesArgs(
                health_check=health.id, initial_delay_sec=plan.initial_delay_seconds
            ),
            # Proactive rolling replacement on a template change, new VMs before old ones go,
            # so serving capacity never drops (GPU VMs cannot live-migrate).
            update_policy=gcp.compute.RegionInstanceGroupManagerUpdatePolicyArgs(
                type="PROACTIVE",
                minimal_action="REPLACE",
                # NONE: required with the BALANCED shape, and proactive moves would restart GPU
                # VMs that are serving.
                instance_redistribution_type="NONE",
                max_surge_fixed=zone_count,
                max_unavailable_fixed=0,
                replacement_method="SUBSTITUTE",
            ),
            wait_for_instances=False,
            # The autoscaler owns the size after creation; never fight it. A zone change replaces
            # the group (zones are set only at creation); its name carries the zones' hash
            # (planning.gcp.group_name), so the replacement is create-before-delete.
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["targetSize"]),
        )
        self._autoscaler(name, plan, group, child)
        self.endpoint = None
        if plan.endpoint is not None:
            self.endpoint = GcpPrivateEndpoint(
                f"{name}-endpoint",
                plan.endpoint,
                project=plan.project,
                region=plan.region,
                network=network.network_self_link,
                subnetwork=network.subnetwork_self_link,
                service_account=identity.email,
                labels=plan.labels,
                instance_group=group.instance_group,
                opts=child,
            )

        slo_alert_policies(name, plan, child)
        self.group_name = group.name
        self.network = network  # the overflow link attaches to it
        self.instance_template = template.self_link_unique
        self.service_account = identity.email
        self.register_outputs(
            {
                "group_name": self.group_name,
                "instance_template": self.instance_template,
                "service_account": self.service_account,
            }
        )

    def _template(self, name, plan: GcpGpuFleetPlan, identity, key, network, child):
        guest = None
        if plan.guest_accelerator is not None:
            guest = [
                gcp.compute.InstanceTemplateGuestAcceleratorArgs(
                    type=plan.guest_accelerator[0], count=plan.guest_accelerator[1]
                )
            ]
        if plan.spot:
            scheduling = gcp.compute.InstanceTemplateSchedulingArgs(
                provisioning_model="SPOT",
                preemptible=True,
                automatic_restart=False,
                on_host_maintenance="TERMINATE",
                instance_termination_action=plan.termination_action,
            )
        else:
            scheduling = gcp.compute.InstanceTemplateSchedulingArgs(
                provisioning_model="STANDARD", automatic_restart=True, on_host_maintenance="TERMINATE"
            )
        return gcp.compute.InstanceTemplate(
            f"{name}-template",
            name_prefix=gcp_name(plan.prefix, limit=37) + "-",
            project=plan.project,
            region=plan.region,
            description=f"inferstack {plan.prefix}: GPU serving node",
            machine_type=plan.machine_type,
            guest_accelerators=guest,
            scheduling=scheduling,
            disks=[
                gcp.compute.InstanceTemplateDiskArgs(
                    boot=True,
                    auto_delete=True,
                    source_image=plan.boot_image,
                    disk_size_gb=plan.boot_disk_gib,
                    disk_type=plan.boot_disk_type,
                    disk_encryption_key=gcp.compute.InstanceTemplateDiskDiskEncryptionKeyArgs(
                        kms_key_self_link=key.self_link
                    ),
                    labels=plan.labels,
                )
            ],
            network_interfaces=[
                gcp.compute.InstanceTemplateNetworkInterfaceArgs(
                    subnetwork=network.subnetwork_self_link,
                    nic_type="GVNIC",  # A3 and A4 take gVNIC only; the others serve faster with it
                    access_configs=[gcp.compute.InstanceTemplateNetworkInterfaceAccessConfigArgs()]
                    if plan.public_ip
                    else None,
                )
            ],
            can_ip_forward=False,
            service_account=gcp.compute.InstanceTemplateServiceAccountArgs(
                email=identity.email, scopes=[CLOUD_PLATFORM_SCOPE]
            ),
            shielded_instance_config=gcp.compute.InstanceTemplateShieldedInstanceConfigArgs(
                enable_secure_boot=True, enable_vtpm=True, enable_integrity_monitoring=True
            ),
            metadata=node_metadata(plan.startup_script),
            labels=plan.labels,
            # A new template replaces the old one before it is deleted: the group points at it.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[key]),
        )

    def _autoscaler(self, name, plan: GcpGpuFleetPlan, group, child) -> None:
        signal = plan.signal
        metrics, balancing = None, None
        if signal.load_balancing:
            balancing = gcp.compute.RegionAutoscalerAutoscalingPolicyLoadBalancingUtilizationArgs(target=signal.target)
        elif signal.per_group:
            metrics = [
                gcp.compute.RegionAutoscalerAutoscalingPolicyMetricArgs(
                    name=signal.metric,
                    filter=f'resource.type = "global" AND metric.labels.group = "{plan.group_name}"',
                    single_instance_assignment=signal.target,
                )
            ]
        else:
            metrics = [
                gcp.compute.RegionAutoscalerAutoscalingPolicyMetricArgs(
                    name=signal.metric, target=signal.target, type="GAUGE"
                )
            ]
        if signal.busy_metric:
            # Holds back scale-in while nodes have requests in flight (planning.gcp.BUSY_METRIC).
            metrics = [
                *(metrics or []),
                gcp.compute.RegionAutoscalerAutoscalingPolicyMetricArgs(
                    name=signal.busy_metric,
                    filter=f'resource.type = "global" AND metric.labels.group = "{plan.group_name}"',
                    single_instance_assignment=1,
                ),
            ]
        gcp.compute.RegionAutoscaler(
            f"{name}-autoscaler",
            name=plan.group_name,
            project=plan.project,
            region=plan.region,
            target=group.id,
            autoscaling_policy=gcp.compute.RegionAutoscalerAutoscalingPolicyArgs(
                min_replicas=plan.min_size,
                max_replicas=plan.max_size,
                cooldown_period=plan.initial_delay_seconds,
                mode="ON",
                metrics=metrics,
                load_balancing_utilization=balancing,
                # The spec's scale-in cooldown: at most one VM removed per window.
                scale_in_control=gcp.compute.RegionAutoscalerAutoscalingPolicyScaleInControlArgs(
                    time_window_sec=plan.scale_in_cooldown,
                    max_scaled_in_replicas=gcp.compute.RegionAutoscalerAutoscalingPolicyScaleInControlMaxScaledInReplicasArgs(
                        fixed=1
                    ),
                ),
            ),
            opts=child,
        )


def deploy(name: str, plan, ctx) -> dict[str, pulumi.Input]:
    """The target kind's entry point (inferstack.kinds): one group, its stack outputs."""
    group = GcpGpuFleet(name, plan, opts=pulumi.ResourceOptions(provider=ctx.gcp(plan.project, plan.region)))
    ctx.deployed[name] = group
    return {
        "group_name": group.group_name,
        "service_account": group.service_account,
        **endpoint_outputs(group.endpoint),
    }
