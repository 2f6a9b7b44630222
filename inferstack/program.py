"""The Pulumi program: a loaded spec in, resources out. The same code runs under `pulumi up`
and under the offline engine's mocks.
"""

from __future__ import annotations

from collections.abc import Callable

import pulumi
import pulumi_aws as aws
import pulumi_gcp as gcp

from inferstack.components.aws_gpu_fleet import AwsGpuFleet
from inferstack.components.gcp_gpu_fleet import GcpGpuFleet
from inferstack.components.gcp_tpu import GcpTpuSlice
from inferstack.planning.aws_fleet import plan_aws_fleet
from inferstack.planning.gcp import plan_gcp_fleet, plan_tpu
from inferstack.spec.models import AwsGpuFleetTarget, DeploymentSpec, GcpGpuFleetTarget, GcpTpuTarget


class Providers:
    """One explicit provider per AWS region and per GCP project and region: nothing depends on
    ambient defaults (AWS_REGION, gcloud's configured project)."""

    def __init__(self) -> None:
        self._made: dict[tuple[str, ...], pulumi.ProviderResource] = {}

    def _get(self, key: tuple[str, ...], make: Callable[[], pulumi.ProviderResource]) -> pulumi.ProviderResource:
        if key not in self._made:
            self._made[key] = make()
        return self._made[key]

    def aws(self, region: str) -> pulumi.ProviderResource:
        return self._get(("aws", region), lambda: aws.Provider(f"aws-{region}", region=region))

    def gcp(self, project: str, region: str) -> pulumi.ProviderResource:
        return self._get(
            ("gcp", project, region),
            lambda: gcp.Provider(f"gcp-{project}-{region}", project=project, region=region),
        )


def build(spec: DeploymentSpec, stack: str) -> None:
    """Register every resource of one stack. Targets go in name order, so a spec's order never matters."""
    providers = Providers()
    for name in sorted(spec.targets):
        target = spec.targets[name]
        if isinstance(target, AwsGpuFleetTarget):
            plan = plan_aws_fleet(spec, stack, name)
            fleet = AwsGpuFleet(name, plan, opts=pulumi.ResourceOptions(provider=providers.aws(plan.region)))
            pulumi.export(f"{name}.asg_name", fleet.asg_name)
            pulumi.export(f"{name}.vpc_id", fleet.vpc_id)
            pulumi.export(f"{name}.security_group_id", fleet.security_group_id)
            if fleet.endpoint is not None:
                pulumi.export(f"{name}.endpoint_service_name", fleet.endpoint.service_name)
                pulumi.export(f"{name}.endpoint_dns_name", fleet.endpoint.dns_name)
                pulumi.export(f"{name}.consumer_dns_names", fleet.endpoint.consumer_dns_names)
        elif isinstance(target, GcpGpuFleetTarget):
            plan = plan_gcp_fleet(spec, stack, name)
            gfleet = GcpGpuFleet(
                name, plan, opts=pulumi.ResourceOptions(provider=providers.gcp(plan.project, plan.region))
            )
            pulumi.export(f"{name}.group_name", gfleet.group_name)
            pulumi.export(f"{name}.service_account", gfleet.service_account)
            if gfleet.endpoint is not None:
                pulumi.export(f"{name}.service_attachment", gfleet.endpoint.service_attachment)
                pulumi.export(f"{name}.endpoint_address", gfleet.endpoint.address)
                pulumi.export(f"{name}.consumer_addresses", gfleet.endpoint.consumer_addresses)
        elif isinstance(target, GcpTpuTarget):
            tplan = plan_tpu(spec, stack, name)
            tpu = GcpTpuSlice(
                name, tplan, opts=pulumi.ResourceOptions(provider=providers.gcp(tplan.project, tplan.region))
            )
            pulumi.export(f"{name}.nodes", tpu.nodes)
            pulumi.export(f"{name}.service_account", tpu.service_account)
            if tpu.endpoint is not None:
                pulumi.export(f"{name}.service_attachment", tpu.endpoint.service_attachment)
                pulumi.export(f"{name}.endpoint_address", tpu.endpoint.address)
                pulumi.export(f"{name}.consumer_addresses", tpu.endpoint.consumer_addresses)
