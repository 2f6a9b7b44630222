"""Owning against renting: the owned node's cost, the break-even utilisation and the three options,
by hand; the comparison on the hybrid example through `inferstack cost`."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from conftest import STACKS
from inferstack.cli import main
from inferstack.planning import cost, ownership
from inferstack.spec.loader import load_spec
from inferstack.spec.models import NodePool, OnPremCost


def test_an_owned_node_by_hand():
    """An 8x H100 node bought for $250,000 over 36 months: 250,000 / (36 x 730) = $9.5129/h.
    Power: 8 x 700 W (the catalog's H100 board power) + 800 W host = 6,400 W x PUE 1.4 =
    8.96 kW x $0.20/kWh = $1.792/h. Operations $500/month / 730 = $0.6849/h. Total $11.9898/h."""
    pool = NodePool.model_validate(
        {"nodes": ["n1"], "gpu": "H100-80GB", "gpus_per_node": 8, "replicas": {"min": 1, "max": 8}}
    )
    own = OnPremCost.model_validate(
        {"hardware_usd_per_node": 250_000, "pue": 1.4, "usd_per_kwh": 0.20, "operations_usd_per_node_month": 500}
    )
    c = cost.owned_node_cost(own, pool)
    assert c.hardware == pytest.approx(9.5129, abs=1e-4)
    assert c.power == pytest.approx(1.792, abs=1e-9)
    assert c.operations == pytest.approx(0.6849, abs=1e-4)
    assert c.hourly == pytest.approx(11.9898, abs=1e-4)
    # a pool's own hardware price wins over the target's
    cheaper = pool.model_copy(update={"hardware_usd_per_node": 125_000})
    assert cost.owned_node_cost(own, cheaper).hardware == pytest.approx(4.7565, abs=1e-4)


def test_break_even_by_hand():
    """A site of 1,000 output tokens/s owned at $20/h against a cloud at $0.04/h per token/s:
    u* = 20 / (1000 x 0.04) = 50%. There, renting the mean demand of 500 tokens/s costs
    500 x 0.04 x 730 = $14,600 a month, what the site costs (20 x 730)."""
    o = ownership.Ownership(1000.0, 20.0, 0.04, (1.0,) * 24)
    assert o.breakeven_utilization == pytest.approx(0.5)
    assert o.all_cloud(0.5) == pytest.approx(14_600)
    assert o.all_onprem(0.5) == pytest.approx(14_600)
    assert o.all_cloud(0.25) == pytest.approx(7_300)  # below the break-even, renting is cheaper
    assert o.all_onprem(0.25) == pytest.approx(14_600)


def test_a_peaky_day_where_the_closed_form_says_owning_wins_but_it_does_not():
    """K = 100 tokens/s, H = $10/h, c = $0.2/h per token/s, a day of four hours shaped (4, 0, 0, 0):
    the closed form says u* = 10 / (100 x 0.2) = 50%. But per hour (x 730 a month on every side):
    cloud 20u; all on-prem 10 x max(1, 4u), i.e. 10 up to u = 25% (cloud there <= 5) and 40u after;
    hybrid 10 + 0.2 x max(0, 400u - 100) / 4 = 5 + 20u after 25%. Neither is ever <= 20u: no crossing."""
    o = ownership.Ownership(100.0, 10.0, 0.2, (4.0, 0.0, 0.0, 0.0))
    assert o.closed_form_utilization == pytest.approx(0.5)
    assert o.hybrid(0.5) == pytest.approx((5 + 10) * 730) and o.all_cloud(0.5) == pytest.approx(10 * 730)
    assert o.breakeven_utilization is None
    assert o.to_json(None)["breakevenUtilization"] is None


def test_the_three_options_on_an_uneven_day_by_hand():
    """Half the day at 1.5x the mean, half at 0.5x. At u = 1 (mean demand = the site's 1,000
    tokens/s): the peak is 1,500, so all on-prem needs 1.5 sites: 14,600 x 1.5 = $21,900; the
    hybrid spills 500 tokens/s half the day, a mean of 250: 14,600 + 0.04 x 730 x 250 = $21,900;
    all cloud rents the mean 1,000: 1,000 x 0.04 x 730 = $29,200."""
    o = ownership.Ownership(1000.0, 20.0, 0.04, (1.5,) * 12 + (0.5,) * 12)
    at = o.at(1.0)
    assert at == pytest.approx({"allCloud": 29_200, "allOnPrem": 21_900, "hybrid": 21_900})
    # At u = 0.5 nothing spills: the hybrid is the site alone.
    assert o.hybrid(0.5) == pytest.approx(14_600)


def test_profile_shape_has_mean_one():
    shape = ownership.profile_shape([0, 100, 200, 100])
    assert shape == (0.0, 1.0, 2.0, 1.0)
    assert ownership.profile_shape([0, 0]) == (1.0, 1.0)


def test_the_hybrid_example_compares_its_site_with_its_first_burst_target(tmp_path):
    spec = load_spec(STACKS / "hybrid.yaml").spec
    own, utilization = ownership.compare(spec, "hybrid")
    assert (own.site, own.cloud) == ("muc", "aws-burst")
    site = cost.estimate_onprem("muc", spec.targets["muc"])
    assert own.site_hourly == site.hourly_max
    assert own.closed_form_utilization == pytest.approx(
        own.site_hourly / (own.site_capacity * own.cloud_per_token_rate)
    )
    assert utilization is not None and 0 < utilization < 1
    result = CliRunner().invoke(main, ["cost", str(STACKS / "hybrid.yaml"), "--format", "json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    be = own.breakeven_utilization
    assert doc["ownership"]["breakevenUtilization"] == (None if be is None else pytest.approx(be, abs=1e-4))
    assert set(doc["ownership"]["monthlyUsdAtProfile"]) == {"allCloud", "allOnPrem", "hybrid"}
    muc = next(t for t in doc["targets"] if t["target"] == "muc")
    assert muc["owned"] and muc["monthlyUsd"] == pytest.approx(site.hourly_max * 730, abs=0.01)


@pytest.mark.parametrize("suffix", [".png", ".svg"])
def test_cost_plot(tmp_path, suffix):
    out = tmp_path / f"cost{suffix}"
    result = CliRunner().invoke(main, ["cost", str(STACKS / "hybrid.yaml"), "--plot", str(out)])
    assert result.exit_code == 0, result.output
    head = out.read_bytes()[:200]
    assert head.startswith(b"\x89PNG") if suffix == ".png" else b"<svg" in out.read_bytes()[:2000]
    assert "owning breaks even" in result.output or "never breaks even" in result.output


def test_cost_without_a_site_says_what_is_missing(tmp_path):
    result = CliRunner().invoke(main, ["cost", str(STACKS / "dev.yaml")])
    assert result.exit_code == 0
    assert "no on-prem target" in result.output
    plot = CliRunner().invoke(main, ["cost", str(STACKS / "dev.yaml"), "--plot", str(tmp_path / "c.png")])
    assert plot.exit_code == 2 and "no on-prem target" in plot.output
    bad = CliRunner().invoke(main, ["cost", str(STACKS / "dev.yaml"), "--plot", str(tmp_path / "c.pdf")])
    assert bad.exit_code == 2 and ".png or .svg" in bad.output


def test_a_pool_price_without_the_cost_section_is_an_error():
    from inferstack.errors import SpecError
    from inferstack.spec.loader import parse_spec

    text = (STACKS / "hybrid.yaml").read_text()
    without = text[: text.index("    # What owning the Munich GPUs")] + text[text.index("  aws-burst:") :]
    with pytest.raises(SpecError) as info:
        parse_spec(without, "hybrid.yaml")
    assert "targets.muc.pools.a100.hardware_usd_per_node" in info.value.render()
    assert "add targets.muc.cost" in info.value.render()
