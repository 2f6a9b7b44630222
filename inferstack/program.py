"""The Pulumi program: a loaded spec in, resources out. The same code runs under `pulumi up`
and under the offline engine's mocks.
"""

from __future__ import annotations

from collections.abc import Callable

import pulumi
import pulumi_aws as aws
import pulumi_gcp as gcp

from inferstack.components.aws_gpu_fleet import AwsGpuFleet, autoscaling_service_role
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


def _export(name: str, outputs: dict[str, pulumi.Input]) -> None:
    """Stack outputs as `<target>.<output>`: what consumers and operators read."""
    for key, value in outputs.items():
        pulumi.export(f"{name}.{key}", value)


def _gcp_endpoint_outputs(endpoint) -> dict[str, pulumi.Input]:
    if endpoint is None:
        return {}
    return {
        "service_attachment": endpoint.service_attachment,
        "endpoint_address": endpoint.address,
        "consumer_addresses": endpoint.consumer_addresses,
    }


def build(spec: DeploymentSpec, stack: str) -> None:
    """Register every resource of one stack. Targets go in name order, so a spec's order never matters."""
    providers = Providers()
    service_role: list[pulumi.Resource] | None = None  # one per account, for every AWS target
    for name in sorted(spec.targets):
        target = spec.targets[name]
        if isinstance(target, AwsGpuFleetTarget):
            plan = plan_aws_fleet(spec, stack, name)
            opts = pulumi.ResourceOptions(provider=providers.aws(plan.region))
            if service_role is None:
                service_role = autoscaling_service_role(plan.tags, opts)
            fleet = AwsGpuFleet(name, plan, opts=opts, key_depends_on=service_role)
            # image_id: the AMI the nodes run (pinned; see the spec's ami_id for how to move it)
            outputs = {
                "asg_name": fleet.asg_name,
                "vpc_id": fleet.vpc_id,
                "security_group_id": fleet.security_group_id,
                "image_id": fleet.image_id,
            }
            if fleet.endpoint is not None:
                outputs |= {
                    "endpoint_service_name": fleet.endpoint.service_name,
                    "endpoint_dns_name": fleet.endpoint.dns_name,
                    "consumer_dns_names": fleet.endpoint.consumer_dns_names,
                    "endpoint_domain": fleet.endpoint.domain_name,
                    "consumer_zone_ids": fleet.endpoint.consumer_zone_ids,
                }
            _export(name, outputs)
        elif isinstance(target, GcpGpuFleetTarget):
            gplan = plan_gcp_fleet(spec, stack, name)
            group = GcpGpuFleet(
                name, gplan, opts=pulumi.ResourceOptions(provider=providers.gcp(gplan.project, gplan.region))
            )
            _export(
                name,
                {
                    "group_name": group.group_name,
                    "service_account": group.service_account,
                    **_gcp_endpoint_outputs(group.endpoint),
                },
            )
        elif isinstance(target, GcpTpuTarget):
            tplan = plan_tpu(spec, stack, name)
            tpu = GcpTpuSlice(
                name, tplan, opts=pulumi.ResourceOptions(provider=providers.gcp(tplan.project, tplan.region))
            )
            _export(
                name,
                {"nodes": tpu.nodes, "service_account": tpu.service_account, **_gcp_endpoint_outputs(tpu.endpoint)},
            )
