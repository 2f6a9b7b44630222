"""A group that may reach zero keeps its last node while requests trickle in: the scale-in alarm's
metric math, and the simulator replaying it, agree."""

from __future__ import annotations

from conftest import STACKS, plan_of_file

ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"


def test_min_zero_scale_in_reads_the_threshold_at_one_node_unless_its_peak_was_zero(dev):
    alarm = dev.one(ALARM, "burst-scale-in")["inputs"]
    queries = {q["id"]: q for q in alarm["metricQueries"]}
    assert (queries["load"]["metric"]["stat"], queries["peak"]["metric"]["stat"]) == ("Average", "Maximum")
    assert queries["desired"]["metric"]["metricName"] == "GroupDesiredCapacity"
    assert queries["scalein"]["expression"] == "IF(desired > 1, load, IF(peak > 0, 1, load))"
    # exactly one query returns data, as PutMetricAlarm requires
    assert [q["id"] for q in alarm["metricQueries"] if q.get("returnData")] == ["scalein"]
    assert alarm["comparisonOperator"] == "LessThanThreshold"


def test_a_group_that_never_reaches_zero_keeps_the_plain_average(prod):
    alarm = prod.one(ALARM, "steady-scale-in")["inputs"]
    assert "metricQueries" not in alarm and alarm["statistic"] == "Average"


def test_the_simulator_reads_the_math_as_the_alarm_it_is():
    from inferstack.planning.scaling_config import scaling_configs

    cfg = scaling_configs(plan_of_file(str(STACKS / "prod.yaml")).resources)["burst"]
    (alarm,) = cfg.alarms
    assert alarm.last_node_only_when_idle and alarm.metric == "InFlightRequests"
