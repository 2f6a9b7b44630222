"""Cloud Monitoring for the GCP targets: each target's SLO alert policies (PromQL conditions, the
same rules the on-prem PrometheusRule holds) and a dashboard per project, one row per GCP target
of the stack in that project. The queries come from planning.gcp_observability."""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp

from inferstack.planning.gcp import GcpTargetPlan
from inferstack.planning.gcp_observability import (
    AUTO_CLOSE,
    EVALUATION_INTERVAL,
    DashboardTarget,
    dashboard_display_name,
    dashboard_json,
)


def slo_alert_policies(
    name: str, plan: GcpTargetPlan, opts: pulumi.ResourceOptions
) -> list[gcp.monitoring.AlertPolicy]:
    """One policy per alert: a policy's severity is its own, and a page and a ticket must differ."""
    policies = []
    for p in plan.alert_policies:
        policies.append(
            gcp.monitoring.AlertPolicy(
                f"{name}-slo-{p.alert.key}",
                project=plan.project,
                display_name=p.display_name,
                combiner="OR",
                severity=p.severity,
                conditions=[
                    gcp.monitoring.AlertPolicyConditionArgs(
                        display_name=p.alert.summary[:512],
                        condition_prometheus_query_language=gcp.monitoring.AlertPolicyConditionConditionPrometheusQueryLanguageArgs(
                            query=p.query,
                            duration=p.duration,
                            evaluation_interval=EVALUATION_INTERVAL,
                            labels=p.labels,
                            rule_group=p.rule_group,
                            alert_rule=p.alert_rule,
                        ),
                    )
                ],
                notification_channels=list(plan.notification_channels),
                alert_strategy=gcp.monitoring.AlertPolicyAlertStrategyArgs(auto_close=AUTO_CLOSE),
                documentation=gcp.monitoring.AlertPolicyDocumentationArgs(
                    content=p.documentation, mime_type="text/markdown", subject=p.display_name[:255]
                ),
                user_labels=plan.labels,
                opts=opts,
            )
        )
    return policies


def deploy_dashboards(
    plans: list[tuple[str, str, GcpTargetPlan]], deployment: str, stack: str, engine: str, ctx
) -> dict[str, pulumi.Input]:
    """`plans`: (target, kind, plan) of every GCP target. A dashboard shows one project's metrics
    scope, so each project gets its own."""
    by_project: dict[str, list[tuple[str, str, GcpTargetPlan]]] = {}
    for entry in plans:
        by_project.setdefault(entry[2].project, []).append(entry)
    out: dict[str, pulumi.Input] = {}
    for project, entries in sorted(by_project.items()):
        targets = [
            DashboardTarget(target, kind, plan.region, plan.metrics_label, engine, plan.metrics_scope)
            for target, kind, plan in entries
        ]
        first = entries[0][2]
        board = gcp.monitoring.Dashboard(
            f"dashboard-{project}",
            project=project,
            dashboard_json=dashboard_json(targets, dashboard_display_name(deployment, stack)),
            opts=pulumi.ResourceOptions(provider=ctx.gcp(project, first.region)),
        )
        out[f"cloud_monitoring_dashboard.{project}"] = board.id
    return out
