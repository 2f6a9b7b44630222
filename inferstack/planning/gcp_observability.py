"""The GCP binding of the observability description: what the nodes ship to Cloud Monitoring, the
dashboard and the SLO alert policies, all in PromQL (Cloud Monitoring answers PromQL over every
metric it holds, Managed Service for Prometheus' and its own).

What each node ships, and why that way:
- the engine's Prometheus series, scraped by the Google-Built OpenTelemetry Collector (a container
  on the host network, pinned in data/gcp_node.yaml) and written to Managed Service for
  Prometheus (its `googlemanagedprometheus` exporter), where PromQL reads them under their own
  names. The Ops Agent would do the same but does not run on Container-Optimized OS, the GPU
  groups' image (Ops Agent docs, "Supported operating systems": COS is not listed);
- GPU utilisation and memory, read from NVML by `nvidia-smi` (the counters DCGM_FI_DEV_GPU_UTIL
  and DCGM_FI_DEV_FB_USED report) and written by the node agent as two Cloud Monitoring custom
  metrics: the Ops Agent's GPU metrics need the Ops Agent, and NVIDIA's DCGM exporter image is on
  nvcr.io, which a node with no external IP and no NAT cannot reach;
- on TPU VMs, the TPU runtime's own metrics (tpu.googleapis.com/accelerator/*), which Cloud TPU
  publishes for every TPU worker without an agent.
Every series the collector writes carries `inferstack_target=<the target's resource prefix>`
(a static label of the scrape), which tells the targets apart across stacks in one project, and
`instance=<the VM's name>`: the scrape's own instance label would be 127.0.0.1:<port> on every VM,
and two VMs' series would then be one.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from inferstack import catalog
from inferstack.catalog import Series
from inferstack.planning import observability as obs
from inferstack.spec.models import DeploymentSpec

SCRAPE_SECONDS = 30
TARGET_LABEL = "inferstack_target"
# The same value as a label of the target's resources (instance templates, TPU VMs, alert policies):
# the policy pack joins a serving node to the alert policies that watch it on it.
TARGET_RESOURCE_LABEL = "inferstack-target"
# The node agent's GPU series (custom metrics on the gce_instance resource, label inferstack_target).
GPU_UTILIZATION_METRIC = "custom.googleapis.com/inferstack/gpu/utilization"  # percent, mean over the VM's GPUs
GPU_MEMORY_METRIC = "custom.googleapis.com/inferstack/gpu/memory_used"  # bytes, summed over the VM's GPUs
# Cloud TPU's own (Cloud Monitoring "Google Cloud metrics", tpu: on the tpu_worker resource).
TPU_DUTY_CYCLE_METRIC = "tpu.googleapis.com/accelerator/duty_cycle"  # percent of time the chip computes
TPU_MEMORY_METRIC = "tpu.googleapis.com/accelerator/memory_used"  # bytes of HBM
# Alert policies: how long the condition holds first (the on-prem `for`), and how often it is evaluated.
EVALUATION_INTERVAL = "60s"
SEVERITY = {"page": "CRITICAL", "ticket": "WARNING"}
AUTO_CLOSE = "1800s"


def promql_name(metric_type: str) -> str:
    """A Cloud Monitoring metric type as a PromQL metric name ("PromQL for Cloud Monitoring
    metrics": the first '/' becomes ':', every other '.' and '/' becomes '_')."""
    domain, _, path = metric_type.partition("/")
    return re.sub(r"[./]", "_", domain) + ":" + re.sub(r"[./]", "_", path)


def scope(kind: str, label: str, *, zone: str = "", slices: tuple[str, ...] = ()) -> obs.PrometheusScope:
    """How this target's series are told apart in the project's Cloud Monitoring."""
    engine = {TARGET_LABEL: label}
    if kind == "gcp-tpu":
        return obs.PrometheusScope(
            engine=engine,
            gpu={"monitored_resource": "tpu_worker", "zone": zone},
            gpu_match=(("node_id", "|".join(slices)),),  # names: [a-z0-9-]
            gpu_utilization=promql_name(TPU_DUTY_CYCLE_METRIC),
            gpu_memory_used=promql_name(TPU_MEMORY_METRIC),
            gpu_memory_scale=1,
            capacity=f"count({obs.selector(Series('up'), engine)} == 1)",
        )
    return obs.PrometheusScope(
        engine=engine,
        gpu={"monitored_resource": "gce_instance", TARGET_LABEL: label},
        gpu_utilization=promql_name(GPU_UTILIZATION_METRIC),
        gpu_memory_used=promql_name(GPU_MEMORY_METRIC),
        gpu_memory_scale=1,
        # Engines answering their scrape: the serving replicas, as the other platforms count them.
        capacity=f"count({obs.selector(Series('up'), engine)} == 1)",
    )


def kept_series(engine_name: str) -> list[str]:
    """The engine series the collector keeps (every other series is dropped before it is written:
    Managed Service for Prometheus bills by the sample). A histogram is its _bucket, _sum and _count."""
    engine = catalog.engines()[engine_name]
    s = engine.series
    names: set[str] = set()
    for hist in (s.latency, s.ttft):
        if hist is not None:
            names |= {f"{hist.name}_bucket", f"{hist.name}_sum", f"{hist.name}_count"}
    for counter in (s.requests, s.errors, s.output_tokens):
        if counter is not None:
            names.add(counter.name)
    names |= {m for m in (engine.running_metric, engine.queue_metric) if m}
    return sorted(names)


def collector_config(engine_name: str, port: int, label: str) -> dict[str, Any]:
    """The collector's configuration. `${env:INFERSTACK_INSTANCE}` is the VM's name, which the
    startup script passes in (the collector expands ${env:...} in its configuration), so the
    configuration itself is the same on every VM of the target."""
    engine = catalog.engines()[engine_name]
    keep = "|".join(re.escape(n) for n in kept_series(engine_name))
    return {
        "receivers": {
            "prometheus": {
                "config": {
                    "scrape_configs": [
                        {
                            "job_name": "engine",
                            "scrape_interval": f"{SCRAPE_SECONDS}s",
                            "scrape_timeout": "10s",
                            "metrics_path": engine.metrics_path,
                            "static_configs": [
                                {
                                    "targets": [f"127.0.0.1:{port}"],
                                    "labels": {TARGET_LABEL: label, "instance": "${env:INFERSTACK_INSTANCE}"},
                                }
                            ],
                            "metric_relabel_configs": [
                                {"source_labels": ["__name__"], "regex": f"({keep})", "action": "keep"}
                            ],
                        }
                    ]
                }
            }
        },
        "processors": {
            "memory_limiter": {"check_interval": "1s", "limit_percentage": 65, "spike_limit_percentage": 20},
            # The project, zone and VM from the metadata server: the exporter's resource labels.
            "resourcedetection": {"detectors": ["gcp"], "timeout": "10s"},
            # Managed Service for Prometheus takes at most 200 series per write request.
            "batch": {"send_batch_size": 200, "send_batch_max_size": 200, "timeout": "5s"},
        },
        "exporters": {"googlemanagedprometheus": {}},
        "extensions": {"health_check": {"endpoint": "127.0.0.1:13133"}},
        "service": {
            "extensions": ["health_check"],
            "pipelines": {
                "metrics": {
                    "receivers": ["prometheus"],
                    "processors": ["memory_limiter", "resourcedetection", "batch"],
                    "exporters": ["googlemanagedprometheus"],
                }
            },
        },
    }


def collector_yaml(engine_name: str, port: int, label: str) -> str:
    """The configuration as the collector reads it (JSON is YAML)."""
    return json.dumps(collector_config(engine_name, port, label), indent=2, sort_keys=True)


# -- alert policies -----------------------------------------------------------------------------


@dataclass(frozen=True)
class AlertPolicyPlan:
    """One Cloud Monitoring alert policy with one PromQL condition (a Prometheus alerting rule)."""

    alert: obs.Alert
    display_name: str
    query: str
    duration: str  # the rule's `for`
    severity: str  # the policy's severity
    rule_group: str
    alert_rule: str
    labels: dict[str, str]  # the condition's labels (on the incident)
    documentation: str


def alert_policies(spec: DeploymentSpec, target: str, label: str, sc: obs.PrometheusScope) -> list[AlertPolicyPlan]:
    series = obs.engine_series(spec)
    out = []
    for a in obs.alerts(spec.observability.slos, series):
        out.append(
            AlertPolicyPlan(
                alert=a,
                display_name=f"inferstack {label}: {a.key}",
                query=obs.alert_expr(a, series, sc),
                duration=f"{obs.FOR_SECONDS[a.severity]}s",
                severity=SEVERITY[a.severity],
                rule_group=f"inferstack-{label}",
                alert_rule=obs.alert_name(a.key),
                labels={TARGET_LABEL: label, "severity": a.severity, "slo": a.slo},
                documentation=(
                    f"The {target} target ({label}) breaks observability.slos.{a.slo}: {a.summary}. "
                    f"Look at the {target} row of the inferstack dashboard."
                ),
            )
        )
    return out


def channels_for(project: str, channels: list[str]) -> list[str]:
    """The spec's channels that live in this project: an alert policy notifies channels of its own
    project only (the spec checks make sure every GCP target's project has one when any is given)."""
    return [c for c in channels if c.split("/")[1] == project]


# -- the dashboard ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DashboardTarget:
    target: str
    kind: str
    region: str
    label: str
    engine: str
    scope: obs.PrometheusScope


COLUMNS = 48  # a mosaic layout's grid width (Cloud Monitoring: 1 to 48 columns)
PANEL_WIDTH, PANEL_HEIGHT, HEADING_HEIGHT = 16, 16, 4
UNITS = {"seconds": "s", "ratio": "10^2.%", "percent": "%", "bytes": "By", "requests/s": "1/s", "tokens/s": "1/s"}


def dashboard_display_name(deployment: str, stack: str) -> str:
    return f"inferstack {deployment} {stack}"


def dashboard(targets: list[DashboardTarget], display_name: str) -> dict[str, Any]:
    """A Cloud Monitoring dashboard (v1 Dashboard, mosaicLayout): a heading and one row of the
    panels per target, in name order, each query from the shared description."""
    tiles: list[dict[str, Any]] = []
    y = 0
    for t in sorted(targets, key=lambda t: t.target):
        tiles.append(
            {
                "xPos": 0,
                "yPos": y,
                "width": COLUMNS,
                "height": HEADING_HEIGHT,
                "widget": {
                    "title": t.target,
                    "text": {
                        "content": f"**{t.target}** ({t.engine}, {t.kind}, {t.region}): series labelled "
                        f"{TARGET_LABEL}={t.label}",
                        "format": "MARKDOWN",
                    },
                },
            }
        )
        y += HEADING_HEIGHT
        per_row = COLUMNS // PANEL_WIDTH
        for i, panel in enumerate(obs.PANELS):
            title = panel.title if t.kind != "gcp-tpu" else panel.title.replace("GPU", "TPU")
            data_sets = []
            for signal in panel.signals:
                query = obs.signal_query(signal, t.engine, t.scope)
                if query is not None:
                    data_sets.append(
                        {
                            "plotType": "LINE",
                            "legendTemplate": obs.SIGNALS[signal].title,
                            "timeSeriesQuery": {"prometheusQuery": query, "unitOverride": UNITS.get(panel.unit, "1")},
                        }
                    )
            if data_sets:
                widget: dict[str, Any] = {
                    "title": title,
                    "xyChart": {"dataSets": data_sets, "yAxis": {"label": panel.unit, "scale": "LINEAR"}},
                }
            else:
                widget = {
                    "title": title,
                    "text": {"content": f"{t.engine} publishes no such series", "format": "MARKDOWN"},
                }
            tiles.append(
                {
                    "xPos": (i % per_row) * PANEL_WIDTH,
                    "yPos": y + (i // per_row) * PANEL_HEIGHT,
                    "width": PANEL_WIDTH,
                    "height": PANEL_HEIGHT,
                    "widget": widget,
                }
            )
        y += -(-len(obs.PANELS) // per_row) * PANEL_HEIGHT
    return {"displayName": display_name, "mosaicLayout": {"columns": COLUMNS, "tiles": tiles}}


def dashboard_json(targets: list[DashboardTarget], display_name: str) -> str:
    return json.dumps(dashboard(targets, display_name), sort_keys=True)
