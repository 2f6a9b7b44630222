"""What a stack costs: per hour at its minimum and maximum capacity, per month for its traffic
profile, and per million output tokens; owned GPUs from the spec's ownership figures.

An estimate, and it says so: prices are the SkyPilot catalog extract's (see the data file's
header for the commits), spot prices move, and a mixed fleet may run any of its types. The first
listed instance type stands for the fleet, as it is the one a platform team sizes for (and the one
inferstack chooses when the spec leaves the list out).

Monthly figures come from the scaling rehearsal (planning.simulation): the replica-hours a day of
the profile takes, scale-to-zero counted, times the replica's hourly price (the fleet's spot mix at
its maximum), times DAYS_PER_MONTH. Owned GPUs cost the same whether they serve or not.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from inferstack import catalog
from inferstack.spec.models import (
    AwsGpuFleetTarget,
    DeploymentSpec,
    GcpGpuFleetTarget,
    GcpTpuTarget,
    NodePool,
    OnPremCost,
    OnPremK8sTarget,
)

BASIS = (
    "catalog prices (SkyPilot extract, see data/accelerator_prices.csv); monthly = one rehearsed day of the "
    "traffic profile x 365/12, owned GPUs around the clock; an estimate"
)
HOURS_PER_MONTH = 730  # 8760 / 12, the clouds' own convention for monthly prices
DAYS_PER_MONTH = 365 / 12


@dataclass(frozen=True)
class TargetCost:
    target: str
    instance_type: str  # what the target was priced as: an instance type, machine type or TPU slice
    region: str
    hourly_min: float | None
    hourly_max: float | None
    note: str = ""
    owned: bool = False  # on-prem GPUs: a fixed cost, not a rate
    # From the scaling rehearsal of the traffic profile (None until with_usage fills them):
    replica_hours_per_day: float | None = None
    output_tokens_per_day: float | None = None
    monthly: float | None = None
    per_million_output_tokens: float | None = None

    def to_json(self) -> dict:
        return {
            "target": self.target,
            "instanceType": self.instance_type,
            "region": self.region,
            "hourlyUsdAtMin": self.hourly_min,
            "hourlyUsdAtMax": self.hourly_max,
            "owned": self.owned,
            "replicaHoursPerDay": self.replica_hours_per_day,
            "outputTokensPerDay": self.output_tokens_per_day,
            "monthlyUsd": self.monthly,
            "usdPerMillionOutputTokens": self.per_million_output_tokens,
            "note": self.note,
        }


def on_demand_count(instances: int, base: int, percentage: int) -> float:
    """How many of `instances` run on demand under an ASG instances distribution."""
    fixed = min(instances, base)
    return fixed + (instances - fixed) * percentage / 100


def _aws_hourly(target: AwsGpuFleetTarget, price: catalog.Price, instances: int) -> float | None:
    spot = target.spot
    od = on_demand_count(instances, spot.on_demand_base, spot.on_demand_percentage) if spot.enabled else instances
    needed = [(od, price.on_demand), (instances - od, price.spot)]
    if any(n and p is None for n, p in needed):
        return None
    return round(sum(n * (p or 0.0) for n, p in needed), 2)


def _unit_price(price: catalog.Price | None, spot: bool) -> float | None:
    if price is None:
        return None
    return price.spot if spot else price.on_demand


def aws_node_hourly(target: AwsGpuFleetTarget, itype: str) -> tuple[float | None, str]:
    """One instance of `itype` at the fleet's spot mix at its maximum size, and why not when the
    catalog cannot say."""
    price = catalog.aws_instance_types()[itype].prices.get(target.region)
    if price is None:
        return None, f"no catalog price for {itype} in {target.region}"
    size = max(1, target.capacity.max)
    hourly = _aws_hourly(target, price, size)
    if hourly is None:
        missing = "spot" if price.on_demand is not None else "on-demand"
        return None, f"the catalog has no {missing} price for {itype} in {target.region}"
    return hourly / size, price.note


def gcp_node_hourly(machine_type: str, gpu: str, count: int, region: str, spot: bool) -> tuple[float | None, str]:
    """A GPU VM: its host row plus its accelerator row."""
    prices = catalog.gcp_prices()
    host = _unit_price(prices.hosts.get((machine_type, region)), spot)
    accel = _unit_price(prices.accelerators.get((gpu, count, region)), spot)
    if host is None or accel is None:
        missing = "host" if host is None else f"{count}x {gpu}"
        return None, f"no catalog price for the {missing} row of {machine_type} in {region}"
    return host + accel, "host row + accelerator row"


def tpu_slice_hourly(generation: str, topology: str, region: str, spot: bool) -> tuple[float | None, str]:
    """A slice's price; prorated per chip from another slice of its generation when the catalog
    lacks that exact size (TPU prices are linear in chips)."""
    gen = catalog.tpu_generations()[generation]
    accel = gen.accelerator_type(topology)
    chips = gen.chips_of(topology)
    prices = catalog.gcp_prices().tpus
    unit = _unit_price(prices.get((accel, region)), spot)
    if unit is not None:
        return unit, ""
    for (other, where), p in sorted(prices.items()):
        per = _unit_price(p, spot)
        if where == region and other.startswith(gen.accelerator_prefix + "-") and per is not None:
            other_chips = int(other.rsplit("-", 1)[1]) // (gen.cores_per_chip if gen.type_counts == "cores" else 1)
            return per / other_chips * chips, f"prorated per chip from {other}"
    return None, f"no catalog price for {gen.name} in {region}"


def estimate_aws(name: str, target: AwsGpuFleetTarget) -> TargetCost:
    itype = target.types[0]
    price = catalog.aws_instance_types()[itype].prices.get(target.region)
    if price is None:
        return TargetCost(name, itype, target.region, None, None, f"no catalog price for {itype} in {target.region}")
    low, high = _aws_hourly(target, price, target.capacity.min), _aws_hourly(target, price, target.capacity.max)
    note = price.note
    if low is None or high is None:
        note = "; ".join(filter(None, ["the catalog lacks the on-demand or spot price", price.note]))
    return TargetCost(name, itype, target.region, low, high, note)


def estimate_gcp_fleet(name: str, target: GcpGpuFleetTarget) -> TargetCost:
    if target.accelerator is not None:
        gpu = catalog.gcp_guest_accelerators()[target.accelerator.type].gpu
        count = target.accelerator.count
    else:
        machine = catalog.gcp_machine_types()[target.machine]
        gpu, count = machine.accelerator, machine.accelerator_count
    unit, note = gcp_node_hourly(target.machine, gpu, count, target.region, target.spot.enabled)
    if unit is None:
        return TargetCost(name, target.machine, target.region, None, None, note)
    return TargetCost(
        name,
        target.machine,
        target.region,
        round(unit * target.capacity.min, 2),
        round(unit * target.capacity.max, 2),
        note,
    )


def estimate_tpu(name: str, target: GcpTpuTarget) -> TargetCost:
    gen = catalog.tpu_generations()[target.generation]
    accel = gen.accelerator_type(target.shape)
    unit, note = tpu_slice_hourly(target.generation, target.shape, target.region, target.provisioning == "spot")
    if unit is None:
        return TargetCost(name, accel, target.region, None, None, note)
    if target.provisioning == "reserved":
        note = "; ".join(
            filter(None, ["reserved capacity priced at on-demand (the catalog has no reservation prices)", note])
        )
    hourly = round(unit * target.slices, 2)
    return TargetCost(name, accel, target.region, hourly, hourly, note)


@dataclass(frozen=True)
class OwnedNodeCost:
    """One owned node's cost per hour, and its parts."""

    hardware: float  # purchase price over the amortisation months
    power: float  # GPUs and host at full load, times the PUE, at the site's price
    operations: float

    @property
    def hourly(self) -> float:
        return self.hardware + self.power + self.operations


def owned_node_cost(cost: OnPremCost, pool: NodePool) -> OwnedNodeCost:
    gpu_watts = cost.gpu_watts or catalog.gpu_models()[pool.gpu].watts
    watts = pool.gpus_per_node * gpu_watts + cost.host_watts_per_node
    hardware = (pool.hardware_usd_per_node or cost.hardware_usd_per_node) / (cost.amortization_months * HOURS_PER_MONTH)
    power = watts / 1000 * cost.pue * cost.usd_per_kwh
    return OwnedNodeCost(hardware, power, cost.operations_usd_per_node_month / HOURS_PER_MONTH)


def estimate_onprem(name: str, target: OnPremK8sTarget) -> TargetCost:
    """Owned GPUs: with the spec's `cost` section, what owning the pools' nodes costs per hour, the
    same at min and max (the nodes exist either way); without it, no figure rather than zero."""
    shape = ", ".join(f"{p.size}x {p.gpus_per_node}x {p.gpu}" for _, p in sorted(target.pools.items()))
    if target.cost is None:
        return TargetCost(
            name,
            shape,
            target.location,
            None,
            None,
            "owned GPUs: add the target's cost section to price them",
            owned=True,
        )
    hourly = round(sum(p.size * owned_node_cost(target.cost, p).hourly for p in target.pools.values()), 2)
    note = (
        f"owned: hardware over {target.cost.amortization_months} months, power at PUE {target.cost.pue:g} and "
        f"${target.cost.usd_per_kwh:g}/kWh, operations"
    )
    return TargetCost(name, shape, target.location, hourly, hourly, note, owned=True)


def estimate(spec: DeploymentSpec) -> list[TargetCost]:
    from inferstack.kinds import kind_of  # the table draws its cost hooks from this module

    return [kind_of(spec.targets[name]).cost(name, spec.targets[name]) for name in sorted(spec.targets)]


def with_usage(
    costs: list[TargetCost],
    replica_hours: dict[str, float],
    served: dict[str, int],
    output_tokens: int,
    day_cost: dict[str, float | None],
) -> list[TargetCost]:
    """Fill the monthly figures from one rehearsed day: per target its replica-hours, requests served
    and the day's cost the rehearsal priced (None: unpriced). Owned targets cost their fixed hourly
    figure around the clock."""
    out = []
    for c in costs:
        if c.target not in replica_hours:
            out.append(c)
            continue
        tokens = served.get(c.target, 0) * output_tokens
        if c.owned:
            monthly = None if c.hourly_max is None else round(c.hourly_max * HOURS_PER_MONTH, 2)
        else:
            day = day_cost.get(c.target)
            monthly = None if day is None else round(day * DAYS_PER_MONTH, 2)
        per_million = None
        if monthly is not None and tokens:
            per_million = round(monthly / (tokens * DAYS_PER_MONTH / 1e6), 4)
        out.append(
            replace(
                c,
                replica_hours_per_day=round(replica_hours[c.target], 2),
                output_tokens_per_day=float(tokens),
                monthly=monthly,
                per_million_output_tokens=per_million,
            )
        )
    return out


def stack_total(costs: list[TargetCost]) -> dict:
    """The stack's figures: a sum is None when any part is unpriced (never a silent zero)."""

    def total(values: list[float | None]) -> float | None:
        return None if any(v is None for v in values) else round(sum(v for v in values if v is not None), 2)

    monthly = total([c.monthly for c in costs])
    tokens = sum(c.output_tokens_per_day or 0 for c in costs)
    return {
        "hourlyUsdAtMin": total([c.hourly_min for c in costs]),
        "hourlyUsdAtMax": total([c.hourly_max for c in costs]),
        "monthlyUsd": monthly,
        "usdPerMillionOutputTokens": None
        if monthly is None or not tokens
        else round(monthly / (tokens * DAYS_PER_MONTH / 1e6), 4),
    }


def from_rehearsal(costs: list[TargetCost], result, output_tokens: int) -> list[TargetCost]:
    """`with_usage` from a planning.simulation.StackResult: an on-prem target's pools are rehearsed
    apart (as target/pool) and summed here."""
    hours: dict[str, float] = {}
    served: dict[str, int] = {}
    day: dict[str, float | None] = {}
    for t in result.targets:
        name = t.target.split("/", 1)[0]
        hours[name] = hours.get(name, 0.0) + t.replica_hours
        served[name] = served.get(name, 0) + t.served
        prior = day.get(name, 0.0)
        day[name] = None if prior is None or t.cost_usd is None else prior + t.cost_usd
    return with_usage(costs, hours, served, output_tokens, day)
