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
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
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

# What each pattern means, for error messages (a regex is no help to a user).
PATTERN_HINTS = {
    NAME_PATTERN: "must be a lower-case name: a-z, 0-9 and '-', starting with a letter, at most 32 characters",
    VPC_ID_PATTERN: "must be a VPC id like vpc-0123456789abcdef0",
    SUBNET_ID_PATTERN: "must be a subnet id like subnet-0123456789abcdef0",
    SSM_PUBLIC_PATTERN: "must be a public SSM parameter path under /aws/service/",
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
        return int(float(m.group(1)) * _SUFFIX[m.group(2)])
    return value


ParamCount = Annotated[int, BeforeValidator(_parse_param_count), Field(gt=0)]


class Metadata(StrictModel):
    name: Name = Field(description="The deployment's name; prefixes every cloud resource.")
    team: Name = Field(description="Owning team, tagged on every resource for cost attribution.")
    environment: Name = Field(description="dev, staging, prod, ...; tagged on every resource.")
    data_classification: Literal["public", "internal", "confidential", "restricted"]


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

    def describe(self) -> str:
        return f"jurisdiction {self.jurisdiction!r}" if self.jurisdiction else f"regions {sorted(self.regions or ())}"


class Architecture(StrictModel):
    """Transformer shape, for sizing the KV cache when the catalog does not know the model."""

    layers: int = Field(gt=0)
    kv_heads: int = Field(gt=0)
    head_dim: int = Field(gt=0)


_WEIGHTS_URI = re.compile(r"^(s3|gs)://[a-z0-9][a-z0-9.\-_]{1,61}[a-z0-9](/[^\s]*)?$|^(hf|oci)://[^\s/]+/[^\s]+$")


class Model(StrictModel):
    parameters: ParamCount = Field(description="Parameter count: an integer or '8B', '70.6B'.")
    precision: Literal["bf16", "fp16", "fp8", "int8", "int4"]
    context_length: int = Field(gt=0, le=2_000_000)
    source: str = Field(description="Weights: s3://bucket/prefix, gs://bucket/prefix, hf://org/name or oci://...")
    architecture: Architecture | None = None

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
        return self.source.split("://", 1)[1].split("/", 1)[0]

    @property
    def prefix(self) -> str:
        """Key prefix inside the bucket, without slashes at either end ('' for the whole bucket)."""
        rest = self.source.split("://", 1)[1]
        return rest.split("/", 1)[1].strip("/") if "/" in rest else ""


_IMAGE = re.compile(
    r"^(?P<repo>[a-z0-9]+(?:[._\-/:][a-z0-9]+)*?)(?::(?P<tag>[\w][\w.\-]{0,127}))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)


class Serving(StrictModel):
    engine: Literal["vllm", "tgi", "tensorrt-llm", "sglang"]
    image: str = Field(description="Container image; pin it by digest (repo@sha256:...).")
    port: int = Field(default=8000, ge=1024, le=65535)
    args: list[str] = Field(default_factory=list, description="Extra engine arguments, appended.")
    health_check_grace_seconds: int | None = Field(
        default=None, ge=60, le=7200, description="Override the grace estimated from the model's size."
    )

    @field_validator("image")
    @classmethod
    def _image(cls, v: str) -> str:
        m = _IMAGE.match(v)
        if not m or not (m.group("tag") or m.group("digest")):
            raise ValueError(f"must be registry/repo@sha256:<digest> (or repo:tag) (got {v!r})")
        return v

    @property
    def image_digest(self) -> str | None:
        m = _IMAGE.match(self.image)
        return m.group("digest") if m else None


class Capacity(StrictModel):
    min: int = Field(ge=0, description="0 lets the fleet scale to zero.")
    max: int = Field(ge=1)
    desired: int | None = Field(default=None, description="Initial size; the autoscaler owns it afterwards.")
    warm_pool: int = Field(default=0, ge=0, description="Stopped, pre-initialised instances kept ready.")

    @model_validator(mode="after")
    def _ordered(self) -> Capacity:
        if self.max < self.min:
            raise FieldError("max", f"must be >= min (got {self.max} < {self.min})")
        if self.desired is not None and not self.min <= self.desired <= self.max:
            raise FieldError("desired", f"must lie within min..max (got {self.desired}, range {self.min}..{self.max})")
        if self.warm_pool > self.max:
            raise FieldError("warm_pool", f"must be <= max (got {self.warm_pool} > {self.max})")
        return self

    @property
    def initial(self) -> int:
        return self.min if self.desired is None else self.desired


class Spot(StrictModel):
    enabled: bool = Field(default=False, description="Serve part of the fleet on spot capacity.")
    on_demand_base: int = Field(default=0, ge=0, description="Instances always on demand.")
    on_demand_percentage: int = Field(default=0, ge=0, le=100, description="On-demand share above the base.")
    allocation_strategy: Literal[
        "price-capacity-optimized", "capacity-optimized", "capacity-optimized-prioritized", "lowest-price"
    ] = "price-capacity-optimized"


Signal = Literal["queue_depth", "gpu_utilization", "requests_per_target"]


class Autoscaling(StrictModel):
    signal: Signal = Field(
        description="queue_depth: waiting requests per instance; gpu_utilization: percent; "
        "requests_per_target: in-flight requests per instance."
    )
    target: float = Field(gt=0)
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
        if v is None:
            return v
        try:
            net = ipaddress.IPv4Network(v)
        except ValueError:
            raise ValueError(f"must be an IPv4 network like 10.64.0.0/16 (got {v!r})") from None
        if not net.is_private or not 16 <= net.prefixlen <= 22:
            raise ValueError(f"must be a private range from /16 to /22 (got {v!r})")
        return v

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


class AwsGpuFleetTarget(StrictModel):
    """An EC2 Auto Scaling group of GPU instances serving one model."""

    kind: Literal["aws-gpu-fleet"]
    model: str | None = Field(default=None, description="Key in 'models'; may be left out when there is one.")
    region: str
    instance_types: list[str] = Field(min_length=1, max_length=20)
    capacity: Capacity
    spot: Spot = Field(default_factory=Spot)
    autoscaling: Autoscaling
    network: AwsNetwork = Field(default_factory=AwsNetwork)
    root_volume_gib: int = Field(default=200, ge=50, le=16384, description="gp3 root volume, holds image and weights.")
    ami_ssm_parameter: str = Field(
        default=DEFAULT_AMI_PARAMETER,
        pattern=SSM_PUBLIC_PATTERN,
        description="Public SSM parameter naming the GPU AMI (NVIDIA driver and container toolkit).",
    )

    @field_validator("instance_types")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        seen: set[str] = set()
        for i, name in enumerate(v):
            if name in seen:
                raise FieldError((i,), f"{name!r} is listed twice")
            seen.add(name)
        return v

    @model_validator(mode="after")
    def _warm_pool_rules(self) -> AwsGpuFleetTarget:
        if self.capacity.warm_pool and (self.spot.enabled or len(self.instance_types) > 1):
            raise FieldError(
                ("capacity", "warm_pool"),
                "AWS refuses a warm pool on a group with a mixed instances policy or spot instances: "
                "set spot.enabled: false and list exactly one instance type, or set warm_pool: 0",
            )
        return self

    @property
    def cloud(self) -> str:
        return "aws"


# Later target kinds join this alias as a discriminated union on `kind`.
Target = AwsGpuFleetTarget


class Guardrails(StrictModel):
    """Limits the policy pack checks (advisory): inferstack policy-config passes them on."""

    max_gpus: int = Field(default=64, ge=0, description="GPUs the whole stack may scale to.")


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

    def model_of(self, target_name: str) -> tuple[str, Model]:
        """The (name, model) a target serves; checks guarantee the reference resolves."""
        ref = self.targets[target_name].model
        name = ref if ref is not None else next(iter(self.models))
        return name, self.models[name]


