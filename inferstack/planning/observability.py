"""What every target measures, shows and alerts on: one description, bound to each platform.

A team that moves a model between clouds should read the same board and be paged by the same
rules. So the signals (latency percentiles, time to first token, throughput, errors, queue, GPU,
capacity), the panel layout and the SLO alerts are described once here, in canonical names, and
each platform binds them to what it publishes:
- Prometheus (on-prem, and GCP, where an OpenTelemetry Collector on each node sends the engine's
  series to Managed Service for Prometheus and Cloud Monitoring answers PromQL): `promql`;
- CloudWatch (AWS): `cloudwatch_metric`, the metric each signal reads there.

Alerts follow the Google SRE workbook ("Alerting on SLOs"):
- availability is an error budget, 1 - availability over `window_days`, watched by multi-window
  multi-burn-rate alerts: each pairs a long window (is the budget burning?) with a short one (is
  it still burning?), and burn rate r over long window L spends r x L / window of the budget;
- latency and time-to-first-token objectives are percentile thresholds, alerting when the
  percentile over an hour and over its last 5 minutes both exceed the objective: the engines'
  histogram buckets differ (and are theirs to set), so a count of requests under a threshold is
  not available on every engine, while every platform computes percentiles;
- the error-rate objective is a ratio threshold over the same two windows.
CloudWatch alarms evaluate at most 1 day of data at once (PutMetricAlarm: Period x
EvaluationPeriods <= 86,400 s for periods under an hour, 604,800 s otherwise), so the budget alerts
there keep the windows up to a day (`CLOUDWATCH_MAX_WINDOW`) and the plan says which were left.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from inferstack import catalog
from inferstack.catalog import EngineSeries, Series
from inferstack.spec.models import DeploymentSpec, Slos

Severity = Literal["page", "ticket"]

# The rate window of every dashboard query: long enough for a few scrapes (15-60 s apart).
RATE_WINDOW = "5m"


@dataclass(frozen=True)
class Signal:
    """A canonical signal, named the same on every board."""

    key: str
    title: str
    unit: str  # seconds, requests/s, tokens/s, ratio, requests, percent, bytes, replicas


SIGNALS: dict[str, Signal] = {
    s.key: s
    for s in (
        Signal("latency_p50", "Latency p50", "seconds"),
        Signal("latency_p95", "Latency p95", "seconds"),
        Signal("latency_p99", "Latency p99", "seconds"),
        Signal("ttft_p50", "Time to first token p50", "seconds"),
        Signal("ttft_p95", "Time to first token p95", "seconds"),
        Signal("requests_per_second", "Requests/s", "requests/s"),
        Signal("output_tokens_per_second", "Output tokens/s", "tokens/s"),
        Signal("error_ratio", "Errors (share of requests)", "ratio"),
        Signal("running", "Running requests", "requests"),
        Signal("waiting", "Waiting requests", "requests"),
        Signal("gpu_utilization", "GPU utilisation", "percent"),
        Signal("gpu_memory_used", "GPU memory used", "bytes"),
        Signal("capacity", "Serving replicas", "replicas"),
    )
}


@dataclass(frozen=True)
class Panel:
    title: str
    signals: tuple[str, ...]
    unit: str


# One row per target, in this order, on every platform.
PANELS: tuple[Panel, ...] = (
    Panel("Request latency", ("latency_p50", "latency_p95", "latency_p99"), "seconds"),
    Panel("Time to first token", ("ttft_p50", "ttft_p95"), "seconds"),
    Panel("Throughput", ("requests_per_second",), "requests/s"),
    Panel("Output tokens", ("output_tokens_per_second",), "tokens/s"),
    Panel("Errors", ("error_ratio",), "ratio"),
    Panel("Queue", ("running", "waiting"), "requests"),
    Panel("GPU utilisation", ("gpu_utilization",), "percent"),
    Panel("GPU memory", ("gpu_memory_used",), "bytes"),
    Panel("Capacity", ("capacity",), "replicas"),
)

QUANTILES = {"latency_p50": 0.5, "latency_p95": 0.95, "latency_p99": 0.99, "ttft_p50": 0.5, "ttft_p95": 0.95}


@dataclass(frozen=True)
class BurnWindow:
    long_seconds: int
    short_seconds: int
    budget_spent: float  # share of the whole window's budget the long window spends at this rate
    severity: Severity


# SRE workbook, table 5-8, for a 30-day window: 2% of the budget in 1 h (14.4x) or 5% in 6 h (6x)
# pages; 10% in 1 day (3x) or 3 days (1x) opens a ticket. The short window is 1/12 of the long.
BURN_WINDOWS: tuple[BurnWindow, ...] = (
    BurnWindow(3600, 300, 0.02, "page"),
    BurnWindow(6 * 3600, 1800, 0.05, "page"),
    BurnWindow(86400, 2 * 3600, 0.10, "ticket"),
    BurnWindow(3 * 86400, 6 * 3600, 0.10, "ticket"),
)
CLOUDWATCH_MAX_WINDOW = 86400
# Percentile and ratio thresholds: the last hour, and its last 5 minutes (it is still happening).
THRESHOLD_LONG, THRESHOLD_SHORT = 3600, 300
# How long an alert's condition holds before it fires (Prometheus' `for`; SRE workbook: 2 minutes
# for pages, tickets can wait longer).
FOR_SECONDS = {"page": 120, "ticket": 900}


def burn_rate(window: BurnWindow, window_days: int) -> float:
    """The burn rate that spends `budget_spent` of a `window_days` budget in the long window."""
    return window.budget_spent * window_days * 86400 / window.long_seconds


@dataclass(frozen=True)
class Alert:
    """One SLO alert, platform-neutral: the platform binds it to its own rule language."""

    key: str  # unique within a target: latency-p95, availability-burn-1h, ...
    slo: str  # the Slos field it watches
    kind: Literal["quantile", "ratio", "burn"]
    severity: Severity
    long_seconds: int
    short_seconds: int
    threshold: float  # seconds (quantile), a share of requests (ratio and burn: burn rate x budget)
    quantile: float | None = None
    signal: str = ""  # the canonical signal a quantile alert reads
    summary: str = ""


def alert_name(key: str) -> str:
    """A Prometheus alert name (the on-prem rule's `alert`, Cloud Monitoring's `alertRule`)."""
    return "Inferstack" + "".join(p.capitalize() for p in re.split(r"[-_]", key))


def duration(seconds: int) -> str:
    """Prometheus duration: 5m, 1h, 3d."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def unavailable(slos: Slos, series: EngineSeries) -> list[tuple[str, str]]:
    """(Slos field, reason) for each stated objective the engine publishes no series for."""
    missing = []
    if slos.ttft_p95_seconds is not None and series.ttft is None:
        missing.append(("ttft_p95_seconds", "publishes no time-to-first-token histogram"))
    if (slos.latency_p95_seconds is not None or slos.latency_p99_seconds is not None) and series.latency is None:
        field = "latency_p95_seconds" if slos.latency_p95_seconds is not None else "latency_p99_seconds"
        missing.append((field, "publishes no request-latency histogram"))
    for field in ("error_rate", "availability"):
        if getattr(slos, field) is not None and (series.errors is None or series.requests is None):
            missing.append((field, "publishes no error counter"))
    return missing


def alerts(slos: Slos, series: EngineSeries) -> list[Alert]:
    """The alerts that watch a target's objectives, in a stable order. An objective the engine
    cannot measure (`unavailable`) has none: the spec checks refuse it when it was stated, and a
    default one is left out."""
    out: list[Alert] = []
    missing = {field for field, _ in unavailable(slos, series)}
    for slo, signal, severity in (
        ("latency_p95_seconds", "latency_p95", "page"),
        ("latency_p99_seconds", "latency_p99", "ticket"),
        ("ttft_p95_seconds", "ttft_p95", "page"),
    ):
        value = getattr(slos, slo)
        if value is None or slo in missing:
            continue
        out.append(
            Alert(
                key=signal.replace("_", "-"),
                slo=slo,
                kind="quantile",
                severity=severity,  # type: ignore[arg-type]
                long_seconds=THRESHOLD_LONG,
                short_seconds=THRESHOLD_SHORT,
                threshold=value,
                quantile=QUANTILES[signal],
                signal=signal,
                summary=f"{SIGNALS[signal].title} above {value:g} s over the last hour and 5 minutes",
            )
        )
    if slos.error_rate is not None and "error_rate" not in missing:
        out.append(
            Alert(
                key="error-rate",
                slo="error_rate",
                kind="ratio",
                severity="page",
                long_seconds=THRESHOLD_LONG,
                short_seconds=THRESHOLD_SHORT,
                threshold=slos.error_rate,
                summary=f"more than {slos.error_rate:.2%} of requests failing over the last hour and 5 minutes",
            )
        )
    if slos.availability is not None and "availability" not in missing:
        budget = 1 - slos.availability
        for w in BURN_WINDOWS:
            rate = burn_rate(w, slos.window_days)
            out.append(
                Alert(
                    key=f"availability-burn-{duration(w.long_seconds)}",
                    slo="availability",
                    kind="burn",
                    severity=w.severity,
                    long_seconds=w.long_seconds,
                    short_seconds=w.short_seconds,
                    threshold=round(rate * budget, 12),
                    summary=(
                        f"error budget of {slos.availability:.2%} over {slos.window_days} d burning {rate:.3g}x "
                        f"over {duration(w.long_seconds)} and {duration(w.short_seconds)} "
                        f"({w.budget_spent:.0%} of it)"
                    ),
                )
            )
    return out


def engine_series(spec: DeploymentSpec) -> EngineSeries:
    return catalog.engines()[spec.serving.engine].series


# -- Prometheus (on-prem; GCP through Managed Service for Prometheus) -------------------------


def selector(series: Series, scope: dict[str, str]) -> str:
    """`name{scope..., match=~...}`, labels in a stable order."""
    labels = [f'{k}="{v}"' for k, v in sorted(scope.items())]
    labels += [f'{k}=~"{v}"' for k, v in series.match]
    return f"{series.name}{{{','.join(labels)}}}" if labels else series.name


def _sum_rate(series: Series, scope: dict[str, str], window: str) -> str:
    return f"sum(rate({selector(series, scope)}[{window}]))"


def quantile_query(histogram: Series, quantile: float, scope: dict[str, str], window: str) -> str:
    bucket = Series(f"{histogram.name}_bucket", histogram.match)
    return f"histogram_quantile({quantile:g}, sum by (le) (rate({selector(bucket, scope)}[{window}])))"


def error_ratio_query(series: EngineSeries, scope: dict[str, str], window: str) -> str:
    assert series.errors is not None and series.requests is not None
    # `or vector(0)`: an engine that has never failed has no error series at all.
    errors = f"({_sum_rate(series.errors, scope, window)} or vector(0))"
    return f"{errors} / {_sum_rate(series.requests, scope, window)}"


@dataclass(frozen=True)
class PrometheusScope:
    """How a platform's Prometheus series are told apart: engine labels, GPU labels, the GPU
    series names, and the capacity query."""

    engine: dict[str, str]
    gpu: dict[str, str]
    gpu_utilization: str  # series name, percent
    gpu_memory_used: str  # series name
    gpu_memory_scale: float  # to bytes
    capacity: str  # a PromQL expression
    gpu_match: tuple[tuple[str, str], ...] = ()  # GPU label matchers that are regular expressions
    gpu_utilization_scale: float = 1  # to percent
    gpu_per_device: tuple[str, ...] = ()  # labels naming one device, where a device has several series


def promql(signal: str, series: EngineSeries, scope: PrometheusScope, window: str = RATE_WINDOW) -> str | None:
    """The PromQL of a canonical signal; None where the engine publishes nothing for it."""
    if signal in QUANTILES:
        hist = series.latency if signal.startswith("latency") else series.ttft
        return None if hist is None else quantile_query(hist, QUANTILES[signal], scope.engine, window)
    if signal == "requests_per_second":
        return None if series.requests is None else _sum_rate(series.requests, scope.engine, window)
    if signal == "output_tokens_per_second":
        return None if series.output_tokens is None else _sum_rate(series.output_tokens, scope.engine, window)
    if signal == "error_ratio":
        if series.errors is None or series.requests is None:
            return None
        return error_ratio_query(series, scope.engine, window)
    if signal in ("running", "waiting"):
        return None  # the engine's gauges: `gauge_query`, which needs the engine's names
    if signal in ("gpu_utilization", "gpu_memory_used"):
        utilization = signal == "gpu_utilization"
        name, factor = (
            (scope.gpu_utilization, scope.gpu_utilization_scale)
            if utilization
            else (scope.gpu_memory_used, scope.gpu_memory_scale)
        )
        q = selector(Series(name, scope.gpu_match), scope.gpu)
        if scope.gpu_per_device:
            q = f"max by ({', '.join(scope.gpu_per_device)}) ({q})"
        scale = "" if factor == 1 else f" * {factor:.0f}"
        return f"{'avg' if utilization else 'sum'}({q}){scale}"
    if signal == "capacity":
        return scope.capacity
    raise KeyError(signal)


def gauge_query(signal: str, engine_name: str, scope: PrometheusScope) -> str | None:
    engine = catalog.engines()[engine_name]
    name = engine.running_metric if signal == "running" else engine.queue_metric
    return None if name is None else f"sum({selector(Series(name), scope.engine)})"


def signal_query(signal: str, engine_name: str, scope: PrometheusScope) -> str | None:
    if signal in ("running", "waiting"):
        return gauge_query(signal, engine_name, scope)
    return promql(signal, catalog.engines()[engine_name].series, scope)


def alert_expr(alert: Alert, series: EngineSeries, scope: PrometheusScope) -> str:
    """The PromQL that fires the alert: both windows over the threshold."""

    def over(window: str) -> str:
        if alert.kind == "quantile":
            hist = series.latency if alert.signal.startswith("latency") else series.ttft
            assert hist is not None and alert.quantile is not None
            q = quantile_query(hist, alert.quantile, scope.engine, window)
        else:
            q = error_ratio_query(series, scope.engine, window)
        return f"({q}) > {alert.threshold:.6g}"

    return f"{over(duration(alert.long_seconds))}\nand\n{over(duration(alert.short_seconds))}"


# -- CloudWatch (AWS) -------------------------------------------------------------------------

# Histograms the CloudWatch agent drops (it converts only counters, gauges and summaries: "Prometheus
# metric type conversion by the CloudWatch agent"); the node agent publishes their per-minute
# bucket counts as CloudWatch distributions under these names, whose percentiles CloudWatch computes.
CLOUDWATCH_HISTOGRAMS = {"latency": "request_latency_seconds", "ttft": "time_to_first_token_seconds"}
# The CloudWatch agent's own NVIDIA GPU metrics (nvidia-smi), aggregated per Auto Scaling group.
CLOUDWATCH_GPU = {"gpu_utilization": "nvidia_smi_utilization_gpu", "gpu_memory_used": "nvidia_smi_memory_used"}
# The agent's Prometheus metrics of the engine (embedded metric format): these canonical names.
CLOUDWATCH_ENGINE = {
    "requests": "engine_requests",
    "errors": "engine_errors",
    "output_tokens": "engine_output_tokens",
    "running": "engine_running",
    "waiting": "engine_waiting",
}


def cloudwatch_errors(series: EngineSeries) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The CloudWatch metric errors are, and its extra dimensions. Where errors are a labelled
    subset of the request counter (vLLM: http_requests_total{status="5xx"}), the agent publishes
    the request counter a second time with that label as a dimension; otherwise errors are a
    series of their own."""
    assert series.errors is not None and series.requests is not None
    if series.errors.name == series.requests.name:
        extra = tuple((k, v) for k, v in series.errors.match if (k, v) not in series.requests.match)
        return CLOUDWATCH_ENGINE["requests"], extra
    return CLOUDWATCH_ENGINE["errors"], ()


@dataclass(frozen=True)
class CloudWatchMetric:
    namespace: str
    name: str
    stat: str  # Sum, Average, Maximum, pNN
    dimensions: tuple[tuple[str, str], ...]


def cloudwatch_metrics(signal: str, engine_name: str, namespace: str, group: str) -> list[tuple[str, CloudWatchMetric]]:
    """(id, metric) pairs a CloudWatch panel or alarm reads for a signal; the expression that
    combines them (if more than one) is `cloudwatch_expression`. Empty: not published."""
    engine = catalog.engines()[engine_name]
    series = engine.series
    dims = (("AutoScalingGroupName", group),)
    if signal in QUANTILES:
        hist = series.latency if signal.startswith("latency") else series.ttft
        if hist is None:
            return []
        name = CLOUDWATCH_HISTOGRAMS["latency" if signal.startswith("latency") else "ttft"]
        return [("m", CloudWatchMetric(namespace, name, f"p{QUANTILES[signal] * 100:g}", dims))]
    if signal == "requests_per_second":
        return (
            []
            if series.requests is None
            else [("m", CloudWatchMetric(namespace, CLOUDWATCH_ENGINE["requests"], "Sum", dims))]
        )
    if signal == "output_tokens_per_second":
        if series.output_tokens is None:
            return []
        return [("m", CloudWatchMetric(namespace, CLOUDWATCH_ENGINE["output_tokens"], "Sum", dims))]
    if signal == "error_ratio":
        if series.errors is None or series.requests is None:
            return []
        errors, extra = cloudwatch_errors(series)
        return [
            ("e", CloudWatchMetric(namespace, errors, "Sum", dims + extra)),
            ("r", CloudWatchMetric(namespace, CLOUDWATCH_ENGINE["requests"], "Sum", dims)),
        ]
    if signal in ("running", "waiting"):
        gauge = engine.running_metric if signal == "running" else engine.queue_metric
        return [] if gauge is None else [("m", CloudWatchMetric(namespace, CLOUDWATCH_ENGINE[signal], "Sum", dims))]
    if signal in CLOUDWATCH_GPU:
        return [
            (
                "m",
                CloudWatchMetric(
                    namespace, CLOUDWATCH_GPU[signal], "Average" if signal == "gpu_utilization" else "Sum", dims
                ),
            )
        ]
    if signal == "capacity":
        return [("m", CloudWatchMetric("AWS/AutoScaling", "GroupInServiceInstances", "Average", dims))]
    raise KeyError(signal)


def cloudwatch_expression(signal: str, period: int, prefix: str = "") -> str | None:
    """Metric math over `cloudwatch_metrics`' ids (each with `prefix`); None: the single metric is
    the signal. No traffic is no error: a ratio over zero requests is 0, not missing."""
    if signal == "error_ratio":
        return f"IF({prefix}r > 0, FILL({prefix}e, 0) / {prefix}r, 0)"
    if signal in ("requests_per_second", "output_tokens_per_second"):
        return f"FILL({prefix}m, 0) / {period}"
    if signal == "gpu_memory_used":
        return f"{prefix}m * 1048576"  # nvidia-smi reports MiB
    return None


@dataclass(frozen=True)
class TargetObservability:
    """What `inferstack plan` lists for a target: its objectives and the alerts that watch them."""

    target: str
    platform: str  # cloudwatch, cloud-monitoring, prometheus
    alerts: tuple[Alert, ...]
    left_out: tuple[str, ...] = ()  # alerts the platform cannot express, with why


def plan_target(spec: DeploymentSpec, name: str, platform: str) -> TargetObservability:
    all_alerts = alerts(spec.observability.slos, engine_series(spec))
    left: list[str] = []
    kept = []
    for a in all_alerts:
        if platform == "cloudwatch" and a.long_seconds > CLOUDWATCH_MAX_WINDOW:
            left.append(f"{a.key}: a {duration(a.long_seconds)} window is longer than a CloudWatch alarm evaluates")
            continue
        kept.append(a)
    return TargetObservability(name, platform, tuple(kept), tuple(left))


# Where each target kind's alerts live. A kind missing here has no SLO alerts yet, and the plan says so.
PLATFORMS = {
    "aws-gpu-fleet": "cloudwatch",
    "gcp-gpu-fleet": "cloud-monitoring",
    "gcp-tpu": "cloud-monitoring",
    "onprem-k8s": "prometheus",
}


def describe(spec: DeploymentSpec, stack: str) -> list[dict[str, object]]:
    """Per target, its objectives and the alerts that watch them (the plan's `observability`)."""
    from inferstack.planning.aws_fleet import plan_aws_fleet

    slos = spec.observability.slos
    stated = {k: v for k, v in slos.model_dump().items() if v is not None}
    out: list[dict[str, object]] = []
    for name in sorted(spec.targets):
        kind = spec.targets[name].kind
        platform = PLATFORMS.get(kind)
        if platform is None:
            out.append(
                {
                    "target": name,
                    "platform": None,
                    "slos": stated,
                    "alerts": [],
                    "left_out": [f"{kind} targets have no SLO alerts yet: watch them in the platform's console"],
                }
            )
            continue
        seen = plan_target(spec, name, platform)
        names: dict[str, str] = {}
        if kind == "aws-gpu-fleet":
            names = {a.alert.key: a.name for a in plan_aws_fleet(spec, stack, name).slo_alarms}
        elif platform == "cloud-monitoring":
            from inferstack.kinds import kind_of

            gcp_plan = kind_of(spec.targets[name]).plan(spec, stack, name)
            names = {p.alert.key: p.display_name for p in gcp_plan.alert_policies}
        alerts_out = [
            {
                "key": a.key,
                "slo": a.slo,
                "severity": a.severity,
                "threshold": a.threshold,
                "windows": [duration(a.long_seconds), duration(a.short_seconds)],
                "name": names.get(a.key, a.key),
                "summary": a.summary,
            }
            for a in seen.alerts
        ]
        out.append(
            {
                "target": name,
                "platform": platform,
                "slos": stated,
                "alerts": alerts_out,
                "left_out": list(seen.left_out),
            }
        )
    return out


def describe_lines(entries: list[dict]) -> list[str]:
    """`inferstack plan`'s lines: each target's objectives, then each alert with its windows."""
    lines = []
    for e in entries:
        slos = ", ".join(f"{k} {v:g}" for k, v in sorted(e["slos"].items()) if k != "window_days")
        lines.append(f"slo: {e['target']} ({e['platform'] or 'no alerts'}): {slos or 'none stated'}")
        for a in e["alerts"]:
            lines.append(f"  {a['severity']:6} {a['name']}: {a['summary']}")
        for why in e["left_out"]:
            lines.append(f"  left out: {why}")
    return lines
