"""`inferstack simulate` on an on-prem target: the KEDA/HPA configuration read back from the plan,
the HPA algorithm on hand-computed steps of load, a pool capped by its devices, and the hybrid
overflow's spill to the burst targets."""

from __future__ import annotations

import dataclasses
import json
import re
from types import SimpleNamespace

import numpy as np
from click.testing import CliRunner

from conftest import EXAMPLE_STACKS, plan_of_file
from inferstack.cli import main
from inferstack.planning.onprem.pools import plan_pools
from inferstack.planning.replica import ReplicaModel, pool_replica_model
from inferstack.planning.scaling_config import (
    DEFAULT_SCALE_UP,
    PodAutoscaler,
    PodMetric,
    ScalingConfig,
    ScalingPolicy,
    ScalingRules,
    onprem_scaling_configs,
    scaling_configs,
)
from inferstack.planning.simulation import (
    BurstCapacity,
    OverflowTrigger,
    hpa_limit,
    hpa_recommendation,
    hpa_stabilize,
    overflow_spill,
    simulate_stack,
    simulate_target,
)
from inferstack.planning.traffic import DAY_SECONDS
from inferstack.spec.loader import load_spec
from inferstack.spec.models import Overflow, ReplicaCapacity, TargetTraffic, Traffic
from inferstack.spec.models import OverflowTrigger as SpecTrigger

STACKS = EXAMPLE_STACKS[0].parent
ONE_PER_300 = ScalingRules(300, (ScalingPolicy("Pods", 1, 300),))  # what the workload plans


def replica(slots: int = 100, startup: int = 300, cap: int | None = None) -> ReplicaModel:
    # 10 output tokens at 1 token/s per sequence, no prefill: every request holds a slot for 10 s.
    return ReplicaModel("p", startup, None, slots, float(slots), 1e9, False, "test", cap, "2 node(s) x 1 gpu / 1")


def pool(via: str = "hpa", polling: int = 15, **kw) -> ScalingConfig:
    pods = PodAutoscaler(
        "p-scaler", via, (PodMetric("in_flight", 10.0),), DEFAULT_SCALE_UP, ONE_PER_300, polling=polling
    )
    base = dict(target="t/p", cloud="onprem", group="t-p", min_size=1, max_size=10, initial=1, pods=pods)
    base.update(kw)
    return ScalingConfig(**base)


def run(cfg: ScalingConfig, rep: ReplicaModel, arr: np.ndarray):
    return simulate_target(cfg, rep, arr, input_tokens=0, output_tokens=10, slo_seconds=10, client_timeout=900)


def load(start: int, stop: int, per_second: int = 3) -> np.ndarray:
    arr = np.zeros(DAY_SECONDS, dtype=np.int64)
    arr[start:stop] = per_second
    return arr


def events(res) -> list[tuple[int, str, int, int]]:
    return [(e.second, e.kind, e.before, e.after) for e in res.events]


# -- the algorithm's pieces -------------------------------------------------------------------------


def test_the_usage_ratio_and_its_tolerance():
    hpa, keda = pool().pods, pool("keda").pods
    assert hpa is not None and keda is not None
    assert hpa_recommendation(hpa, 30, 10, ready=1, current=1) == 3  # ceil(1 × 30/10)
    assert hpa_recommendation(hpa, 21, 10, ready=2, current=2) == 2  # ratio 1.05: within 0.1
    assert hpa_recommendation(hpa, 23, 10, ready=2, current=2) == 3  # ratio 1.15: ceil(2 × 1.15)
    # Two pods still starting report nothing: counted as 0 on a scale-up, 30 / (10 × 3) = 1.0 -> keep.
    assert hpa_recommendation(hpa, 30, 10, ready=1, current=3) == 3
    assert hpa_recommendation(hpa, 0, 10, ready=0, current=2) == 2  # no metric at all: keep
    # KEDA's External metric divides by the scale's replicas, starting ones included.
    assert hpa_recommendation(keda, 30, 10, ready=1, current=3) == 3
    assert hpa_recommendation(keda, 45, 10, ready=1, current=3) == 5


def test_stabilization_and_policies():
    p = pool().pods
    assert p is not None
    recs = [(100, 5), (200, 2)]
    # Scale-down window 300 s: the largest of the window's recommendations (5) holds the scale.
    assert hpa_stabilize(recs, 350, 1, 5, p) == 5
    assert hpa_stabilize(recs, 401, 1, 5, p) == 2  # (100, 5) has left the window
    # Pods 1 per 300 s: one replica down per 300 s; default scale-up: max(100 %, 4 pods) per 15 s.
    assert hpa_limit([], 500, 1, 5, ONE_PER_300) == 4
    assert hpa_limit([(400, -1)], 500, 1, 4, ONE_PER_300) == 4
    assert hpa_limit([(100, -1)], 500, 1, 4, ONE_PER_300) == 3
    assert hpa_limit([], 500, 20, 2, DEFAULT_SCALE_UP) == 6  # 2 + 4 pods beats 2 × 200 %
    assert hpa_limit([], 500, 20, 10, DEFAULT_SCALE_UP) == 20  # 100 %: 10 -> 20
    assert hpa_limit([(495, 4)], 500, 20, 6, DEFAULT_SCALE_UP) == 6  # this period already grew 2 -> 6
    assert hpa_limit([], 500, 0, 5, ScalingRules(0, ONE_PER_300.policies, "Disabled")) == 5


# -- hand-computed steps of load ----------------------------------------------------------------------


def test_a_step_of_load_against_an_hpa_with_stabilization():
    # 3 requests/s for 10 s each from t=600 to 2000: 30 in flight on one pod (target 10).
    # Prometheus scrapes at multiples of 15 s, the HPA syncs at 15k + 14. The scrape at 600 sees 3
    # (ratio 0.3, but 1 is the minimum); the one at 615 sees 30: the sync at 629 asks ceil(1 × 3.0)
    # = 3 (scale-up: 100 % or 4 pods per 15 s allows it). The two new pods report nothing until
    # 929: 30 / (10 × 3) = 1.0, no further change. The load stops at 2000 and the last request ends
    # at 2009; the sync at 2024 sees 0, but the scale-down window keeps the largest recommendation of
    # the last 300 s (3, last at 2009) until the sync at 2309; then one pod per 300 s: 2309, 2609.
    res = run(pool(), replica(), load(600, 2000))
    assert events(res) == [(629, "out", 1, 3), (2309, "in", 3, 2), (2609, "in", 2, 1)]
    # The per-minute series: minute 14 (to 899) has one pod serving, minute 15 (to 959) three.
    assert res.series["replicas"][14] == 1 and res.series["replicas"][15] == 3
    assert res.findings == [] and res.refused == 0 and res.over_slo == 0


def test_keda_polls_its_triggers_and_keeps_to_min_and_max():
    # The same step under a ScaledObject polling every 60 s, at most 2 replicas: the poll at 600
    # reads 3 (no change), the poll at 660 reads 30, the sync at 674 asks 3 and maxReplicaCount
    # makes it 2. At 974 two pods serve 30: ratio 1.5 asks 3 again, still capped at 2.
    res = run(pool("keda", polling=60, max_size=2), replica(), load(600, 2000))
    assert events(res)[0] == (674, "out", 1, 2)
    assert max(res.series["desired"]) == 2
    # After the load (last request ends at 2009) the polls up to 1980 read 30, so the syncs through
    # 2039 still ask 3; the one at 2040 reads 0. The scale-down window holds 2 until 2039 + 300 = 2339,
    # and minReplicaCount 1 stops it there.
    assert events(res)[1:] == [(2339, "in", 2, 1)]


def test_keda_pool_at_zero_has_no_signal_to_wake_on():
    # minReplicaCount 0: the triggers query the engine pods' gauges, and no pod publishes any.
    res = run(pool("keda", min_size=0, initial=0), replica(), load(100, 200, 1))
    assert res.served == 0
    assert [(f.kind, f.resource) for f in res.findings] == [("cannot-wake-from-zero", "p-scaler")]


def test_a_pool_capped_by_its_devices_cannot_keep_up_and_says_so():
    # 10 slots per replica, 30 in flight: three replicas needed, the devices hold two.
    res = run(pool(max_size=2), replica(slots=10, cap=2), load(600, 20_000))
    kinds = {f.kind: f for f in res.findings}
    assert "cannot-keep-up" in kinds
    assert kinds["cannot-keep-up"].resource == "t-p"
    assert "the pool's devices cap it at 2 replicas (2 node(s) x 1 gpu / 1)" in kinds["cannot-keep-up"].message


def test_flapping_within_the_stabilization_window_is_flagged():
    # Bursts of 300 s with 150 s gaps. A 120 s scale-down window gives the pods back inside each gap
    # (the last request ends 10 s after the burst, the window passes ~120 s later) and the next burst
    # takes them again within the window: flapping. The planned window (300 s) outlasts the gap and
    # holds the pods.
    arr = np.zeros(DAY_SECONDS, dtype=np.int64)
    for start in range(600, 6000, 450):
        arr[start : start + 300] = 3
    short = ScalingRules(120, (ScalingPolicy("Percent", 100, 15),))
    pods = PodAutoscaler("p-scaler", "hpa", (PodMetric("in_flight", 10.0),), DEFAULT_SCALE_UP, short)
    flappy = run(pool(pods=pods), replica(startup=30), arr)
    assert [f.resource for f in flappy.findings if f.kind == "flapping"] == ["p-scaler"]
    steady = run(pool(), replica(startup=30), arr)
    assert all(f.kind != "flapping" for f in steady.findings)
    assert [e.kind for e in steady.events if e.second < 6000] == ["out"]


# -- the plan and the pools -----------------------------------------------------------------------------


def test_the_onprem_plan_is_read_back():
    resources = plan_of_file(str(STACKS / "onprem.yaml")).resources
    assert "muc" not in scaling_configs(resources)
    pools = onprem_scaling_configs(resources)["muc"]
    assert sorted(pools) == ["a100", "h100"]
    h100 = pools["h100"]
    assert (h100.min_size, h100.max_size, h100.group) == (3, 16, "muc-h100")
    assert h100.pods is not None
    assert h100.pods.via == "keda" and h100.pods.polling == 15 and h100.pods.cooldown == 300
    assert h100.pods.metrics == (PodMetric("in_flight", 24.0),)
    assert h100.pods.scale_down == ONE_PER_300 and h100.pods.scale_up == DEFAULT_SCALE_UP


def test_an_hpa_and_the_busy_trigger_are_read_back():
    behavior = {
        "scaleUp": {"stabilizationWindowSeconds": 60, "policies": [{"type": "Pods", "value": 2, "periodSeconds": 30}]}
    }
    hpa = {
        "type": "kubernetes:autoscaling/v2:HorizontalPodAutoscaler",
        "name": "x-hpa",
        "parent": "urn:pulumi:s::inferstack::inferstack:onprem:OnPremK8s::site",
        "inputs": {
            "metadata": {"labels": {"inferstack.io/pool": "big"}},
            "spec": {
                "scaleTargetRef": {"name": "site-big"},
                "maxReplicas": 4,
                "behavior": behavior,
                "metrics": [
                    {
                        "type": "Pods",
                        "pods": {"metric": {"name": "inferstack_waiting_requests"}, "target": {"averageValue": "4"}},
                    },
                    {"type": "Pods", "pods": {"metric": {"name": "inferstack_busy"}, "target": {"averageValue": "1"}}},
                ],
            },
        },
    }
    keda = {
        "type": "kubernetes:keda.sh/v1alpha1:ScaledObject",
        "name": "x-so",
        "parent": hpa["parent"],
        "inputs": {
            "metadata": {"labels": {"inferstack.io/pool": "small"}},
            "spec": {
                "scaleTargetRef": {"name": "site-small"},
                "triggers": [
                    {"type": "prometheus", "metadata": {"query": 'sum(w{a="b"})', "threshold": "4"}},
                    {"type": "prometheus", "metadata": {"query": "count((x) > 0) or vector(0)", "threshold": "1"}},
                ],
            },
        },
    }
    site = onprem_scaling_configs([hpa, keda])["site"]
    big, small = site["big"], site["small"]
    assert big.pods is not None and small.pods is not None
    assert (big.min_size, big.max_size) == (1, 4)  # minReplicas defaults to 1
    assert big.pods.metrics == (PodMetric("queue_depth", 4.0), PodMetric("busy", 1.0))
    assert big.pods.scale_up == ScalingRules(60, (ScalingPolicy("Pods", 2, 30),))
    assert big.pods.scale_down.stabilization == 300  # the default for the direction it leaves out
    # KEDA's defaults: pollingInterval 30, cooldownPeriod 300, min 0, max 100.
    assert (small.min_size, small.max_size, small.pods.polling, small.pods.cooldown) == (0, 100, 30, 300)
    assert small.pods.metrics == (PodMetric("queue_depth", 4.0), PodMetric("busy", 1.0))


def test_a_pool_replica_starts_in_the_probe_budget_and_is_capped_by_its_devices():
    spec = load_spec(str(STACKS / "onprem.yaml")).spec
    plans = {p.name: p for p in plan_pools(spec, "muc")}
    h100 = pool_replica_model(spec, "muc", plans["h100"])
    a100 = pool_replica_model(spec, "muc", plans["a100"])
    assert h100.device_cap == 16 and "2 node(s) x 8 nvidia.com/gpu / 1 per replica" in (h100.cap_reason or "")
    assert a100.device_cap == 16 and "nvidia.com/mig-3g.40gb" in (a100.cap_reason or "")
    assert h100.startup_seconds == a100.startup_seconds == 420  # the workload's startup probe budget
    assert h100.warm_start_seconds is None
    assert a100.concurrent_sequences < h100.concurrent_sequences  # 40 GB slice vs an 80 GB GPU


# -- the overflow ------------------------------------------------------------------------------------------


def test_overflow_activates_after_t_seconds_above_n_and_fills_the_bursts_in_order():
    # N = 2, T = 3: above N from t=1, active from t=4 (1 + 3). Spill = min(arrivals, pending - N).
    # t=4: 1 -> a. t=5: 3 -> a takes 1 (full at 2), b 2. t=6: 3 -> b (5, full). t=7: nothing has
    # room. t=8: below N, inactive. a's requests end at 14 and 15: room again.
    pending = np.array([0, 3, 3, 3, 3, 5, 5, 5, 1, 0, 0, 0, 0, 0, 3, 3, 3, 3, 5, 5])
    arrivals = np.array([1, 1, 1, 1, 2, 4, 4, 4, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 4, 4])
    trigger = OverflowTrigger(pending_requests=2, for_seconds=3, primary_unhealthy=False)
    bursts = [BurstCapacity("a", 2, 10), BurstCapacity("b", 5, 10)]
    flow = overflow_spill(pending, arrivals, trigger, bursts)
    assert list(np.flatnonzero(flow.active)) == [4, 5, 6, 7, 17, 18, 19]
    assert list(flow.spilled["a"][:8]) == [0, 0, 0, 0, 1, 1, 0, 0]
    assert list(flow.spilled["b"][:8]) == [0, 0, 0, 0, 0, 2, 3, 0]
    # Above N again from 14, active from 17; a's requests ended at 14 and 15, b's at 15 and 16.
    # t=17: 1 -> a. t=18: 3 -> a 1 (full), b 2. t=19: 3 -> b.
    assert list(flow.spilled["a"][14:]) == [0, 0, 0, 1, 1, 0]
    assert list(flow.spilled["b"][14:]) == [0, 0, 0, 0, 2, 3]


def test_overflow_on_an_unhealthy_primary_sends_everything():
    pending = np.zeros(5, dtype=np.int64)
    arrivals = np.array([2, 2, 2, 2, 2])
    serving = np.array([1, 0, 0, 1, 1])
    trigger = OverflowTrigger(pending_requests=None, for_seconds=30, primary_unhealthy=True)
    flow = overflow_spill(pending, arrivals, trigger, [BurstCapacity("a", 100, 10)], serving)
    assert list(flow.spilled["a"]) == [0, 2, 2, 0, 0]


def hybrid(timeout: int, reason: str | None = None):
    """onprem.yaml's site with dev.yaml's AWS fleet as its burst target (min 0). The spill reads
    only the primary, the burst list, the trigger and the gateway's timeout, so the rest of the
    overflow section (link, gateway images) is left out of this hand-built spec."""
    onprem = load_spec(str(STACKS / "onprem.yaml")).spec
    dev = load_spec(str(STACKS / "dev.yaml")).spec
    gateway = SimpleNamespace(overflow_timeout_seconds=timeout, short_timeout_reason=reason, publisher_image=None)
    overflow = Overflow.model_construct(primary="muc", burst=["burst"], trigger=SpecTrigger(), gateway=gateway)
    spec = onprem.model_copy(
        update={
            "targets": {**onprem.targets, "burst": dev.targets["burst"]},
            "models": dev.models,
            "overflow": overflow,
        }
    )
    resources = plan_of_file(str(STACKS / "onprem.yaml")).resources + plan_of_file(str(STACKS / "dev.yaml")).resources
    return spec, resources


def spike() -> np.ndarray:
    arr = np.zeros(DAY_SECONDS, dtype=np.int64)
    arr[3600:4800] = 200  # far past two replicas per pool: the queue builds within seconds
    return arr


def test_a_stack_with_overflow_spills_to_the_burst_fleet_which_wakes_from_zero():
    spec, resources = hybrid(timeout=900)
    res = simulate_stack(spec, "hybrid", resources, spike(), seed=1)
    by = {t.target: t for t in res.targets}
    assert set(by) == {"muc/a100", "muc/h100", "burst"}
    burst = by["burst"]
    assert burst.requests > 0  # only what the primary spilled (its own share defaults to 0)
    assert burst.cold_start_first_token  # the fleet sat at zero: the first spilled request waits for it
    assert any("overflow from muc" in n for n in res.notes)
    assert sum(by[p].requests for p in ("muc/a100", "muc/h100")) + burst.requests == int(spike().sum())
    assert all(f.kind != "overflow-timeout-short" for f in res.findings)
    again = simulate_stack(spec, "hybrid", resources, spike(), seed=1)
    assert json.dumps(again.to_json()) == json.dumps(res.to_json())  # deterministic for a seed


def test_an_overflow_timeout_shorter_than_the_burst_start_up_is_a_finding():
    spec, resources = hybrid(timeout=300)
    res = simulate_stack(spec, "hybrid", resources, spike(), seed=1)
    late = [f for f in res.findings if f.kind == "overflow-timeout-short"]
    assert [f.resource for f in late] == ["overflow.gateway.overflow_timeout_seconds"]
    assert "waits 300s for burst" in late[0].message and "~720s" in late[0].message
    # The spec may say why: then it is a note, not a finding.
    spec, resources = hybrid(timeout=300, reason="batch clients retry on 504")
    res = simulate_stack(spec, "hybrid", resources, spike(), seed=1)
    assert all(f.kind != "overflow-timeout-short" for f in res.findings)
    assert any("batch clients retry on 504" in n for n in res.notes)


# -- the command -----------------------------------------------------------------------------------------


def test_simulate_and_plan_on_the_onprem_example():
    r = CliRunner().invoke(main, ["simulate", str(STACKS / "onprem.yaml"), "--format", "json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert [t["target"] for t in doc["targets"]] == ["muc/a100", "muc/h100"]
    assert all(t["findings"] == [] for t in doc["targets"])
    assert {t["replica"]["deviceCap"] for t in doc["targets"]} == {16}
    r = CliRunner().invoke(main, ["plan", str(STACKS / "onprem.yaml"), "--skip-policy"])
    assert r.exit_code == 0, r.output
    lines = [line for line in r.output.splitlines() if line.startswith("simulate: ")]
    assert [line.split(":")[1].strip() for line in lines] == ["muc/a100", "muc/h100"]
    assert all(": ok, p95 time to first token" in line for line in lines)


def test_a_queue_signal_alone_gives_back_busy_pods_and_the_busy_trigger_holds_them():
    # Three pods of 10 slots, 3 requests/s of 10 s: 30 in flight, nothing waits, so queue_depth reads
    # 0 and asks for the minimum; after the 300 s window a pod goes while each holds 10 in flight.
    # With the busy-pods trigger the workload plans beside it (target 1 per pod), 3 busy pods ask 3.
    arr = load(0, 20_000)
    queue_only = PodAutoscaler("p-scaler", "hpa", (PodMetric("queue_depth", 4.0),), DEFAULT_SCALE_UP, ONE_PER_300)
    res = run(pool(pods=queue_only, initial=3), replica(slots=10), arr)
    assert "scale-in-under-load" in {f.kind for f in res.findings}
    with_busy = dataclasses.replace(queue_only, metrics=(PodMetric("queue_depth", 4.0), PodMetric("busy", 1.0)))
    held = run(pool(pods=with_busy, initial=3), replica(slots=10), arr)
    assert [e.second for e in held.events if e.kind == "in"] == [20_309, 20_609]  # only once the load ends
    assert all(f.kind != "scale-in-under-load" for f in held.findings)


def test_a_burst_target_with_a_measured_replica_still_receives_only_the_spill():
    """Stating a burst target's replica capacity in `traffic.targets` must not give it a share of
    its own: its share defaults to 0 whatever else the entry says."""
    spec, resources = hybrid(timeout=900)
    measured = TargetTraffic(replica=ReplicaCapacity(concurrent_sequences=16, output_tokens_per_second=400))
    spec = spec.model_copy(update={"traffic": Traffic(targets={"burst": measured})})
    res = simulate_stack(spec, "hybrid", resources, spike(), seed=1)
    burst = next(t for t in res.targets if t.target == "burst")
    note = next(n for n in res.notes if n.startswith("overflow from muc"))
    spilled = int(re.search(r"spilled (\d+) to burst", note).group(1))
    assert burst.requests == spilled > 0


def _hybrid_example():
    spec = load_spec(str(STACKS / "hybrid.yaml")).spec
    return spec, plan_of_file(str(STACKS / "hybrid.yaml")).resources


def _heavy_spike() -> np.ndarray:
    arr = np.zeros(DAY_SECONDS, dtype=np.int64)
    arr[3600:7200] = 400  # far past the site's pools at their maximum: the overflow fires and holds
    return arr


def test_the_gateway_publisher_wakes_a_gcp_burst_group_from_zero():
    """The GCP group's per-group metric has no node to publish it at zero: the overflow gateway's
    publisher writes what the primary cannot absorb into the first burst target's metric (GCP first
    here), so the autoscaler sees it and wakes the group; spill reaches it once it serves."""
    spec, resources = _hybrid_example()
    assert spec.overflow is not None
    gcp_first = spec.overflow.model_copy(update={"burst": ["gcp-burst", "aws-burst"]})
    res = simulate_stack(spec.model_copy(update={"overflow": gcp_first}), "hybrid", resources, _heavy_spike(), seed=1)
    gcp = next(t for t in res.targets if t.target == "gcp-burst")
    assert gcp.requests > 0 and gcp.served > 0 and any(e.kind in ("wake", "out") for e in gcp.events)
    assert all(f.kind != "cannot-wake-from-zero" for f in gcp.findings)
    # The spill starts only once the group serves: no request waits for it at zero.
    assert gcp.cold_start_first_token == []


def test_with_the_publisher_a_burst_target_takes_no_spill_before_it_serves():
    """The publisher turns the overflow on only while a burst cluster has a healthy member: a
    fleet woken from zero gets the spill after its start-up, not requests that wait through it."""
    spec, resources = _hybrid_example()
    res = simulate_stack(spec, "hybrid", resources, _heavy_spike(), seed=1)
    aws = next(t for t in res.targets if t.target == "aws-burst")
    assert aws.served > 0 and aws.cold_start_first_token == []
    # Demand goes to the first burst target only: the second stays at zero.
    gcp = next(t for t in res.targets if t.target == "gcp-burst")
    assert gcp.requests == 0 and gcp.replica_hours == 0


def test_a_trigger_shorter_than_the_cold_start_wakes_a_fleet_that_serves_nothing():
    spec, resources = _hybrid_example()
    arr = np.zeros(DAY_SECONDS, dtype=np.int64)
    arr[3600:3900] = 400  # five minutes over capacity: less than the fleet's start-up
    res = simulate_stack(spec, "hybrid", resources, arr, seed=1)
    assert any(n.startswith("aws-burst was woken by the publisher but took no overflow") for n in res.notes)
    aws = next(t for t in res.targets if t.target == "aws-burst")
    assert aws.requests == 0 and aws.replica_hours > 0


def test_without_a_publisher_nothing_wakes_the_gcp_burst_group():
    spec, resources = _hybrid_example()
    assert spec.overflow is not None
    gateway = spec.overflow.gateway.model_copy(update={"publisher_image": None})
    spec = spec.model_copy(update={"overflow": spec.overflow.model_copy(update={"gateway": gateway})})
    res = simulate_stack(spec, "hybrid", resources, _heavy_spike(), seed=1)
    gcp = next(t for t in res.targets if t.target == "gcp-burst")
    assert gcp.requests > 0 and gcp.served == 0
    assert any(f.kind == "cannot-wake-from-zero" for f in gcp.findings)
