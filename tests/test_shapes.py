"""The cheapest-fit choice (planning.shapes) against a brute-force search over the whole catalog,
and the choice through the loader: the spec it returns, the plan and `inferstack size`."""

from __future__ import annotations

import itertools
import json
import math
import random
from pathlib import Path

import pytest

from inferstack import catalog
from inferstack.planning import shapes, sizing
from inferstack.spec.models import DeploymentSpec

DIGEST = "sha256:0d4c8d8bd1b4dbbd4ec0a02c4ec7c2fa4f2e3db0e8ee7c1d9b3a1f0e5d6c7b8a"
MODELS = {  # key: (parameters, the catalog's architecture row)
    "llama-3-1-8b": (8_030_261_248, "Llama-3.1-8B"),
    "llama-3-1-70b": (70_553_706_496, "Llama-3.1-70B"),
    "mixtral-8x7b": (46_700_000_000, "Mixtral-8x7B"),
    "qwen2-5-72b": (72_700_000_000, "Qwen2.5-72B"),
}
PRECISIONS = ("bf16", "fp8", "int4")
CONTEXTS = (4096, 32768, 131072)
CONCURRENCY = (1, 8)
AWS_REGIONS = sorted({r for j in catalog.jurisdictions().values() for r in j.aws})
GCP_REGIONS = sorted({r for j in catalog.jurisdictions().values() for r in j.gcp})


def spec_for(target: dict, model_key: str, precision: str, context: int, concurrency: int, traffic=None):
    cloud = "gs" if target["kind"].startswith("gcp") else "s3"
    region = target.get("region") or target["zone"].rsplit("-", 1)[0]
    return DeploymentSpec.model_validate(
        {
            "metadata": {"name": "t", "team": "ml", "environment": "dev", "data_classification": "internal"},
            "residency": {"regions": [region]},
            "models": {
                model_key: {
                    "parameters": MODELS[model_key][0],
                    "precision": precision,
                    "context_length": context,
                    "concurrency": concurrency,
                    "source": f"{cloud}://acme-models/m",
                }
            },
            "serving": {"engine": "vllm", "image": f"registry.example.com/vllm@{DIGEST}"},
            "targets": {"t": target},
            **({"traffic": traffic} if traffic else {}),
        }
    )


def aws_target(region: str, spot: bool) -> dict:
    return {
        "kind": "aws-gpu-fleet",
        "region": region,
        "capacity": {"min": 1, "max": 4},
        "spot": {"enabled": spot, "on_demand_percentage": 0},
        "autoscaling": {"signal": "queue_depth", "target": 4},
    }


def gcp_target(region: str, spot: bool) -> dict:
    return {
        "kind": "gcp-gpu-fleet",
        "project": "acme-ml-prod",
        "region": region,
        "capacity": {"min": 1, "max": 4},
        "spot": {"enabled": spot},
        "autoscaling": {"signal": "queue_depth", "target": 4},
    }


def tpu_target(region: str, generation: str, spot: bool) -> dict:
    return {
        "kind": "gcp-tpu",
        "project": "acme-ml-prod",
        "zone": f"{region}-a",
        "generation": generation,
        "provisioning": "spot" if spot else "on-demand",
        "image": f"registry.example.com/vllm-tpu@{DIGEST}",
    }


# -- the brute force: its own arithmetic on the catalog's rows, nothing from planning.shapes --------


def need_bytes(model_key: str, precision: str, context: int, concurrency: int) -> int:
    arch = catalog.model_architectures()[MODELS[model_key][1].lower()]
    weights = int(MODELS[model_key][0] * {"bf16": 2, "fp8": 1, "int4": 0.5}[precision])
    kv = concurrency * context * 2 * arch.layers * arch.kv_heads * arch.head_dim * 2
    return weights + kv + int(weights * 0.1)


def shardable(model_key: str, devices: int) -> bool:
    arch = catalog.model_architectures()[MODELS[model_key][1].lower()]
    if devices == 1:
        return True
    return arch.attention_heads % devices == 0 and (arch.kv_heads % devices == 0 or devices % arch.kv_heads == 0)


def brute_force(target: dict, need: int, model_key: str) -> float | None:
    """The lowest price per node of every catalog shape that holds `need` bytes, or None."""
    spot = target.get("spot", {}).get("enabled") or target.get("provisioning") == "spot"
    best = None
    if target["kind"] == "aws-gpu-fleet":
        for it in catalog.aws_instance_types().values():
            price = it.prices.get(target["region"])
            unit = None if price is None else (price.spot if spot else price.on_demand)
            memory = int(it.accelerator_memory_mib * catalog.MIB * max(it.accelerator_count, 1))
            if (
                it.is_nvidia_gpu
                and unit is not None
                and need <= int(memory * 0.9)
                and shardable(model_key, max(1, int(it.accelerator_count)))
            ):
                best = unit if best is None else min(best, unit)
    elif target["kind"] == "gcp-gpu-fleet":
        prices = catalog.gcp_prices()
        for mt in catalog.gcp_machine_types().values():
            if not catalog.gcp_zones(mt.name).get(target["region"]):
                continue
            host, acc = (
                prices.hosts.get((mt.name, target["region"])),
                prices.accelerators.get((mt.accelerator, mt.accelerator_count, target["region"])),
            )
            parts = [None if p is None else (p.spot if spot else p.on_demand) for p in (host, acc)]
            if None in parts:
                continue
            memory = mt.accelerator_memory_mib * catalog.MIB * mt.accelerator_count
            if need <= int(memory * 0.9) and shardable(model_key, mt.accelerator_count):
                unit = sum(parts)
                best = unit if best is None else min(best, unit)
    return best


def cases() -> list[tuple]:
    grid = list(itertools.product(MODELS, PRECISIONS, CONTEXTS, CONCURRENCY))
    rng = random.Random(12)
    out = []
    for region, spot in itertools.product(AWS_REGIONS, (False, True)):
        out += [("aws", region, spot, *c) for c in rng.sample(grid, 8)]
    for region, spot in itertools.product(GCP_REGIONS, (False, True)):
        out += [("gcp", region, spot, *c) for c in rng.sample(grid, 6)]
    return out


CASES = cases()


def test_there_are_at_least_200_cases():
    assert len(CASES) >= 200


@pytest.mark.parametrize(("cloud", "region", "spot", "model_key", "precision", "context", "concurrency"), CASES)
def test_cheapest_fit_matches_the_brute_force(cloud, region, spot, model_key, precision, context, concurrency):
    target = aws_target(region, spot) if cloud == "aws" else gcp_target(region, spot)
    spec = spec_for(target, model_key, precision, context, concurrency)
    choice = shapes.choose(spec, "t")
    need = need_bytes(model_key, precision, context, concurrency)
    assert choice.need.total_bytes == need
    best = brute_force(target, need, model_key)
    if best is None:
        assert choice.chosen is None
        return
    assert choice.chosen is not None
    c = choice.chosen
    assert need <= int(c.memory_bytes * 0.9), "never a shape that does not fit"
    assert shardable(model_key, max(1, int(c.devices)))
    # AWS prices the fleet's mix at its max size, rounded to cents over the 4 nodes
    assert c.hourly == pytest.approx(best, abs=0.005)


@pytest.mark.parametrize("generation", ["v5e", "v5p", "v6e"])
@pytest.mark.parametrize("region", ["us-central1", "europe-west4"])
def test_a_tpu_slice_is_the_cheapest_that_holds_the_model(generation, region):
    spec = spec_for(tpu_target(region, generation, False), "llama-3-1-70b", "bf16", 8192, 1)
    choice = shapes.choose(spec, "t")
    gen = catalog.tpu_generations()[generation]
    need = need_bytes("llama-3-1-70b", "bf16", 8192, 1)
    fitting = [
        t
        for t in gen.topologies
        if need <= int(gen.hbm_bytes(t) * 0.9) and shardable("llama-3-1-70b", gen.chips_of(t)) and gen.hosts(t) == 1
    ]
    if choice.chosen is None:
        assert all(c.hourly is None or not c.fits for c in choice.candidates)
        return
    assert choice.chosen.shape in fitting
    priced = [c for c in choice.candidates if c.fits and c.hourly is not None]
    assert choice.chosen.hourly == min(c.hourly for c in priced)


def test_with_a_traffic_profile_the_price_at_the_peak_decides():
    """Per node, the cheapest H100 box is cheapest; at a heavy peak the shape that serves the
    most per dollar wins, and every candidate's replica count is the peak over its capacity."""
    traffic = {"peak_requests_per_hour": 200_000, "input_tokens": 1000, "output_tokens": 250}
    spec = spec_for(aws_target("us-east-1", False), "llama-3-1-8b", "bf16", 8192, 1, traffic)
    choice = shapes.choose(spec, "t")
    assert choice.load is not None and "200000 requests/hour" in choice.load
    serving = choice.fitting
    assert serving and all(c.replicas for c in serving)
    assert choice.chosen == min(serving, key=lambda c: (c.over_max, c.cost_at_load, c.memory_bytes, c.shape))
    for c in serving:
        cap = sizing.replica_capacity(
            "llama-3-1-8b",
            spec.models["llama-3-1-8b"],
            c.memory_bytes,
            c.devices,
            catalog.accelerator_performance().get(c.accelerator),
            1000,
            250,
        )
        # requests/s = min(slots / latency, 1 / (1000 / prefill + 250 / decode)): prefill is the replica's
        per_hour = (
            min(
                cap.concurrent_sequences
                / (
                    1000 / cap.prefill_tokens_per_second
                    + 250 / (cap.output_tokens_per_second / cap.concurrent_sequences)
                ),
                1 / (1000 / cap.prefill_tokens_per_second + 250 / cap.output_tokens_per_second),
            )
            * 3600
        )
        assert c.replicas == max(1, math.ceil(200_000 / (per_hour * 0.7)))
        assert c.over_max is (c.replicas > 4)


def test_the_ruled_out_say_why():
    spec = spec_for(aws_target("us-east-1", False), "llama-3-1-70b", "bf16", 8192, 1)
    choice = shapes.choose(spec, "t")
    why = {c.shape: c.refusal or c.price_note for c in choice.ruled_out}
    assert "GiB needed" in why["g6.xlarge"]
    assert "not NVIDIA" in why["inf2.24xlarge"]
    assert choice.chosen is not None and choice.chosen.shape not in why


# -- through the loader, the plan and the CLI ---------------------------------------------------

CHOSEN = Path(__file__).resolve().parent / "spec_corpus" / "valid" / "aws-shape-chosen.yaml"


def test_the_loader_fills_the_choice_in_and_the_fleet_runs_it():
    from conftest import Resources, plan_of_file
    from inferstack.spec.loader import load_spec

    loaded = load_spec(CHOSEN)
    choice = loaded.shapes["main"]
    assert not choice.pinned and choice.chosen is not None
    assert loaded.spec.targets["main"].instance_types == [choice.chosen.shape]
    plan = plan_of_file(str(CHOSEN))
    (entry,) = plan.sizing
    assert entry["chosen"] == choice.chosen.shape and entry["reason"] == choice.reason()
    lt = Resources(plan).one("aws:ec2/launchTemplate:LaunchTemplate")
    group = Resources(plan).one("aws:autoscaling/group:Group")
    text = json.dumps([lt["inputs"], group["inputs"]])
    assert choice.chosen.shape in text


def test_plan_and_size_print_the_choice_with_its_reason():
    from click.testing import CliRunner

    from inferstack.cli import main

    plan = CliRunner().invoke(main, ["plan", str(CHOSEN), "--skip-policy"])
    assert plan.exit_code == 0, plan.output
    assert "sizing: main: instance_types " in plan.output and "the cheapest at" in plan.output
    size = CliRunner().invoke(main, ["size", str(CHOSEN), "--format", "json"])
    assert size.exit_code == 0, size.output
    (doc,) = json.loads(size.output)["targets"]
    assert doc["chosen"] and not doc["pinned"]
    assert any(c["ruledOut"] for c in doc["candidates"]) and any(not c["ruledOut"] for c in doc["candidates"])


def test_size_of_a_pinned_shape_shows_what_inferstack_would_choose():
    from click.testing import CliRunner

    from inferstack.cli import main

    result = CliRunner().invoke(main, ["size", str(Path(__file__).resolve().parent.parent / "stacks" / "prod.yaml")])
    assert result.exit_code == 0, result.output
    assert "steady: instance_types g6e.12xlarge" in result.output and "pinned" in result.output


def test_every_choosable_shape_has_a_price_or_says_it_has_none():
    """Every (shape, region) the choice weighs either has the price its pricing needs or a row
    whose note says which is missing; a GCP machine type offered in a region of the residency lists
    has its host and accelerator rows there (empty prices with a note count as saying so)."""
    for it in catalog.aws_instance_types().values():
        for region, price in it.prices.items():
            if price.on_demand is None:
                assert "on-demand" in price.note.lower() or "no price" in price.note.lower(), (it.name, region)
            if price.spot is None:
                assert "spot" in price.note.lower() or "no price" in price.note.lower(), (it.name, region)
    prices = catalog.gcp_prices()
    for mt in catalog.gcp_machine_types().values():
        for region in catalog.gcp_zones(mt.name):
            if region not in GCP_REGIONS:
                continue
            host = prices.hosts.get((mt.name, region))
            accel = prices.accelerators.get((mt.accelerator, mt.accelerator_count, region))
            for row, what in ((host, "host"), (accel, "accelerator")):
                assert row is not None, f"{mt.name} in {region}: no {what} row (priced or saying it is not)"
                if row.on_demand is None or row.spot is None:
                    assert row.note, f"{mt.name} in {region}: the {what} row lacks a price and says nothing"


def test_size_shows_what_each_on_prem_pool_gives_a_replica():
    from click.testing import CliRunner

    from inferstack.cli import main

    result = CliRunner().invoke(
        main, ["size", str(Path(__file__).resolve().parent.parent / "stacks" / "hybrid.yaml"), "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    pools = {p["pool"]: p for p in json.loads(result.output)["pools"]}
    # 8B bf16 at 8k: one H100 per replica, 8 per node, 2 nodes; a 3g.40gb slice each, 2 per A100 x 8.
    assert (pools["h100"]["devicesPerReplica"], pools["h100"]["replicasPerNode"], pools["h100"]["maxReplicas"]) == (
        1,
        8,
        16,
    )
    assert (pools["a100"]["sharing"], pools["a100"]["replicasPerNode"], pools["a100"]["maxReplicas"]) == ("mig", 16, 16)
    assert all(p["needBytes"] <= p["replicaMemoryBytes"] * 0.9 for p in pools.values())


def test_an_open_choice_never_picks_a_fractional_vgpu():
    """g6f instances carry a fraction of an L4 (accelerator_count < 1) and need the GRID driver the
    default DLAMI lacks: an open choice rules every one out and says why."""
    spec = spec_for(aws_target("us-east-1", False), "llama-3-1-8b", "fp8", 2048, 1, None)
    choice = shapes.choose(spec, "t")
    fractional = [c for c in choice.candidates if c.shape.startswith("g6f.")]
    assert fractional and all(c.refusal and "GRID driver" in c.refusal for c in fractional)
    assert choice.chosen is not None and not choice.chosen.shape.startswith("g6f.")
