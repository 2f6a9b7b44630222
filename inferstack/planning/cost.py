"""What a stack costs per hour at its minimum and maximum capacity, from the catalog's prices.

An estimate, and it says so: prices are the SkyPilot catalog extract's (see the data file's
header for the commit), spot prices move, and a mixed fleet may run any of its types. The first
listed instance type stands for the fleet, as it is the one a platform team sizes for.
"""

from __future__ import annotations

from dataclasses import dataclass

from inferstack import catalog
from inferstack.spec.models import AwsGpuFleetTarget, DeploymentSpec


@dataclass(frozen=True)
class TargetCost:
    target: str
    instance_type: str
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


def _hourly(target: AwsGpuFleetTarget, price: catalog.Price, instances: int) -> float | None:
    spot = target.spot
    od = on_demand_count(instances, spot.on_demand_base, spot.on_demand_percentage) if spot.enabled else instances
    needed = [(od, price.on_demand), (instances - od, price.spot)]
    if any(n and p is None for n, p in needed):
        return None
    return round(sum(n * (p or 0.0) for n, p in needed), 2)


def estimate(spec: DeploymentSpec) -> list[TargetCost]:
    out = []
    for name in sorted(spec.targets):
        target = spec.targets[name]
        itype = target.instance_types[0]
        price = catalog.aws_instance_types()[itype].prices.get(target.region)
        if price is None:
            out.append(TargetCost(name, itype, target.region, None, None, f"no catalog price for {itype} in {target.region}"))
            continue
        low, high = _hourly(target, price, target.capacity.min), _hourly(target, price, target.capacity.max)
        note = price.note
        if low is None or high is None:
            note = "; ".join(filter(None, ["the catalog lacks the on-demand or spot price", price.note]))
        out.append(TargetCost(name, itype, target.region, low, high, note))
    return out
