"""The Pulumi program: a loaded spec in, resources out. The same code runs under `pulumi up`
and under the offline engine's mocks.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from inferstack.components.aws_gpu_fleet import AwsGpuFleet
from inferstack.planning.aws_fleet import plan_aws_fleet
from inferstack.spec.models import AwsGpuFleetTarget, DeploymentSpec


def build(spec: DeploymentSpec, stack: str) -> None:
    """Register every resource of one stack. Targets go in name order, so a spec's order never matters."""
    providers: dict[str, aws.Provider] = {}

    def aws_provider(region: str) -> aws.Provider:
        # One explicit provider per region: nothing depends on the ambient AWS_REGION.
        if region not in providers:
            providers[region] = aws.Provider(f"aws-{region}", region=region)
        return providers[region]

    for name in sorted(spec.targets):
        target = spec.targets[name]
        if isinstance(target, AwsGpuFleetTarget):
            plan = plan_aws_fleet(spec, stack, name)
            fleet = AwsGpuFleet(name, plan, opts=pulumi.ResourceOptions(provider=aws_provider(plan.region)))
            pulumi.export(f"{name}.asg_name", fleet.asg_name)
            pulumi.export(f"{name}.vpc_id", fleet.vpc_id)
            pulumi.export(f"{name}.security_group_id", fleet.security_group_id)
