"""The stack's CloudWatch dashboard: one row per AWS target, the panels of
planning.observability in their order. Dashboards are global in CloudWatch, each widget names
its region, so one dashboard (made with the first AWS target's provider) shows every region."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from inferstack.planning.aws_fleet import METRICS_NAMESPACE, plan_aws_fleet
from inferstack.planning.aws_observability import DashboardTarget, dashboard_body, dashboard_name
from inferstack.spec.models import AwsGpuFleetTarget, DeploymentSpec


def deploy_dashboard(spec: DeploymentSpec, stack: str, ctx) -> dict[str, pulumi.Input]:
    targets = []
    for name in sorted(spec.targets):
        if isinstance(spec.targets[name], AwsGpuFleetTarget):
            plan = plan_aws_fleet(spec, stack, name)
            targets.append(DashboardTarget(name, plan.region, plan.asg_name, spec.serving.engine))
    if not targets:
        return {}
    board = aws.cloudwatch.Dashboard(
        "dashboard",
        dashboard_name=dashboard_name(spec.metadata.name, stack),
        dashboard_body=dashboard_body(targets, METRICS_NAMESPACE),
        opts=pulumi.ResourceOptions(provider=ctx.aws(targets[0].region)),
    )
    return {"cloudwatch_dashboard": board.dashboard_name}
