"""What a stack costs per hour at its minimum and maximum capacity, from the catalog's prices.

An estimate, and it says so: prices are the SkyPilot catalog extract's (see the data file's
header for the commit), spot prices move, and a mixed fleet may run any of its types. The first
listed instance type stands for the fleet, as it is the one a platform team sizes for.
"""

from __future__ import annotations

from dataclasses import dataclass

from inferstack import catalog
from inferstack.spec.models import AwsGpuFleetTarget, DeploymentSpec, GcpGpuFleetTarget, GcpTpuTarget, OnPremK8sTarget


@dataclass(frozen=True)
class TargetCost:
    target: str
    instance_type: str  # what the target was priced as: an instance type, machine type or TPU slice
    region: str
    hourly_min: float | None
    hourly_max: float | None
    note: str = ""

    def to_json(self) -> dict:
        return {
            "target": self.target,
            "instanceType": self.instance_type,
            "region": self.region,
            "hourlyUsdAtMin": self.hourly_min,
            "hourlyUsdAtMax": self.hourly_max,
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


def estimate_aws(name: str, target: AwsGpuFleetTarget) -> TargetCost:
    itype = target.instance_types[0]
    price = catalog.aws_instance_types()[itype].prices.get(target.region)
    if price is None:
        return TargetCost(name, itype, target.region, None, None, f"no catalog price for {itype} in {target.region}")
    low, high = _aws_hourly(target, price, target.capacity.min), _aws_hourly(target, price, target.capacity.max)
    note = price.note
    if low is None or high is None:
        note = "; ".join(filter(None, ["the catalog lacks the on-demand or spot price", price.note]))
    return TargetCost(name, itype, target.region, low, high, note)


def estimate_gcp_fleet(name: str, target: GcpGpuFleetTarget) -> TargetCost:
    prices = catalog.gcp_prices()
    if target.accelerator is not None:
        gpu = catalog.gcp_guest_accelerators()[target.accelerator.type].gpu
        count = target.accelerator.count
    else:
        machine = catalog.gcp_machine_types()[target.machine_type]
        gpu, count = machine.accelerator, machine.accelerator_count
    host = _unit_price(prices.hosts.get((target.machine_type, target.region)), target.spot.enabled)
    accel = _unit_price(prices.accelerators.get((gpu, count, target.region)), target.spot.enabled)
    if host is None or accel is None:
        missing = "host" if host is None else f"{count}x {gpu}"
        return TargetCost(
            name,
            target.machine_type,
            target.region,
            None,
            None,
            f"no catalog price for the {missing} row of {target.machine_type} in {target.region}",
        )
    unit = host + accel
    return TargetCost(
        name,
        target.machine_type,
        target.region,
        round(unit * target.capacity.min, 2),
        round(unit * target.capacity.max, 2),
        "host row + accelerator row",
    )


def estimate_tpu(name: str, target: GcpTpuTarget) -> TargetCost:
    """A slice's price; prorated per chip from another slice of its generation when the catalog
    lacks that exact size (TPU prices are linear in chips)."""
    gen = catalog.tpu_generations()[target.generation]
    accel = gen.accelerator_type(target.topology)
    chips = gen.chips_of(target.topology)
    spot = target.provisioning == "spot"
    prices = catalog.gcp_prices().tpus
    price, note = prices.get((accel, target.region)), ""
    unit = _unit_price(price, spot)
    if unit is None:
        for (other, region), p in sorted(prices.items()):
            per = _unit_price(p, spot)
            if region == target.region and other.startswith(gen.accelerator_prefix + "-") and per is not None:
                other_chips = int(other.rsplit("-", 1)[1]) // (gen.cores_per_chip if gen.type_counts == "cores" else 1)
                unit, note = per / other_chips * chips, f"prorated per chip from {other}"
                break
    if unit is None:
        return TargetCost(name, accel, target.region, None, None, f"no catalog price for {gen.name} in {target.region}")
    hourly = round(unit * target.slices, 2)
    return TargetCost(name, accel, target.region, hourly, hourly, note)


def estimate_onprem(name: str, target: OnPremK8sTarget) -> TargetCost:
    """A site's GPUs are owned: the catalog has no hourly price for them, and the plan says so
    rather than pricing them at zero."""
    shape = ", ".join(f"{p.size}x {p.gpus_per_node}x {p.gpu}" for _, p in sorted(target.pools.items()))
    return TargetCost(name, shape, target.location, None, None, "owned GPUs: no hourly price in the catalog")


def estimate(spec: DeploymentSpec) -> list[TargetCost]:
    from inferstack.kinds import kind_of  # the table draws its cost hooks from this module

    return [kind_of(spec.targets[name]).cost(name, spec.targets[name]) for name in sorted(spec.targets)]
