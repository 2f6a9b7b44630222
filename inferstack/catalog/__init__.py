"""Public facts the planner decides with: accelerators, prices, regions, engines, model shapes.

Every fact lives in a data file under ``data/`` that names its source and date; this module only
parses them. Nothing here knows about the spec, so the spec checks, the sizing code and the cost
estimate all read the same numbers.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from ruamel.yaml import YAML

_DATA = resources.files(__package__).joinpath("data")
MIB = 1024**2
GIB = 1024**3


def _text(name: str) -> str:
    return _DATA.joinpath(name).read_text(encoding="utf-8")


def _csv_rows(name: str) -> list[dict[str, str]]:
    lines = [ln for ln in _text(name).splitlines() if ln and not ln.startswith("#")]
    return list(csv.DictReader(io.StringIO("\n".join(lines))))


def _yaml(name: str):
    return YAML(typ="safe").load(_text(name))


def _float(value: str) -> float | None:
    return float(value) if value.strip() else None


@dataclass(frozen=True)
class Price:
    """Hourly USD for one instance type in one region, from the catalog extract."""

    on_demand: float | None
    spot: float | None
    note: str = ""


@dataclass(frozen=True)
class AwsInstanceType:
    """The accelerator facts of one EC2 instance type."""

    name: str
    accelerator: str
    accelerator_count: float
    accelerator_memory_mib: int
    vcpus: int
    memory_gib: float
    prices: dict[str, Price] = field(default_factory=dict, compare=False)

    @property
    def is_nvidia_gpu(self) -> bool:
        """Inferentia and Trainium carry Neuron accelerators, which the GPU fleet cannot serve on."""
        return not self.accelerator.startswith(("Inferentia", "Trainium"))

    @property
    def gpu_count(self) -> int:
        """Whole GPUs; a fractional GPU (g6f) counts as one device to the engine."""
        return max(1, int(self.accelerator_count))

    @property
    def total_accelerator_memory_bytes(self) -> int:
        return int(self.accelerator_memory_mib * MIB * max(self.accelerator_count, 1) // 1)

    def describe(self) -> str:
        count = self.accelerator_count
        count_text = f"{count:g}" if count != int(count) else str(int(count))
        return f"{self.name} ({count_text}x {self.accelerator}, {self.accelerator_memory_mib / 1024:.1f} GiB each)"


@cache
def aws_instance_types() -> dict[str, AwsInstanceType]:
    """EC2 instance types with accelerators, keyed by name, with prices per region."""
    found: dict[str, AwsInstanceType] = {}
    for row in _csv_rows("accelerator_prices.csv"):
        if row["cloud"] != "aws":
            continue
        name = row["instance_type"]
        if name not in found:
            found[name] = AwsInstanceType(
                name=name,
                accelerator=row["accelerator"],
                accelerator_count=float(row["acc_count"]),
                accelerator_memory_mib=int(row["gpu_mem_mib_per_acc"]),
                vcpus=int(row["vcpus"]),
                memory_gib=float(row["mem_gib"]),
            )
        found[name].prices[row["region"]] = Price(
            on_demand=_float(row["price_ondemand"]), spot=_float(row["price_spot"]), note=row["note"]
        )
    return found


@dataclass(frozen=True)
class Jurisdiction:
    name: str
    aws: tuple[str, ...]
    gcp: tuple[str, ...]
    onprem: tuple[str, ...] = ()  # countries (ISO 3166-1, lower case) an on-prem site may be in

    @property
    def regions(self) -> frozenset[str]:
        """Cloud regions only: the policy pack's region lists are built from these."""
        return frozenset(self.aws) | frozenset(self.gcp)

    @property
    def sites(self) -> frozenset[str]:
        return frozenset(self.onprem)


@cache
def jurisdictions() -> dict[str, Jurisdiction]:
    data = _yaml("regions.yaml")["jurisdictions"]
    return {
        name: Jurisdiction(
            name=name,
            aws=tuple(v.get("aws", ())),
            gcp=tuple(v.get("gcp", ())),
            onprem=tuple(v.get("onprem", ())),
        )
        for name, v in data.items()
    }


@cache
def known_regions() -> dict[str, str]:
    """Every region the catalog knows, mapped to its cloud (``aws``, ``gcp``, or ``onprem`` for
    the country of an on-prem site, which residency treats like a region)."""
    out: dict[str, str] = {}
    for j in jurisdictions().values():
        out.update({r: "aws" for r in j.aws})
        out.update({r: "gcp" for r in j.gcp})
        out.update({c: "onprem" for c in j.onprem})
    return out


@cache
def aws_zone_counts() -> dict[str, int]:
    """How many availability zones an account can use in each AWS region."""
    return dict(_yaml("regions.yaml")["aws_availability_zones"])


@dataclass(frozen=True)
class Series:
    """One Prometheus series of an engine, with the label matchers (regular expressions) that select it."""

    name: str
    match: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class EngineSeries:
    """What an engine publishes for its dashboards and SLOs (data/engines.yaml `series`); None: not published."""

    latency: Series | None  # histogram, seconds, request start to last token
    ttft: Series | None  # histogram, seconds, time to first token
    requests: Series | None  # counter
    errors: Series | None  # counter
    output_tokens: Series | None  # counter


def _series(value: Any) -> Series | None:
    if value is None:
        return None
    if isinstance(value, str):
        return Series(value)
    return Series(value["name"], tuple(sorted((k, str(v)) for k, v in value.get("match", {}).items())))


@dataclass(frozen=True)
class Engine:
    """How a serving engine starts and what it exposes for health checks and autoscaling."""

    name: str
    health_path: str
    metrics_path: str
    queue_metric: str | None
    running_metric: str | None
    entrypoint: tuple[str, ...]
    args: tuple[str, ...]
    env: tuple[tuple[str, str], ...]  # offline and no-telemetry switches, sorted by name
    memory_fraction_arg: str | None = None  # bounds the engine's share of a GPU's memory
    kv_cache_fp8_args: tuple[str, ...] | None = None  # store the KV cache in FP8; None: no serve flag
    series: EngineSeries = EngineSeries(None, None, None, None, None)


@cache
def engines() -> dict[str, Engine]:
    return {
        name: Engine(
            name=name,
            health_path=v["health_path"],
            metrics_path=v["metrics_path"],
            queue_metric=v["queue_metric"],
            running_metric=v["running_metric"],
            entrypoint=tuple(v["entrypoint"]),
            args=tuple(v["args"]),
            env=tuple(sorted((k, str(val)) for k, val in v["env"].items())),
            memory_fraction_arg=v["memory_fraction_arg"],
            kv_cache_fp8_args=None if v["kv_cache_fp8_args"] is None else tuple(v["kv_cache_fp8_args"]),
            series=EngineSeries(**{k: _series(v["series"][k]) for k in EngineSeries.__dataclass_fields__}),
        )
        for name, v in _yaml("engines.yaml").items()
    }


@dataclass(frozen=True)
class ModelArchitecture:
    """The numbers that size a model's KV cache."""

    name: str
    layers: int
    kv_heads: int
    head_dim: int
    parameters: int = 0  # 0: unknown (an architecture the spec gives)
    attention_heads: int = 0  # 0: unknown; tensor parallelism must divide it
    active_parameters: int = 0  # parameters one token runs through (a mixture of experts: fewer); 0: all


@cache
def model_architectures() -> dict[str, ModelArchitecture]:
    """Known architectures keyed by lower-cased model name, for KV-cache sizing."""
    return {
        row["model"].lower(): ModelArchitecture(
            name=row["model"],
            layers=int(row["layers"]),
            kv_heads=int(row["kv_heads"]),
            head_dim=int(row["head_dim"]),
            parameters=int(row["params"]),
            attention_heads=int(row["attn_heads"]),
            active_parameters=int(row.get("active_params") or row["params"]),
        )
        for row in _csv_rows("model_architectures.csv")
    }


@dataclass(frozen=True)
class GcpMachineType:
    """A Compute Engine machine type that carries GPUs, or N1 with guest accelerators."""

    name: str
    accelerator: str
    accelerator_count: int
    accelerator_memory_mib: int
    vcpus: int
    memory_gib: float
    hyperdisk_only: bool = False

    @property
    def gpu_count(self) -> int:
        return self.accelerator_count

    @property
    def boot_disk_type(self) -> str:
        return "hyperdisk-balanced" if self.hyperdisk_only else "pd-balanced"

    @property
    def total_accelerator_memory_bytes(self) -> int:
        return self.accelerator_memory_mib * MIB * self.accelerator_count

    def describe(self) -> str:
        return f"{self.name} ({self.accelerator_count}x {self.accelerator}, {self.accelerator_memory_mib / 1024:.1f} GiB each)"


@cache
def gcp_n1_machine_types() -> frozenset[str]:
    return frozenset(f"{family}-{n}" for family, sizes in _gcp_data()["n1_machine_types"].items() for n in sizes)


@dataclass(frozen=True)
class GcpGuestAccelerator:
    name: str
    gpu: str
    counts: tuple[int, ...]
    memory_mib: int


@cache
def _gcp_data() -> dict:
    return _yaml("gcp_machine_types.yaml")


@cache
def gcp_machine_types() -> dict[str, GcpMachineType]:
    gpus = _gcp_data()["gpus"]
    hyperdisk = tuple(_gcp_data()["hyperdisk_only"])
    return {
        name: GcpMachineType(name, gpu, count, gpus[gpu], vcpus, mem, name.startswith(hyperdisk))
        for name, (gpu, count, vcpus, mem) in _gcp_data()["machine_types"].items()
    }


def gcp_zones(machine_type: str, accelerator: str | None = None) -> dict[str, tuple[str, ...]]:
    """The zones, per region, that offer a machine type (an N1 type: its guest accelerator's).
    An exact name in the data wins over its family (the name without its size suffix)."""
    table = _gcp_data()["zones"]
    key = accelerator if accelerator is not None else machine_type
    regions = table.get(key) or table.get(key.rsplit("-", 1)[0]) or {}
    return {region: tuple(f"{region}-{z}" for z in zones) for region, zones in regions.items()}


@cache
def gcp_guest_accelerators() -> dict[str, GcpGuestAccelerator]:
    gpus = _gcp_data()["gpus"]
    return {
        name: GcpGuestAccelerator(name, gpu, tuple(counts), gpus[gpu])
        for name, (gpu, counts) in _gcp_data()["n1_accelerators"].items()
    }


@dataclass(frozen=True)
class TpuGeneration:
    name: str
    accelerator_prefix: str
    type_counts: str  # "chips" or "cores"
    cores_per_chip: int
    hbm_gib_per_chip: int
    chips_per_host: int  # the most chips a single-host slice has
    multi_host_chips_per_host: int
    topologies: tuple[str, ...]
    runtime_versions: tuple[str, ...]

    @staticmethod
    def chips_of(topology: str) -> int:
        chips = 1
        for dim in topology.split("x"):
            chips *= int(dim)
        return chips

    def accelerator_type(self, topology: str) -> str:
        """The API's accelerator type: v5litepod-8 (chips), v5p-8 (TensorCores: 4 chips)."""
        n = self.chips_of(topology) * (self.cores_per_chip if self.type_counts == "cores" else 1)
        return f"{self.accelerator_prefix}-{n}"

    def hosts(self, topology: str) -> int:
        chips = self.chips_of(topology)
        return 1 if chips <= self.chips_per_host else -(-chips // self.multi_host_chips_per_host)

    def hbm_bytes(self, topology: str) -> int:
        return self.chips_of(topology) * self.hbm_gib_per_chip * GIB


@cache
def tpu_generations() -> dict[str, TpuGeneration]:
    return {
        name: TpuGeneration(
            name=name,
            accelerator_prefix=v["accelerator_prefix"],
            type_counts=v["type_counts"],
            cores_per_chip=v.get("cores_per_chip", 1),
            hbm_gib_per_chip=v["hbm_gib_per_chip"],
            chips_per_host=v["chips_per_host"],
            multi_host_chips_per_host=v["multi_host_chips_per_host"],
            topologies=tuple(v["topologies"]),
            runtime_versions=tuple(v["runtime_versions"]),
        )
        for name, v in _yaml("tpu_generations.yaml").items()
    }


@dataclass(frozen=True)
class GcpPrices:
    """GCP rows of the price extract: a GPU VM costs its host row plus its accelerator row."""

    hosts: dict[tuple[str, str], Price]  # (machine type, region)
    accelerators: dict[tuple[str, int, str], Price]  # (GPU, count, region)
    tpus: dict[tuple[str, str], Price]  # (accelerator type, region), e.g. ("v5litepod-128", "europe-west4")


@cache
def gcp_prices() -> GcpPrices:
    hosts: dict = {}
    accelerators: dict = {}
    tpus: dict = {}
    for row in _csv_rows("accelerator_prices.csv"):
        if row["cloud"] != "gcp":
            continue
        price = Price(_float(row["price_ondemand"]), _float(row["price_spot"]), row["note"])
        kind, region = row["instance_type"], row["region"]
        if kind.endswith("(host)"):
            hosts[(kind.removesuffix("(host)"), region)] = price
        elif kind == "(accel row)":
            accelerators[(row["accelerator"], int(row["acc_count"]), region)] = price
        elif kind == "tpu":
            tpus[(row["accelerator"].removeprefix("tpu-"), region)] = price
    return GcpPrices(hosts, accelerators, tpus)


@dataclass(frozen=True)
class AwsNodeTimings:
    """Launch-to-healthy figures of one EC2 instance family (see data/aws_node_timings.yaml)."""

    boot_seconds: int
    image_pull_seconds: int
    warmup_seconds: int
    s3_mib_per_second: int
    ebs_mib_per_second: int
    load_mib_per_second: int
    local_nvme_gib: int


@cache
def aws_node_timings() -> dict[str, AwsNodeTimings]:
    """Timings per instance family ('g6e', 'p4de', ...), with a 'default' entry."""
    data = _yaml("aws_node_timings.yaml")
    out = {"default": AwsNodeTimings(**data["default"])}
    out.update({family: AwsNodeTimings(**facts) for family, facts in data["families"].items()})
    return out


def aws_node_timings_of(instance_type: str) -> AwsNodeTimings:
    table = aws_node_timings()
    return table.get(instance_type.split(".", 1)[0], table["default"])


@dataclass(frozen=True)
class GcpNodeTimings:
    """Create-to-healthy figures of a GCP GPU machine family (data/gcp_node.yaml)."""

    boot_seconds: int
    driver_seconds: int
    image_pull_seconds: int
    gcs_mib_per_second: int
    load_mib_per_second: int
    warmup_seconds: int

    def startup_seconds(self, weights_bytes: int) -> float:
        mib = weights_bytes / MIB
        return (
            self.boot_seconds
            + self.driver_seconds
            + self.image_pull_seconds
            + self.warmup_seconds
            + mib / self.gcs_mib_per_second
            + mib / self.load_mib_per_second
        )


@cache
def _gcp_node() -> dict:
    return _yaml("gcp_node.yaml")


def gcp_cloud_cli_image() -> str:
    """The pinned Cloud CLI image the GPU startup script fetches weights with (see the data file)."""
    return _gcp_node()["cloud_cli"]["image"]


def gcp_collector_image() -> str:
    """The pinned OpenTelemetry Collector image the GCP nodes ship their engine's series with."""
    return _gcp_node()["collector"]["image"]


def gcp_node_timings_of(machine_type: str) -> GcpNodeTimings:
    data = _gcp_node()
    facts = data["families"].get(machine_type.split("-", 1)[0], data["default"])
    return GcpNodeTimings(**facts)


@dataclass(frozen=True)
class MigProfile:
    """One MIG profile of a GPU model: the memory of one instance and how many fit on a GPU."""

    name: str  # e.g. 3g.40gb
    memory_mib: int
    instances: int  # instances of this profile alone on one GPU


@dataclass(frozen=True)
class GpuModel:
    """A datacenter GPU a site owns (data/gpus.yaml)."""

    name: str
    memory_mib: int
    watts: int  # maximum board power
    time_slicing: bool
    mig_profiles: dict[str, MigProfile] = field(default_factory=dict, compare=False)

    @property
    def memory_bytes(self) -> int:
        return self.memory_mib * MIB

    @property
    def supports_mig(self) -> bool:
        return bool(self.mig_profiles)

    def describe(self) -> str:
        return f"{self.name} ({self.memory_mib / 1024:.0f} GiB)"


@cache
def gpu_models() -> dict[str, GpuModel]:
    """GPU models for on-prem pools, keyed by catalog name (H100-80GB, A100-80GB, L40S, ...)."""
    out = {}
    for name, v in _yaml("gpus.yaml")["gpus"].items():
        memory = int(v["memory_mib"])
        profiles = {
            p: MigProfile(p, memory * int(f["memory_eighths"]) // 8, int(f["instances"]))
            for p, f in (v.get("mig") or {}).items()
        }
        out[name] = GpuModel(name, memory, int(v["watts"]), bool(v["time_slicing"]), profiles)
    return out


@dataclass(frozen=True)
class AcceleratorPerformance:
    """Peak figures of one accelerator (data/accelerator_performance.yaml), for the throughput
    estimate: memory bandwidth bounds decode, tensor FLOPs bound prefill."""

    name: str
    memory_gbps: float | None  # GB/s (10^9 bytes) per device
    tflops_16bit: float | None  # dense BF16/FP16 tensor TFLOPS per device
    tflops_8bit: float | None  # dense FP8 (or INT8) tensor TFLOPS; None: no 8-bit tensor path
    fp8: bool = False  # FP8 tensor cores (Ada, Hopper, Blackwell): tflops_8bit is FP8

    def tflops_for(self, precision: str) -> float:
        """FP8 weights run FP8 matmuls where the device has FP8 tensor cores; elsewhere, and for
        int8/int4 weight-only quantisation, the weights are dequantised to 16-bit for the matmul."""
        if precision == "fp8" and self.fp8 and self.tflops_8bit:
            return self.tflops_8bit
        return self.tflops_16bit or 0.0


@cache
def accelerator_performance() -> dict[str, AcceleratorPerformance]:
    """Keyed by the names the other data files use: AWS and GCP accelerators, TPU generations
    (per chip), and the on-prem GPU models of gpus.yaml."""
    data = _yaml("accelerator_performance.yaml")["accelerators"]
    return {
        name: AcceleratorPerformance(
            name,
            None if v.get("memory_gbps") is None else float(v["memory_gbps"]),
            None if v.get("tflops_16bit") is None else float(v["tflops_16bit"]),
            None if v.get("tflops_8bit") is None else float(v["tflops_8bit"]),
            bool(v.get("fp8", False)),
        )
        for name, v in data.items()
    }


@cache
def slowest_accelerator() -> AcceleratorPerformance:
    """The whole device with the least bandwidth that has both figures: what an unknown device is
    taken for (a fractional GPU is no device an unknown name would be)."""
    known = [
        a for a in accelerator_performance().values() if a.memory_gbps and a.tflops_16bit and "fractional" not in a.name
    ]
    return min(known, key=lambda a: (a.memory_gbps, a.name))
