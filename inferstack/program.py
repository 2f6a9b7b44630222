"""The Pulumi program: a loaded spec in, resources out. The same code runs under `pulumi up`
and under the offline engine's mocks. What each target kind registers is its table entry's
business (inferstack.kinds); the program only walks the targets.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_gcp as gcp

from inferstack.kinds import kind_of
from inferstack.spec.models import DeploymentSpec


class BuildContext:
    """One explicit provider per AWS region and per GCP project and region: nothing depends on
    ambient defaults (AWS_REGION, gcloud's configured project). Plus the stack's singletons (the
    AWS Auto Scaling service-linked role is one per account), made by the first target that needs them."""

    def __init__(self) -> None:
        self._made: dict[Any, Any] = {}
        self.deployed: dict[str, Any] = {}

    def once(self, key: Any, make: Callable[[], Any]) -> Any:
        if key not in self._made:
            self._made[key] = make()
        return self._made[key]

    def aws(self, region: str) -> pulumi.ProviderResource:
        return self.once(("aws", region), lambda: aws.Provider(f"aws-{region}", region=region))

    def gcp(self, project: str, region: str) -> pulumi.ProviderResource:
        return self.once(
            ("gcp", project, region),
            lambda: gcp.Provider(f"gcp-{project}-{region}", project=project, region=region),
        )


def _export(name: str, outputs: dict[str, pulumi.Input]) -> None:
    """Stack outputs as `<target>.<output>`: what consumers and operators read."""
    for key, value in outputs.items():
        pulumi.export(f"{name}.{key}", value)


def build(spec: DeploymentSpec, stack: str) -> None:
    """Register every resource of one stack. Targets go in name order, so a spec's order never matters."""
    from inferstack.components.aws_observability import deploy_dashboard
    from inferstack.components.gcp_observability import deploy_dashboards
    from inferstack.planning.gcp import GcpTargetPlan

    ctx = BuildContext()
    gcp_plans = []
    for name in sorted(spec.targets):
        kind = kind_of(spec.targets[name])
        plan = kind.plan(spec, stack, name)
        _export(name, dict(kind.deploy(name, plan, ctx)))
        if isinstance(plan, GcpTargetPlan):
            gcp_plans.append((name, kind.kind, plan))
    _export("observability", deploy_dashboard(spec, stack, ctx))
    _export("observability", deploy_dashboards(gcp_plans, spec.metadata.name, stack, spec.serving.engine, ctx))
    if spec.overflow is not None:
        # The link joins targets that exist by now: it attaches to the burst targets' networks.
        from inferstack.components.overflow import deploy_overflow

        _export("overflow", deploy_overflow(spec, stack, ctx))
