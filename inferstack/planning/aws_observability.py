"""The AWS binding of the observability description: what the nodes' CloudWatch agent collects,
the stack's dashboard, and the alarms on each SLO. Pure: JSON and YAML the component and the
user data take as they are.

On a node (templates/aws_user_data.sh.j2):
- the CloudWatch agent (Amazon Linux 2023's own package, from its repositories in S3 through the
  VPC's gateway endpoint) scrapes the engine's Prometheus endpoint into embedded metric format,
  renaming the engine's series to the canonical `engine_*` names (Prometheus metric relabelling),
  and publishes the GPUs' utilisation and memory from nvidia-smi (its `nvidia_gpu` section),
  rolled up per Auto Scaling group;
- the agent drops Prometheus histograms, so the node agent turns the engine's latency and
  time-to-first-token histograms into CloudWatch distributions itself: once a minute, each
  bucket's new count, at the bucket's upper bound (PutMetricData Values and Counts). CloudWatch's
  percentiles of them are therefore upper bounds of the true ones, never below: an SLO alarm may
  fire a bucket early, never late.
Why not NVIDIA's DCGM exporter here: the nodes have no internet route, and nvcr.io, where it is
published, is not a registry ECR's pull-through cache can front; the agent's nvidia_gpu reads
the same counters through NVML. The on-prem pools, which run the GPU operator, use DCGM.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from inferstack import catalog
from inferstack.catalog import Series
from inferstack.planning import observability as obs

AGENT_CONFIG_PATH = "/opt/aws/amazon-cloudwatch-agent/etc/inferstack.json"
PROMETHEUS_CONFIG_PATH = "/opt/aws/amazon-cloudwatch-agent/etc/inferstack-prometheus.yaml"
SCRAPE_SECONDS = 60
DASHBOARD_PERIOD = 60
JOB = "engine"


def _escape(regex: str) -> str:
    """A literal series name inside a relabel regex (vLLM's names hold ':')."""
    return regex.replace(".", r"\.")


def renames(engine_name: str) -> list[tuple[Series, str]]:
    """(engine series, canonical CloudWatch name) the agent's scrape renames."""
    engine = catalog.engines()[engine_name]
    s = engine.series
    out: list[tuple[Series, str]] = []
    if s.requests is not None:
        out.append((s.requests, obs.CLOUDWATCH_ENGINE["requests"]))
    if s.errors is not None and s.requests is not None and s.errors.name != s.requests.name:
        out.append((s.errors, obs.CLOUDWATCH_ENGINE["errors"]))
    if s.output_tokens is not None and not s.output_tokens.name.endswith("_sum"):
        out.append((s.output_tokens, obs.CLOUDWATCH_ENGINE["output_tokens"]))
    if engine.running_metric:
        out.append((Series(engine.running_metric), obs.CLOUDWATCH_ENGINE["running"]))
    if engine.queue_metric:
        out.append((Series(engine.queue_metric), obs.CLOUDWATCH_ENGINE["waiting"]))
    return out


def prometheus_config(engine_name: str, port: int, group: str) -> dict[str, Any]:
    """The agent's Prometheus scrape of the engine (a Prometheus scrape_config, as the agent takes it)."""
    engine = catalog.engines()[engine_name]
    relabel: list[dict[str, Any]] = []
    for series, name in renames(engine_name):
        labels = ["__name__", *(k for k, _ in series.match)]
        regex = ";".join([_escape(series.name), *(v for _, v in series.match)])
        relabel.append(
            {"source_labels": labels, "separator": ";", "regex": regex, "target_label": "__name__", "replacement": name}
        )
    keep = "|".join(sorted({name for _, name in renames(engine_name)}))
    relabel.append({"source_labels": ["__name__"], "regex": f"({keep})", "action": "keep"})
    return {
        "global": {"scrape_interval": f"{SCRAPE_SECONDS}s", "scrape_timeout": "10s"},
        "scrape_configs": [
            {
                "job_name": JOB,
                "metrics_path": engine.metrics_path,
                "static_configs": [{"targets": [f"127.0.0.1:{port}"], "labels": {"AutoScalingGroupName": group}}],
                "metric_relabel_configs": relabel,
            }
        ],
    }


def metric_declarations(engine_name: str) -> list[dict[str, Any]]:
    """Which scraped series become CloudWatch metrics, with which dimensions (embedded metric format)."""
    s = catalog.engines()[engine_name].series
    names = sorted({name for _, name in renames(engine_name)})
    out: list[dict[str, Any]] = [
        {
            "source_labels": ["job"],
            "label_matcher": f"^{JOB}$",
            "dimensions": [["AutoScalingGroupName"]],
            "metric_selectors": [f"^{n}$" for n in names],
        }
    ]
    if s.errors is not None and s.requests is not None:
        errors, extra = obs.cloudwatch_errors(s)
        if extra:
            out.append(
                {
                    "source_labels": ["job", *(k for k, _ in extra)],
                    "label_matcher": "^" + ";".join([JOB, *(v for _, v in extra)]) + "$",
                    "dimensions": [["AutoScalingGroupName", *(k for k, _ in extra)]],
                    "metric_selectors": [f"^{errors}$"],
                }
            )
    return out


def agent_config(engine_name: str, namespace: str, group: str, metrics_log_group: str) -> dict[str, Any]:
    """The CloudWatch agent's configuration file. The group is a static dimension: `${aws:...}`
    placeholders would need ec2:DescribeTags, which has no resource scope."""
    return {
        "agent": {"metrics_collection_interval": SCRAPE_SECONDS, "omit_hostname": True},
        "metrics": {
            "namespace": namespace,
            "aggregation_dimensions": [["AutoScalingGroupName"]],
            "metrics_collected": {
                "nvidia_gpu": {
                    "measurement": ["utilization_gpu", "memory_used", "memory_total"],
                    "metrics_collection_interval": SCRAPE_SECONDS,
                    "append_dimensions": {"AutoScalingGroupName": group},
                }
            },
        },
        "logs": {
            "metrics_collected": {
                "prometheus": {
                    "log_group_name": metrics_log_group,
                    "prometheus_config_path": PROMETHEUS_CONFIG_PATH,
                    "emf_processor": {
                        "metric_declaration_dedup": True,
                        "metric_namespace": namespace,
                        "metric_declaration": metric_declarations(engine_name),
                    },
                }
            },
            "force_flush_interval": 15,
        },
    }


@dataclass(frozen=True)
class HistogramExport:
    """A histogram (or a histogram's `_sum`) the node agent publishes itself."""

    series: str  # the engine's series, without _bucket
    metric: str  # the CloudWatch metric
    unit: str
    distribution: bool  # True: bucket counts as a distribution; False: the delta of a `_sum` counter


def histogram_exports(engine_name: str) -> list[HistogramExport]:
    s = catalog.engines()[engine_name].series
    out = []
    if s.latency is not None:
        out.append(HistogramExport(s.latency.name, obs.CLOUDWATCH_HISTOGRAMS["latency"], "Seconds", True))
    if s.ttft is not None:
        out.append(HistogramExport(s.ttft.name, obs.CLOUDWATCH_HISTOGRAMS["ttft"], "Seconds", True))
    if s.output_tokens is not None and s.output_tokens.name.endswith("_sum"):
        out.append(HistogramExport(s.output_tokens.name, obs.CLOUDWATCH_ENGINE["output_tokens"], "Count", False))
    return out


# -- the dashboard -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DashboardTarget:
    target: str
    region: str
    group: str
    engine: str


PANEL_WIDTH, PANEL_HEIGHT = 8, 6


def dashboard_name(deployment: str, stack: str) -> str:
    """CloudWatch dashboard names: up to 255 of A-Z, a-z, 0-9, '-' and '_' (PutDashboard)."""
    return f"inferstack-{deployment}-{stack}"[:255]


def _metric_rows(signal: str, t: DashboardTarget, namespace: str, prefix: str, period: int) -> list[list[Any]]:
    metrics = obs.cloudwatch_metrics(signal, t.engine, namespace, t.group)
    if not metrics:
        return []
    expression = obs.cloudwatch_expression(signal, period, prefix)
    rows: list[list[Any]] = []
    for mid, m in metrics:
        options: dict[str, Any] = {"id": f"{prefix}{mid}", "stat": m.stat, "period": period}
        if expression is not None:
            options["visible"] = False
        else:
            options["label"] = obs.SIGNALS[signal].title
        row: list[Any] = [m.namespace, m.name]
        for k, v in m.dimensions:
            row += [k, v]
        rows.append([*row, options])
    if expression is not None:
        rows.append([{"expression": expression, "label": obs.SIGNALS[signal].title, "id": f"{prefix}x"}])
    return rows


def dashboard_body(targets: list[DashboardTarget], namespace: str) -> str:
    """A CloudWatch dashboard body: a heading and one row of the panels per target, in name order."""
    widgets: list[dict[str, Any]] = []
    y = 0
    for t in sorted(targets, key=lambda t: t.target):
        widgets.append(
            {
                "type": "text",
                "x": 0,
                "y": y,
                "width": 24,
                "height": 1,
                "properties": {"markdown": f"## {t.target} ({t.engine}, {t.region}, group {t.group})"},
            }
        )
        y += 1
        for i, panel in enumerate(obs.PANELS):
            metrics: list[list[Any]] = []
            for j, signal in enumerate(panel.signals):
                metrics += _metric_rows(signal, t, namespace, f"s{j}", DASHBOARD_PERIOD)
            properties: dict[str, Any] = {
                "title": panel.title,
                "region": t.region,
                "view": "timeSeries",
                "stacked": False,
                "period": DASHBOARD_PERIOD,
                "yAxis": {"left": {"label": panel.unit, "showUnits": False}},
            }
            if metrics:
                properties["metrics"] = metrics
                widget: dict[str, Any] = {"type": "metric", "properties": properties}
            else:
                widget = {
                    "type": "text",
                    "properties": {"markdown": f"**{panel.title}**: {t.engine} publishes no such series"},
                }
            widget.update(
                {
                    "x": (i % 3) * PANEL_WIDTH,
                    "y": y + (i // 3) * PANEL_HEIGHT,
                    "width": PANEL_WIDTH,
                    "height": PANEL_HEIGHT,
                }
            )
            widgets.append(widget)
        y += ((len(obs.PANELS) + 2) // 3) * PANEL_HEIGHT
    return json.dumps({"widgets": widgets}, sort_keys=True)


# -- the alarms ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlarmQuery:
    id: str
    expression: str | None = None
    namespace: str | None = None
    metric: str | None = None
    stat: str | None = None
    dimensions: tuple[tuple[str, str], ...] = ()
    period: int | None = None
    return_data: bool = False


@dataclass(frozen=True)
class WindowAlarm:
    """One window of an SLO alert: a metric alarm with no actions of its own."""

    name: str
    period: int
    threshold: float
    queries: tuple[AlarmQuery, ...]


@dataclass(frozen=True)
class SloAlarm:
    """An SLO alert on CloudWatch: a composite alarm, ALARM(long) AND ALARM(short), which notifies."""

    name: str
    alert: obs.Alert
    description: str
    windows: tuple[WindowAlarm, WindowAlarm]

    @property
    def rule(self) -> str:
        return " AND ".join(f'ALARM("{w.name}")' for w in self.windows)


def _window_queries(
    alert: obs.Alert, engine_name: str, namespace: str, group: str, period: int
) -> tuple[AlarmQuery, ...]:
    signal = alert.signal if alert.kind == "quantile" else "error_ratio"
    metrics = obs.cloudwatch_metrics(signal, engine_name, namespace, group)
    expression = obs.cloudwatch_expression(signal, period)
    queries = [
        AlarmQuery(
            id=mid,
            namespace=m.namespace,
            metric=m.name,
            stat=m.stat,
            dimensions=m.dimensions,
            period=period,
            return_data=expression is None,
        )
        for mid, m in metrics
    ]
    if expression is not None:
        queries.append(AlarmQuery(id="x", expression=expression, return_data=True))
    return tuple(queries)


def slo_alarms(
    spec_slos_alerts: list[obs.Alert], engine_name: str, namespace: str, group: str, prefix: str
) -> list[SloAlarm]:
    out = []
    for a in spec_slos_alerts:
        name = f"{prefix}-slo-{a.key}"
        windows = tuple(
            WindowAlarm(
                name=f"{name}-{obs.duration(seconds)}",
                period=seconds,
                threshold=a.threshold,
                queries=_window_queries(a, engine_name, namespace, group, seconds),
            )
            for seconds in (a.long_seconds, a.short_seconds)
        )
        out.append(
            SloAlarm(
                name=name,
                alert=a,
                description=f"[{a.severity}] {prefix}: {a.summary} (SLO observability.slos.{a.slo})",
                windows=windows,  # type: ignore[arg-type]
            )
        )
    return out
