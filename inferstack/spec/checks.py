"""Rules that cross sections of a spec or consult the catalog.

They run after pydantic has accepted the shape of the spec, and return every finding at once
(errors and warnings), each blamed on the field a user has to change.
"""

from __future__ import annotations

import re

from inferstack import catalog
from inferstack.catalog import GIB
from inferstack.errors import Finding, did_you_mean
from inferstack.planning import sizing
from inferstack.spec.models import AwsGpuFleetTarget, DeploymentSpec

_ECR_REGION = re.compile(r"^\d{12}\.dkr\.ecr(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com/")


def check_spec(spec: DeploymentSpec) -> list[Finding]:
    findings: list[Finding] = []
    findings += _check_serving(spec)
    findings += _check_opt_outs(spec)
    for name, target in spec.targets.items():
        findings += _check_model_ref(spec, name)
        findings += _check_region(spec, ("targets", name, "region"), target.region, target.cloud)
        if isinstance(target, AwsGpuFleetTarget):
            findings += _check_aws_fleet(spec, name, target)
    return findings


def _check_serving(spec: DeploymentSpec) -> list[Finding]:
    out: list[Finding] = []
    if spec.serving.image_digest is None:
        out.append(
            Finding(
                ("serving", "image"),
                "a tag is mutable, so two nodes may run different engines: pin the image by digest "
                "(repo@sha256:...)",
                "warning",
            )
        )
    ecr = _ECR_REGION.match(spec.serving.image)
    if ecr:
        out += _check_region(spec, ("serving", "image"), ecr.group(1), "aws", what="the image's ECR registry")
    return out


def _check_opt_outs(spec: DeploymentSpec) -> list[Finding]:
    """Opt-outs of secure defaults are allowed, and said out loud: the policy pack blocks them."""
    out = [
        Finding(
            ("residency", "exceptions", i),
            f"{region!r} is an exception to residency: allowed by the spec, blocked by the policy pack "
            "unless its residency config is overridden",
            "warning",
        )
        for i, region in enumerate(spec.residency.exceptions)
    ]
    for name, target in spec.targets.items():
        if isinstance(target, AwsGpuFleetTarget) and target.network.public_ip:
            out.append(
                Finding(
                    ("targets", name, "network", "public_ip"),
                    "serving nodes get public IPs (opt-out of the private-only default); the policy pack flags it",
                    "warning",
                )
            )
    return out


def _check_model_ref(spec: DeploymentSpec, name: str) -> list[Finding]:
    ref = spec.targets[name].model
    loc = ("targets", name, "model")
    if ref is None and len(spec.models) > 1:
        return [Finding(loc, f"required when the spec has several models; one of: {', '.join(sorted(spec.models))}")]
    if ref is not None and ref not in spec.models:
        return [Finding(loc, f"no model named {ref!r} in 'models'{did_you_mean(ref, spec.models)}")]
    return []


def _check_region(spec: DeploymentSpec, loc, region: str, cloud: str, what: str = "region") -> list[Finding]:
    known = catalog.known_regions()
    if region not in known:
        return [Finding(loc, f"unknown {cloud.upper()} region {region!r}{did_you_mean(region, known)}")]
    if known[region] != cloud:
        return [Finding(loc, f"{region!r} is a {known[region].upper()} region; this needs an {cloud.upper()} region")]
    allowed = spec.residency.allowed_regions | set(spec.residency.exceptions)
    if region not in allowed:
        inside = sorted(r for r in allowed if known.get(r) == cloud)
        return [
            Finding(
                loc,
                f"{what} {region!r} is outside residency {spec.residency.describe()}; "
                f"allowed {cloud.upper()} regions: {', '.join(inside) or 'none'}",
            )
        ]
    return []


def _check_aws_fleet(spec: DeploymentSpec, name: str, target: AwsGpuFleetTarget) -> list[Finding]:
    out: list[Finding] = []
    base = ("targets", name)
    engine = catalog.engines()[spec.serving.engine]
    if target.autoscaling.signal == "queue_depth" and engine.queue_metric is None:
        out.append(
            Finding(
                (*base, "autoscaling", "signal"),
                f"{engine.name} exposes no waiting-requests gauge to scale on; use gpu_utilization",
            )
        )
    if target.autoscaling.signal == "requests_per_target" and engine.running_metric is None:
        out.append(
            Finding(
                (*base, "autoscaling", "signal"),
                f"{engine.name} exposes no in-flight-requests gauge to scale on; use gpu_utilization",
            )
        )

    if not _check_model_ref(spec, name):
        model_name, model = spec.model_of(name)
        if model.scheme == "gs":
            out.append(
                Finding(
                    ("models", model_name, "source"),
                    f"target {name!r} runs on AWS and cannot read gs:// weights; mirror them to s3://",
                )
            )
        elif model.scheme == "hf":
            out.append(
                Finding(
                    ("models", model_name, "source"),
                    f"target {name!r} has no internet route, so hf:// weights cannot be downloaded; "
                    "mirror them to s3:// in the target's region",
                )
            )
        fp = sizing.footprint(model_name, model)
        types = catalog.aws_instance_types()
        for i, itype in enumerate(target.instance_types):
            loc = (*base, "instance_types", i)
            facts = types.get(itype)
            if facts is None:
                known = sorted(t for t, f in types.items() if f.is_nvidia_gpu)
                out.append(
                    Finding(
                        loc,
                        f"unknown GPU instance type {itype!r}{did_you_mean(itype, types)} "
                        f"(the catalog knows: {', '.join(known)})",
                    )
                )
            elif not facts.is_nvidia_gpu:
                out.append(
                    Finding(loc, f"{itype} carries {facts.accelerator} accelerators, not NVIDIA GPUs; pick a GPU type")
                )
            elif not sizing.fits(fp, facts):
                out.append(
                    Finding(
                        loc,
                        f"{model_name} in {model.precision} needs {fp.describe()} at {model.context_length} tokens "
                        f"of context; {facts.describe()} offers {sizing.usable_bytes(facts) / GIB:.1f} GiB usable. "
                        "Pick a larger type, a lower precision or a shorter context",
                    )
                )
    return out
