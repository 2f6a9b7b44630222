"""Which shape a cloud target runs on when its spec leaves it out, and why.

A target without `instance_types` (AWS), `machine_type` (GCP GPU) or `topology` (TPU) gets the
cheapest shape that serves its model: every shape of the catalog in the target's region is
weighed, at the pricing the target asks for (on demand, spot, or the fleet's spot mix), and kept
only when it holds the model (planning.sizing: weights, KV cache for the spec's concurrency at full
context, overhead) on a tensor-parallel degree the engine accepts. With a traffic profile, "cheapest"
is the hourly price of the replicas the target's share of the peak hour needs at the profile's
target utilisation, so a shape twice the price that serves three times the load wins; without
one, it is the price of one node.

The region stays the spec's: it is tied to the network, the endpoint's consumers and the weights'
copy, so moving it is a decision for the spec's author, not for the sizing. The choice is fixed
into the spec the loader returns (the program, the checks and the policy pack see the chosen shape)
and reported by `inferstack size` and `plan`. A new catalog price may change the choice, which
replaces the fleet: pin the shape in the spec once it is settled.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

from inferstack import catalog
from inferstack.catalog import GIB
from inferstack.errors import Finding
from inferstack.planning import cost, sizing
from inferstack.spec.models import AwsGpuFleetTarget, DeploymentSpec, GcpGpuFleetTarget, GcpTpuTarget

SHAPE_FIELDS = {"aws-gpu-fleet": "instance_types", "gcp-gpu-fleet": "machine_type", "gcp-tpu": "topology"}


@dataclass(frozen=True)
class Candidate:
    """One shape weighed for a target."""

    shape: str  # instance type, machine type or TPU topology
    description: str
    memory_bytes: int
    devices: float
    accelerator: str  # catalog name (accelerator_performance.yaml)
    hourly: float | None  # one node or slice at the target's pricing; None: the catalog has no price
    refusal: str | None = None  # why it cannot serve the model; None: it fits
    price_note: str = ""
    replicas: int | None = None  # replicas the target's share of the peak needs; None: no load stated
    over_max: bool = False  # those replicas are more than the target's maximum (its capacity.max or slices)

    @property
    def fits(self) -> bool:
        return self.refusal is None

    @property
    def cost_at_load(self) -> float | None:
        return None if self.hourly is None else self.hourly * (self.replicas or 1)

    def to_json(self) -> dict:
        return {
            "shape": self.shape,
            "description": self.description,
            "hourlyUsd": None if self.hourly is None else round(self.hourly, 4),
            "replicasAtPeak": self.replicas,
            "hourlyUsdAtPeak": None if self.cost_at_load is None else round(self.cost_at_load, 4),
            "ruledOut": self.refusal,
            "overMaximum": self.over_max,
            "priceNote": self.price_note,
        }


@dataclass(frozen=True)
class ShapeChoice:
    target: str
    field: str
    pinned: bool
    need: sizing.Footprint
    pricing: str
    load: str | None  # what the replicas were counted for; None: no traffic, priced per node
    candidates: tuple[Candidate, ...]  # the ones that serve, cheapest first, then the rest
    chosen: Candidate | None

    @property
    def fitting(self) -> list[Candidate]:
        return [c for c in self.candidates if c.fits and c.hourly is not None]

    @property
    def ruled_out(self) -> list[Candidate]:
        return [c for c in self.candidates if not c.fits or c.hourly is None]

    def reason(self) -> str:
        basis = f"the cheapest at {self.load}" if self.load else "the cheapest per node"
        if self.chosen is None:
            return f"no shape in the catalog serves it: the model needs {self.need.describe()}"
        c = self.chosen
        price = "unpriced" if c.hourly is None else f"${c.hourly:.2f}/h"
        if self.pinned:
            best = next(iter(self.fitting), None)
            alt = ""
            if best is not None and best.shape != c.shape and best.cost_at_load is not None:
                alt = (
                    f"; unpinned, inferstack would choose {best.description} at ${best.cost_at_load:.2f}/h {basis[4:]}"
                )
            return f"pinned: {c.description}, {price}{alt}"
        others = len(self.fitting) - 1
        over = (
            "; every shape needs more replicas at the peak than the target's maximum: raise it, or expect a queue"
            if c.over_max
            else ""
        )
        return (
            f"{c.description}: {basis} ({price}"
            + (f" x {c.replicas} replica{'s' if c.replicas != 1 else ''}" if c.replicas else "")
            + f", {self.pricing}) of {others + 1} shapes that hold {self.need.describe()}{over}"
        )

    def to_json(self) -> dict:
        return {
            "target": self.target,
            "field": self.field,
            "pinned": self.pinned,
            "chosen": None if self.chosen is None else self.chosen.shape,
            "reason": self.reason(),
            "needBytes": self.need.total_bytes,
            "pricing": self.pricing,
            "load": self.load,
            "candidates": [c.to_json() for c in self.candidates],
        }


def _refusal(spec: DeploymentSpec, name: str, fp: sizing.Footprint, memory: int, devices: int) -> str | None:
    model_name, model = spec.model_of(name)
    why = sizing.tensor_parallel_refusal(sizing.architecture_of(model_name, model), devices)
    if why is not None:
        return f"the engine shards over all {devices} devices, and {why}"
    if not sizing.fits(fp, memory):
        return f"{sizing.usable_bytes(memory) / GIB:.1f} GiB usable < {fp.total_bytes / GIB:.1f} GiB needed"
    return None


def _aws_candidates(
    spec: DeploymentSpec, name: str, target: AwsGpuFleetTarget, fp: sizing.Footprint
) -> Iterator[Candidate]:
    types = catalog.aws_instance_types()
    names = target.instance_types or sorted(types)
    for itype in names:
        it = types[itype]
        base = Candidate(
            shape=itype,
            description=it.describe(),
            memory_bytes=it.total_accelerator_memory_bytes,
            devices=it.accelerator_count,
            accelerator=it.accelerator,
            hourly=None,
        )
        if not it.is_nvidia_gpu:
            yield replace(base, refusal=f"{it.accelerator} accelerators, not NVIDIA GPUs")
            continue
        if not target.instance_types and 0 < it.accelerator_count < 1:
            # A fractional vGPU (g6f) needs NVIDIA's GRID driver, which the default DLAMI lacks.
            yield replace(
                base,
                refusal="a fractional vGPU: it needs the NVIDIA GRID driver the default DLAMI lacks; pin it in "
                "instance_types with an AMI that has it",
            )
            continue
        hourly, note = cost.aws_node_hourly(target, itype)
        refusal = _refusal(spec, name, fp, it.total_accelerator_memory_bytes, it.gpu_count)
        yield replace(base, hourly=hourly, refusal=refusal, price_note=note)


def _gcp_candidates(
    spec: DeploymentSpec, name: str, target: GcpGpuFleetTarget, fp: sizing.Footprint
) -> Iterator[Candidate]:
    machines = catalog.gcp_machine_types()
    names = [target.machine_type] if target.machine_type else sorted(machines)
    for mt_name in names:
        mt = machines.get(mt_name)
        if mt is None:  # a pinned N1 type with a guest accelerator (N1 is never chosen: no catalog prices)
            acc = target.accelerator
            assert acc is not None
            guest = catalog.gcp_guest_accelerators()[acc.type]
            memory, gpu, count = guest.memory_mib * catalog.MIB * acc.count, guest.gpu, acc.count
            description = f"{mt_name} with {count}x {gpu}"
        else:
            memory, gpu, count, description = (
                mt.total_accelerator_memory_bytes,
                mt.accelerator,
                mt.accelerator_count,
                mt.describe(),
            )
        base = Candidate(mt_name, description, memory, count, gpu, hourly=None)
        n1_guest = target.accelerator.type if mt is None and target.accelerator else None  # N1: its accelerator's zones
        offered = catalog.gcp_zones(mt_name, n1_guest).get(target.region, ())
        missing = [z for z in target.zones or () if z not in offered]
        if not offered or missing:
            where = f"zone {', '.join(missing)}" if offered else target.region
            yield replace(base, refusal=f"not offered in {where}")
            continue
        hourly, note = cost.gcp_node_hourly(mt_name, gpu, count, target.region, target.spot.enabled)
        yield replace(base, hourly=hourly, refusal=_refusal(spec, name, fp, memory, count), price_note=note)


def _tpu_candidates(spec: DeploymentSpec, name: str, target: GcpTpuTarget, fp: sizing.Footprint) -> Iterator[Candidate]:
    from inferstack.planning.gcp import TPU_BOOT_DISK_GIB, TPU_BOOT_DISK_WEIGHTS_GIB

    gen = catalog.tpu_generations()[target.generation]
    for topology in [target.topology] if target.topology else gen.topologies:
        chips = gen.chips_of(topology)
        base = Candidate(
            shape=topology,
            description=f"{target.generation} {topology} ({chips} chips, {gen.hbm_gib_per_chip} GiB HBM each)",
            memory_bytes=gen.hbm_bytes(topology),
            devices=chips,
            accelerator=gen.name,
            hourly=None,
        )
        hourly, note = cost.tpu_slice_hourly(target.generation, topology, target.region, target.provisioning == "spot")
        refusal = _refusal(spec, name, fp, gen.hbm_bytes(topology), chips)
        if refusal is None and gen.hosts(topology) > 1 and fp.weights_bytes > TPU_BOOT_DISK_WEIGHTS_GIB * GIB:
            refusal = (
                f"multi-host: the weights do not fit the {TPU_BOOT_DISK_GIB} GiB boot disk of each host "
                f"(at most {TPU_BOOT_DISK_WEIGHTS_GIB} GiB)"
            )
        yield replace(base, hourly=hourly, refusal=refusal, price_note=note)


def _pricing(target: AwsGpuFleetTarget | GcpGpuFleetTarget | GcpTpuTarget) -> str:
    if isinstance(target, AwsGpuFleetTarget):
        s = target.spot
        if not s.enabled:
            return "on demand"
        return f"spot mix at max size: {s.on_demand_base} on demand, then {s.on_demand_percentage}% on demand"
    if isinstance(target, GcpGpuFleetTarget):
        return "spot" if target.spot.enabled else "on demand"
    return {"spot": "spot", "on-demand": "on demand", "reserved": "on demand (reserved: no catalog price)"}[
        target.provisioning
    ]


def peak_share(spec: DeploymentSpec, name: str) -> float | None:
    """Requests per hour the target's share of the profile's busiest hour brings it; None without a
    profile, or for an overflow burst target (it takes only the spill)."""
    from inferstack.planning.traffic import hourly_rates

    traffic = spec.traffic
    if traffic is None:
        return None
    bursts = set(spec.overflow.burst) if spec.overflow is not None else set()

    def share(n: str) -> float:
        stated = traffic.targets[n].share if n in traffic.targets else None
        return stated if stated is not None else 0.0 if n in bursts else 1.0

    total = sum(share(n) for n in spec.targets)
    if not total or not share(name):
        return None
    return float(hourly_rates(traffic).max()) * share(name) / total


def choose(spec: DeploymentSpec, name: str) -> ShapeChoice:
    """Weigh every shape (or the pinned ones) for a cloud target; the spec's model reference and
    region are valid (the loader's checks ran first)."""
    target = spec.targets[name]
    assert isinstance(target, AwsGpuFleetTarget | GcpGpuFleetTarget | GcpTpuTarget)
    model_name, model = spec.model_of(name)
    fp = sizing.footprint(model_name, model)
    field = SHAPE_FIELDS[target.kind]
    pinned = getattr(target, field) is not None
    if isinstance(target, AwsGpuFleetTarget):
        found = list(_aws_candidates(spec, name, target, fp))
    elif isinstance(target, GcpGpuFleetTarget):
        found = list(_gcp_candidates(spec, name, target, fp))
    else:
        found = list(_tpu_candidates(spec, name, target, fp))
    peak = peak_share(spec, name)
    load = None
    if peak is not None and spec.traffic is not None:
        traffic = spec.traffic
        load = (
            f"{peak:.0f} requests/hour at the peak, {traffic.input_tokens}+{traffic.output_tokens} tokens each, "
            f"{traffic.target_utilization:.0%} utilisation"
        )
        stated = traffic.targets[name].replica if name in traffic.targets else None
        most = target.slices if isinstance(target, GcpTpuTarget) else target.capacity.max
        found = [c if not c.fits else _with_replicas(c, model_name, model, traffic, peak, stated, most) for c in found]
    order = sorted(found, key=_rank)
    if pinned:
        chosen = found[0] if found else None  # the first listed stands for the fleet
    else:
        chosen = next((c for c in order if c.fits and c.hourly is not None), None)
    return ShapeChoice(name, field, pinned, fp, _pricing(target), load, tuple(order), chosen)


def _with_replicas(c: Candidate, model_name, model, traffic, peak: float, stated, most: int) -> Candidate:
    capacity = sizing.replica_capacity(
        model_name,
        model,
        c.memory_bytes,
        c.devices,
        catalog.accelerator_performance().get(c.accelerator),
        traffic.input_tokens,
        traffic.output_tokens,
        stated_sequences=stated.concurrent_sequences if stated else None,
        stated_output_tokens_per_second=stated.output_tokens_per_second if stated else None,
    )
    replicas = sizing.replicas_for(
        capacity, peak, traffic.input_tokens, traffic.output_tokens, traffic.target_utilization
    )
    return replace(c, replicas=replicas, over_max=replicas > most)


def _rank(c: Candidate) -> tuple:
    """Serving shapes first, those whose replicas at the peak fit the target's maximum before those
    that would need more; then by price at the load, then by memory (less is a tighter fit, so the
    same price buys no idle memory), then by name for a stable order; the rest after."""
    serves = c.fits and c.hourly is not None
    return (not serves, c.over_max, c.cost_at_load if serves else 0.0, c.memory_bytes, c.shape)


def resolve(spec: DeploymentSpec) -> tuple[DeploymentSpec, dict[str, ShapeChoice], list[Finding]]:
    """The spec with every left-out shape chosen, the choices, and an error for each target no
    shape serves (blamed on the field the user can set instead)."""
    choices: dict[str, ShapeChoice] = {}
    findings: list[Finding] = []
    targets = dict(spec.targets)
    for name, target in sorted(spec.targets.items()):
        field = SHAPE_FIELDS.get(target.kind)
        if field is None or getattr(target, field) is not None:
            continue
        if target.model is not None and target.model not in spec.models:
            continue  # check_spec names the missing model; nothing to size
        choice = choose(spec, name)
        choices[name] = choice
        if choice.chosen is None:
            findings.append(Finding(("targets", name), _nothing_serves(choice)))
            continue
        value: object = [choice.chosen.shape] if field == "instance_types" else choice.chosen.shape
        targets[name] = target.model_copy(update={field: value})
    return spec.model_copy(update={"targets": targets}), choices, findings


def _nothing_serves(choice: ShapeChoice) -> str:
    fits_unpriced = [c.shape for c in choice.candidates if c.fits and c.hourly is None]
    gpus = [c for c in choice.candidates if c.refusal is None or "GiB needed" in c.refusal or "shards" in c.refusal]
    text = f"no shape in the catalog serves the model here ({choice.pricing}): it needs {choice.need.describe()}"
    if gpus:
        largest = max(gpus, key=lambda c: (c.memory_bytes, c.shape))
        text += f"; the largest, {largest.description}, offers {sizing.usable_bytes(largest.memory_bytes) / GIB:.1f} GiB usable"
    else:
        text += "; no GPU shape is offered here"
    if fits_unpriced:
        text += f". {', '.join(fits_unpriced[:4])} would hold it but the catalog has no price here: pin one in {choice.field}"
    return (
        text
        + ". Lower the precision, use an fp8 KV cache, fewer concurrent sequences or a shorter context, or another region"
    )


def sizing_report(spec: DeploymentSpec, chosen: dict[str, ShapeChoice]) -> list[ShapeChoice]:
    """Every cloud target's sizing: the loader's choice where inferstack chose, else the pinned
    shape's evaluation, with the shapes inferstack would weigh if the pin were removed."""
    out = []
    for name, target in sorted(spec.targets.items()):
        field = SHAPE_FIELDS.get(target.kind)
        if field is None:
            continue
        if name in chosen:
            out.append(chosen[name])
            continue
        pinned = choose(spec, name)
        open_choice = choose(
            spec.model_copy(update={"targets": {**spec.targets, name: target.model_copy(update={field: None})}}), name
        )
        out.append(replace(pinned, candidates=open_choice.candidates))
    return out


@dataclass(frozen=True)
class PoolSizing:
    """What one on-prem pool gives a replica of the model: owned GPUs, nothing to choose."""

    target: str
    pool: str
    gpu: str
    sharing: str
    need: sizing.Footprint
    replica_memory_bytes: int
    devices_per_replica: int
    replicas_per_node: int
    max_replicas: int

    def describe(self) -> str:
        unit = {"whole": "GPU", "mig": "MIG slice", "time-slicing": "time slice"}.get(self.sharing, "device")
        return (
            f"{self.gpu}, {self.sharing}: {self.devices_per_replica} {unit}(s) per replica "
            f"({sizing.usable_bytes(self.replica_memory_bytes) / GIB:.1f} GiB usable for {self.need.total_bytes / GIB:.1f} "
            f"GiB needed), {self.replicas_per_node} per node, {self.max_replicas} on the pool"
        )

    def to_json(self) -> dict:
        return {
            "target": self.target,
            "pool": self.pool,
            "gpu": self.gpu,
            "sharing": self.sharing,
            "needBytes": self.need.total_bytes,
            "replicaMemoryBytes": self.replica_memory_bytes,
            "devicesPerReplica": self.devices_per_replica,
            "replicasPerNode": self.replicas_per_node,
            "maxReplicas": self.max_replicas,
        }


def pool_sizing(spec: DeploymentSpec) -> list[PoolSizing]:
    """Every on-prem pool's fit (the checks guarantee each holds the model)."""
    from inferstack.planning.onprem.pools import plan_pools
    from inferstack.spec.models import OnPremK8sTarget

    out = []
    for name, target in sorted(spec.targets.items()):
        if not isinstance(target, OnPremK8sTarget):
            continue
        fp = sizing.footprint(*spec.model_of(name))
        for p in plan_pools(spec, name):
            out.append(
                PoolSizing(
                    name,
                    p.name,
                    p.gpu,
                    p.sharing,
                    fp,
                    p.memory_bytes_per_device * p.devices_per_replica,
                    p.devices_per_replica,
                    p.devices_per_node // p.devices_per_replica,
                    p.max_replicas_on_pool,
                )
            )
    return out
