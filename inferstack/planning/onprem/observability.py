"""The on-prem binding of the observability description: a PrometheusRule (recording rules for
the percentiles and error ratios, and the SLO alerts) and a Grafana dashboard the Grafana sidecar
loads, both for the site's own Prometheus stack.

Series and their labels, as the site's Prometheus has them:
- the engine's, scraped through the target's ServiceMonitor: `namespace` is the target's;
- the GPUs', from the GPU operator's DCGM exporter, which maps each GPU to the pod using it; the
  exporter's own namespace wins the `namespace` label, so the pod's arrives as
  `exported_namespace` (Prometheus' honor_labels: false);
- the replicas, from kube-state-metrics (kube_deployment_status_replicas_available).
Both objects carry the ServiceMonitor labels: kube-prometheus-stack selects PrometheusRules by
the same `release` label (its ruleSelector) as ServiceMonitors.
"""

from __future__ import annotations

import json
from typing import Any

from inferstack import catalog
from inferstack.planning import observability as obs
from inferstack.spec.models import DeploymentSpec

# The kube-prometheus-stack Grafana sidecar loads every ConfigMap with this label (its default
# sidecar.dashboards.label and labelValue).
GRAFANA_DASHBOARD_LABEL = ("grafana_dashboard", "1")
RECORD_WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")


def scope(namespace: str, mig: bool = False) -> obs.PrometheusScope:
    """MIG instances have no DCGM_FI_DEV_GPU_UTIL (DCGM reports utilisation per whole GPU only); their
    graphics-engine activity, DCGM_FI_PROF_GR_ENGINE_ACTIVE (a ratio, on every exporter's default
    counters), is read as percent instead. A time-sliced GPU is one series per pod that shares it
    (the exporter's KUBERNETES_VIRTUAL_GPUS), so each GPU (or MIG instance) is taken once: `max by`
    its host, UUID and instance before the sum or the mean."""
    per_device = ("Hostname", "UUID", "GPU_I_ID")
    return obs.PrometheusScope(
        engine={"namespace": namespace},
        gpu={"exported_namespace": namespace},
        gpu_utilization="DCGM_FI_PROF_GR_ENGINE_ACTIVE" if mig else "DCGM_FI_DEV_GPU_UTIL",
        gpu_utilization_scale=100 if mig else 1,
        gpu_memory_used="DCGM_FI_DEV_FB_USED",
        gpu_memory_scale=1048576,  # DCGM reports MiB
        gpu_per_device=per_device,
        capacity=f'sum(kube_deployment_status_replicas_available{{namespace="{namespace}"}})',
    )


def target_scope(spec: DeploymentSpec, target: str, namespace: str) -> obs.PrometheusScope:
    pools = getattr(spec.targets[target], "pools", {}) or {}
    return scope(namespace, mig=any(p.sharing.mode == "mig" for p in pools.values()))


def prometheus_rule_groups(spec: DeploymentSpec, target: str, namespace: str) -> list[dict[str, Any]]:
    """The `spec.groups` of the PrometheusRule: what `promtool check rules` and `promtool test
    rules` take as a rules file."""
    engine = catalog.engines()[spec.serving.engine]
    series = engine.series
    sc = target_scope(spec, target, namespace)
    labels = {"namespace": namespace, "inferstack_target": target}
    records: list[dict[str, Any]] = []
    for signal, q in obs.QUANTILES.items():
        hist = series.latency if signal.startswith("latency") else series.ttft
        if hist is not None:
            kind = "request_latency_seconds" if signal.startswith("latency") else "time_to_first_token_seconds"
            records.append(
                {
                    "record": f"inferstack:{kind}:p{q * 100:g}_rate5m",
                    "expr": obs.quantile_query(hist, q, sc.engine, "5m"),
                    "labels": labels,
                }
            )
    if series.errors is not None and series.requests is not None:
        for window in RECORD_WINDOWS:
            records.append(
                {
                    "record": f"inferstack:request_errors:ratio_rate{window}",
                    "expr": obs.error_ratio_query(series, sc.engine, window),
                    "labels": labels,
                }
            )
    alerts = []
    for a in obs.alerts(spec.observability.slos, series):
        alerts.append(
            {
                "alert": obs.alert_name(a.key),
                "expr": obs.alert_expr(a, series, sc),
                "for": obs.duration(obs.FOR_SECONDS[a.severity]),
                "labels": {
                    **spec.observability.alerts.alertmanager_labels,
                    **labels,
                    "severity": a.severity,
                    "slo": a.slo,
                },
                "annotations": {
                    "summary": f"{target}: {a.summary}",
                    "description": (
                        f"The {target} target in namespace {namespace} breaks observability.slos.{a.slo}: "
                        f"{a.summary}. Look at the inferstack dashboard's {target} row."
                    ),
                },
            }
        )
    groups = []
    if records:
        groups.append({"name": f"inferstack-{target}-records", "rules": records})
    if alerts:
        groups.append({"name": f"inferstack-{target}-slos", "rules": alerts})
    return groups


def grafana_dashboard(spec: DeploymentSpec, target: str, namespace: str, uid: str) -> dict[str, Any]:
    """One row of the PANELS, each panel's queries from the shared description; the Prometheus
    data source is a variable the viewer picks."""
    sc = target_scope(spec, target, namespace)
    panels: list[dict[str, Any]] = [
        {
            "type": "row",
            "title": target,
            "id": 1,
            "collapsed": False,
            "gridPos": {"h": 1, "w": 24, "x": 0, "y": 0},
            "panels": [],
        }
    ]
    for i, panel in enumerate(obs.PANELS):
        targets = []
        for j, signal in enumerate(panel.signals):
            expr = obs.signal_query(signal, spec.serving.engine, sc)
            if expr is not None:
                targets.append({"refId": chr(ord("A") + j), "expr": expr, "legendFormat": obs.SIGNALS[signal].title})
        panels.append(
            {
                "type": "timeseries",
                "id": i + 2,
                "title": panel.title,
                "datasource": {"type": "prometheus", "uid": "${datasource}"},
                "gridPos": {"h": 8, "w": 8, "x": (i % 3) * 8, "y": 1 + (i // 3) * 8},
                "fieldConfig": {"defaults": {"unit": _grafana_unit(panel.unit)}, "overrides": []},
                "targets": targets,
                **({} if targets else {"description": f"{spec.serving.engine} publishes no such series"}),
            }
        )
    return {
        "uid": uid,
        "title": f"inferstack {spec.metadata.name} {target}",
        "tags": ["inferstack"],
        "schemaVersion": 39,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "1m",
        "templating": {
            "list": [{"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus"}]
        },
        "panels": panels,
    }


def _grafana_unit(unit: str) -> str:
    return {"seconds": "s", "ratio": "percentunit", "percent": "percent", "bytes": "bytes", "requests/s": "reqps"}.get(
        unit, "short"
    )


def dashboard_json(spec: DeploymentSpec, target: str, namespace: str, uid: str) -> str:
    return json.dumps(grafana_dashboard(spec, target, namespace, uid), indent=2, sort_keys=True)
