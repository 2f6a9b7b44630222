"""The plan's cost estimate: blended on-demand and spot prices from the catalog."""

from __future__ import annotations

import pytest

from conftest import STACKS, stack_text
from inferstack.planning import cost
from inferstack.spec.loader import load_spec, parse_spec


@pytest.mark.parametrize(
    ("instances", "base", "pct", "expected"),
    [(0, 0, 25, 0), (4, 0, 25, 1.0), (4, 2, 50, 3.0), (1, 2, 0, 1), (10, 0, 0, 0)],
)
def test_on_demand_count_follows_the_instances_distribution(instances, base, pct, expected):
    assert cost.on_demand_count(instances, base, pct) == expected


def test_dev_fleet_costs_nothing_at_zero_and_is_all_spot_at_max():
    (burst,) = cost.estimate(load_spec(STACKS / "dev.yaml").spec)
    assert (burst.instance_type, burst.region) == ("g6.xlarge", "eu-central-1")
    # 4 instances, all spot: 4 x 0.4392 (catalog, eu-central-1)
    assert (burst.hourly_min, burst.hourly_max) == (0.0, 1.76)


def test_a_fleet_blends_its_on_demand_share_at_max():
    text = stack_text("dev.yaml").replace("on_demand_percentage: 0\n", "on_demand_percentage: 25\n")
    (burst,) = cost.estimate(parse_spec(text, "dev.yaml").spec)
    # 4 instances, 25% on demand: 1 x 1.0064 + 3 x 0.4392
    assert (burst.hourly_min, burst.hourly_max) == (0.0, 2.32)


def test_on_demand_fleet_is_priced_on_demand():
    costs = {c.target: c for c in cost.estimate(load_spec(STACKS / "prod.yaml").spec)}
    assert (costs["steady"].hourly_min, costs["steady"].hourly_max) == (26.24, 52.48)


def test_a_missing_price_is_unknown_not_zero():
    text = stack_text("dev.yaml").replace("[g6.xlarge, g5.xlarge]", "[g6e.24xlarge]")
    (burst,) = cost.estimate(parse_spec(text, "dev.yaml").spec)
    assert burst.hourly_min is None and burst.hourly_max is None
    assert "no catalog price for g6e.24xlarge in eu-central-1" in burst.note


def test_the_plan_carries_the_cost_block_with_the_month_of_the_profile():
    """dev's burst fleet: the month is the rehearsed day's cost x 365/12, the cost per million output
    tokens that month over the tokens served (requests served x 300 output tokens x 365/12)."""
    from conftest import plan_of_file
    from inferstack.planning.simulation import simulate_stack
    from inferstack.planning.traffic import arrivals, hourly_rates

    loaded = load_spec(STACKS / "dev.yaml")
    plan = plan_of_file(str(STACKS / "dev.yaml"))
    block = plan.to_json()["cost"]
    (burst,) = block["targets"]
    traffic = loaded.spec.traffic
    day = simulate_stack(
        loaded.spec, plan.stack, plan.resources, arrivals(hourly_rates(traffic), traffic.burstiness, 0)
    )
    (t,) = day.targets
    assert burst["replicaHoursPerDay"] == round(t.replica_hours, 2)
    assert burst["monthlyUsd"] == round(t.cost_usd * 365 / 12, 2)
    tokens = t.served * traffic.output_tokens
    assert burst["usdPerMillionOutputTokens"] == round(burst["monthlyUsd"] / (tokens * 365 / 12 / 1e6), 4)
    assert block["total"]["monthlyUsd"] == burst["monthlyUsd"]
    assert block["total"]["hourlyUsdAtMax"] == burst["hourlyUsdAtMax"] == 1.76


def test_a_stack_total_is_unknown_when_a_part_is_unpriced():
    known = cost.TargetCost("a", "x", "r", 1.0, 2.0, monthly=100.0)
    unknown = cost.TargetCost("b", "y", "r", None, None)
    assert cost.stack_total([known, unknown])["hourlyUsdAtMax"] is None
    assert cost.stack_total([known])["hourlyUsdAtMax"] == 2.0
