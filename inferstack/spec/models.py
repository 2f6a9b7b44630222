"""The deployment spec: one typed document per environment, the only input of the program.

Rules that need nothing but the fields of one model live here as validators; rules that cross
sections or consult the catalog (residency, instance facts, does the model fit) live in
`inferstack.spec.checks`, so that every finding of a spec is reported at once.

Design notes:
- strict: a string is never silently an integer, and unknown fields are errors;
- maps, not lists, for models and targets: the key is the stable name every resource derives
  from, so reordering a spec renames nothing;
- secure defaults are field defaults; opting out is an explicit field the policy pack sees.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from inferstack import catalog
from inferstack.errors import FieldError, did_you_mean

DEFAULT_AMI_PARAMETER = (
    "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-amazon-linux-2023/latest/ami-id"
)


class StrictModel(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


NAME_PATTERN = r"^[a-z]([a-z0-9-]{0,30}[a-z0-9])?$"
VPC_ID_PATTERN = r"^vpc-[0-9a-f]{8,17}$"
SUBNET_ID_PATTERN = r"^subnet-[0-9a-f]{8,17}$"
SSM_PUBLIC_PATTERN = r"^/aws/service/"
AMI_ID_PATTERN = r"^ami-[0-9a-f]{8,17}$"

# What each pattern means, for error messages (a regex is no help to a user).
PATTERN_HINTS = {
    NAME_PATTERN: "must be a lower-case name: a-z, 0-9 and '-', starting with a letter, at most 32 characters",
    VPC_ID_PATTERN: "must be a VPC id like vpc-0123456789abcdef0",
    SUBNET_ID_PATTERN: "must be a subnet id like subnet-0123456789abcdef0",
    SSM_PUBLIC_PATTERN: "must be a public SSM parameter path under /aws/service/",
    AMI_ID_PATTERN: "must be an AMI id like ami-0123456789abcdef0",
}

Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
"""Lower-case DNS label, short enough to prefix cloud resource names (which cap at 32-63)."""

_SUFFIX = {"K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}


def _parse_param_count(value: object) -> object:
    """Accept ``8030261248`` or the way people write it: ``8B``, ``70.6B``, ``1.5T``."""
    if isinstance(value, str):
        m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([KMBT])\s*", value.upper())
        if not m:
            raise ValueError(f"write a number or a size like '8B' or '70.6B' (got {value!r})")
        try:
            return int(float(m.group(1)) * _SUFFIX[m.group(2)])
        except OverflowError:
            raise ValueError(f"is too large (got {value!r})") from None
    return value


_PARAM_LIMIT = 100 * 10**12
ParamCount = Annotated[
    int,
    BeforeValidator(_parse_param_count),
    Field(gt=0, le=_PARAM_LIMIT),
    # The schema says what the loader takes: an editor must not flag `parameters: 8B`.
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "exclusiveMinimum": 0, "maximum": _PARAM_LIMIT},
                {"type": "string", "pattern": r"^\s*[0-9]+(\.[0-9]+)?\s*[KMBTkmbt]\s*$"},
            ]
        }
    ),
]


# The environment names that mean production: stricter defaults (deletion protection, a year of logs).
PRODUCTION_ENVIRONMENTS = ("prod", "production")


class Metadata(StrictModel):
    name: Name = Field(description="The deployment's name; prefixes every cloud resource.")
    team: Name = Field(description="Owning team, tagged on every resource for cost attribution.")
    environment: Name = Field(description="dev, staging, prod, ...; tagged on every resource.")
    data_classification: Literal["public", "internal", "confidential", "restricted"]

    @property
    def is_production(self) -> bool:
        return self.environment in PRODUCTION_ENVIRONMENTS


class Residency(StrictModel):
    """Where data may live: a jurisdiction from the catalog, or an explicit list of regions."""

    jurisdiction: str | None = Field(default=None, description="e.g. eu, us, uk, ch, ca, jp")
    regions: list[str] | None = Field(default=None, min_length=1)
    exceptions: list[str] = Field(
        default_factory=list,
        description="Opt-out: regions the spec may use outside residency. The spec accepts them with a "
        "warning; the policy pack's residency config leaves them out, so it still blocks them.",
    )

    @field_validator("jurisdiction")
    @classmethod
    def _known_jurisdiction(cls, v: str | None) -> str | None:
        if v is not None and v not in catalog.jurisdictions():
            raise ValueError(f"unknown jurisdiction {v!r}; known: {', '.join(sorted(catalog.jurisdictions()))}")
        return v

    @field_validator("regions", "exceptions")
    @classmethod
    def _known_regions(cls, v: list[str] | None) -> list[str] | None:
        for i, region in enumerate(v or []):
            if region not in catalog.known_regions():
                raise FieldError((i,), f"unknown region {region!r}{did_you_mean(region, catalog.known_regions())}")
        return v

    @model_validator(mode="after")
    def _exactly_one(self) -> Residency:
        if (self.jurisdiction is None) == (self.regions is None):
            raise ValueError("set exactly one of 'jurisdiction' (e.g. eu) or 'regions' (a list)")
        return self

    @property
    def allowed_regions(self) -> frozenset[str]:
        """Where data may live: what the policy pack enforces (exceptions excluded)."""
        if self.jurisdiction is not None:
            return catalog.jurisdictions()[self.jurisdiction].regions
        return frozenset(self.regions or ())

    @property
    def allowed_sites(self) -> frozenset[str]:
        """Countries an on-prem site may be in: the jurisdiction's, or those the regions list names
        (exceptions excluded, as for regions)."""
        if self.jurisdiction is not None:
            return catalog.jurisdictions()[self.jurisdiction].sites
        return frozenset(r for r in self.regions or () if catalog.known_regions().get(r) == "onprem")

    def describe(self) -> str:
        return f"jurisdiction {self.jurisdiction!r}" if self.jurisdiction else f"regions {sorted(self.regions or ())}"


def private_cidr(value: str | None, shortest: int, longest: int, example: str) -> str | None:
    """A private IPv4 range with a prefix length the network layout can carve."""
    if value is None:
        return value
    try:
        net = ipaddress.IPv4Network(value)
    except ValueError:
        raise ValueError(f"must be an IPv4 network like {example} (got {value!r})") from None
    if not net.is_private or not shortest <= net.prefixlen <= longest:
        raise ValueError(f"must be a private range from /{shortest} to /{longest} (got {value!r})")
    return value


class Architecture(StrictModel):
    """Transformer shape, for sizing the KV cache when the catalog does not know the model."""

    layers: int = Field(gt=0)
    kv_heads: int = Field(gt=0)
    head_dim: int = Field(gt=0)
    attention_heads: int | None = Field(
        default=None, gt=0, description="Query heads; a tensor-parallel degree must divide them (unset: not checked)."
    )
    active_parameters: ParamCount | None = Field(
        default=None,
        description="Parameters one token runs through (a mixture of experts: the active experts'); default all.",
    )


_WEIGHTS_URI = re.compile(r"^(s3|gs)://[a-z0-9][a-z0-9.\-_]{1,61}[a-z0-9](/[^\s]*)?$|^(hf|oci)://[^\s/]+/[^\s]+$")


KMS_KEY_ARN = (
    r"^arn:aws[a-z-]*:kms:([a-z0-9-]+):\d{12}:key/(mrk-[0-9a-f]{32}|[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12})$"
)
PATTERN_HINTS[KMS_KEY_ARN] = "must be a KMS key ARN (arn:aws:kms:<region>:<account>:key/<key id or mrk-...>)"


class Model(StrictModel):
    parameters: ParamCount = Field(description="Parameter count: an integer or '8B', '70.6B'.")
    precision: Literal["bf16", "fp16", "fp8", "int8", "int4"]
    context_length: int = Field(gt=0, le=2_000_000)
    source: str = Field(description="Weights: s3://bucket/prefix, gs://bucket/prefix, hf://org/name or oci://...")
    mirrors: list[str] = Field(
        default_factory=list,
        description="Copies of the same weights in other clouds' stores (s3://, gs://): a model served on "
        "both clouds (a hybrid stack's burst targets) loads on each from the copy in that cloud's store.",
    )
    source_kms_key_arn: str | None = Field(
        default=None,
        pattern=KMS_KEY_ARN,
        description="The KMS key of SSE-KMS weights in S3: serving nodes may decrypt with it, through S3 only.",
    )
    architecture: Architecture | None = None
    catalog_name: str | None = Field(
        default=None,
        description="The catalog's name for the model's architecture (e.g. Qwen2.5-72B) when the model's key "
        "is not it; the catalog's layers, heads and parameters then size it.",
    )
    concurrency: int = Field(
        default=1,
        ge=1,
        le=4096,
        description="Sequences one replica must hold at full context at once: the KV cache is sized for them.",
    )
    kv_cache_precision: Literal["auto", "fp8"] = Field(
        default="auto",
        description="auto: the KV cache in the model's 16-bit dtype; fp8 halves it (the engine's --kv-cache-dtype).",
    )

    @field_validator("catalog_name")
    @classmethod
    def _known_architecture(cls, v: str | None) -> str | None:
        known = {m.name for m in catalog.model_architectures().values()}
        if v is not None and v not in known:
            raise ValueError(
                f"unknown architecture {v!r}{did_you_mean(v, known)}; the catalog knows {', '.join(sorted(known))}"
            )
        return v

    @field_validator("mirrors")
    @classmethod
    def _mirror_uris(cls, v: list[str]) -> list[str]:
        for i, uri in enumerate(v):
            if not re.match(r"^(s3|gs)://", uri) or not _WEIGHTS_URI.match(uri):
                raise FieldError((i,), f"must be s3://bucket/prefix or gs://bucket/prefix (got {uri!r})")
        return v

    @field_validator("source")
    @classmethod
    def _uri(cls, v: str) -> str:
        if not _WEIGHTS_URI.match(v):
            raise ValueError(
                f"must be s3://bucket/prefix, gs://bucket/prefix, hf://org/model or oci://registry/repo (got {v!r})"
            )
        return v

    @property
    def scheme(self) -> str:
        return self.source.split("://", 1)[0]

    @property
    def bucket(self) -> str:
        return _bucket(self.source)

    @property
    def prefix(self) -> str:
        """Key prefix inside the bucket, without slashes at either end ('' for the whole bucket)."""
        return _prefix(self.source)

    def uri_in(self, scheme: str) -> str | None:
        """The copy a target loads from its own cloud's store: the source, else the first mirror."""
        return next((u for u in (self.source, *self.mirrors) if u.split("://", 1)[0] == scheme), None)

    def copy_in(self, scheme: str) -> tuple[str, str]:
        """(bucket, prefix) of the copy in `scheme`'s store; the checks guarantee there is one."""
        uri = self.uri_in(scheme)
        assert uri is not None, f"no {scheme}:// copy of the weights (the spec checks require one)"
        return _bucket(uri), _prefix(uri)


def _bucket(uri: str) -> str:
    return uri.split("://", 1)[1].split("/", 1)[0]


def _prefix(uri: str) -> str:
    rest = uri.split("://", 1)[1]
    return rest.split("/", 1)[1].strip("/") if "/" in rest else ""


_IMAGE = re.compile(
    r"^(?P<repo>[a-z0-9]+(?:[._\-/:][a-z0-9]+)*?)(?::(?P<tag>[\w][\w.\-]{0,127}))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)


def _check_image(v: str) -> str:
    m = _IMAGE.match(v)
    if not m or not (m.group("tag") or m.group("digest")):
        raise ValueError(f"must be registry/repo@sha256:<digest> (or repo:tag) (got {v!r})")
    return v


def image_digest(image: str) -> str | None:
    m = _IMAGE.match(image)
    return m.group("digest") if m else None


ImageRef = Annotated[str, AfterValidator(_check_image)]
"""A container image; pin it by digest (repo@sha256:...)."""


class Serving(StrictModel):
    engine: Literal["vllm", "tgi", "tensorrt-llm", "sglang"]
    image: ImageRef | None = Field(
        default=None, description="The engine image every GPU target runs unless it names its own."
    )
    port: int = Field(default=8000, ge=1024, le=65535)
    args: list[str] = Field(default_factory=list, description="Extra engine arguments, appended.")
    health_check_grace_seconds: int | None = Field(
        default=None, ge=60, le=7200, description="Override the grace estimated from the model's size."
    )


MAX_INSTANCES = 1000  # far above any single serving fleet; keeps values inside the clouds' int32 fields


class Capacity(StrictModel):
    min: int = Field(
        ge=0,
        le=MAX_INSTANCES,
        description="0 lets the fleet scale to zero. At zero no node publishes anything, so something else "
        "must wake the group: on AWS the private endpoint's load balancer (connections it cannot route "
        "count as demand); a fleet with no endpoint cannot use 0. On GCP nothing in the stack publishes "
        "the group's metric while it is empty, so a GCP GPU fleet needs min >= 1.",
    )
    max: int = Field(ge=1, le=MAX_INSTANCES)
    desired: int | None = Field(
        default=None, ge=0, le=MAX_INSTANCES, description="Initial size; the autoscaler owns it afterwards."
    )

    @model_validator(mode="after")
    def _ordered(self) -> Capacity:
        if self.max < self.min:
            raise FieldError("max", f"must be >= min (got {self.max} < {self.min})")
        if self.desired is not None and not self.min <= self.desired <= self.max:
            raise FieldError("desired", f"must lie within min..max (got {self.desired}, range {self.min}..{self.max})")
        return self

    @property
    def initial(self) -> int:
        return self.min if self.desired is None else self.desired


class AwsCapacity(Capacity):
    warm_pool: int = Field(
        default=0, ge=0, le=MAX_INSTANCES, description="Stopped, pre-initialised instances kept ready."
    )

    @model_validator(mode="after")
    def _warm_pool_within_max(self) -> AwsCapacity:
        if self.warm_pool > self.max:
            raise FieldError("warm_pool", f"must be <= max (got {self.warm_pool} > {self.max})")
        return self


class Spot(StrictModel):
    enabled: bool = Field(default=False, description="Serve part of the fleet on spot capacity.")
    on_demand_base: int = Field(default=0, ge=0, le=MAX_INSTANCES, description="Instances always on demand.")
    on_demand_percentage: int = Field(default=0, ge=0, le=100, description="On-demand share above the base.")
    allocation_strategy: Literal[
        "price-capacity-optimized", "capacity-optimized", "capacity-optimized-prioritized", "lowest-price"
    ] = "price-capacity-optimized"


Signal = Literal["in_flight", "queue_depth", "gpu_utilization", "requests_per_target", "lb_utilization"]
DEFAULT_SIGNAL: Signal = "in_flight"


class Autoscaling(StrictModel):
    signal: Signal = Field(
        default=DEFAULT_SIGNAL,
        description="What the fleet scales on. Request-based signals are preferred. "
        "in_flight (default): requests running plus waiting per instance, the engine's own load; it "
        "rises with traffic and falls only when nodes really have room, so it can drive scale-out and "
        "scale-in alike. queue_depth: waiting requests per instance; good at reacting to bursts, but 0 "
        "whenever the batch has room (normal load), so scale-in never acts on it (it acts on in_flight). "
        "requests_per_target: running requests per instance. gpu_utilization: percent; reads near 100 "
        "with a single decoding request, so it over-provisions and scales in late, and scale-in still "
        "acts on in_flight where the engine reports it. lb_utilization (GCP, behind the endpoint): the "
        "load balancer's utilisation of each VM, a fraction. Nodes publish a signal only once their "
        "engine is healthy, so booting nodes never drag the average down.",
    )
    target: float = Field(gt=0, le=1_000_000, allow_inf_nan=False)
    scale_in_cooldown: int = Field(default=300, ge=60, le=3600, description="Seconds between scale-in steps.")

    @model_validator(mode="after")
    def _percent(self) -> Autoscaling:
        if self.signal == "gpu_utilization" and self.target > 100:
            raise FieldError("target", f"gpu_utilization is a percentage: must be <= 100 (got {self.target:g})")
        return self


class AwsNetwork(StrictModel):
    """Either a VPC inferstack creates (cidr, availability_zones) or an existing one (vpc_id, subnet_ids)."""

    cidr: str | None = Field(default=None, description="CIDR of the VPC to create (default 10.64.0.0/16).")
    availability_zones: int | None = Field(default=None, ge=2, le=6, description="Private subnets to spread over.")
    public_ip: bool = Field(
        default=False,
        description="Opt-out: give serving nodes public IPs. Off by default; the policy pack flags it.",
    )
    vpc_id: str | None = Field(default=None, pattern=VPC_ID_PATTERN)
    subnet_ids: list[Annotated[str, StringConstraints(pattern=SUBNET_ID_PATTERN)]] | None = None

    @field_validator("cidr")
    @classmethod
    def _cidr(cls, v: str | None) -> str | None:
        return private_cidr(v, 16, 22, "10.64.0.0/16")

    @model_validator(mode="after")
    def _one_mode(self) -> AwsNetwork:
        if self.vpc_id is None and self.subnet_ids is not None:
            raise FieldError("vpc_id", "is required when subnet_ids are given")
        if self.vpc_id is not None:
            if not self.subnet_ids:
                raise FieldError("subnet_ids", "list the private subnets of the existing VPC to launch into")
            for name in ("cidr", "availability_zones"):
                if getattr(self, name) is not None:
                    raise FieldError(name, "only applies to a VPC inferstack creates; remove it or remove vpc_id")
            if len(set(self.subnet_ids)) != len(self.subnet_ids):
                raise FieldError("subnet_ids", "lists a subnet twice")
        return self

    @property
    def creates_vpc(self) -> bool:
        return self.vpc_id is None


class TargetBase(StrictModel):
    """What every target kind has: the model it serves and the kind of work it does."""

    workload: Literal["serving", "batch"] = Field(
        default="serving", description="Tagged on every resource; the policy pack wants batch pools on spot."
    )
    model: str | None = Field(default=None, description="Key in 'models'; may be left out when there is one.")


class AwsGpuFleetTarget(TargetBase):
    """An EC2 Auto Scaling group of GPU instances serving one model."""

    kind: Literal["aws-gpu-fleet"]
    region: str
    instance_types: list[str] | None = Field(
        default=None,
        min_length=1,
        max_length=20,
        description="EC2 GPU instance types, the first preferred. Leave out and inferstack chooses the cheapest "
        "that holds the model in the region at the fleet's spot mix (`inferstack size` says why).",
    )
    image: ImageRef | None = Field(default=None, description="This target's engine image (default: serving.image).")
    capacity: AwsCapacity
    spot: Spot = Field(default_factory=Spot)
    autoscaling: Autoscaling
    network: AwsNetwork = Field(default_factory=AwsNetwork)
    root_volume_gib: int = Field(default=200, ge=50, le=16384, description="gp3 root volume, holds image and weights.")
    ami_ssm_parameter: str = Field(
        default=DEFAULT_AMI_PARAMETER,
        pattern=SSM_PUBLIC_PATTERN,
        description="Public SSM parameter naming the GPU AMI (NVIDIA driver and container toolkit); read once, "
        "when the launch template is created, and kept until ami_id says otherwise.",
    )
    ami_id: str | None = Field(
        default=None,
        pattern=AMI_ID_PATTERN,
        description="Pin the fleet's AMI. Without it the AMI the SSM parameter named at creation stays (a new "
        "AMI behind the parameter changes nothing); set or change this to move every node to another AMI, "
        "a reviewed change that rolls the group by instance refresh.",
    )

    @field_validator("instance_types")
    @classmethod
    def _unique(cls, v: list[str] | None) -> list[str] | None:
        seen: set[str] = set()
        for i, name in enumerate(v or ()):
            if name in seen:
                raise FieldError((i,), f"{name!r} is listed twice")
            seen.add(name)
        return v

    @model_validator(mode="after")
    def _aws_signals(self) -> AwsGpuFleetTarget:
        if self.autoscaling.signal == "lb_utilization":
            raise FieldError(
                ("autoscaling", "signal"),
                "lb_utilization is the GCP load balancer's signal; an AWS "
                "fleet scales on in_flight, queue_depth, requests_per_target or gpu_utilization",
            )
        return self

    @model_validator(mode="after")
    def _warm_pool_rules(self) -> AwsGpuFleetTarget:
        if self.capacity.warm_pool and (self.spot.enabled or len(self.instance_types or ()) > 1):
            raise FieldError(
                ("capacity", "warm_pool"),
                "AWS refuses a warm pool on a group with a mixed instances policy or spot instances: "
                "set spot.enabled: false and list exactly one instance type, or set warm_pool: 0",
            )
        return self

    @property
    def cloud(self) -> str:
        return "aws"

    @property
    def types(self) -> tuple[str, ...]:
        """The instance types, pinned or chosen: the loader fills a left-out list (planning.shapes)."""
        if self.instance_types is None:
            raise ValueError("instance_types not chosen: load the spec with inferstack.spec.loader")
        return tuple(self.instance_types)


GCP_PROJECT_PATTERN = r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$"
PATTERN_HINTS[GCP_PROJECT_PATTERN] = "must be a GCP project id: 6-30 lower-case letters, digits and '-'"
GcpProject = Annotated[str, StringConstraints(pattern=GCP_PROJECT_PATTERN)]


DEFAULT_GCP_SUBNET_CIDR = "10.80.0.0/20"


class GcpNetwork(StrictModel):
    """A custom-mode VPC with one private subnet inferstack creates, or an existing network."""

    cidr: str | None = Field(default=None, description="Subnet to create (default 10.80.0.0/20).")
    network: str | None = Field(default=None, description="Existing VPC network name.")
    subnetwork: str | None = Field(default=None, description="Existing subnetwork name in the target's region.")
    cloud_nat: bool = Field(
        default=False,
        description="Opt-in egress to the internet through Cloud NAT (default: none; images "
        "come from Artifact Registry over Private Google Access).",
    )
    public_ip: bool = Field(default=False, description="Opt-out: external IPs on the nodes; the policy pack flags it.")
    proxy_cidr: str | None = Field(
        default=None, description="Proxy-only subnet of the private endpoint's load balancer (default: after cidr)."
    )
    psc_cidr: str | None = Field(
        default=None, description="Private Service Connect NAT subnet (default: after the proxy-only subnet)."
    )

    @field_validator("cidr", "proxy_cidr", "psc_cidr")
    @classmethod
    def _cidr(cls, v: str | None) -> str | None:
        return private_cidr(v, 16, 26, "10.80.0.0/20")

    @model_validator(mode="after")
    def _one_mode(self) -> GcpNetwork:
        if (self.network is None) != (self.subnetwork is None):
            raise FieldError("subnetwork" if self.network else "network", "set both network and subnetwork, or neither")
        if self.network is not None and self.cidr is not None:
            raise FieldError("cidr", "only applies to a subnet inferstack creates; remove it or remove network")
        return self

    @property
    def creates_network(self) -> bool:
        return self.network is None

    @property
    def subnet_cidr(self) -> str:
        """The subnet inferstack creates (the default when the spec names none)."""
        return self.cidr or DEFAULT_GCP_SUBNET_CIDR


class GcpSpot(StrictModel):
    enabled: bool = Field(default=False, description="Run the group on Spot VMs.")
    termination_action: Literal["STOP", "DELETE"] = Field(
        default="DELETE", description="What GCP does to a preempted VM; DELETE lets the group recreate it."
    )


class GuestAccelerator(StrictModel):
    type: str = Field(description="N1 guest accelerator, e.g. nvidia-tesla-t4.")
    count: int = Field(ge=1)


class GcpTargetBase(TargetBase):
    """What every GCP target has: a project and a private network."""

    project: GcpProject
    network: GcpNetwork = Field(default_factory=GcpNetwork)

    @property
    def cloud(self) -> str:
        return "gcp"


class GcpGpuFleetTarget(GcpTargetBase):
    """A regional managed instance group of GPU VMs serving one model."""

    kind: Literal["gcp-gpu-fleet"]
    region: str
    zones: list[str] | None = Field(default=None, min_length=1, description="Zones to spread over (default: all).")
    machine_type: str | None = Field(
        default=None,
        description="A2/A3/A4/G2 types carry GPUs; N1 needs 'accelerator'. Leave out and inferstack chooses the "
        "cheapest A2/A3/A4/G2 type that holds the model in the region (`inferstack size` says why).",
    )
    accelerator: GuestAccelerator | None = None
    image: ImageRef | None = Field(default=None, description="This target's engine image (default: serving.image).")
    capacity: Capacity
    spot: GcpSpot = Field(default_factory=GcpSpot)
    autoscaling: Autoscaling
    boot_disk_gib: int = Field(default=200, ge=50, le=65536)
    boot_image: str = Field(
        default="projects/cos-cloud/global/images/family/cos-stable",
        description="Boot image; Container-Optimized OS installs the GPU driver at boot (cos-extensions).",
    )
    cloud_cli_image: ImageRef | None = Field(
        default=None,
        description="The Cloud CLI image that fetches the weights at boot (default: the versioned "
        "google-cloud-cli tag pinned in the catalog, data/gcp_node.yaml); e.g. a mirror in your Artifact Registry.",
    )
    collector_image: ImageRef | None = Field(
        default=None,
        description="The OpenTelemetry Collector image that ships the engine's metrics to Managed Service for "
        "Prometheus (default: the Google-Built OpenTelemetry Collector release pinned in the catalog, "
        "data/gcp_node.yaml); e.g. a mirror in your Artifact Registry.",
    )

    @model_validator(mode="after")
    def _accelerator_needs_n1(self) -> GcpGpuFleetTarget:
        if self.machine_type is None and self.accelerator is not None:
            raise FieldError(
                "machine_type",
                "a guest accelerator attaches to an N1 machine type: name one (e.g. n1-standard-8), or remove "
                "accelerator and let inferstack choose an A2/A3/A4/G2 type",
            )
        return self

    @property
    def machine(self) -> str:
        """The machine type, pinned or chosen: the loader fills a left-out one (planning.shapes)."""
        if self.machine_type is None:
            raise ValueError("machine_type not chosen: load the spec with inferstack.spec.loader")
        return self.machine_type

    @model_validator(mode="after")
    def _signals_that_can_wake(self) -> GcpGpuFleetTarget:
        if self.autoscaling.signal == "lb_utilization" and self.autoscaling.target > 1:
            raise FieldError(
                ("autoscaling", "target"),
                f"lb_utilization is a fraction: must be <= 1 (got {self.autoscaling.target:g})",
            )
        return self


class GcpTpuTarget(GcpTargetBase):
    """Cloud TPU slices serving one model: TPU VMs, or queued resources for multi-host slices."""

    kind: Literal["gcp-tpu"]
    zone: str
    generation: Literal["v5e", "v5p", "v6e"]
    topology: str | None = Field(
        default=None,
        description="Slice shape, e.g. 2x4 (v5e, v6e) or 2x2x1 (v5p). Leave out and inferstack chooses the "
        "cheapest slice of the generation that holds the model (`inferstack size` says why).",
    )
    runtime_version: str | None = Field(default=None, description="TPU software version (default: the generation's).")
    slices: int = Field(default=1, ge=1, le=64, description="Identical slices, each serving the model.")
    provisioning: Literal["on-demand", "spot", "reserved"] = "on-demand"
    image: ImageRef = Field(description="The TPU build of the engine (vLLM for TPU).")
    collector_image: ImageRef | None = Field(
        default=None,
        description="The OpenTelemetry Collector image that ships the engine's metrics to Managed Service for "
        "Prometheus (default: the Google-Built OpenTelemetry Collector release pinned in the catalog, "
        "data/gcp_node.yaml); e.g. a mirror in your Artifact Registry.",
    )
    args: list[str] = Field(default_factory=list, description="Extra engine arguments for this target.")

    @model_validator(mode="after")
    def _shape(self) -> GcpTpuTarget:
        gen = catalog.tpu_generations()[self.generation]
        if self.topology is not None and self.topology not in gen.topologies:
            raise FieldError(
                "topology",
                f"{self.generation} has no {self.topology!r} slice{did_you_mean(self.topology, gen.topologies)}; "
                f"{self.generation} slices: {', '.join(gen.topologies)}",
            )
        if self.runtime_version is not None and self.runtime_version not in gen.runtime_versions:
            raise FieldError(
                "runtime_version",
                f"{self.runtime_version!r} is not a {self.generation} runtime; use {', '.join(gen.runtime_versions)}",
            )
        return self

    @property
    def region(self) -> str:
        return self.zone.rsplit("-", 1)[0]

    @property
    def shape(self) -> str:
        """The topology, pinned or chosen: the loader fills a left-out one (planning.shapes)."""
        if self.topology is None:
            raise ValueError("topology not chosen: load the spec with inferstack.spec.loader")
        return self.topology


# -- on-prem Kubernetes -------------------------------------------------------------------------

DNS_NAME = r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$"
K8S_NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
K8S_NODE_PATTERN = r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$"
K8S_VERSION_PATTERN = r"^1\.(2[6-9]|3[0-7])$"
COUNTRY_PATTERN = r"^[a-z]{2}$"
PATTERN_HINTS.update(
    {
        K8S_NAME_PATTERN: "must be a Kubernetes name (RFC 1123 label): a-z, 0-9 and '-', at most 63 characters",
        K8S_NODE_PATTERN: "must be a Kubernetes node name (RFC 1123 subdomain): a-z, 0-9, '-' and '.'",
        K8S_VERSION_PATTERN: "must be the cluster's Kubernetes minor version, 1.26 to 1.37 (the versions whose OpenAPI schemas inferstack validates manifests against), like '1.31'",
        COUNTRY_PATTERN: "must be an ISO 3166-1 country code in lower case, like de or fr",
    }
)
K8sName = Annotated[str, StringConstraints(pattern=K8S_NAME_PATTERN)]
# A taint's key and value have a label's syntax (Kubernetes API validation of Taint: a qualified name,
# an optional DNS-subdomain prefix and '/'; a value of at most 63 characters, possibly empty).
K8S_QUALIFIED_NAME_PATTERN = r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
K8S_LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$"
PATTERN_HINTS.update(
    {
        K8S_QUALIFIED_NAME_PATTERN: "must be a taint key: [prefix/]name, the name at most 63 of a-z, A-Z, 0-9, "
        "'-', '_', '.', alphanumeric at both ends",
        K8S_LABEL_VALUE_PATTERN: "must be a taint value: at most 63 of a-z, A-Z, 0-9, '-', '_', '.', alphanumeric "
        "at both ends",
    }
)


class Toleration(StrictModel):
    """A taint the site puts on a pool's nodes, which the pool's engine pods (and the GPU operator's
    node agents) tolerate. Kubernetes core/v1 Toleration, without tolerationSeconds."""

    key: Annotated[str, StringConstraints(pattern=K8S_QUALIFIED_NAME_PATTERN)]
    operator: Literal["Equal", "Exists"] = Field(
        default="Equal", description="Equal: the taint's value must match; Exists: any value."
    )
    value: Annotated[str, StringConstraints(pattern=K8S_LABEL_VALUE_PATTERN)] = ""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None, description="The taint's effect; unset tolerates every effect of the key."
    )

    @model_validator(mode="after")
    def _exists_has_no_value(self) -> Toleration:
        # API validation (ValidateTolerations): with operator Exists the value must be empty.
        if self.operator == "Exists" and self.value:
            raise FieldError("value", "operator: Exists matches any value: remove value, or use operator: Equal")
        return self

    def body(self) -> dict[str, str]:
        """The toleration as the API takes it (a pod's spec.tolerations[])."""
        out = {"key": self.key, "operator": self.operator}
        if self.operator == "Equal":
            out["value"] = self.value
        if self.effect is not None:
            out["effect"] = self.effect
        return out


class KubernetesCluster(StrictModel):
    """The existing cluster a target configures. Its credentials never appear in the spec: the
    kubeconfig is a secret in the stack's Pulumi config (set it with `pulumi config set --secret`, or
    from an ESC environment's pulumiConfig)."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    kubeconfig_config_key: str = Field(
        default="kubeconfig",
        pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$",
        description="The stack config key (namespace inferstack) whose secret value is the kubeconfig.",
    )
    context: str | None = Field(default=None, min_length=1, max_length=253, description="kubeconfig context to use.")
    version: str = Field(
        pattern=K8S_VERSION_PATTERN,
        description="The cluster's Kubernetes minor version; manifests are validated against its OpenAPI schema.",
    )

    @model_validator(mode="before")
    @classmethod
    def _no_inline_credentials(cls, data: object) -> object:
        if isinstance(data, dict):
            for key in ("kubeconfig", "token", "client_key", "client_certificate", "password"):
                if key in data:
                    raise FieldError(
                        key,
                        "cluster credentials never go in the spec file (it is committed and printed): store the "
                        "kubeconfig as a secret, `pulumi config set --secret inferstack:kubeconfig < kubeconfig`, "
                        "or in an ESC environment's pulumiConfig, and name that key in kubeconfig_config_key",
                    )
        return data


class WholeGpus(StrictModel):
    """Each replica gets whole GPUs (tensor parallel across them when the model needs more than one)."""

    mode: Literal["whole"]


class MigSharing(StrictModel):
    """Every GPU of the pool is split into identical MIG instances of one profile; a replica gets one."""

    mode: Literal["mig"]
    profile: str = Field(description="A MIG profile of the pool's GPU model, e.g. 3g.40gb on an A100 80GB.")


class TimeSlicing(StrictModel):
    """Each GPU is advertised as N devices that share it in time (no memory isolation)."""

    mode: Literal["time-slicing"]
    replicas: int = Field(ge=2, le=48, description="Devices each GPU is advertised as.")


GpuSharing = Annotated[WholeGpus | MigSharing | TimeSlicing, Field(discriminator="mode")]


class ReplicaBounds(StrictModel):
    min: int = Field(
        ge=1,
        le=MAX_INSTANCES,
        description="Replicas always running. At least 1: with no pod, nothing publishes the metric that would "
        "wake the pool (the overflow gateway, when it exists, carries load elsewhere).",
    )
    max: int = Field(ge=1, le=MAX_INSTANCES)

    @model_validator(mode="after")
    def _ordered(self) -> ReplicaBounds:
        if self.max < self.min:
            raise FieldError("max", f"must be >= min (got {self.max} < {self.min})")
        return self


class NodePool(StrictModel):
    """GPU nodes of the cluster that serve the target: named nodes (inferstack patches their labels
    and taints, never owns them) or nodes the cluster already labels (selected, not patched)."""

    nodes: list[Annotated[str, StringConstraints(pattern=K8S_NODE_PATTERN)]] | None = Field(
        default=None, min_length=1, description="Node names; inferstack labels and taints them with patches."
    )
    node_selector: dict[str, str] | None = Field(
        default=None,
        min_length=1,
        description="Labels the cluster already puts on the pool's nodes; such nodes are selected, not patched, "
        "so their taint and GPU-sharing labels are the cluster's to set.",
    )
    node_count: int | None = Field(
        default=None, ge=1, le=MAX_INSTANCES, description="With node_selector: how many nodes it selects."
    )
    gpu: str = Field(description="GPU model of the nodes, from the catalog (e.g. H100-80GB, A100-80GB).")
    gpus_per_node: int = Field(ge=1, le=16)
    sharing: GpuSharing = Field(default_factory=lambda: WholeGpus(mode="whole"))
    replicas: ReplicaBounds
    dedicated_taint: bool = Field(
        default=False,
        description="apply mode, named nodes: also taint them NoSchedule inferstack.io/dedicated=<pool>, so only the "
        "pool's engine (and the GPU operator's agents) runs there. A node's taints are one atomic list owned whole by "
        "whoever applies it: use it only on nodes whose taints nothing else sets (the patch fails on a conflict, it "
        "never takes other managers' taints). Default: the site taints its nodes and lists them in tolerations.",
    )
    tolerations: list[Toleration] = Field(
        default_factory=list,
        description="The site's own taints on the pool's nodes: the engine's pods and the GPU operator's node agents "
        "tolerate them.",
    )
    node_cpus: int | None = Field(
        default=None,
        ge=1,
        le=4096,
        description="CPUs one node has for pods (its Allocatable, less the node agents' requests): checked against the "
        "replicas its GPUs hold, each requesting the engine's CPUs.",
    )
    node_memory_gib: int | None = Field(
        default=None,
        ge=1,
        le=65536,
        description="Memory (GiB) one node has for pods (its Allocatable, less the node agents' requests): checked "
        "against the replicas its GPUs hold, each requesting the engine's memory and shared memory.",
    )
    hardware_usd_per_node: float | None = Field(
        default=None,
        gt=0,
        le=100_000_000,
        allow_inf_nan=False,
        description="What one node of this pool cost to buy (default: the target's cost.hardware_usd_per_node).",
    )

    @model_validator(mode="after")
    def _one_way_to_select(self) -> NodePool:
        if (self.nodes is None) == (self.node_selector is None):
            raise ValueError("set exactly one of 'nodes' (node names) or 'node_selector' (labels the nodes carry)")
        if self.node_selector is not None and self.node_count is None:
            raise FieldError(
                "node_count", "with node_selector, say how many nodes it selects (replicas are bounded by it)"
            )
        if self.nodes is not None and self.node_count is not None:
            raise FieldError("node_count", "is implied by the list of nodes: remove it")
        if self.nodes is not None and len(set(self.nodes)) != len(self.nodes):
            raise FieldError("nodes", "a node is listed twice")
        if self.dedicated_taint and self.nodes is None:
            raise FieldError(
                "dedicated_taint",
                "only named nodes are patched: nodes selected by the cluster's labels carry the cluster's taints; "
                "list those in tolerations",
            )
        return self

    @property
    def size(self) -> int:
        return len(self.nodes) if self.nodes is not None else (self.node_count or 0)


# Kubernetes label keys and values ("Labels and Selectors", kubernetes.io/docs/concepts/overview/
# working-with-objects/labels): a key is an optional DNS-subdomain prefix (at most 253 characters)
# and '/', then a name of at most 63 characters of alphanumerics, '-', '_' and '.', starting and
# ending with an alphanumeric; a value is empty or such a name.
_LABEL_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)$")
_LABEL_PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$")


def k8s_label_map(labels: dict[str, str]) -> dict[str, str]:
    """Every key and value a valid Kubernetes label, or an error naming the one that is not."""
    for key, value in labels.items():
        prefix, _, name = key.rpartition("/")
        if not _LABEL_NAME.match(name) or (prefix and (len(prefix) > 253 or not _LABEL_PREFIX.match(prefix))):
            raise FieldError(
                (key,),
                "is not a Kubernetes label key: an optional DNS prefix and '/', then at most 63 characters of "
                "a-z, A-Z, 0-9, '-', '_' and '.', starting and ending with a letter or digit (e.g. release)",
            )
        if value and not _LABEL_NAME.match(value):
            raise FieldError(
                (key,),
                f"{value!r} is not a Kubernetes label value: at most 63 characters of a-z, A-Z, 0-9, '-', '_' "
                "and '.', starting and ending with a letter or digit",
            )
    return labels


def store_cidrs(cidrs: list[str]) -> list[str]:
    """The object store's address ranges: IPv4 networks (host bits zero), none twice, none wider than
    a /8 (a range that wide would open the engine's egress to most of the internet)."""
    seen: list[ipaddress.IPv4Network] = []
    for i, cidr in enumerate(cidrs):
        try:
            net = ipaddress.IPv4Network(cidr)
        except ValueError:
            raise FieldError(
                (i,), f"{cidr!r} is not an IPv4 network like 10.20.30.0/24 (host bits zero; a single host is /32)"
            ) from None
        if net.prefixlen < 8:
            raise FieldError((i,), f"{cidr} is wider than a /8: name the store's own addresses, not the internet")
        if net in seen:
            raise FieldError((i,), f"{cidr} is listed twice")
        seen.append(net)
    return cidrs


class S3Weights(StrictModel):
    """An S3-compatible store inside the site (MinIO, Ceph RGW, ...)."""

    endpoint: str = Field(pattern=r"^https://[^\s/]+(/[^\s]*)?$", description="https URL of the store.")
    endpoint_cidrs: Annotated[list[str], AfterValidator(store_cidrs)] = Field(
        min_length=1,
        max_length=32,
        description="The IPv4 networks the endpoint's addresses are in (e.g. the store's load balancer, "
        "10.20.30.40/32): the engine's egress NetworkPolicy opens the endpoint's port to them only, since a "
        "NetworkPolicy selects addresses, not host names.",
    )
    bucket: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    prefix: str = Field(default="", pattern=r"^[^\s]*$")
    credentials_secret: K8sName = Field(
        description="Secret in the target's namespace with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY."
    )
    ca_secret: K8sName | None = Field(default=None, description="Secret with the store's CA bundle (ca.crt).")
    fetch_image: ImageRef = Field(
        description="Image of the init container that copies the weights, from the site's registry mirror: it runs "
        "`aws s3 sync` (AWS CLI v2 on the PATH, e.g. a mirror of amazon/aws-cli), as a non-root user."
    )
    region: str = Field(
        default="us-east-1",
        pattern=r"^[a-z0-9-]{1,32}$",
        description="The signing region the store expects (MinIO and Ceph RGW accept us-east-1 unless configured).",
    )


class OnPremWeights(StrictModel):
    """Where the model's weights are on the site: a claim that holds them, or the site's object store
    fetched by an init container into a cache volume. Nothing comes from the internet."""

    pvc: K8sName | None = Field(default=None, description="An existing PersistentVolumeClaim holding the weights.")
    pvc_access_mode: Literal["ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"] | None = Field(
        default=None,
        description="With pvc (required): the claim's access mode (its spec.accessModes). Replicas on several nodes "
        "mount it at once, so ReadOnlyMany or ReadWriteMany; ReadWriteOnce only when the target's one pool is "
        "one node. The engine mounts it read-only.",
    )
    path: str = Field(default="", pattern=r"^[^\s]*$", description="Directory of the weights inside the claim.")
    s3: S3Weights | None = None
    cache_gib: int | None = Field(
        default=None, ge=1, le=65536, description="Size of the cache volume for s3 weights (default: weights x 1.2)."
    )

    @model_validator(mode="after")
    def _one_source(self) -> OnPremWeights:
        if (self.pvc is None) == (self.s3 is None):
            raise ValueError("set exactly one of 'pvc' (a claim that holds the weights) or 's3' (the site's store)")
        if self.pvc is not None and self.pvc_access_mode is None:
            raise FieldError(
                "pvc_access_mode",
                "state the claim's access mode (kubectl get pvc <name> -o jsonpath='{.spec.accessModes}'): "
                "replicas on several nodes need ReadOnlyMany or ReadWriteMany",
            )
        if self.pvc is None and self.pvc_access_mode is not None:
            raise FieldError("pvc_access_mode", "only a pvc has an access mode: remove it")
        if self.pvc_access_mode == "ReadWriteOncePod":
            raise FieldError(
                "pvc_access_mode",
                "a ReadWriteOncePod claim admits one pod in the whole cluster: a second replica, or the rollout's "
                "new pod, never starts. Put the weights on a ReadOnlyMany or ReadWriteMany claim",
            )
        if self.cache_gib is not None and self.s3 is None:
            raise FieldError("cache_gib", "only s3 weights are fetched into a cache volume")
        if ".." in self.path.split("/"):
            raise FieldError("path", "must stay inside the claim: a path with '..' is refused (a volume's subPath)")
        return self


class OnPremAutoscaling(StrictModel):
    via: Literal["keda", "hpa"] = Field(
        default="keda",
        description="keda: a ScaledObject on the engine's metric from Prometheus. hpa: an HPA on a custom "
        "metric served by the Prometheus adapter (which must expose it).",
    )
    signal: Literal["in_flight", "queue_depth"] = Field(
        default="in_flight",
        description="in_flight (default): running plus waiting requests per replica; queue_depth: waiting ones "
        "(scale-in still waits for replicas to be idle). The engine's own gauges, scraped by Prometheus.",
    )
    target: float = Field(gt=0, le=100_000, allow_inf_nan=False, description="Per replica.")
    prometheus_url: str = Field(
        default="http://prometheus-operated.monitoring.svc:9090",
        pattern=r"^https?://[^\s]+$",
        description="Prometheus that scrapes the engine (KEDA queries it).",
    )
    scale_in_cooldown: int = Field(default=300, ge=60, le=3600)


class OnPremMonitoring(StrictModel):
    """What the site's Prometheus needs to scrape what inferstack declares."""

    service_monitor_labels: Annotated[dict[str, str], AfterValidator(k8s_label_map)] = Field(
        min_length=1,
        max_length=16,
        description="Labels the site's Prometheus selects ServiceMonitors by (its serviceMonitorSelector; "
        "kube-prometheus-stack selects release: <its release name>). They go on the engine's ServiceMonitor and "
        "the GPU operator's DCGM exporter one: a ServiceMonitor Prometheus does not select is never scraped, "
        "and the autoscaler then has no metric.",
    )


class OnPremIngress(StrictModel):
    """An internal route with TLS in front of the Service, when the spec names a host and a TLS Secret."""

    host: str = Field(pattern=DNS_NAME)
    tls_secret: K8sName
    via: Literal["gateway-api", "ingress"] = "gateway-api"
    gateway: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9-]+/[a-z0-9-]+$",
        description="gateway-api: the internal Gateway (namespace/name) the HTTPRoute attaches to.",
    )
    ingress_class: str | None = Field(default=None, description="ingress: the internal ingress class.")
    listener: K8sName | None = Field(
        default=None,
        description="gateway-api (required): the Gateway's HTTPS listener (the route's sectionName). Without it "
        "a route attaches to every listener that admits it, plain HTTP included.",
    )
    controller_namespace: K8sName | None = Field(
        default=None,
        description="ingress: the namespace of the ingress controller's pods, admitted to the engine by its "
        "NetworkPolicy (gateway-api admits the Gateway's namespace).",
    )

    @model_validator(mode="after")
    def _parent(self) -> OnPremIngress:
        if self.via == "gateway-api" and self.gateway is None:
            raise FieldError("gateway", "name the internal Gateway (namespace/name) the route attaches to")
        if self.via == "gateway-api" and self.listener is None:
            raise FieldError(
                "listener",
                "name the Gateway's HTTPS listener (its sectionName): a route without one attaches to every "
                "listener of the Gateway, plain HTTP ones included",
            )
        if self.via == "ingress" and self.ingress_class is None:
            raise FieldError("ingress_class", "name the internal ingress class")
        if self.via == "ingress" and self.listener is not None:
            raise FieldError("listener", "is a Gateway listener: only via: gateway-api attaches to one")
        if self.via == "gateway-api" and self.controller_namespace is not None:
            raise FieldError(
                "controller_namespace", "gateway-api admits the Gateway's namespace: list others in allowed_namespaces"
            )
        return self


class GpuOperator(StrictModel):
    chart_version: str = Field(default="v25.10.0", pattern=r"^v?\d+\.\d+\.\d+$")
    chart_repository: str = Field(
        default="https://helm.ngc.nvidia.com/nvidia",
        pattern=r"^(https|oci)://[^\s]+$",
        description="The chart's repository; an air-gapped site points this at its mirror.",
    )
    driver: Literal["operator", "preinstalled"] = Field(
        default="operator", description="operator: the operator installs the driver; preinstalled: the nodes have it."
    )
    driver_version: str | None = Field(
        default=None,
        pattern=r"^\d+(\.\d+){0,2}$",
        description="driver: operator: the driver's version (e.g. 570.172.08); with driver_precompiled, its branch "
        "(e.g. 580).",
    )
    driver_repo_config: K8sName | None = Field(
        default=None,
        description="driver: operator: a ConfigMap in the operator's namespace whose files (.list/.sources on Ubuntu, "
        ".repo on RHEL) point the driver container's package manager at the site's package mirror (kernel headers, "
        "compilers); the site creates it. The chart's driver.repoConfig.configMapName.",
    )
    driver_precompiled: bool = Field(
        default=False,
        description="driver: operator: run NVIDIA's precompiled driver image of the branch driver_version names "
        "(from the site's registry mirror), which needs no OS packages. The chart's driver.usePrecompiled.",
    )
    manage: bool = Field(default=True, description="false: the cluster already runs the operator; configure it only.")
    namespace: K8sName = Field(
        default="gpu-operator",
        description="The operator's own namespace (labelled privileged for Pod Security: its driver, toolkit and "
        "device-plugin pods need host access); with manage: false, the namespace the cluster's operator runs in.",
    )

    @model_validator(mode="after")
    def _driver_source(self) -> GpuOperator:
        """Where the operator's driver comes from is said once: the branch of a precompiled image, or a full
        version built against the site's package mirror, or the nodes' own driver. That an operator-built
        driver names its mirror at all is a spec check (checks.py), since it is also the default's concern."""
        if self.driver == "preinstalled":
            for field in ("driver_version", "driver_repo_config", "driver_precompiled"):
                if getattr(self, field):
                    raise FieldError(field, "the nodes' own driver is used (driver: preinstalled): remove it")
            return self
        if self.driver_precompiled and self.driver_repo_config is not None:
            raise FieldError(
                "driver_repo_config",
                "a precompiled driver image installs no OS packages: remove driver_repo_config or driver_precompiled",
            )
        if self.driver_precompiled and (self.driver_version is None or "." in self.driver_version):
            raise FieldError(
                "driver_version",
                'with driver_precompiled, name the driver branch the image is built for (e.g. "580"); the chart '
                "picks the image <branch>-<kernel>-<os> (NVIDIA GPU Operator docs, Precompiled Driver Containers)",
            )
        if not self.driver_precompiled and self.driver_version is not None and "." not in self.driver_version:
            raise FieldError(
                "driver_version",
                f"{self.driver_version!r} is a driver branch: a driver built on the nodes needs its full version "
                "(e.g. 570.172.08), or set driver_precompiled: true for the branch's precompiled image",
            )
        return self


class OnPremCost(StrictModel):
    """What owning the site's GPUs costs, for `inferstack cost`: the hardware written off over its
    life, the power it draws (board power at full load, a conservative figure), and running it."""

    hardware_usd_per_node: float = Field(
        gt=0,
        le=100_000_000,
        allow_inf_nan=False,
        description="Purchase price of one GPU node (servers, GPUs, network share).",
    )
    amortization_months: int = Field(default=36, ge=1, le=120, description="Months the hardware is written off over.")
    gpu_watts: int | None = Field(
        default=None, ge=1, le=5000, description="Power per GPU (default: the catalog's board power of the pool's GPU)."
    )
    host_watts_per_node: int = Field(
        default=800, ge=0, le=20000, description="CPUs, memory, fans and NICs of one node."
    )
    pue: float = Field(
        default=1.4, ge=1.0, le=3.0, allow_inf_nan=False, description="The site's power usage effectiveness."
    )
    usd_per_kwh: float = Field(gt=0, le=10, allow_inf_nan=False, description="Price of a kWh at the site.")
    operations_usd_per_node_month: float = Field(
        default=0,
        ge=0,
        le=1_000_000,
        allow_inf_nan=False,
        description="Rack space, support and staff, per node and month.",
    )


class OnPremK8sTarget(TargetBase):
    """GPU nodes of an existing Kubernetes cluster on the team's site, and the engine on them."""

    kind: Literal["onprem-k8s"]
    location: str = Field(
        pattern=COUNTRY_PATTERN,
        description="Country of the site (ISO 3166-1, lower case): residency applies to it as to a cloud region.",
    )
    cluster: KubernetesCluster
    mode: Literal["apply", "render"] = Field(
        default="apply", description="apply: pulumi-kubernetes applies to the cluster; render: write manifests."
    )
    render_dir: str | None = Field(default=None, description="render: the directory the manifests go to.")
    gitops: Literal["flux", "argocd"] = Field(
        default="flux",
        description="render: how the GPU operator chart is declared (Flux HelmRelease or Argo CD Application).",
    )
    namespace: K8sName | None = Field(default=None, description="Namespace of the engine (default <stack>-<target>).")
    registry: str = Field(
        pattern=r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:\d+)?(/[a-z0-9._-]+)*$",
        description="The site's registry mirror: every image must come from it.",
    )
    image: ImageRef | None = Field(default=None, description="This target's engine image (default: serving.image).")
    pools: dict[Name, NodePool] = Field(min_length=1)
    weights: OnPremWeights
    autoscaling: OnPremAutoscaling
    monitoring: OnPremMonitoring
    gpu_operator: GpuOperator = Field(default_factory=GpuOperator)
    allowed_namespaces: list[K8sName] = Field(
        default_factory=list,
        description="Namespaces whose pods may reach the engine (gateway, metrics scraper); all others are denied.",
    )
    ingress: OnPremIngress | None = None
    cost: OnPremCost | None = Field(
        default=None, description="What the site's GPUs cost to own: `inferstack cost` compares it with renting."
    )

    @model_validator(mode="after")
    def _render_dir(self) -> OnPremK8sTarget:
        if self.mode == "render" and not self.render_dir:
            raise FieldError("render_dir", "mode: render writes manifests to a directory: name it")
        if self.mode == "apply" and self.render_dir is not None:
            raise FieldError("render_dir", "only mode: render writes a directory: remove it or set mode: render")
        if self.mode == "render":
            for name in sorted(self.pools):
                if self.pools[name].dedicated_taint:
                    raise FieldError(
                        ("pools", name, "dedicated_taint"),
                        "render mode writes no taints (a GitOps apply of a Node's taint list would replace the "
                        "site's other taints): the site taints its nodes; list the taint in the pool's tolerations",
                    )
        if self.weights.pvc_access_mode == "ReadWriteOnce" and not self._one_node():
            raise FieldError(
                ("weights", "pvc_access_mode"),
                "a ReadWriteOnce claim mounts on one node only, and this target's replicas run on several: the "
                "pods on the other nodes never start. Put the weights on a ReadOnlyMany or ReadWriteMany claim",
            )
        return self

    def _one_node(self) -> bool:
        """Every replica of the target on one node: one pool of one node."""
        return len(self.pools) == 1 and next(iter(self.pools.values())).size == 1

    @property
    def cloud(self) -> str:
        return "onprem"

    @property
    def region(self) -> str:
        """Residency treats the site's country like a cloud region (catalog.known_regions)."""
        return self.location


Target = Annotated[AwsGpuFleetTarget | GcpGpuFleetTarget | GcpTpuTarget | OnPremK8sTarget, Field(discriminator="kind")]


ACM_ARN = r"^arn:aws[a-z-]*:acm:([a-z0-9-]+):\d{12}:certificate/[0-9a-f-]+$"
PCA_ARN = r"^arn:aws[a-z-]*:acm-pca:([a-z0-9-]+):\d{12}:certificate-authority/[0-9a-f-]+$"
GCP_CERT = r"^projects/[a-z][a-z0-9-]{4,28}[a-z0-9]/regions/([a-z0-9-]+)/sslCertificates/[a-z]([-a-z0-9]*[a-z0-9])?$"
PRINCIPAL = r"^(\*|\d{12}|arn:aws[a-z-]*:iam::\d{12}:(root|role/[\w+=,.@/-]+|user/[\w+=,.@/-]+))$"
PATTERN_HINTS.update(
    {
        f"{ACM_ARN}|{GCP_CERT}": "must be an ACM certificate ARN (arn:aws:acm:<region>:<account>:certificate/<id>) or "
        "a regional SSL certificate (projects/<project>/regions/<region>/sslCertificates/<name>)",
        DNS_NAME: "must be a DNS name like llm.internal.example.com",
        ACM_ARN: "must be an ACM certificate ARN (arn:aws:acm:<region>:<account>:certificate/<id>)",
        PCA_ARN: "must be an ACM Private CA ARN (arn:aws:acm-pca:<region>:<account>:certificate-authority/<id>)",
        GCP_CERT: "must be a regional SSL certificate: projects/<project>/regions/<region>/sslCertificates/<name>",
        PRINCIPAL: "must be an AWS account id, or an account's root, role or user ARN",
    }
)


class AwsEndpointConsumer(StrictModel):
    """A consumer VPC (same account and region as the target) that gets an interface endpoint."""

    vpc_id: str = Field(pattern=VPC_ID_PATTERN)
    subnet_ids: list[Annotated[str, StringConstraints(pattern=SUBNET_ID_PATTERN)]] = Field(min_length=1)


class GcpEndpointConsumer(StrictModel):
    """A consumer network that gets a Private Service Connect endpoint (a forwarding rule)."""

    project: GcpProject
    network: str
    subnetwork: str


class Endpoint(StrictModel):
    """How consumers reach the model: privately, from the VPCs and projects named here only.

    One section for every target: AWS targets get an internal NLB with a TLS listener behind a
    PrivateLink endpoint service; GCP targets get an internal HTTPS load balancer behind a
    Private Service Connect attachment.
    """

    allowed_principals: list[Annotated[str, StringConstraints(pattern=PRINCIPAL)]] = Field(
        default_factory=list, description="AWS accounts or IAM principals that may connect (PrivateLink)."
    )
    allow_any_principal: bool = Field(
        default=False, description="Opt-in: let any AWS principal request a connection ('*'). The pack flags it."
    )
    consumer_projects: list[GcpProject] = Field(
        default_factory=list, description="GCP projects whose PSC endpoints are accepted."
    )
    certificates: list[Annotated[str, StringConstraints(pattern=f"{ACM_ARN}|{GCP_CERT}")]] = Field(
        default_factory=list,
        description="TLS certificates: an ACM certificate ARN per AWS region, a regional SSL certificate per GCP region.",
    )
    private_ca_arn: str | None = Field(
        default=None, pattern=PCA_ARN, description="Issue ACM private certificates from this CA (AWS, its region)."
    )
    private_dns_name: str | None = Field(
        default=None,
        pattern=DNS_NAME,
        description=(
            "The name consumers resolve (a private hosted zone in each AWS consumer VPC); the certificate must "
            "cover it. With several AWS targets, each answers to <target>.<this name>, so cover *.<this name>."
        ),
    )
    aws_consumers: list[AwsEndpointConsumer] = Field(default_factory=list)
    gcp_consumers: list[GcpEndpointConsumer] = Field(default_factory=list)
    deletion_protection: bool | None = Field(
        default=None, description="Protect the load balancers from deletion (default: on in environment prod)."
    )

    @field_validator("allowed_principals")
    @classmethod
    def _no_wildcard(cls, v: list[str]) -> list[str]:
        for i, principal in enumerate(v):
            if principal == "*":
                raise FieldError(
                    (i,),
                    "a wildcard principal lets any AWS account connect: list the accounts, "
                    "or set allow_any_principal: true to opt in explicitly",
                )
        return v


# -- traffic: what `inferstack simulate` replays (and the cost issue will price) -----------------

TRAFFIC_SHAPES = ("steady", "business-day", "spike", "on-off-batch")


class ReplicaCapacity(StrictModel):
    """What one replica of a target serves, when measured; unset fields fall back to the estimate
    in inferstack/planning/replica.py (labelled as an estimate in the report)."""

    concurrent_sequences: int | None = Field(
        default=None, ge=1, le=100_000, description="Sequences one replica decodes at once."
    )
    output_tokens_per_second: float | None = Field(
        default=None,
        gt=0,
        le=10_000_000,
        allow_inf_nan=False,
        description="Output tokens per second one replica produces at that concurrency (all sequences together).",
    )


class TargetTraffic(StrictModel):
    share: float | None = Field(
        default=None,
        ge=0,
        le=1_000_000,
        allow_inf_nan=False,
        description="Relative share of the requests this target receives (default: equal shares; 0 for an "
        "overflow burst target, which receives only what the primary spills).",
    )
    replica: ReplicaCapacity = Field(default_factory=ReplicaCapacity)


class Traffic(StrictModel):
    """A day of requests, replayed by `inferstack simulate` through the plan's scaling configuration."""

    shape: Literal["steady", "business-day", "spike", "on-off-batch"] = Field(
        default="steady",
        description="Built-in daily shape, scaled so its busiest hour is peak_requests_per_hour.",
    )
    peak_requests_per_hour: float = Field(default=600, gt=0, le=100_000_000, allow_inf_nan=False)
    requests_per_hour: list[Annotated[float, Field(ge=0, le=100_000_000, allow_inf_nan=False)]] | None = Field(
        default=None,
        min_length=24,
        max_length=24,
        description="24 hourly request rates (UTC hours 0..23); replaces shape and peak when given.",
    )
    input_tokens: int = Field(default=1000, ge=1, le=10_000_000, description="Prompt tokens per request (mean).")
    output_tokens: int = Field(default=250, ge=1, le=10_000_000, description="Generated tokens per request (mean).")
    burstiness: float = Field(
        default=1.0,
        ge=1.0,
        le=100.0,
        allow_inf_nan=False,
        description="1: Poisson arrivals. Above 1: the rate of each minute varies (gamma, variance/mean = burstiness).",
    )
    slo_ttft_seconds: float = Field(
        default=10.0,
        gt=0,
        le=86_400,
        allow_inf_nan=False,
        description="Time to first token a request should not exceed.",
    )
    client_timeout_seconds: int = Field(
        default=900, ge=1, le=86_400, description="A request still waiting this long is given up (refused)."
    )
    target_utilization: float = Field(
        default=0.7,
        gt=0,
        le=1,
        allow_inf_nan=False,
        description="Share of a replica's slots the sizing counts on at the peak hour (headroom for bursts).",
    )
    spot_interruptions_per_hour: float = Field(
        default=0.0, ge=0, le=60, allow_inf_nan=False, description="Reclaims per spot replica per hour."
    )
    targets: dict[Name, TargetTraffic] = Field(
        default_factory=dict, description="Per-target share and replica capacity."
    )


# The only retention periods CloudWatch Logs accepts (PutRetentionPolicy, retentionInDays).
CLOUDWATCH_RETENTION_DAYS = (
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)
PRODUCTION_LOG_RETENTION_DAYS = 365
DEFAULT_LOG_RETENTION_DAYS = 30


SNS_TOPIC_ARN_PATTERN = r"^arn:aws(-[a-z]+)*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}$"
PATTERN_HINTS[SNS_TOPIC_ARN_PATTERN] = "must be an SNS topic ARN: arn:aws:sns:<region>:<account>:<topic>"
NOTIFICATION_CHANNEL_PATTERN = r"^projects/[a-z][a-z0-9-]{4,28}[a-z0-9]/notificationChannels/[0-9]+$"
PATTERN_HINTS[NOTIFICATION_CHANNEL_PATTERN] = (
    "must be a Cloud Monitoring notification channel: projects/<project>/notificationChannels/<id>"
)
PROM_LABEL_PATTERN = r"^[a-zA-Z_][a-zA-Z0-9_]*$"
PATTERN_HINTS[PROM_LABEL_PATTERN] = (
    "must be a Prometheus label name: letters, digits and '_', not starting with a digit"
)


class Slos(StrictModel):
    """Service-level objectives of every serving target, in the user's terms. Each alert that
    watches one is listed by `inferstack plan`; `null` turns an objective off."""

    latency_p95_seconds: float | None = Field(
        default=30.0, gt=0, description="95% of requests finish (last token) within this many seconds."
    )
    latency_p99_seconds: float | None = Field(
        default=60.0, gt=0, description="99% of requests finish within this many seconds."
    )
    ttft_p95_seconds: float | None = Field(
        default=2.0, gt=0, description="95% of requests see their first token within this many seconds."
    )
    error_rate: float | None = Field(
        default=0.05,
        gt=0,
        lt=1,
        description="Share of requests that may fail (engine 5xx or aborted) over an hour and its last 5 minutes "
        "before it pages.",
    )
    availability: float | None = Field(
        default=0.995,
        gt=0,
        lt=1,
        description="Share of requests that succeed over the window: its error budget (1 - availability) is "
        "watched by multi-window burn-rate alerts.",
    )
    window_days: int = Field(default=30, ge=1, le=90, description="The window the availability objective is over.")

    @model_validator(mode="after")
    def _ordered(self) -> Slos:
        if (
            self.latency_p95_seconds is not None
            and self.latency_p99_seconds is not None
            and self.latency_p99_seconds < self.latency_p95_seconds
        ):
            raise ValueError(
                f"latency_p99_seconds ({self.latency_p99_seconds}) is below latency_p95_seconds "
                f"({self.latency_p95_seconds}): the 99th percentile is never faster than the 95th; raise it"
            )
        return self


class AlertRouting(StrictModel):
    """Where alerts go, on each platform's own alerting."""

    aws_sns_topic_arn: str | None = Field(
        default=None,
        pattern=SNS_TOPIC_ARN_PATTERN,
        description="An existing SNS topic the AWS alarms notify (in the target's region). Default: the stack "
        "creates one per region, encrypted with the stack's KMS key; subscribe to it.",
    )
    gcp_notification_channels: list[Annotated[str, Field(pattern=NOTIFICATION_CHANNEL_PATTERN)]] = Field(
        default_factory=list,
        description="Cloud Monitoring notification channels the GCP alert policies notify. With none, the "
        "policies still open incidents in the console.",
    )
    alertmanager_labels: dict[Annotated[str, Field(pattern=PROM_LABEL_PATTERN)], str] = Field(
        default_factory=dict,
        description="Labels on every on-prem alert, which the site's Alertmanager routes by (for example "
        "team: ml-platform). `severity` (page or ticket) is set per alert.",
    )

    @field_validator("alertmanager_labels")
    @classmethod
    def _reserved(cls, v: dict[str, str]) -> dict[str, str]:
        # inferstack sets these on every alert (planning.onprem.observability); one here would be overwritten.
        for reserved in ("severity", "slo", "alertname", "namespace", "inferstack_target"):
            if reserved in v:
                raise ValueError(f"'{reserved}' is set by inferstack on every alert; route by another label")
        return v


class Observability(StrictModel):
    """Logs, metrics, dashboards and SLO alerts of every target."""

    slos: Slos = Field(default_factory=Slos)
    alerts: AlertRouting = Field(default_factory=AlertRouting)
    metrics_log_retention_days: int | None = Field(
        default=None,
        description="Days the AWS log group of the nodes' embedded-metric-format events keeps them (one of "
        "CloudWatch's periods). Default: log_retention_days; a shorter one is an advisory finding of the "
        "policy pack. The metrics themselves are kept by each service: CloudWatch 15 months, Cloud Monitoring "
        "24 months, the site's Prometheus by its own retention.",
    )

    log_retention_days: int | None = Field(
        default=None,
        description=(
            "Days every log group the stack creates keeps its events (engine logs, VPC flow logs): one of "
            "CloudWatch's periods. Default: 365 in a production environment (prod, production), 30 otherwise."
        ),
    )

    @field_validator("log_retention_days", "metrics_log_retention_days")
    @classmethod
    def _cloudwatch_period(cls, v: int | None) -> int | None:
        if v is not None and v not in CLOUDWATCH_RETENTION_DAYS:
            nearest = min(CLOUDWATCH_RETENTION_DAYS, key=lambda d: (abs(d - v), d))
            raise ValueError(
                f"CloudWatch Logs keeps events for one of {', '.join(map(str, CLOUDWATCH_RETENTION_DAYS))} days "
                f"only (got {v}); the nearest is {nearest}"
            )
        return v


# -- hybrid overflow -----------------------------------------------------------------------------

Classification = Literal["public", "internal", "confidential", "restricted"]
# Data of these classifications never leaves the primary site, whatever the spec says.
NEVER_OVERFLOW: frozenset[str] = frozenset({"confidential", "restricted"})
DEFAULT_OVERFLOW_CLASSIFICATIONS: tuple[Classification, ...] = ("public", "internal")
HEADER_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
PATTERN_HINTS[HEADER_PATTERN] = "must be a lower-case HTTP header name: a-z, 0-9 and '-'"


class OverflowTrigger(StrictModel):
    """When allowed requests spill from the primary to the burst targets. Any one condition fires it."""

    pending_requests: int | None = Field(
        default=32,
        ge=1,
        le=100_000,
        description="Requests waiting on the primary (its engines' queues, summed) above this...",
    )
    for_seconds: int = Field(default=30, ge=5, le=3600, description="...for this long.")
    p95_latency_ms: int | None = Field(
        default=None, ge=100, le=600_000, description="Or the primary's p95 request latency above this."
    )
    primary_unhealthy: bool = Field(default=True, description="Or the primary has no healthy replica.")

    @model_validator(mode="after")
    def _some_condition(self) -> OverflowTrigger:
        if self.pending_requests is None and self.p95_latency_ms is None and not self.primary_unhealthy:
            raise ValueError("no condition would ever fire: set pending_requests, p95_latency_ms or primary_unhealthy")
        return self


class AwsVpnLink(StrictModel):
    tunnel_inside_cidrs: list[str] = Field(
        min_length=2,
        max_length=4,
        description="One /30 inside 169.254.0.0/16 per tunnel: two per site device (each device gets a VPN "
        "connection of two tunnels). AWS reserves some ranges: see the checks.",
    )
    transit_gateway_id: str | None = Field(
        default=None,
        pattern=r"^tgw-[0-9a-f]{8,17}$",
        description="Attach the VPN to this transit gateway instead of a virtual private gateway on the VPC.",
    )
    preshared_keys_config_key: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$",
        description="Take the tunnels' pre-shared keys (a JSON list, one per tunnel in connection order: two per "
        "site device; 8-64 letters, digits, '.' or '_', not starting with 0) from this secret stack config key "
        "instead of generating them in the stack.",
    )


# A Cloud Router interface's IPv4 range "must be in the RFC3927 link-local IP address space"
# (Compute API, routers: interfaces[].ipRange), and both BGP addresses of a session share one /30
# ("Create an HA VPN gateway to a peer VPN gateway": link-local addresses in the same /30 of
# 169.254.0.0/16). 169.254.169.254 is the metadata server of every Compute Engine VM ("About VM
# metadata"): a /30 holding it would give a BGP neighbour the address the VMs' metadata requests go to.
LINK_LOCAL = ipaddress.IPv4Network("169.254.0.0/16")
GCP_RESERVED_INSIDE = (ipaddress.IPv4Network("169.254.169.252/30"),)


def _network_or_none(cidr: str) -> ipaddress.IPv4Network | None:
    try:
        return ipaddress.IPv4Network(cidr, strict=False)
    except ValueError:
        return None  # reported by the field's own validator


def gcp_inside_cidrs(cidrs: list[str]) -> list[str]:
    """Each tunnel's inside range: a /30 network of 169.254.0.0/16, none reserved, no two overlapping."""
    nets: list[ipaddress.IPv4Network] = []
    for i, cidr in enumerate(cidrs):
        try:
            net = ipaddress.IPv4Network(cidr)
        except ValueError:
            raise FieldError((i,), f"{cidr!r} is not an IPv4 network like 169.254.10.0/30") from None
        if net.prefixlen != 30 or not net.subnet_of(LINK_LOCAL):
            raise FieldError((i,), f"{cidr} must be a /30 inside 169.254.0.0/16, like 169.254.10.0/30")
        for reserved in GCP_RESERVED_INSIDE:
            if net.overlaps(reserved):
                raise FieldError((i,), f"{cidr} holds 169.254.169.254, the VMs' metadata server: pick another /30")
        for j, other in enumerate(nets):
            if net.overlaps(other):
                raise FieldError((i,), f"{cidr} is tunnel_inside_cidrs[{j}] again: each tunnel needs its own /30")
        nets.append(net)
    return cidrs


class GcpVpnLink(StrictModel):
    tunnel_inside_cidrs: list[str] = Field(
        min_length=2,
        max_length=4,
        # Four make a full mesh (each HA VPN interface to each device); in each /30 the Cloud
        # Router takes the first host and the site the second (planning.overflow.gcp_link).
        description="One /30 inside 169.254.0.0/16 per tunnel: two, or four with two site devices.",
    )
    router_asn: int = Field(default=64514, ge=64512, le=65534, description="The Cloud Router's private ASN.")
    preshared_keys_config_key: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$",
        description="Take the pre-shared keys (one per tunnel) from this secret stack config key.",
    )

    @field_validator("tunnel_inside_cidrs")
    @classmethod
    def _inside(cls, v: list[str]) -> list[str]:
        return gcp_inside_cidrs(v)


# Ranges a VPN device facing the internet cannot have (RFC 1918, shared CGNAT space, loopback, link-local,
# "this network", multicast, reserved). Documentation ranges (RFC 5737) pass: examples use them.
_NOT_ON_THE_INTERNET = tuple(
    ipaddress.IPv4Network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "224.0.0.0/4",
        "240.0.0.0/4",
    )
)


class OverflowLink(StrictModel):
    """The site's side of the site-to-site VPN, and each cloud's tunnel ranges."""

    site_public_ips: list[str] = Field(
        min_length=1, max_length=2, description="The public address of each of the site's VPN devices."
    )
    site_asn: int = Field(ge=1, le=4_294_967_294, description="The site's BGP ASN.")
    onprem_cidrs: list[str] = Field(min_length=1, description="The site's networks the clouds route back to.")
    aws: AwsVpnLink | None = None
    gcp: GcpVpnLink | None = None

    @field_validator("site_public_ips")
    @classmethod
    def _public(cls, v: list[str]) -> list[str]:
        for i, ip in enumerate(v):
            try:
                addr = ipaddress.IPv4Address(ip)
            except ValueError:
                raise FieldError((i,), f"{ip!r} is not an IPv4 address") from None
            if any(addr in net for net in _NOT_ON_THE_INTERNET):
                raise FieldError((i,), f"{ip} is not a public address: the clouds' VPN endpoints reach the site on it")
        return v

    @model_validator(mode="after")
    def _gcp_tunnels_fit_the_site(self) -> OverflowLink:
        """HA VPN's tunnels pair its two interfaces with the site's devices ("HA VPN topologies"):
        one device takes a tunnel from each interface; two devices take one each (interface 0 to
        device 0, 1 to 1) or, as a full mesh, two each."""
        if self.gcp is None:
            return self
        tunnels, devices = len(self.gcp.tunnel_inside_cidrs), len(self.site_public_ips)
        allowed = (2,) if devices == 1 else (2, 4)
        if tunnels not in allowed:
            raise FieldError(
                ("gcp", "tunnel_inside_cidrs"),
                f"{tunnels} tunnels do not fit {devices} site device(s): give "
                + ("2 (one from each HA VPN interface to the device)" if devices == 1 else "2, or 4 for a full mesh"),
            )
        if self.gcp.router_asn == self.site_asn:
            raise FieldError(
                ("gcp", "router_asn"), f"the Cloud Router needs an ASN of its own, not the site's ({self.site_asn})"
            )
        if self.aws is not None:
            # One site device ends both clouds' tunnels: a BGP neighbour address may not repeat.
            aws = [_network_or_none(c) for c in self.aws.tunnel_inside_cidrs]
            for i, cidr in enumerate(self.gcp.tunnel_inside_cidrs):
                if any(a is not None and ipaddress.IPv4Network(cidr).overlaps(a) for a in aws):
                    raise FieldError(
                        ("gcp", "tunnel_inside_cidrs", i),
                        f"{cidr} is an AWS tunnel's inside range too: pick another /30",
                    )
        return self


class OverflowGateway(StrictModel):
    """Envoy in front of the primary's engines on the cluster, and the publisher beside it."""

    image: ImageRef = Field(description="Envoy, from the site's registry mirror, by digest.")
    publisher_image: ImageRef | None = Field(
        default=None,
        description="The metric publisher's image (bash, curl, jq, the AWS CLI v2 and aws_signing_helper "
        "for IAM Roles Anywhere), from the site's registry mirror, by digest. Without it nothing fires "
        "the trigger or publishes the burst fleets' wake metrics: the plan warns that they would never wake.",
    )
    replicas: int = Field(default=2, ge=2, le=20, description="Gateway pods (at least 2: it is the front door).")
    tls_secret: K8sName = Field(description="Secret (tls.crt, tls.key) of the gateway's own TLS listener.")
    client_certificate_secret: K8sName = Field(
        description="Secret (tls.crt, tls.key) the publisher presents to IAM Roles Anywhere; issued by the site CA."
    )
    client_certificate_cn: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9 .@_-]{0,63}$",
        description="The subject CN of that certificate: the publisher's AWS role admits Roles Anywhere sessions of "
        "this certificate only (aws:PrincipalTag/x509Subject/CN), not of every certificate the site CA issues.",
    )
    site_ca_config_key: str = Field(
        default="siteCaPem",
        pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$",
        description="Stack config key holding the site CA's PEM: the Roles Anywhere trust anchor.",
    )
    cloud_ca_secret: K8sName = Field(
        description="Secret (ca.crt) with the CA that issued the burst endpoints' certificates: Envoy verifies them."
    )
    service_account_issuer: str = Field(
        pattern=r"^https://[^\s]+$",
        description="The cluster's service account token issuer (GCP Workload Identity Federation trusts it).",
    )
    jwks_config_key: str = Field(
        default="clusterJwks",
        pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$",
        description="Stack config key holding the cluster's JWKS (GCP WIF verifies its tokens without reaching it).",
    )
    overflow_timeout_seconds: int = Field(
        default=900,
        ge=30,
        le=3600,
        description="How long an overflowed request may wait for a burst target, cold start included.",
    )
    short_timeout_reason: str | None = Field(
        default=None,
        min_length=10,
        description="Why overflow_timeout_seconds may be shorter than a burst target's cold start.",
    )


class Overflow(StrictModel):
    """Steady traffic on the primary (an on-prem target), spikes spilled to cloud targets that sit
    at zero when idle, over a private link; data that must stay on-prem never leaves."""

    primary: Name = Field(description="The onprem-k8s target that serves the baseline.")
    burst: list[Name] = Field(min_length=1, description="Cloud targets, in order of preference.")
    trigger: OverflowTrigger = Field(default_factory=OverflowTrigger)
    classifications: list[Classification] = Field(
        default_factory=lambda: list(DEFAULT_OVERFLOW_CLASSIFICATIONS),
        description="Data classifications allowed to leave the primary. confidential and restricted never do.",
    )
    classification_header: str = Field(
        default="x-data-classification",
        pattern=HEADER_PATTERN,
        description="The request header carrying its classification; a request without it counts as the stack's.",
    )
    link: OverflowLink
    gateway: OverflowGateway

    @field_validator("classifications")
    @classmethod
    def _never_leave(cls, v: list[str]) -> list[str]:
        for i, c in enumerate(v):
            if c in NEVER_OVERFLOW:
                raise FieldError((i,), f"{c} data never leaves the primary site: allow public and internal only")
        return v


class Guardrails(StrictModel):
    """Limits the policy pack checks (advisory): inferstack policy-config passes them on."""

    max_gpus: int = Field(default=64, ge=0, description="GPUs the whole stack may scale to.")
    enforcement: Literal["standard", "strict"] | None = Field(
        default=None,
        description=(
            "How the policy pack enforces its rules for this stack: standard keeps the advisory rules advisory "
            "(reported, not blocking); strict makes every rule mandatory (policy config `all: mandatory`). "
            "Default: strict in environment prod, standard elsewhere."
        ),
    )


class DeploymentSpec(StrictModel):
    """One environment's inference stack."""

    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        frozen=True,
        json_schema_extra={"title": "inferstack deployment spec"},
    )

    version: Literal[1] = 1
    metadata: Metadata
    residency: Residency
    models: dict[Name, Model] = Field(min_length=1)
    serving: Serving
    targets: dict[Name, Target] = Field(min_length=1)
    guardrails: Guardrails = Field(default_factory=Guardrails)
    observability: Observability = Field(default_factory=Observability)
    traffic: Traffic | None = Field(
        default=None, description="A day of traffic for `inferstack simulate` and `plan`'s verdict."
    )
    endpoint: Endpoint | None = Field(default=None, description="Private endpoint for every cloud target.")
    overflow: Overflow | None = Field(
        default=None, description="Hybrid overflow: the on-prem primary, its cloud burst targets and the link."
    )

    def image_of(self, target_name: str) -> str | None:
        """The engine image a target runs: its own, else serving.image."""
        return self.targets[target_name].image or self.serving.image

    def strict_policy(self) -> bool:
        """Whether the policy pack's advisory rules block this stack too (guardrails.enforcement)."""
        if self.guardrails.enforcement is not None:
            return self.guardrails.enforcement == "strict"
        return self.metadata.is_production

    def log_retention_days(self) -> int:
        """The retention of every log group: the spec's, else a year in production, a month elsewhere."""
        if self.observability.log_retention_days is not None:
            return self.observability.log_retention_days
        return PRODUCTION_LOG_RETENTION_DAYS if self.metadata.is_production else DEFAULT_LOG_RETENTION_DAYS

    def metrics_log_retention_days(self) -> int:
        stated = self.observability.metrics_log_retention_days
        return stated if stated is not None else self.log_retention_days()

    def model_of(self, target_name: str) -> tuple[str, Model]:
        """The (name, model) a target serves; checks guarantee the reference resolves."""
        ref = self.targets[target_name].model
        name = ref if ref is not None else next(iter(self.models))
        return name, self.models[name]
