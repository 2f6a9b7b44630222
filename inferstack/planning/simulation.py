"""A deterministic, one-second discrete-event rehearsal of a fleet's scaling on a day of traffic.

Model, per target (see /work/notes/wt-simulate.md for its limits):
- Auto Scaling alarm actions repeat every period the alarm stays in ALARM (CloudWatch "Alarm
  actions": "Except for Auto Scaling actions, the actions happen only on state transitions").
- Replicas are slots: `concurrent_sequences` each; a request holds one slot for its service time
  (prefill + decode at full batch). Requests wait in one FIFO queue for a free slot (the load
  balancer spreads them; pooling the slots is least-outstanding routing). A client retries a
  refused connection and gives up after the profile's client timeout (counted as refused).
- Nodes publish their gauges every AGENT_PERIOD seconds and only once healthy (in service):
  in-flight (running + waiting), waiting, running, GPU utilisation. CloudWatch and Cloud Monitoring
  aggregate them per period (60 s) as the alarm's statistic says.
- AWS: target tracking scales out when its metric stays above the target for TT_HIGH_DATAPOINTS
  one-minute datapoints, to ceil(publishing nodes × metric / target); alarms on simple/step
  policies fire every minute they stay in ALARM (CloudWatch re-invokes Auto Scaling actions), a
  simple policy honours its cooldown; the wake alarm sees the group's desired capacity and demand.
  A warm-pool instance starts in the warm-start time; a launch that outlasts the launch hook's
  timeout is abandoned (never serves).
- GCP: the autoscaler recommends ceil(metric sum / assignment) (per-group metric) or
  ceil(nodes × average / target) every minute; scale-in follows the largest recommendation of the
  stabilization period (scaling_config.GCP_STABILIZATION_SECONDS unless the plan sets one) and at most scale_in_max VMs per scale-in window.
- On-prem (each pool its own group): the HPA algorithm every sync period (15 s), see `hpa_step`;
  a KEDA-fed HPA reads the triggers' values as of KEDA's last poll (pollingInterval), an HPA the
  Prometheus adapter's as of the last scrape. A pod starts on a node that is already up (start-up =
  the startup probe's budget, no boot), and a pool never holds more replicas than its devices.
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from inferstack.planning.cost import on_demand_count
from inferstack.planning.replica import ReplicaModel
from inferstack.planning.scaling_config import PodAutoscaler, ScalingConfig, ScalingRules

AGENT_PERIOD = 15  # the node agents' publishing period (aws_user_data / gcp startup agents)
# On-prem: Prometheus scrapes the engines every 15 s (the ServiceMonitor's interval,
# planning.onprem.workload.service_monitor), so the autoscaler sees the load as of the last scrape.
SCRAPE_PERIOD = 15
MINUTE = 60
# Target tracking's high alarm (created and managed by Auto Scaling, not in the plan): 3 breaching
# one-minute datapoints, as the alarms AWS creates show ("3 datapoints within 3 minutes"). Not found
# in the documentation corpus checked for this module: confirm on a real alarm and change it here.
TT_HIGH_DATAPOINTS = 3
# A share of the over-SLO or refused requests, outside cold starts from zero, that means the
# scale-out does not keep up with the profile.
KEEP_UP_TOLERANCE = 0.01
# A node whose requests in flight fill at least this share of its slots is not idle.
BUSY_SHARE = 0.5


@dataclass
class Event:
    second: int
    kind: str  # "out", "in", "wake", "interrupt"
    before: int
    after: int
    resource: str

    def to_json(self) -> dict:
        return {
            "second": self.second,
            "kind": self.kind,
            "from": self.before,
            "to": self.after,
            "resource": self.resource,
        }


@dataclass(frozen=True)
class Finding:
    kind: str  # cannot-wake-from-zero, scale-in-under-load, flapping, cannot-keep-up, launch-hook-timeout
    resource: str
    message: str

    def to_json(self) -> dict:
        return {"kind": self.kind, "resource": self.resource, "message": self.message}


@dataclass
class TargetResult:
    target: str
    requests: int = 0
    served: int = 0
    refused: int = 0
    over_slo: int = 0
    ttft: dict[str, float | None] = field(default_factory=dict)
    queue_wait: dict[str, float | None] = field(default_factory=dict)
    cold_start_first_token: list[float] = field(default_factory=list)  # per episode at zero
    replica_hours: float = 0.0
    cost_usd: float | None = None
    events: list[Event] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    replica: ReplicaModel | None = None
    # Per-minute series for the plot: replicas in service, desired, queue depth, mean wait.
    series: dict[str, list[float]] = field(default_factory=dict)
    # Per second, for the overflow trigger: requests waiting, and replicas serving.
    pending: np.ndarray | None = None
    serving: np.ndarray | None = None

    def to_json(self) -> dict:
        r = self.replica
        return {
            "target": self.target,
            "requests": self.requests,
            "served": self.served,
            "refused": self.refused,
            "overSlo": self.over_slo,
            "ttftSeconds": self.ttft,
            "queueWaitSeconds": self.queue_wait,
            "coldStartFirstTokenSeconds": self.cold_start_first_token,
            "replicaHours": round(self.replica_hours, 2),
            "costUsd": self.cost_usd,
            "replica": None
            if r is None
            else {
                "startupSeconds": r.startup_seconds,
                "warmStartSeconds": r.warm_start_seconds,
                "concurrentSequences": r.concurrent_sequences,
                "outputTokensPerSecond": r.output_tokens_per_second,
                "estimated": r.estimated,
                "formula": r.formula,
                "deviceCap": r.device_cap,
            },
            "events": [e.to_json() for e in self.events],
            "findings": [f.to_json() for f in self.findings],
        }


def _percentiles(hist: np.ndarray, offset: float) -> dict[str, float | None]:
    total = int(hist.sum())
    if total == 0:
        return {"p50": None, "p95": None, "p99": None}
    cum = np.cumsum(hist)
    return {f"p{q}": float(np.searchsorted(cum, math.ceil(total * q / 100))) + offset for q in (50, 95, 99)}


def _metric_value(metric: str, running: float, waiting: float, slots: int) -> float:
    """What one node's agent reports for a metric name (CloudWatch or Cloud Monitoring)."""
    m = metric.lower()
    if "inflight" in m or "in_flight" in m:
        return running + waiting
    if "pending" in m or "waiting" in m or "queue" in m:
        return waiting
    if "running" in m:
        return running
    if "gpu" in m:  # near 100 with a single decoding sequence
        return 100.0 if running > 0 else 0.0
    if "loadbalancing" in m:
        return (running + waiting) / slots
    raise ValueError(f"no model of what a node publishes as {metric!r}")


def _counts_in_flight(metric: str) -> bool:
    m = metric.lower()
    return "inflight" in m or "in_flight" in m or "running" in m


def _compare(value: float, op: str, threshold: float) -> bool:
    return {
        "LessThanThreshold": value < threshold,
        "LessThanOrEqualToThreshold": value <= threshold,
        "GreaterThanThreshold": value > threshold,
        "GreaterThanOrEqualToThreshold": value >= threshold,
    }[op]


# -- the HPA algorithm (kubernetes.io, "Horizontal Pod Autoscaling": "Algorithm details",
# "Stabilization window", "Scaling policies"; k8s.io/kubernetes pkg/controller/podautoscaler) ------


def hpa_recommendation(pods: PodAutoscaler, total: float, target: float, ready: int, current: int) -> int:
    """Replicas one AverageValue metric asks for. `total`: the metric summed over the pods that report
    it (`ready`); `current`: the scale's replicas (starting pods included).

    desired = ceil(current × metric / target), where metric / target is the usage ratio, and nothing
    changes while the ratio is within the tolerance (0.1) of 1. KEDA feeds an External metric: the
    ratio is total / (target × current). An HPA's Pods metric averages over the pods that report it;
    pods that do not yet (starting) count as 0 on a scale-up and as the target on a scale-down, and a
    change that this would reverse is dropped."""
    tol = pods.tolerance
    if pods.via == "keda":
        if current == 0:
            return 0
        if abs(total / (target * current) - 1.0) <= tol:
            return current
        return math.ceil(total / target)
    if ready == 0:
        return current  # no pod reports the metric: the HPA cannot compute and keeps the scale
    ratio = total / (target * ready)
    if abs(ratio - 1.0) <= tol:
        return current
    missing = max(0, current - ready)
    filled = total if ratio > 1.0 else total + missing * target
    new_ratio = filled / (target * (ready + missing))
    if abs(new_ratio - 1.0) <= tol or (ratio > 1.0) != (new_ratio > 1.0):
        return current
    return math.ceil(new_ratio * (ready + missing))


def hpa_stabilize(
    recommendations: list[tuple[int, int]], t: int, desired: int, current: int, pods: PodAutoscaler
) -> int:
    """The stabilization windows: scale up to at most the smallest recommendation of the scale-up
    window, down to at least the largest of the scale-down window (`recommendations`: (second,
    replicas) of earlier syncs; `desired` is this sync's)."""
    up = min([r for s, r in recommendations if s > t - pods.scale_up.stabilization] + [desired])
    down = max([r for s, r in recommendations if s > t - pods.scale_down.stabilization] + [desired])
    out = current
    if out < up:
        out = up
    if out > down:
        out = down
    return out


def hpa_limit(changes: list[tuple[int, int]], t: int, wanted: int, current: int, rules: ScalingRules) -> int:
    """The scaling policies of the direction `wanted` moves in (`changes`: (second, replicas added,
    negative when removed) of earlier scalings). Each policy bounds the change over its period from
    the replicas the period began with: Pods by `value`, Percent by value% (up: rounded up; down:
    truncated); selectPolicy Max takes the policy allowing the largest change, Min the smallest,
    Disabled allows none."""
    if wanted == current or rules.select == "Disabled":
        return current
    bounds = []
    if wanted > current:
        for p in rules.policies:
            start = current - sum(d for s, d in changes if s > t - p.period and d > 0)
            bounds.append(start + p.value if p.type == "Pods" else math.ceil(start * (1 + p.value / 100)))
        bound = max(bounds) if rules.select == "Max" else min(bounds)
        return max(current, min(wanted, bound))
    for p in rules.policies:
        start = current - sum(d for s, d in changes if s > t - p.period and d < 0)
        bounds.append(start - p.value if p.type == "Pods" else int(start * (1 - p.value / 100)))
    bound = min(bounds) if rules.select == "Max" else max(bounds)
    return min(current, max(wanted, bound))


def _pod_signals(busy: int, queued: int, in_service: int) -> dict[str, float]:
    """The pool's load as the queries sum it over its serving pods: in flight (running + waiting),
    waiting, and busy pods (least-outstanding spreading gives each request its own pod first)."""
    return {
        "in_flight": float(busy + queued),
        "queue_depth": float(queued),
        "busy": float(min(in_service, busy + queued)),
    }


def simulate_target(
    cfg: ScalingConfig,
    replica: ReplicaModel,
    arrivals: np.ndarray,
    *,
    input_tokens: int,
    output_tokens: int,
    slo_seconds: float,
    client_timeout: int,
    spot_rate_per_hour: float = 0.0,
    seed: int = 0,
    hourly_price: float | None = None,
    front_door: bool = False,
    gateway_demand: np.ndarray | None = None,
) -> TargetResult:
    """One target's day. `front_door`: the overflow gateway's publisher writes demand for this
    target into the metric its group wakes and scales on (planning.overflow.publisher), so the
    group sees demand while it has no node to publish it: `gateway_demand`, per second, when given
    (what the primary cannot absorb while the trigger holds), else the requests waiting for it."""
    rng = np.random.default_rng(seed + 1)
    seconds = len(arrivals)
    slots = replica.concurrent_sequences
    service = replica.service_seconds(input_tokens, output_tokens)
    prefill = replica.prefill_seconds(input_tokens)
    ring = np.zeros(service + 1, dtype=np.int64)  # completions due per second (mod service + 1)
    res = TargetResult(cfg.target, replica=replica)
    wait_hist = np.zeros(client_timeout + 1, dtype=np.int64)
    slo_wait = max(0, math.floor(slo_seconds - prefill))  # waits above this miss the SLO

    abandoned = cfg.launch_hook_timeout is not None and replica.startup_seconds > cfg.launch_hook_timeout
    if abandoned:
        res.findings.append(
            Finding(
                "launch-hook-timeout",
                cfg.launch_hook or cfg.group,
                f"a node needs ~{replica.startup_seconds}s to serve but the launch hook abandons it after "
                f"{cfg.launch_hook_timeout}s: no launched node ever serves",
            )
        )

    in_service = cfg.initial  # the initial nodes are up when the day starts
    starting: list[int] = []  # ready-at seconds of launching nodes
    warm_left = cfg.warm_pool
    desired = cfg.initial
    busy = 0
    queue: deque[list[int]] = deque()  # [arrival second, count, arrived at zero (0/1)]
    queued = 0
    zero_since: int | None = None  # first request arriving with nothing in service
    replica_seconds = 0
    # Per-minute accumulators: sum of per-node values over samples and the node-samples count.
    acc_nodes = 0
    acc: dict[str, float] = {}
    metrics = set()
    if cfg.tracking:
        metrics.add(cfg.tracking.metric)
    metrics.update(al.metric for al in cfg.alarms)
    if cfg.wake:
        metrics.update(cfg.wake.published)
    if cfg.autoscaler:
        metrics.add(cfg.autoscaler.metric)
    history: dict[str, list[float | None]] = {m: [] for m in metrics}  # per-minute averages (None: no data)
    sums: dict[str, list[float]] = {m: [] for m in metrics}
    peaks: dict[str, list[float | None]] = {m: [] for m in metrics}  # per-minute Maximum of the nodes' samples
    peak: dict[str, float] = {}
    demand_minute = 0
    cooldown_until: dict[str, int] = {}
    recommendations: deque[tuple[int, int]] = deque()
    desired_history: deque[tuple[int, int]] = deque()
    over_slo_outside_zero = 0
    at_max_when_late = 0
    series: dict[str, list[float]] = {"replicas": [], "desired": [], "queue": [], "wait": []}
    minute_wait_sum = 0
    minute_wait_n = 0
    interrupt_p = spot_rate_per_hour / 3600.0 if cfg.spot else 0.0

    # The in-flight target a request-counting scale-out signal keeps nodes at: a scale-in that leaves
    # the remaining nodes above it undoes the scale-out's work (and will be undone by it).
    request_target = None
    if cfg.tracking and _counts_in_flight(cfg.tracking.metric):
        request_target = cfg.tracking.target
    elif cfg.autoscaler and _counts_in_flight(cfg.autoscaler.metric):
        request_target = cfg.autoscaler.target
    elif cfg.pods:
        request_target = next((m.target for m in cfg.pods.metrics if m.signal == "in_flight"), None)
    ready_at_scrape = ready_at_poll = 0
    scraped: dict[str, float] = {}  # on-prem: the load as of Prometheus's last scrape
    polled: dict[str, float] = {}  # ... and as of KEDA's last poll
    pod_recs: list[tuple[int, int]] = []
    pod_changes: list[tuple[int, int]] = []
    last_active = 0
    pending_s = np.zeros(seconds, dtype=np.int64)
    serving_s = np.zeros(seconds, dtype=np.int64)

    def _under_load(in_flight: int, nodes: int, remaining: int) -> bool:
        if in_flight / nodes >= BUSY_SHARE * slots:
            return True
        return request_target is not None and remaining > 0 and in_flight / remaining > request_target

    def launch(n: int, t: int) -> None:
        nonlocal warm_left
        for _ in range(n):
            if warm_left > 0 and replica.warm_start_seconds is not None:
                warm_left -= 1
                starting.append(t + replica.warm_start_seconds)
            elif not abandoned:
                starting.append(t + replica.startup_seconds)

    def set_desired(new: int, t: int, kind: str, resource: str, cause: str = "", why: str = "") -> None:
        nonlocal desired, in_service, warm_left
        new = max(cfg.min_size, min(cfg.max_size, new))
        if new == desired:
            return
        if (
            new < desired
            and in_service
            and _under_load(busy + queued, in_service, in_service + len(starting) - (desired - new))
        ):
            res.findings.append(
                Finding(
                    "scale-in-under-load",
                    cause or resource,
                    f"at {_clock(t)} {cause or resource} removed capacity ({desired} -> {new}) while nodes averaged "
                    f"{(busy + queued) / in_service:.1f} requests in flight ({slots} slots each)"
                    + (f": {why} under load" if why else ""),
                )
            )
        res.events.append(Event(t, kind, desired, new, resource))
        if new > desired:
            launch(new - desired, t)
        else:
            for _ in range(desired - new):
                if starting:
                    starting.pop()
                elif in_service > 0:
                    in_service -= 1
                if cfg.warm_pool:  # reuse on scale-in: back to the pool
                    warm_left = min(cfg.warm_pool, warm_left + 1)
        desired = new

    for t in range(seconds):
        if starting:
            ready = [s for s in starting if s <= t]
            if ready:
                in_service += len(ready)
                starting[:] = [s for s in starting if s > t]
        reclaimable = in_service - math.ceil(on_demand_count(in_service, cfg.on_demand_base, cfg.on_demand_percentage))
        if interrupt_p and reclaimable > 0:
            lost = int(rng.binomial(reclaimable, interrupt_p))
            if lost:
                in_service -= lost
                res.events.append(Event(t, "interrupt", in_service + lost, in_service, cfg.group))
                # The two-minute notice lets the requests in flight finish (they are far shorter and
                # the drain hook holds the node); the lost slots take no new requests. The group
                # replaces reclaimed capacity (desired unchanged).
                launch(lost, t)
        done = ring[t % len(ring)]
        if done:
            busy -= int(done)
            ring[t % len(ring)] = 0
        a = int(arrivals[t])
        if a:
            res.requests += a
            demand_minute += a
            at_zero = in_service == 0
            if at_zero and zero_since is None:
                zero_since = t
            queue.append([t, a, int(at_zero)])
            queued += a
        while queue and t - queue[0][0] > client_timeout:
            res.refused += queue[0][1]
            queued -= queue[0][1]
            queue.popleft()
        free = in_service * slots - busy
        while free > 0 and queue:
            head = queue[0]
            k = min(free, head[1])
            w = t - head[0]
            wait_hist[w] += k
            minute_wait_sum += w * k
            minute_wait_n += k
            if w > slo_wait:
                res.over_slo += k
                if not head[2]:
                    over_slo_outside_zero += k
                    if desired >= cfg.max_size:
                        at_max_when_late += k
            if zero_since is not None:
                res.cold_start_first_token.append(round(t - zero_since + prefill, 1))
                zero_since = None
            busy += k
            free -= k
            queued -= k
            ring[(t + service) % len(ring)] += k
            head[1] -= k
            if head[1] == 0:
                queue.popleft()
        replica_seconds += in_service + len(starting)
        pending_s[t] = queued
        serving_s[t] = in_service
        if cfg.pods is not None:
            pa = cfg.pods
            if t % SCRAPE_PERIOD == 0:
                scraped = _pod_signals(busy, queued, in_service) if in_service else {}
                ready_at_scrape = in_service
            if t % pa.polling == 0:
                polled, ready_at_poll = dict(scraped), ready_at_scrape
            if t % pa.sync == pa.sync - 1:
                values, reporting = (polled, ready_at_poll) if pa.via == "keda" else (scraped, ready_at_scrape)
                if any(values.get(m.signal, 0.0) > 0 for m in pa.metrics):
                    last_active = t
                if pa.via == "keda" and desired == 0:
                    # KEDA activates 0 -> 1 itself when a trigger reads above its activation
                    # threshold (0); the HPA takes over from one replica.
                    if cfg.max_size and any(values.get(m.signal, 0.0) > 0 for m in pa.metrics):
                        set_desired(1, t, "wake", pa.resource)
                elif pa.via == "keda" and cfg.min_size == 0 and t - last_active >= pa.cooldown:
                    set_desired(0, t, "in", pa.resource, pa.resource, "its triggers read 0 for the cooldown")
                else:
                    want = max(
                        (
                            hpa_recommendation(pa, values.get(m.signal, 0.0), m.target, reporting, desired)
                            for m in pa.metrics
                        ),
                        default=desired,
                    )
                    stable = hpa_stabilize(pod_recs, t, want, desired, pa)
                    pod_recs.append((t, want))
                    horizon = max(pa.scale_up.stabilization, pa.scale_down.stabilization, 1800)
                    while pod_recs and pod_recs[0][0] <= t - horizon:
                        pod_recs.pop(0)
                    rules = pa.scale_up if stable > desired else pa.scale_down
                    new = hpa_limit(pod_changes, t, stable, desired, rules)
                    # The HPA KEDA creates has minReplicas of at least 1 (KEDA itself goes to zero).
                    new = max(1, cfg.min_size, min(cfg.max_size, new))
                    if new != desired:
                        before = desired
                        sig = ", ".join(f"{m.signal} {values.get(m.signal, 0.0):g}" for m in pa.metrics)
                        why = f"its metrics read {sig} over {reporting} ready pods"
                        set_desired(new, t, "out" if new > desired else "in", pa.resource, pa.resource, why)
                        pod_changes.append((t, desired - before))
                        while pod_changes and pod_changes[0][0] <= t - horizon:
                            pod_changes.pop(0)
        if t % AGENT_PERIOD == 0 and in_service:
            running = min(busy, in_service * slots) / in_service
            waiting = queued / in_service
            acc_nodes += in_service
            for m in metrics:
                value = _metric_value(m, running, waiting, slots)
                acc[m] = acc.get(m, 0.0) + value * in_service
                peak[m] = max(peak.get(m, 0.0), value)
        if t % MINUTE != MINUTE - 1:
            continue
        # -- end of a minute: the period's datapoints, then every policy's evaluation ----------
        for m in metrics:
            history[m].append(acc[m] / acc_nodes if acc_nodes else None)
            peaks[m].append(peak.get(m, 0.0) if acc_nodes else None)
            sums[m].append(acc.get(m, 0.0) / max(1, acc_nodes) * in_service if acc_nodes else 0.0)
        nodes_published = acc_nodes / (MINUTE // AGENT_PERIOD)
        acc_nodes, acc, peak = 0, {}, {}
        desired_history.append((t, desired))
        if cfg.tracking:
            tr = cfg.tracking
            last = history[tr.metric][-TT_HIGH_DATAPOINTS:]
            if len(last) == TT_HIGH_DATAPOINTS and all(v is not None and v > tr.target for v in last):
                v = last[-1]
                assert v is not None
                want = math.ceil(nodes_published * v / tr.target)
                if want > desired:
                    set_desired(want, t, "out", tr.resource)
        for al in cfg.alarms:
            pts = history[al.metric][-al.evaluation_periods :]
            if al.last_node_only_when_idle and desired <= 1:
                # the alarm's metric math: at one node, the threshold itself unless the peak was 0
                pks = peaks[al.metric][-al.evaluation_periods :]
                pts = [v if v is None or not p else al.threshold for v, p in zip(pts, pks, strict=True)]
            if (
                len(pts) == al.evaluation_periods
                and all((al.missing_breaches if v is None else _compare(v, al.comparison, al.threshold)) for v in pts)
                and t >= cooldown_until.get(al.policy, 0)
            ):
                new = al.adjustment if al.adjustment_type == "ExactCapacity" else desired + al.adjustment
                new = max(cfg.min_size, min(cfg.max_size, new))
                if new != desired:
                    why = f"its metric {al.metric} read {pts[-1]:.2f}, {al.comparison} {al.threshold:g}"
                    set_desired(new, t, "in" if new < desired else "out", al.policy, al.resource, why)
                    cooldown_until[al.policy] = t + al.cooldown
        if cfg.wake:
            wk = cfg.wake
            published = sum(sums[m][-1] for m in wk.published) if wk.published else 0.0
            if front_door:
                published += queued if gateway_demand is None else gateway_demand[t]
            demand = (demand_minute if wk.load_balancer else 0) + published
            if desired < 1 and demand > 0:
                set_desired(wk.capacity, t, "wake", wk.policy)
        if cfg.autoscaler:
            au = cfg.autoscaler
            v = history[au.metric][-1]
            extra = (queued if gateway_demand is None else int(gateway_demand[t])) if front_door else 0
            if front_door and au.per_group and (v is not None or extra):
                v = 0.0 if v is None else v  # the group's series: the nodes' and the gateway's, summed
                sums[au.metric][-1] += extra
            if v is not None:
                total = sums[au.metric][-1]
                want = math.ceil(total / au.target) if au.per_group else math.ceil(nodes_published * v / au.target)
                recommendations.append((t, want))
                while recommendations and recommendations[0][0] <= t - au.stabilization:
                    recommendations.popleft()
                while desired_history and desired_history[0][0] <= t - au.scale_in_window:
                    desired_history.popleft()
                stable = max(r for _, r in recommendations)
                floor = max(d for _, d in desired_history) - au.scale_in_max
                new = max(want, stable, floor) if want < desired else want
                if want < desired and t + 1 < au.stabilization:
                    new = desired  # no ten minutes of recommendations yet: no scale-in
                if new != desired:
                    why = f"its metric {au.metric.rsplit('/', 1)[-1]} read {total:g} for the group"
                    set_desired(new, t, "out" if new > desired else "in", au.resource, au.resource, why)
        demand_minute = 0
        series["replicas"].append(in_service)
        series["desired"].append(desired)
        series["queue"].append(queued)
        series["wait"].append(minute_wait_sum / minute_wait_n + prefill if minute_wait_n else float("nan"))
        minute_wait_sum = minute_wait_n = 0

    res.refused += queued  # still waiting at the end of the day: not served within the day
    res.served = int(wait_hist.sum())
    res.queue_wait = _percentiles(wait_hist, 0.0)
    res.ttft = {k: (None if v is None else round(v + prefill, 1)) for k, v in res.queue_wait.items()}
    res.replica_hours = replica_seconds / 3600
    if hourly_price is not None:
        res.cost_usd = round(res.replica_hours * hourly_price, 2)
    res.series = series
    res.pending, res.serving = pending_s, serving_s
    _findings(cfg, res, over_slo_outside_zero, at_max_when_late, front_door)
    res.findings = _merge(res.findings)
    return res


def _merge(findings: list[Finding]) -> list[Finding]:
    """One finding per kind and resource: the first occurrence, and how often it recurred."""
    seen: dict[tuple[str, str], list[Finding]] = {}
    for f in findings:
        seen.setdefault((f.kind, f.resource), []).append(f)
    return [
        fs[0] if len(fs) == 1 else Finding(fs[0].kind, fs[0].resource, f"{fs[0].message} ({len(fs)} times)")
        for fs in seen.values()
    ]


def _clock(t: int) -> str:
    return f"{t // 3600:02d}:{t // 60 % 60:02d}:{t % 60:02d}"


def _findings(cfg: ScalingConfig, res: TargetResult, late: int, late_at_max: int, front_door: bool = False) -> None:
    zero_episodes = [e for e in res.events if e.kind == "in" and e.after == 0]
    if cfg.min_size == 0 and cfg.cloud != "fixed":
        # Only the load balancer reports demand at zero: the InferStack metrics a wake alarm also
        # reads come from nodes (none at zero) or a front door that does not exist yet.
        waking = cfg.wake is not None and cfg.wake.load_balancer
        if cfg.autoscaler is not None or cfg.pods is not None:
            waking = False  # nodes (pods) publish nothing at zero, and nothing else publishes the group's metric
        if front_door and (cfg.wake is not None or (cfg.autoscaler is not None and cfg.autoscaler.per_group)):
            waking = True  # the overflow gateway publishes the requests waiting for the group
        stuck = res.requests and res.served == 0 and cfg.initial == 0
        if not waking and (zero_episodes or stuck or res.refused):
            resource = cfg.autoscaler.resource if cfg.autoscaler else cfg.pods.resource if cfg.pods else cfg.group
            res.findings.append(
                Finding(
                    "cannot-wake-from-zero",
                    resource,
                    f"{cfg.target} reaches 0 nodes and nothing publishes demand while it is empty: "
                    f"{res.refused} requests refused after the client timeout",
                )
            )
    ins = [e for e in res.events if e.kind == "in"]
    outs = [e for e in res.events if e.kind in ("out", "wake")]
    cooldowns = [a.cooldown for a in cfg.alarms if a.adjustment < 0] or (
        [cfg.autoscaler.scale_in_window]
        if cfg.autoscaler
        else [cfg.pods.scale_down.stabilization]
        if cfg.pods and cfg.pods.scale_down.stabilization
        else []
    )
    if cooldowns:
        window = max(cooldowns)
        flaps = [(i, o) for i in ins for o in outs if 0 < abs(o.second - i.second) < window]
        if flaps:
            i, o = flaps[0]
            res.findings.append(
                Finding(
                    "flapping",
                    i.resource,
                    f"{len(flaps)} scale-in/scale-out pairs within one cooldown ({window}s), first at "
                    f"{_clock(min(i.second, o.second))} ({i.resource} and {o.resource})",
                )
            )
    if res.requests and late > KEEP_UP_TOLERANCE * res.requests:
        at_max = late_at_max > late / 2
        rep = res.replica
        capped = at_max and rep is not None and rep.device_cap is not None and cfg.max_size >= rep.device_cap
        resource = (
            cfg.group
            if at_max
            else (
                cfg.tracking.resource
                if cfg.tracking
                else cfg.autoscaler.resource
                if cfg.autoscaler
                else cfg.pods.resource
                if cfg.pods
                else cfg.group
            )
        )
        if capped:
            assert rep is not None
            why = f"the pool's devices cap it at {rep.device_cap} replicas ({rep.cap_reason})"
        elif at_max:
            why = f"the group is at its maximum ({cfg.max_size})"
        else:
            why = f"new {'pods' if cfg.pods else 'nodes'} take {rep.startup_seconds if rep else '?'}s to serve"
        res.findings.append(
            Finding(
                "cannot-keep-up",
                resource,
                f"{late} of {res.requests} requests ({late / res.requests:.1%}) waited past the SLO outside cold "
                f"starts from zero: {why}",
            )
        )


# -- the stack ------------------------------------------------------------------------------------


@dataclass
class StackResult:
    stack: str
    profile: str
    seed: int
    targets: list[TargetResult]
    notes: list[str] = field(default_factory=list)

    @property
    def findings(self) -> list[Finding]:
        return [f for t in self.targets for f in t.findings]

    def totals(self) -> dict:
        costs = [t.cost_usd for t in self.targets]
        return {
            "requests": sum(t.requests for t in self.targets),
            "served": sum(t.served for t in self.targets),
            "refused": sum(t.refused for t in self.targets),
            "overSlo": sum(t.over_slo for t in self.targets),
            "replicaHours": round(sum(t.replica_hours for t in self.targets), 2),
            "costUsd": None if any(c is None for c in costs) else round(sum(c for c in costs if c is not None), 2),
        }

    def to_json(self) -> dict:
        return {
            "stack": self.stack,
            "profile": self.profile,
            "seed": self.seed,
            "targets": [t.to_json() for t in self.targets],
            "total": self.totals(),
            "notes": self.notes,
        }


def split_arrivals(arrivals: np.ndarray, shares: dict[str, float], seed: int) -> dict[str, np.ndarray]:
    """Each second's requests dealt to the targets in proportion to their shares (multinomial)."""
    names = sorted(shares)
    total = sum(shares.values())
    if total <= 0 or len(names) == 1:
        return {n: arrivals.copy() if total > 0 else np.zeros_like(arrivals) for n in names}
    rng = np.random.default_rng(seed + 7)
    counts = rng.multinomial(arrivals, [shares[n] / total for n in names]) if arrivals.ndim == 1 else None
    assert counts is not None
    return {n: counts[:, i].astype(np.int64) for i, n in enumerate(names)}


@dataclass(frozen=True)
class OverflowTrigger:
    """The overflow trigger as the rehearsal applies it. The lead wires it from the plan once the
    gateway lands (the gateway's configuration is what will fire); until then `simulate_stack`
    builds it from the spec's `overflow.trigger` and `overflow.gateway`."""

    pending_requests: int | None  # waiting on the primary above this...
    for_seconds: int  # ...for this long
    primary_unhealthy: bool  # or the primary has no serving replica
    overflow_timeout_seconds: int | None = None  # the gateway's wait for a burst target
    short_timeout_reason: str | None = None


@dataclass(frozen=True)
class BurstCapacity:
    """A burst target as the spill sees it: requests it may hold at once (its maximum replicas ×
    concurrent sequences) and how long each holds a slot."""

    target: str
    max_in_flight: int
    service_seconds: int


@dataclass
class Overflow:
    active: np.ndarray  # per second: the trigger fired
    spilled: dict[str, np.ndarray]  # per burst target, requests sent to it per second

    @property
    def seconds_active(self) -> int:
        return int(self.active.sum())


def overflow_spill(
    pending: np.ndarray,
    arrivals: np.ndarray,
    trigger: OverflowTrigger,
    bursts: list[BurstCapacity],
    serving: np.ndarray | None = None,
    ready: dict[str, np.ndarray] | None = None,
) -> Overflow:
    """When the overflow is active and which arrivals it sends to which burst target. Pure.

    - Active at second t when the primary's pending requests have been above N at every second of
      the last T (a run above N that began at s activates at s + T), or, with primary_unhealthy,
      while the primary has no serving replica (`serving`).
    - While active, the arrivals of that second beyond what the primary's queue holds below N spill
      (min(arrivals, pending - N); all of them when the primary is unhealthy).
    - Each spilled request goes to the first burst target, in preference order, with a free slot:
      a target holds at most max_in_flight spilled requests, each for its service seconds (the
      burst target's queueing at cold start is its own simulation's business). A request no burst
      target has room for stays on the primary.
    - `ready` (with the publisher): a burst target's serving replicas per second. The publisher
      turns the overflow on only while a burst cluster has a healthy member (Envoy never holds a
      request through a cold start), so a target takes spill only while it serves; up to its
      circuit breaker (max_in_flight), its own queue and autoscaler take the rest."""
    seconds = len(pending)
    active = np.zeros(seconds, dtype=bool)
    spilled = {b.target: np.zeros(seconds, dtype=np.int64) for b in bursts}
    held: dict[str, deque[tuple[int, int]]] = {b.target: deque() for b in bursts}  # (release second, count)
    in_flight = dict.fromkeys(spilled, 0)
    run = 0
    for t in range(seconds):
        for b in bursts:
            q = held[b.target]
            while q and q[0][0] <= t:
                in_flight[b.target] -= q.popleft()[1]
        n = trigger.pending_requests
        run = run + 1 if n is not None and pending[t] > n else 0
        down = trigger.primary_unhealthy and serving is not None and serving[t] == 0
        if not (down or (n is not None and run > trigger.for_seconds)):
            continue
        active[t] = True
        excess = int(arrivals[t]) if down else min(int(arrivals[t]), int(pending[t]) - (n or 0))
        for b in bursts:
            if excess <= 0:
                break
            room = b.max_in_flight
            if ready is not None and b.target in ready and not ready[b.target][t]:
                room = 0  # no healthy member: the gateway sends it nothing
            k = min(excess, room - in_flight[b.target])
            if k > 0:
                spilled[b.target][t] += k
                in_flight[b.target] += k
                held[b.target].append((t + b.service_seconds, k))
                excess -= k
    return Overflow(active, spilled)


def _publisher_demand(
    active: np.ndarray, pending: np.ndarray, trig: OverflowTrigger, bursts: list[str], configs: dict
) -> dict[str, np.ndarray]:
    """What the publisher writes, per second (planning.overflow.publisher): while the trigger holds,
    waiting minus the pending threshold (at least 1), into the first burst target in preference
    order that has a wake metric (a fixed TPU slice has none and always serves)."""
    n = trig.pending_requests or 0
    series = np.where(active, np.maximum(1, pending - n), 0).astype(np.int64)
    for b in bursts:
        if b in configs and configs[b].cloud != "fixed":
            return {b: series}
    return {}


def _longest_run(active: np.ndarray) -> int:
    """The longest stretch of consecutive seconds `active` holds."""
    best = run = 0
    for a in active:
        run = run + 1 if a else 0
        best = max(best, run)
    return best


def _served(result: TargetResult) -> np.ndarray:
    """Replicas serving per second of a rehearsal (0 where it recorded none)."""
    if result.serving is None:
        return np.zeros(0, dtype=np.int64)
    return result.serving


def split_by_capacity(arrivals: np.ndarray, capacity: dict[str, float], seed: int) -> dict[str, np.ndarray]:
    """An on-prem target's arrivals over its pools, in proportion to each pool's capacity at its
    maximum: min(maxReplicas, what its devices hold) × concurrent sequences / service seconds."""
    return split_arrivals(arrivals, capacity, seed)


def simulate_stack(
    spec,
    stack: str,
    resources: list[dict],
    arrivals: np.ndarray,
    *,
    seed: int = 0,
    profile: str = "spec",
    overflow: OverflowTrigger | None = None,
) -> StackResult:
    """Replay `arrivals` (requests per second over the day, the whole stack) through every target's
    scaling configuration as the plan's resources record it.

    An on-prem target's pools are each a group; the target's share splits over them in proportion
    to their capacity (split_by_capacity). With `spec.overflow`, the burst targets receive only what
    the primary spills (their traffic share defaults to 0): the primary runs once on its share,
    `overflow_spill` takes its pending queue, and the primary runs again without the spilled requests.
    `overflow`: the trigger; None builds it from the spec (the lead wires it from the plan)."""
    from inferstack.kinds import kind_of
    from inferstack.planning import cost
    from inferstack.planning.onprem.pools import plan_pools
    from inferstack.planning.replica import pool_replica_model, replica_model
    from inferstack.planning.scaling_config import onprem_scaling_configs, scaling_configs
    from inferstack.spec.models import Traffic

    traffic = spec.traffic or Traffic()
    configs = scaling_configs(resources)
    pools = onprem_scaling_configs(resources)
    prices = {c.target: c for c in cost.estimate(spec)}
    for name, target in spec.targets.items():
        fixed = kind_of(target).fixed_replicas(target)
        if name not in configs and fixed is not None:
            configs[name] = ScalingConfig(
                target=name, cloud="fixed", group=f"{name} (TPU slices)", min_size=fixed, max_size=fixed, initial=fixed
            )
    spill = getattr(spec, "overflow", None)
    bursts = list(spill.burst) if spill is not None else []

    def share(n: str) -> float:
        stated = traffic.targets[n].share if n in traffic.targets else None
        return stated if stated is not None else 0.0 if n in bursts else 1.0

    shares = {n: share(n) for n in sorted(set(configs) | set(pools))}
    per_target = split_arrivals(arrivals, shares, seed)
    out = StackResult(stack, profile, seed, [])
    order = sorted(shares)
    kw: dict[str, Any] = {
        "input_tokens": traffic.input_tokens,
        "output_tokens": traffic.output_tokens,
        "slo_seconds": traffic.slo_ttft_seconds,
        "client_timeout": traffic.client_timeout_seconds,
        "spot_rate_per_hour": traffic.spot_interruptions_per_hour,
    }

    # The overflow gateway's publisher wakes the burst targets (none without a publisher image).
    woken = set(bursts) if spill is not None and getattr(spill.gateway, "publisher_image", None) else set()

    def run_cloud(name: str, arr: np.ndarray, published: np.ndarray | None = None) -> TargetResult:
        cfg = configs[name]
        rep = replica_model(spec, stack, name, traffic)
        price = prices.get(name)
        hourly = None
        if price is not None and price.hourly_max is not None and cfg.max_size:
            hourly = price.hourly_max / cfg.max_size  # blended per replica at the fleet's spot/on-demand mix
        return simulate_target(
            cfg,
            rep,
            arr,
            seed=seed + 101 * order.index(name),
            hourly_price=hourly,
            front_door=name in woken,
            gateway_demand=published,
            **kw,
        )

    def run_onprem(name: str, arr: np.ndarray) -> list[TargetResult]:
        plans = {p.name: p for p in plan_pools(spec, name)}
        models, cfgs, capacity = {}, {}, {}
        for pool, cfg in sorted(pools[name].items()):
            rep = pool_replica_model(spec, name, plans[pool], traffic)
            cap = rep.device_cap if rep.device_cap is not None else cfg.max_size
            if cfg.max_size > cap:  # the spec refuses this; a saved plan from elsewhere may not
                out.notes.append(
                    f"{cfg.target}: {cfg.pods.resource if cfg.pods else cfg.group} allows "
                    f"{cfg.max_size} replicas, the pool's devices hold {cap}"
                )
            cfgs[pool] = dataclasses.replace(cfg, max_size=min(cfg.max_size, cap), initial=min(cfg.initial, cap))
            models[pool] = rep
            capacity[pool] = (
                cfgs[pool].max_size
                * rep.concurrent_sequences
                / rep.service_seconds(traffic.input_tokens, traffic.output_tokens)
            )
        split = split_by_capacity(arr, capacity, seed + 13 * order.index(name))
        return [
            simulate_target(
                cfgs[p], models[p], split[p], seed=seed + 101 * order.index(name) + 7 * i, hourly_price=None, **kw
            )
            for i, p in enumerate(sorted(cfgs))
        ]

    def run(name: str, arr: np.ndarray) -> list[TargetResult]:
        return run_onprem(name, arr) if name in pools else [run_cloud(name, arr)]

    results: dict[str, list[TargetResult]] = {}
    if spill is not None and spill.primary in shares:
        trig = overflow or OverflowTrigger(
            pending_requests=spill.trigger.pending_requests,
            for_seconds=spill.trigger.for_seconds,
            primary_unhealthy=spill.trigger.primary_unhealthy,
            overflow_timeout_seconds=spill.gateway.overflow_timeout_seconds,
            short_timeout_reason=spill.gateway.short_timeout_reason,
        )
        if spill.trigger.p95_latency_ms is not None:
            out.notes.append("overflow trigger on p95 latency: not rehearsed (pending requests and health are)")
        primary_arr = per_target[spill.primary]
        first = run(spill.primary, primary_arr)
        pending = np.sum([r.pending for r in first if r.pending is not None], axis=0)
        serving = np.sum([r.serving for r in first if r.serving is not None], axis=0)
        caps = []
        late: dict[str, Finding] = {}
        for b in bursts:
            if b not in configs:
                continue
            rep = replica_model(spec, stack, b, traffic)
            caps.append(
                BurstCapacity(
                    b,
                    configs[b].max_size * rep.concurrent_sequences,
                    rep.service_seconds(traffic.input_tokens, traffic.output_tokens),
                )
            )
            timeout = trig.overflow_timeout_seconds
            if timeout is not None and timeout < rep.startup_seconds:
                text = (
                    f"the gateway waits {timeout}s for {b} but its fleet needs ~{rep.startup_seconds}s to serve from zero: "
                    "the first overflowed requests time out"
                )
                if trig.short_timeout_reason:
                    out.notes.append(f"{text} (the spec says why: {trig.short_timeout_reason})")
                else:
                    late[b] = Finding("overflow-timeout-short", "overflow.gateway.overflow_timeout_seconds", text)
        flow = overflow_spill(pending, primary_arr, trig, caps, serving)
        demand: dict[str, np.ndarray] = {}
        if woken:
            # With the publisher: it writes what the primary cannot absorb while the trigger holds
            # into the first burst target's wake metric, and spills only to targets that serve. Each
            # target is rehearsed once on that demand and the spill it would take if it served at
            # once (so a woken node has work and stays), to learn when it serves; then the spill is
            # gated on that (overflow_spill, `ready`).
            demand, ready = _publisher_demand(flow.active, pending, trig, bursts, configs), {}
            for b in bursts:
                if b in shares and b in configs:
                    ungated = per_target[b] + flow.spilled.get(b, np.zeros_like(primary_arr))
                    # A target the publisher writes nothing for (not the first) sees 0, not its queue.
                    ready[b] = _served(run_cloud(b, ungated, demand.get(b, np.zeros_like(primary_arr))))
            flow = overflow_spill(pending, primary_arr, trig, caps, serving, ready)
        spilled_total = sum((v for v in flow.spilled.values()), np.zeros_like(primary_arr))
        results[spill.primary] = run(spill.primary, primary_arr - spilled_total)
        for b in bursts:
            if b in shares:
                arr_b = per_target[b] + flow.spilled.get(b, np.zeros_like(primary_arr))
                if b in configs and woken:
                    results[b] = [run_cloud(b, arr_b, demand.get(b, np.zeros_like(primary_arr)))]
                else:
                    results[b] = run(b, arr_b)
                if b in late:
                    results[b][0].findings.append(late[b])
        out.notes.append(
            f"overflow from {spill.primary}: active {flow.seconds_active}s of the day; spilled "
            + ", ".join(f"{int(v.sum())} to {k}" for k, v in flow.spilled.items())
        )
        for b, series in demand.items():
            if series.any() and not flow.spilled[b].any():
                rep = replica_model(spec, stack, b, traffic)
                out.notes.append(
                    f"{b} was woken by the publisher but took no overflow: the trigger held {_longest_run(flow.active)}s "
                    f"at most, and {b} needs ~{rep.startup_seconds}s from zero to serve"
                )
    for name in order:
        if name not in results:
            results[name] = run(name, per_target[name])
    for name in order:
        out.targets.extend(results[name])
    return out


def verdict(result: TargetResult) -> str:
    """One line for `plan`: the worst of the target's findings, else its p95 time to first token."""
    if result.findings:
        f = result.findings[0]
        more = f" (+{len(result.findings) - 1} more)" if len(result.findings) > 1 else ""
        return f"{result.target}: {f.kind} ({f.resource}){more}"
    p95 = result.ttft.get("p95")
    return (
        f"{result.target}: ok, p95 time to first token {p95:g}s, {result.refused} refused, "
        f"{result.replica_hours:.1f} replica-hours"
        if p95 is not None
        else f"{result.target}: ok, no requests"
    )
