"""`inferstack simulate`: hand-computed scaling cases, the plan's resources read back, the example
stacks on their own profiles, and the command's bad input."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import EXAMPLE_STACKS, plan_of_file
from inferstack.cli import main
from inferstack.planning.replica import ReplicaModel, replica_model
from inferstack.planning.scaling_config import AlarmPolicy, ScalingConfig, TargetTracking, WakeAlarm, scaling_configs
from inferstack.planning.simulation import simulate_stack, simulate_target
from inferstack.planning.traffic import DAY_SECONDS, SHAPES, TrafficError, arrivals, arrivals_from_csv, hourly_rates
from inferstack.spec.loader import load_spec
from inferstack.spec.models import Traffic

STARTUP = 300


def replica(slots: int = 100, startup: int = STARTUP, warm: int | None = None) -> ReplicaModel:
    # 10 output tokens at 1 token/s per sequence and no prefill: every request holds a slot 10 s.
    return ReplicaModel("t", startup, warm, slots, float(slots), 1e9, False, "test")


def config(**kw) -> ScalingConfig:
    base = dict(target="t", cloud="aws", group="t-asg", min_size=1, max_size=10, initial=1)
    base.update(kw)
    return ScalingConfig(**base)


def tracking(target: float = 10, metric: str = "InFlightRequests") -> TargetTracking:
    return TargetTracking("t-track", metric, "Average", target, True, 120)


def scale_in_alarm(
    threshold: float, metric: str = "InFlightRequests", periods: int = 1, idle: bool = False
) -> AlarmPolicy:
    """The component's scale-in alarm: Average over 60 s, below the threshold, -1 with a 300 s cooldown."""
    return AlarmPolicy(
        "t-scale-in",
        "t-scale-in",
        metric,
        "Average",
        60,
        periods,
        threshold,
        "LessThanThreshold",
        False,
        -1,
        "ChangeInCapacity",
        300,
        idle,
    )


def run(cfg: ScalingConfig, rep: ReplicaModel, arr: np.ndarray, timeout: int = 900):
    return simulate_target(
        cfg, rep, arr, input_tokens=0, output_tokens=10, slo_seconds=10, client_timeout=timeout, seed=0
    )


def step(start: int = 600, per_second: int = 3) -> np.ndarray:
    arr = np.zeros(DAY_SECONDS, dtype=np.int64)
    arr[start:] = per_second
    return arr


def test_a_step_of_load_scales_out_after_three_datapoints_to_the_target():
    # 3 requests/s × 10 s = 30 in flight on one node from t=600. Minute 10 averages (3+30+30+30)/4,
    # minutes 10, 11, 12 are above 10: at the end of minute 12 (t=779) desired = ceil(1 × 30 / 10) = 3,
    # serving from 779 + 300 = 1079; then 10 per node = the target, so nothing more.
    res = run(config(tracking=tracking()), replica(), step())
    assert [(e.second, e.kind, e.before, e.after) for e in res.events] == [(779, "out", 1, 3)]
    assert res.series["replicas"][16] == 1 and res.series["replicas"][17] == 3
    assert res.findings == []
    assert res.refused == 0 and res.over_slo == 0


def test_warm_pool_starts_first_then_cold_launches():
    # The same step; one instance comes from the warm pool (100 s), the other launches cold (300 s).
    res = run(config(tracking=tracking(), warm_pool=1), replica(warm=100), step())
    assert res.series["replicas"][13] == 1  # t=839 < 879
    assert res.series["replicas"][14] == 2  # warm one serving from 779 + 100 = 879
    assert res.series["replicas"][16] == 2  # t=1019 < 1079
    assert res.series["replicas"][17] == 3


def one_request(at: int = 100) -> np.ndarray:
    arr = np.zeros(DAY_SECONDS, dtype=np.int64)
    arr[at] = 1
    return arr


def test_a_fleet_at_zero_wakes_on_the_load_balancer():
    # Request at t=100; the wake alarm's minute ends at t=119 with demand 1 and desired 0: one node,
    # serving at 119 + 300 = 419, first token 319 s after the request.
    wake = WakeAlarm("t-wake", "t-wake", 60, 1, True, ("PendingRequests",), 1)
    res = run(config(min_size=0, initial=0, wake=wake), replica(), one_request())
    assert [(e.second, e.kind) for e in res.events] == [(119, "wake")]
    assert res.cold_start_first_token == [319.0]
    assert res.served == 1 and res.findings == []


def test_a_fleet_at_zero_with_no_wake_path_is_flagged():
    res = run(config(min_size=0, initial=0), replica(), one_request())
    assert res.served == 0 and res.refused == 1
    assert [(f.kind, f.resource) for f in res.findings] == [("cannot-wake-from-zero", "t-asg")]


def test_a_wake_alarm_on_metrics_only_nodes_publish_cannot_wake():
    # No load balancer query: nothing publishes PendingRequests at zero.
    wake = WakeAlarm("t-wake", "t-wake", 60, 1, False, ("PendingRequests",), 1)
    res = run(config(min_size=0, initial=0, wake=wake), replica(), one_request())
    assert res.served == 0
    assert res.findings[0].kind == "cannot-wake-from-zero"


def test_a_scale_in_alarm_on_a_signal_that_reads_zero_under_load_is_flagged():
    # 3 nodes, 30 in flight (10 each, far below 100 slots): PendingRequests reads 0, so the alarm
    # (below 1 for one minute) removes a node at t=59 although in-flight per node would be 15 > 12.
    alarm = scale_in_alarm(1.0, metric="PendingRequests")
    arr = np.full(DAY_SECONDS, 3, dtype=np.int64)
    res = run(config(initial=3, tracking=tracking(12), alarms=(alarm,)), replica(), arr)
    kinds = {(f.kind, f.resource) for f in res.findings}
    assert ("scale-in-under-load", "t-scale-in") in kinds
    assert res.events[0].second == 59 and res.events[0].kind == "in"


def test_an_in_flight_scale_in_alarm_on_the_same_load_is_not_flagged():
    alarm = scale_in_alarm(6.0)
    arr = np.full(DAY_SECONDS, 3, dtype=np.int64)
    res = run(config(initial=3, tracking=tracking(12), alarms=(alarm,)), replica(), arr)
    assert res.events == [] and res.findings == []


def test_cooldown_arithmetic_of_a_simple_scale_in_policy():
    # Idle fleet of 4: the alarm is in ALARM from the first minute and re-invokes the policy every
    # minute; the simple policy acts at 59, then not before 59 + 300, then 359 + 300, down to min 1.
    alarm = scale_in_alarm(5.0)
    res = run(config(initial=4, alarms=(alarm,)), replica(), np.zeros(DAY_SECONDS, dtype=np.int64))
    assert [(e.second, e.after) for e in res.events] == [(59, 3), (359, 2), (659, 1)]


def test_evaluation_periods_delay_the_first_scale_in():
    alarm = scale_in_alarm(5.0, periods=5)
    res = run(config(initial=2, alarms=(alarm,)), replica(), np.zeros(DAY_SECONDS, dtype=np.int64))
    assert [(e.second, e.after) for e in res.events] == [(299, 1)]  # five one-minute datapoints


def test_a_launch_that_outlasts_the_launch_hook_never_serves():
    res = run(config(tracking=tracking(), launch_hook_timeout=200, launch_hook="t-ready"), replica(), step())
    assert ("launch-hook-timeout", "t-ready") in {(f.kind, f.resource) for f in res.findings}
    assert max(res.series["replicas"]) == 1


def test_peak_above_max_cannot_keep_up_and_names_the_group():
    res = run(config(tracking=tracking(), max_size=2), replica(slots=20), step(per_second=10))
    assert ("cannot-keep-up", "t-asg") in {(f.kind, f.resource) for f in res.findings}


def test_the_plan_resources_are_read_back():
    cfgs = scaling_configs(plan_of_file(str(EXAMPLE_STACKS[0].parent / "dev.yaml")).resources)
    burst = cfgs["burst"]
    assert burst.tracking is not None and burst.tracking.metric == "PendingRequests" and burst.tracking.disable_scale_in
    (alarm,) = burst.alarms
    assert (alarm.metric, alarm.period, alarm.evaluation_periods, alarm.threshold, alarm.cooldown) == (
        "InFlightRequests",
        60,
        5,
        1.0,
        300,
    )
    assert burst.wake is not None and burst.wake.load_balancer
    assert burst.launch_hook_timeout == 1080 and burst.min_size == 0
    prod = scaling_configs(plan_of_file(str(EXAMPLE_STACKS[0].parent / "prod.yaml")).resources)
    assert prod["steady"].warm_pool == 1
    research = scaling_configs(plan_of_file(str(EXAMPLE_STACKS[0].parent / "research.yaml")).resources)
    assert research["chat"].autoscaler is not None and research["chat"].autoscaler.per_group
    assert research["chat"].spot and burst.spot and not prod["steady"].spot


def test_spot_interruptions_relaunch_and_are_seeded():
    arr = np.full(DAY_SECONDS, 1, dtype=np.int64)
    cfg = config(initial=4, min_size=4, spot=True)
    a = simulate_target(
        cfg,
        replica(),
        arr,
        input_tokens=0,
        output_tokens=10,
        slo_seconds=10,
        client_timeout=900,
        spot_rate_per_hour=1.0,
        seed=5,
    )
    b = simulate_target(
        cfg,
        replica(),
        arr,
        input_tokens=0,
        output_tokens=10,
        slo_seconds=10,
        client_timeout=900,
        spot_rate_per_hour=1.0,
        seed=5,
    )
    interrupts = [e for e in a.events if e.kind == "interrupt"]
    assert interrupts and [e.second for e in interrupts] == [e.second for e in b.events if e.kind == "interrupt"]
    # ~4 nodes × 1/hour × 24 h; each is replaced after the start-up, so the fleet returns to 4.
    assert 50 < len(interrupts) < 150
    assert a.series["replicas"][-1] >= 3


def test_start_up_is_the_readiness_estimate():
    loaded = load_spec(str(EXAMPLE_STACKS[0].parent / "dev.yaml"))
    from inferstack.planning.aws_fleet import plan_aws_fleet

    rep = replica_model(loaded.spec, "dev", "burst")
    assert rep.startup_seconds == plan_aws_fleet(loaded.spec, "dev", "burst").readiness.startup_seconds
    assert rep.estimated and "estimate" in rep.formula


@pytest.mark.parametrize("spec", EXAMPLE_STACKS, ids=lambda p: p.stem)
def test_every_example_stack_on_its_own_profile_has_no_undocumented_finding(spec):
    loaded = load_spec(str(spec))
    assert loaded.spec.traffic is not None, f"{spec.name} has no traffic section"
    plan = plan_of_file(str(spec))
    arr = arrivals(hourly_rates(loaded.spec.traffic), loaded.spec.traffic.burstiness, 0)
    result = simulate_stack(loaded.spec, plan.stack, plan.resources, arr, seed=0)
    text = spec.read_text()
    for f in result.findings:
        assert f"# simulate: {f.kind} {f.resource}:" in text, f"{spec.name}: undocumented finding {f}"


def test_deterministic_for_a_seed_and_fast():
    tr = Traffic(shape="business-day", burstiness=3)
    a, b = arrivals(hourly_rates(tr), 3, 7), arrivals(hourly_rates(tr), 3, 7)
    assert (a == b).all() and not (a == arrivals(hourly_rates(tr), 3, 8)).all()
    start = time.perf_counter()
    run(config(tracking=tracking()), replica(), a)
    assert time.perf_counter() - start < 1.0


def test_shapes_peak_at_the_stated_rate():
    for name in SHAPES:
        assert max(hourly_rates(Traffic(peak_requests_per_hour=100), name)) == 100
    with pytest.raises(TrafficError, match="unknown traffic profile"):
        hourly_rates(Traffic(), "weekly")


def test_csv_arrivals(tmp_path):
    good = tmp_path / "a.csv"
    good.write_text("second,count\n10,2\n10,1\n20,\n")
    arr = arrivals_from_csv(str(good))
    assert arr[10] == 3 and arr[20] == 1 and arr.sum() == 4
    for body, msg in (("t\n1\n", "header"), ("second\nx\n", "whole numbers"), ("second\n90000\n", "0..86399")):
        bad = tmp_path / "b.csv"
        bad.write_text(body)
        with pytest.raises(TrafficError, match=msg):
            arrivals_from_csv(str(bad))


def cli(*args: str):
    return CliRunner().invoke(main, ["simulate", *args], catch_exceptions=False)


def test_cli_bad_input_exits_2(tmp_path):
    dev = str(EXAMPLE_STACKS[0].parent / "dev.yaml")
    r = cli(dev, "--profile", "weekly")
    assert r.exit_code == 2 and "unknown traffic profile 'weekly'" in r.output
    bad = tmp_path / "bad.csv"
    bad.write_text("when\n1\n")
    r = cli(dev, "--csv", str(bad))
    assert r.exit_code == 2 and "header" in r.output
    r = cli(dev, "--plot", str(tmp_path / "x.pdf"))
    assert r.exit_code == 2 and ".png or .svg" in r.output


def test_cli_json_and_plot(tmp_path):
    out = tmp_path / "day.png"
    r = cli(str(EXAMPLE_STACKS[0].parent / "dev.yaml"), "--format", "json", "--plot", str(out), "--seed", "3")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["seed"] == 3 and doc["targets"][0]["target"] == "burst"
    assert {"p50", "p95", "p99"} <= set(doc["targets"][0]["ttftSeconds"])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_rehearses_a_saved_plan_of_the_same_spec_only(tmp_path):
    stacks = EXAMPLE_STACKS[0].parent
    saved = tmp_path / "dev.json"
    assert (
        CliRunner().invoke(main, ["plan", str(stacks / "dev.yaml"), "--skip-policy", "--out", str(saved)]).exit_code
        == 0
    )
    r = cli(str(stacks / "dev.yaml"), "--plan", str(saved), "--format", "json")
    assert r.exit_code == 0, r.output
    direct = json.loads(cli(str(stacks / "dev.yaml"), "--format", "json").output)
    assert json.loads(r.output)["total"] == direct["total"]
    r = cli(str(stacks / "prod.yaml"), "--plan", str(saved))
    assert r.exit_code == 2 and "another version of the spec" in r.output


def test_a_scale_out_slower_than_the_step_names_the_tracking_policy():
    # An hour: 10 requests/s from t=600 need 5 nodes of 20 slots. Tracking running requests (at most
    # 20 a node) each scale-out only doubles the fleet, every 180 s of datapoints + 300 s of start-up:
    # thousands wait past the SLO while the group stays far below its max.
    arr = step(per_second=10)[:3600]
    res = run(config(tracking=tracking(metric="RunningRequests"), max_size=100), replica(slots=20), arr)
    assert ("cannot-keep-up", "t-track") in {(f.kind, f.resource) for f in res.findings}
    assert max(e.after for e in res.events) < 100


def test_the_last_node_stays_while_requests_trickle_in_and_goes_once_idle():
    # One request every 30 s, each holding a slot 10 s, arriving on the agent's sample seconds:
    # every minute's peak is 1 and its average below 1. The plain average alarm removes the only
    # node at 59 s (then every request waits a cold start); the component's metric math for a
    # group that may reach zero keeps it. With no requests the peak is 0 and it goes at 59 s.
    trickle = np.zeros(DAY_SECONDS, dtype=np.int64)
    trickle[::30] = 1
    plain = run(config(min_size=0, initial=1, alarms=(scale_in_alarm(1.0),)), replica(), trickle)
    assert (plain.events[0].second, plain.events[0].after) == (59, 0)
    kept = run(config(min_size=0, initial=1, alarms=(scale_in_alarm(1.0, idle=True),)), replica(), trickle)
    assert [e for e in kept.events if e.kind == "in"] == []
    idle = run(
        config(min_size=0, initial=1, alarms=(scale_in_alarm(1.0, idle=True),)),
        replica(),
        np.zeros(DAY_SECONDS, dtype=np.int64),
    )
    assert [(e.second, e.after) for e in idle.events] == [(59, 0)]
