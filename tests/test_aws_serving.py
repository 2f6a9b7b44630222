"""AWS fleets that deploy must serve: lifecycle hooks, scaling on in-flight load, waking at zero,
disk throughput and readiness figures, the pinned AMI and the instance refresh, through the mocks
and as plain planning values."""

from __future__ import annotations

import json

import pytest

from conftest import DEV_TEXT, STACKS, Resources, plan_of_text, stack_text
from inferstack import catalog
from inferstack.catalog import GIB
from inferstack.errors import SpecError
from inferstack.planning import aws_fleet
from inferstack.spec.loader import parse_spec
from inferstack.spec.models import AwsGpuFleetTarget

ASG = "aws:autoscaling/group:Group"
LT = "aws:ec2/launchTemplate:LaunchTemplate"
HOOK = "aws:autoscaling/lifecycleHook:LifecycleHook"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
POLICY = "aws:autoscaling/policy:Policy"
PROD_TEXT = stack_text("prod.yaml")


# -- lifecycle hooks ------------------------------------------------------------------------------


def test_every_group_is_created_with_a_launch_and_a_drain_hook(dev, prod):
    for res, name in ((dev, "burst"), (prod, "steady"), (prod, "burst")):
        asg = res.one(ASG, f"{name}-asg")["inputs"]
        hooks = {h["name"]: h for h in asg["initialLifecycleHooks"]}
        launch, drain = hooks[aws_fleet.LAUNCH_HOOK], hooks[aws_fleet.DRAIN_HOOK]
        assert launch["lifecycleTransition"] == "autoscaling:EC2_INSTANCE_LAUNCHING"
        assert launch["defaultResult"] == "ABANDON"  # a node that never reports healthy is replaced
        assert drain["lifecycleTransition"] == "autoscaling:EC2_INSTANCE_TERMINATING"
        assert drain["defaultResult"] == "CONTINUE"
        assert 30 <= drain["heartbeatTimeout"] <= 7200 and 30 <= launch["heartbeatTimeout"] <= 7200
        # the same hooks as resources, so a changed timeout reaches an existing group
        standalone = {h["inputs"]["name"]: h["inputs"] for h in res.of_type(HOOK) if h["name"].startswith(f"{name}-")}
        assert standalone.keys() == hooks.keys()
        assert standalone[aws_fleet.LAUNCH_HOOK]["heartbeatTimeout"] == launch["heartbeatTimeout"]


def test_the_hook_carries_readiness_and_the_grace_after_it_is_short(prod):
    asg = prod.one(ASG, "steady-asg")["inputs"]
    launch = next(h for h in asg["initialLifecycleHooks"] if h["name"] == aws_fleet.LAUNCH_HOOK)
    assert launch["heartbeatTimeout"] >= 900  # a 70B model on gp3: many minutes before healthy
    assert asg["healthCheckGracePeriod"] == aws_fleet.GRACE_AFTER_HOOK_SECONDS < launch["heartbeatTimeout"]


def test_nodes_may_complete_only_their_own_groups_hooks_through_an_endpoint(dev):
    policy = json.loads(dev.one("aws:iam/rolePolicy:RolePolicy", "burst-node")["inputs"]["policy"])
    stmt = next(s for s in policy["Statement"] if s["Sid"] == "CompleteOwnLifecycleHooks")
    assert stmt["Action"] == "autoscaling:CompleteLifecycleAction"
    assert stmt["Resource"] == (
        "arn:aws:autoscaling:eu-central-1:123456789012:autoScalingGroup:*:autoScalingGroupName/assistant-dev-burst"
    )
    services = {e["inputs"]["serviceName"] for e in dev.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")}
    assert "com.amazonaws.eu-central-1.autoscaling" in services


def test_the_target_group_drains_as_long_as_a_streamed_reply_takes(dev):
    group = dev.one("aws:lb/targetGroup:TargetGroup")["inputs"]
    plan = aws_fleet.plan_aws_fleet(parse_spec(DEV_TEXT, "dev.yaml").spec, "dev", "burst")
    assert group["deregistrationDelay"] == plan.readiness.drain_seconds == 300  # 8192 tokens at 30/s, rounded
    assert plan.readiness.drain_hook_timeout > plan.readiness.drain_seconds


# -- scaling --------------------------------------------------------------------------------------


def test_in_flight_is_the_default_signal():
    target = AwsGpuFleetTarget.model_validate(
        {
            "kind": "aws-gpu-fleet",
            "region": "eu-central-1",
            "instance_types": ["g6.xlarge"],
            "capacity": {"min": 1, "max": 2},
            "autoscaling": {"target": 8},
        }
    )
    assert target.autoscaling.signal == "in_flight"
    plan = aws_fleet.plan_scaling(target, catalog.engines()["vllm"])
    assert (plan.metric_name, plan.scale_in_metric, plan.scale_in_threshold) == (
        "InFlightRequests",
        "InFlightRequests",
        4,
    )


@pytest.mark.parametrize(
    ("signal", "engine", "scale_in"),
    [
        ("in_flight", "vllm", ("InFlightRequests", 5.0)),
        ("requests_per_target", "sglang", ("InFlightRequests", 5.0)),
        ("queue_depth", "tgi", ("InFlightRequests", aws_fleet.SCALE_IN_IDLE_IN_FLIGHT)),
        ("gpu_utilization", "vllm", ("InFlightRequests", aws_fleet.SCALE_IN_IDLE_IN_FLIGHT)),
        ("gpu_utilization", "tensorrt-llm", ("GPUUtilization", 5.0)),  # no request gauges at all
    ],
)
def test_scale_in_acts_on_in_flight_load_wherever_the_engine_reports_it(signal, engine, scale_in):
    target = AwsGpuFleetTarget.model_validate(
        {
            "kind": "aws-gpu-fleet",
            "region": "eu-central-1",
            "instance_types": ["g6.xlarge"],
            "capacity": {"min": 1, "max": 2},
            "autoscaling": {"signal": signal, "target": 10},
        }
    )
    plan = aws_fleet.plan_scaling(target, catalog.engines()[engine])
    assert (plan.scale_in_metric, plan.scale_in_threshold) == scale_in


def test_in_flight_needs_an_engine_with_request_gauges():
    text = (STACKS.parent / "tests" / "spec_corpus" / "valid" / "tensorrt-custom-architecture.yaml").read_text()
    text = text.replace("autoscaling: {signal: gpu_utilization, target: 100}", "autoscaling: {target: 8}")
    with pytest.raises(SpecError, match="tensorrt-llm exposes no running/waiting-requests gauges"):
        parse_spec(text, "trt.yaml")


# -- waking at zero -------------------------------------------------------------------------------


def test_the_wake_alarm_keys_on_desired_capacity_and_load_balancer_demand(dev):
    wake = dev.one(ALARM, "burst-wake")["inputs"]
    queries = {q["id"]: q for q in wake["metricQueries"]}
    desired = queries["desired"]["metric"]
    assert (desired["namespace"], desired["metricName"]) == ("AWS/AutoScaling", "GroupDesiredCapacity")
    lb = {
        q["metric"]["metricName"]
        for q in wake["metricQueries"]
        if q.get("metric", {}).get("namespace") == "AWS/NetworkELB"
    }
    assert lb == set(aws_fleet.NLB_DEMAND_METRICS)
    assert all(
        "LoadBalancer" in q["metric"]["dimensions"]
        for q in wake["metricQueries"]
        if q.get("metric", {}).get("namespace") == "AWS/NetworkELB"
    )
    pending = queries["pending"]["metric"]
    assert (pending["namespace"], pending["metricName"]) == ("InferStack", "PendingRequests")  # the gateway's
    expr = queries["wake"]["expression"]
    assert expr.startswith("IF(desired < 1 AND (") and "FILL(lb0, 0)" in expr and "FILL(pending, 0)" in expr
    assert "GroupInServiceInstances" not in json.dumps(wake)
    assert dev.one(POLICY, "burst-wake")["inputs"]["stepAdjustments"][0]["scalingAdjustment"] == 1


def test_a_fleet_nothing_can_wake_may_not_scale_to_zero():
    no_endpoint = DEV_TEXT[: DEV_TEXT.index("\nendpoint:")] + "\n"
    with pytest.raises(SpecError, match="nothing could ever wake it: add an endpoint section") as info:
        parse_spec(no_endpoint, "dev.yaml")
    assert "targets.burst.capacity.min" in info.value.render()


# -- disk and readiness ---------------------------------------------------------------------------


def test_gp3_throughput_is_sized_from_the_weights_within_gp3_and_instance_limits():
    small = aws_fleet.plan_root_volume(200, 1 * GIB, ("g6.xlarge",))
    assert (small.throughput_mib, small.iops) == (125, 3000)  # the baseline already moves 1 GiB fast
    big = aws_fleet.plan_root_volume(400, 66 * GIB, ("g6e.12xlarge",))
    assert 125 < big.throughput_mib <= catalog.aws_node_timings_of("g6e.12xlarge").ebs_mib_per_second
    huge = aws_fleet.plan_root_volume(2000, 800 * GIB, ("p5.48xlarge",))
    assert huge.throughput_mib == aws_fleet.GP3_MAX_MIB
    for vol in (small, big, huge):
        assert 3000 <= vol.iops <= 16000 and vol.throughput_mib <= vol.iops * aws_fleet.GP3_MIB_PER_IOPS


def test_the_launch_template_sets_gp3_throughput_and_iops(prod):
    ebs = prod.one(LT, "steady-lt")["inputs"]["blockDeviceMappings"][0]["ebs"]
    assert ebs["volumeType"] == "gp3" and ebs["throughput"] > 125 and ebs["iops"] >= 3000


def test_readiness_comes_from_the_slowest_family_and_grows_with_the_weights():
    vol = aws_fleet.RootVolume(400, 500, 3000)
    g6e = aws_fleet.plan_readiness(16 * GIB, ("g6e.12xlarge",), vol, 8192)
    mixed = aws_fleet.plan_readiness(16 * GIB, ("g6e.12xlarge", "p4de.24xlarge"), vol, 8192)
    assert mixed.startup_seconds > g6e.startup_seconds  # p4de boots slower (NVSwitch, EFA)
    bigger = aws_fleet.plan_readiness(140 * GIB, ("g6e.12xlarge",), vol, 8192)
    assert bigger.startup_seconds > g6e.startup_seconds
    assert bigger.launch_hook_timeout >= bigger.startup_seconds * aws_fleet.HOOK_TIMEOUT_MARGIN - 60
    assert aws_fleet.plan_readiness(10_000 * GIB, ("g5.xlarge",), vol, 8192).launch_hook_timeout == 7200
    assert aws_fleet.plan_readiness(1 * GIB, ("g6.xlarge",), vol, 8192, override_seconds=900).startup_seconds == 900


def test_timings_are_data_with_their_source():
    text = (STACKS.parent / "inferstack" / "catalog" / "data" / "aws_node_timings.yaml").read_text()
    assert "Sources" in text and "docs.aws.amazon.com" in text
    families = {t.split(".")[0] for t in catalog.aws_instance_types() if catalog.aws_instance_types()[t].is_nvidia_gpu}
    assert families <= set(catalog.aws_node_timings())


# -- the AMI and the instance refresh -------------------------------------------------------------


def test_the_ssm_ami_is_read_once_and_kept(dev):
    lt = dev.one(LT)
    assert lt["inputs"]["imageId"].startswith("ami-")
    assert lt["options"]["ignoreChanges"] == ["imageId"]


def test_a_pinned_ami_is_used_as_is_and_changes_roll_the_group():
    text = DEV_TEXT.replace(
        "    root_volume_gib: 200\n", "    root_volume_gib: 200\n    ami_id: ami-0123456789abcdef0\n"
    )
    lt = Resources(plan_of_text(text, "dev")).one(LT)
    assert lt["inputs"]["imageId"] == "ami-0123456789abcdef0"
    assert "imageId" not in (lt["options"].get("ignoreChanges") or [])
    with pytest.raises(SpecError, match="must be an AMI id"):
        parse_spec(text.replace("ami-0123456789abcdef0", "ubuntu-latest"), "dev.yaml")


def test_instance_refresh_launches_before_terminating_with_values_the_api_accepts(prod):
    prefs = prod.one(ASG, "steady-asg")["inputs"]["instanceRefresh"]["preferences"]
    lo, hi = prefs["minHealthyPercentage"], prefs["maxHealthyPercentage"]
    # InstanceMaintenancePolicy/RefreshPreferences: min 0..100, max 100..200, max - min <= 100
    assert lo == 100 and 100 < hi <= 200 and hi - lo <= 100
    assert prefs["autoRollback"] is True and prefs["skipMatching"] is True


def test_the_stack_says_which_ami_each_fleet_runs(prod):
    outputs = prod.plan.outputs
    for target in ("steady", "burst"):
        assert outputs[f"{target}.image_id"] == prod.one(LT, f"{target}-lt")["inputs"]["imageId"]
