"""Rules that cross sections of a spec or consult the catalog.

They run after pydantic has accepted the shape of the spec, and return every finding at once
(errors and warnings), each blamed on the field a user has to change.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator

from inferstack import catalog
from inferstack.catalog import GIB
from inferstack.errors import Finding, Loc, did_you_mean
from inferstack.planning import sizing
from inferstack.spec.models import (
    AwsGpuFleetTarget,
    DeploymentSpec,
    GcpGpuFleetTarget,
    GcpNetwork,
    GcpTargetBase,
    GcpTpuTarget,
    MigSharing,
    Model,
    NodePool,
    OnPremK8sTarget,
    TimeSlicing,
    image_digest,
)

_ECR_REGION = re.compile(r"^\d{12}\.dkr\.ecr(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com/")
_ARTIFACT_REGISTRY = re.compile(r"^([a-z0-9-]+)-docker\.pkg\.dev/")
# Artifact Registry's multi-regions: data may sit anywhere in them, so residency cannot use them.
_AR_MULTI_REGIONS = {"us", "europe", "asia"}
_WEIGHTS_SCHEME = {"aws": "s3", "gcp": "gs"}


def check_spec(spec: DeploymentSpec) -> list[Finding]:
    from inferstack.kinds import kind_of  # the table draws its check hooks from this module

    findings = list(_check_opt_outs(spec))
    findings += list(_check_kv_cache(spec))
    findings += list(_check_slos(spec))
    findings += list(_check_notification_channels(spec))
    findings += list(_check_endpoint(spec))
    findings += list(_check_arn_regions(spec))
    findings += list(_check_onprem_workload(spec))
    findings += list(check_overflow(spec))
    for name, target in spec.targets.items():
        base = ("targets", name)
        findings += _check_model_ref(spec, name)
        findings += _check_region(spec, (*base, kind_of(target).region_field), target.region, target.cloud)
        findings += _check_image(spec, name)
        if not _check_model_ref(spec, name):
            findings += _check_weights(spec, name)
        findings += kind_of(target).check(spec, name, target)
    if not any(f.severity == "error" for f in findings):
        findings += check_overflow_timeout(spec)
    return findings


def _check_kv_cache(spec: DeploymentSpec) -> Iterator[Finding]:
    """The KV cache's precision is the model's field, so the sizing counts it: a flag of its own in
    serving.args would change the engine's cache behind the sizing's back."""
    engine = catalog.engines()[spec.serving.engine]
    for i, arg in enumerate(spec.serving.args):
        if arg.split("=", 1)[0] in ("--kv-cache-dtype", "--kv_cache_dtype"):
            yield Finding(
                ("serving", "args", i),
                "set the KV cache's precision with models.<model>.kv_cache_precision: fp8 (the sizing counts "
                "it and the engine gets its flag), not in serving.args",
            )
    for name, model in spec.models.items():
        if model.kv_cache_precision == "fp8" and engine.kv_cache_fp8_args is None:
            yield Finding(
                ("models", name, "kv_cache_precision"),
                f"{engine.name} takes no serve flag for an FP8 KV cache (it is set when the checkpoint is "
                "quantised): set kv_cache_precision: auto, or serve with vllm, sglang or tgi",
            )


def _check_slos(spec: DeploymentSpec) -> Iterator[Finding]:
    """An objective the spec states that the engine publishes nothing for would never alert. The
    defaults the engine cannot measure are left out quietly (the plan lists what is watched)."""
    from inferstack.planning.observability import unavailable

    slos = spec.observability.slos
    engine = catalog.engines()[spec.serving.engine]
    for field, reason in unavailable(slos, engine.series):
        if field in slos.model_fields_set:
            yield Finding(
                ("observability", "slos", field),
                f"{engine.name} {reason}, so nothing could alert on this objective: set {field}: null, or serve "
                "with an engine that publishes it (vllm, sglang)",
            )


def _check_notification_channels(spec: DeploymentSpec) -> Iterator[Finding]:
    """A Cloud Monitoring alert policy notifies channels of its own project only, and each GCP
    target's policies live in the target's project: a channel elsewhere would be refused, and a
    target whose project has none of the listed channels would page no one the spec names."""
    channels = spec.observability.alerts.gcp_notification_channels
    if not channels:
        return
    projects = {
        name: t.project for name, t in sorted(spec.targets.items()) if isinstance(t, (GcpGpuFleetTarget, GcpTpuTarget))
    }
    for i, channel in enumerate(channels):
        project = channel.split("/")[1]
        if project not in projects.values():
            yield Finding(
                ("observability", "alerts", "gcp_notification_channels", i),
                f"{channel} is in project {project}, where no GCP target of this spec runs; an alert policy "
                f"notifies channels of its own project only: use a channel of "
                f"{' or '.join(sorted(set(projects.values()))) or 'a GCP target project'}",
            )
    listed = {c.split("/")[1] for c in channels}
    for name, project in projects.items():
        if project not in listed:
            yield Finding(
                ("observability", "alerts", "gcp_notification_channels"),
                f"target {name} runs in project {project}, and none of the listed channels is there, so its "
                f"alerts would notify no one: add a channel of {project} (projects/{project}/notificationChannels/ID)",
            )


def _check_opt_outs(spec: DeploymentSpec) -> Iterator[Finding]:
    """Opt-outs of secure defaults are allowed, and said out loud: the policy pack blocks them."""
    for i, region in enumerate(spec.residency.exceptions):
        yield Finding(
            ("residency", "exceptions", i),
            f"{region!r} is an exception to residency: allowed by the spec, blocked by the policy pack "
            "unless its residency config is overridden",
            "warning",
        )
    for name, target in spec.targets.items():
        if not isinstance(target, OnPremK8sTarget) and target.network.public_ip:
            yield Finding(
                ("targets", name, "network", "public_ip"),
                "serving nodes get public IPs (opt-out of the private-only default); the policy pack flags it",
                "warning",
            )


def _check_endpoint(spec: DeploymentSpec) -> Iterator[Finding]:
    """One endpoint section serves every target: each cloud needs its consumers and, in each
    target's region (and, on GCP, project), a certificate."""
    from inferstack.planning.endpoint import certificate_owner, is_acm, region_of_certificate
    from inferstack.planning.gcp import plan_tpu_hosts

    ep = spec.endpoint
    if ep is None:
        return
    clouds = {t.cloud for t in spec.targets.values()}
    if "aws" in clouds and not ep.allowed_principals and not ep.allow_any_principal:
        yield Finding(
            ("endpoint", "allowed_principals"),
            "name the AWS accounts or principals that may connect "
            "(an endpoint service with no principals admits nobody)",
        )
    if ep.allow_any_principal and ep.allowed_principals:
        yield Finding(
            ("endpoint", "allow_any_principal"),
            "choose one: allow_any_principal admits every AWS "
            "principal, so the allowed_principals list would be ignored",
        )
    elif ep.allow_any_principal:
        yield Finding(
            ("endpoint", "allow_any_principal"),
            "any AWS principal may request a connection "
            "(opt-out of named principals; acceptance is still required); the policy pack flags it",
            "warning",
        )
    if "gcp" in clouds and not ep.consumer_projects:
        yield Finding(
            ("endpoint", "consumer_projects"),
            "name the GCP projects whose Private Service Connect endpoints are accepted",
        )
    for i, consumer in enumerate(ep.gcp_consumers):
        if consumer.project not in ep.consumer_projects:
            yield Finding(
                ("endpoint", "gcp_consumers", i, "project"),
                f"{consumer.project!r} is not in "
                "consumer_projects, so the service attachment would refuse its endpoint: add it there",
            )
    seen: dict[tuple[str, str, str], int] = {}
    for i, cert in enumerate(ep.certificates):
        key = ("aws" if is_acm(cert) else "gcp", region_of_certificate(cert) or "", certificate_owner(cert))
        if key in seen:
            yield Finding(
                ("endpoint", "certificates", i),
                f"a second certificate for {key[0].upper()} region "
                f"{key[1]} (certificates[{seen[key]}] is one); keep one per region",
            )
        seen.setdefault(key, i)
    ca_region = region_of_certificate(ep.private_ca_arn) if ep.private_ca_arn else None
    yield from _shared_proxy_only_subnets(spec)
    for name, target in sorted(spec.targets.items()):
        if isinstance(target, OnPremK8sTarget):
            continue  # its entry is a Service and the target's own ingress, inside the site
        owner = "" if isinstance(target, AwsGpuFleetTarget) else target.project
        yield from _endpoint_certificate(
            name, target, (target.cloud, target.region, owner) in seen, ep.private_ca_arn, ca_region
        )
        if isinstance(target, GcpTpuTarget) and (plan_tpu_hosts(target) > 1 or target.provisioning != "on-demand"):
            yield Finding(
                ("targets", name, "provisioning" if target.provisioning != "on-demand" else "topology"),
                "queued TPU slices get their addresses only once capacity arrives, so the endpoint "
                "cannot route to them: use a single-host on-demand slice behind an endpoint",
            )
        if isinstance(target.network, GcpNetwork):
            yield from _endpoint_ranges(name, target.network)


def _endpoint_certificate(name, target, has_certificate, private_ca_arn, ca_region) -> Iterator[Finding]:
    if has_certificate or (target.cloud == "aws" and ca_region == target.region):
        return
    if target.cloud == "aws" and private_ca_arn:
        yield Finding(
            ("endpoint", "private_ca_arn"),
            f"the private CA is in {ca_region}, target {name!r} in "
            f"{target.region}: add an ACM certificate for {target.region} to endpoint.certificates",
        )
    elif target.cloud == "aws":
        yield Finding(
            ("endpoint", "certificates"),
            f"no ACM certificate in {target.region} for target {name!r}: "
            "add its ARN, or set private_ca_arn to issue one",
        )
    else:
        yield Finding(
            ("endpoint", "certificates"),
            f"no regional SSL certificate of project {target.project} in "
            f"{target.region} for target {name!r}: add projects/{target.project}/regions/{target.region}"
            "/sslCertificates/<name> (an HTTPS proxy uses certificates of its own project)",
        )


def _endpoint_ranges(name: str, net: GcpNetwork) -> Iterator[Finding]:
    """The proxy-only and PSC ranges must be private and apart from each other and the subnet."""
    from inferstack.planning.endpoint import endpoint_ranges

    loc = ("targets", name, "network")
    if not net.creates_network and net.psc_cidr is None:
        yield Finding(
            loc,
            "an existing network needs psc_cidr for the endpoint's Private Service Connect NAT "
            "subnet (and proxy_cidr only if the network has no proxy-only subnet in the region yet)",
        )
        return
    if not net.creates_network and net.proxy_cidr is None:
        # The network's own active proxy-only subnet is reused; the program looks it up.
        ranges = {"psc_cidr": ipaddress.IPv4Network(net.psc_cidr)}
    else:
        proxy, psc = (ipaddress.IPv4Network(r) for r in endpoint_ranges(net))
        ranges = {"proxy_cidr": proxy, "psc_cidr": psc}
    for field, net_range in ranges.items():
        where = (*loc, field) if getattr(net, field) else loc
        if not net_range.is_private:
            yield Finding(
                where,
                f"the {field.removesuffix('_cidr')} range {net_range} (next to the subnet) is not "
                f"private: set {field} explicitly",
            )
        elif net.creates_network and net_range.overlaps(ipaddress.IPv4Network(net.subnet_cidr)):
            yield Finding(where, f"{net_range} overlaps the subnet {net.subnet_cidr}")
    if len(ranges) == 2 and ranges["proxy_cidr"].overlaps(ranges["psc_cidr"]):
        yield Finding((*loc, "psc_cidr"), f"{ranges['psc_cidr']} overlaps the proxy-only range {ranges['proxy_cidr']}")


def _shared_proxy_only_subnets(spec: DeploymentSpec) -> Iterator[Finding]:
    """A VPC network has one active REGIONAL_MANAGED_PROXY subnet per region (Cloud Load
    Balancing, "Proxy-only subnets for Envoy-based load balancers"); every internal Application
    Load Balancer of the region shares it. Targets that put their endpoints in the same existing
    network and region cannot each create one: the network's own must serve them all."""
    seen: dict[tuple[str, str, str], str] = {}
    proxy_cidrs: dict[str, str | None] = {}
    for name in sorted(spec.targets):
        target = spec.targets[name]
        if not isinstance(target, GcpTargetBase) or target.network.creates_network:
            continue
        net: GcpNetwork = target.network
        assert net.network is not None  # an existing network is named (the model checks it)
        key = (target.project, net.network, target.region)
        proxy_cidrs[name] = net.proxy_cidr
        if key in seen and (net.proxy_cidr or proxy_cidrs[seen[key]]):
            creator = name if net.proxy_cidr else seen[key]
            yield Finding(
                ("targets", creator, "network", "proxy_cidr"),
                f"targets {seen[key]!r} and {name!r} share network {net.network!r} in {target.region}, "
                "which has one active proxy-only subnet per region for all their load balancers: "
                "remove proxy_cidr from both and create the proxy-only subnet once with the network",
            )
        seen.setdefault(key, name)


def _check_model_ref(spec: DeploymentSpec, name: str) -> list[Finding]:
    ref = spec.targets[name].model
    loc = ("targets", name, "model")
    if ref is None and len(spec.models) > 1:
        return [Finding(loc, f"required when the spec has several models; one of: {', '.join(sorted(spec.models))}")]
    if ref is not None and ref not in spec.models:
        return [Finding(loc, f"no model named {ref!r} in 'models'{did_you_mean(ref, spec.models)}")]
    return []


def _check_region(spec: DeploymentSpec, loc: Loc, region: str, cloud: str, what: str = "") -> list[Finding]:
    """`what` names the thing whose region this is, when it is not the field itself."""
    known = catalog.known_regions()
    of = f" (the region of {what})" if what else ""
    if region not in known:
        kind = "site country" if cloud == "onprem" else f"{cloud.upper()} region"
        return [Finding(loc, f"unknown {kind} {region!r}{of}{did_you_mean(region, known)}")]
    if known[region] != cloud:
        return [Finding(loc, f"{region!r}{of} is {_article(known[region])}; this needs {_article(cloud)}")]
    allowed = spec.residency.allowed_regions | spec.residency.allowed_sites | set(spec.residency.exceptions)
    if region not in allowed:
        inside = sorted(r for r in allowed if known.get(r) == cloud)
        place = "site country" if cloud == "onprem" else "region"
        subject = f"{what} is in {region!r}, which" if what else f"{place} {region!r}"
        return [
            Finding(
                loc,
                f"{subject} is outside residency {spec.residency.describe()}; "
                f"allowed {'site countries' if cloud == 'onprem' else f'{cloud.upper()} regions'}: "
                f"{', '.join(inside) or 'none'}",
            )
        ]
    return []


def _article(cloud: str) -> str:
    return {"aws": "an AWS region", "gcp": "a GCP region", "onprem": "an on-prem site's country"}[cloud]


def _image_loc(spec: DeploymentSpec, name: str) -> Loc:
    return ("targets", name, "image") if spec.targets[name].image else ("serving", "image")


def _check_image(spec: DeploymentSpec, name: str) -> list[Finding]:
    target = spec.targets[name]
    image = spec.image_of(name)
    if image is None:
        return [Finding(("targets", name, "image"), "no engine image: set serving.image or this target's image")]
    loc = _image_loc(spec, name)
    out = []
    if image_digest(image) is None:
        # In production a tag is an error: what runs must be what was reviewed (the policy pack
        # requires digests there too). Elsewhere it is said, and allowed.
        out.append(
            Finding(
                loc,
                "a tag is mutable, so two nodes may run different engines: pin the image by digest (repo@sha256:...)"
                + (f" (required in environment {spec.metadata.environment!r})" if spec.metadata.is_production else ""),
                "error" if spec.metadata.is_production else "warning",
            )
        )
    ecr, ar = _ECR_REGION.match(image), _ARTIFACT_REGISTRY.match(image)
    if isinstance(target, AwsGpuFleetTarget) and ecr:
        out += _check_region(spec, loc, ecr.group(1), "aws", what="the image's ECR registry")
        if target.network.creates_vpc and ecr.group(1) != target.region and not out:
            out.append(
                Finding(
                    loc,
                    f"target {name!r} pulls through its VPC's ECR endpoints in {target.region}, "
                    f"which cannot reach the registry in {ecr.group(1)}: replicate the image to "
                    f"{target.region}",
                )
            )
    elif isinstance(target, AwsGpuFleetTarget) and target.network.creates_vpc:
        out.append(
            Finding(
                loc,
                f"target {name!r} has no internet route, so it can pull only from ECR in {target.region} "
                "(<account>.dkr.ecr.<region>.amazonaws.com) through its VPC endpoints; mirror the image there",
            )
        )
    elif target.cloud == "gcp" and ar and ar.group(1) in _AR_MULTI_REGIONS:
        out.append(
            Finding(
                loc,
                f"the image is in the {ar.group(1)!r} multi-region of Artifact Registry, which residency cannot "
                "pin down: use a regional repository (<region>-docker.pkg.dev) inside residency",
            )
        )
    elif target.cloud == "gcp" and ar:
        out += _check_region(spec, loc, ar.group(1), "gcp", what="the image's Artifact Registry")
    elif isinstance(target, OnPremK8sTarget):
        out += _onprem_registry(target, loc, image)
    elif isinstance(target, GcpTargetBase) and not target.network.cloud_nat:
        out.append(
            Finding(
                loc,
                f"target {name!r} has no internet route, so it can pull only from Artifact Registry "
                "(<region>-docker.pkg.dev) over Private Google Access; mirror the image or set network.cloud_nat",
            )
        )
    if isinstance(target, OnPremK8sTarget) and target.weights.s3 is not None:
        fetch_loc = ("targets", name, "weights", "s3", "fetch_image")
        out += _onprem_registry(target, fetch_loc, target.weights.s3.fetch_image)
        if spec.metadata.is_production and image_digest(target.weights.s3.fetch_image) is None:
            out.append(
                Finding(
                    fetch_loc,
                    f"pin the image by digest (repo@sha256:...): a tag is mutable, and environment "
                    f"{spec.metadata.environment!r} runs only reviewed images",
                )
            )
    return out


def _onprem_registry(target: OnPremK8sTarget, loc: Loc, image: str) -> list[Finding]:
    """A site's nodes pull from its registry mirror only: an image elsewhere would need a route out."""
    if image.startswith(f"{target.registry}/"):
        return []
    return [
        Finding(
            loc,
            f"the site pulls images from its registry mirror {target.registry!r} only: mirror {image.split('@')[0]!r} "
            f"there and use {target.registry}/<repository>@sha256:<digest>",
        )
    ]


def _check_onprem_workload(spec: DeploymentSpec) -> Iterator[Finding]:
    """What the on-prem workload needs of a spec (planning.onprem.workload): a namespace per
    target, request gauges for its signal, and a route into the namespace for its entry."""
    seen: dict[str, str] = {}
    for name, target in spec.targets.items():
        if not isinstance(target, OnPremK8sTarget):
            continue
        engine = catalog.engines()[spec.serving.engine]
        # Both signals read both gauges: queue_depth scales out on waiting requests and keeps
        # replicas with requests in flight (running + waiting).
        if engine.queue_metric is None or engine.running_metric is None:
            with_gauges = sorted(n for n, e in catalog.engines().items() if e.queue_metric and e.running_metric)
            yield Finding(
                ("targets", name, "autoscaling", "signal"),
                f"{engine.name} publishes no running/waiting-requests gauges, and on-prem pools scale on the "
                f"engine's own load ({target.autoscaling.signal}): serve with {', '.join(with_gauges)}",
            )
        ingress = target.ingress
        if ingress is not None and ingress.via == "ingress" and not ingress.controller_namespace:
            if not target.allowed_namespaces:
                yield Finding(
                    ("targets", name, "ingress", "controller_namespace"),
                    "the engine's NetworkPolicy admits no namespace, so the ingress controller cannot reach it: "
                    "name the controller's namespace here (or list it in allowed_namespaces)",
                    "warning",
                )
        if target.namespace is not None:
            if target.namespace in seen:
                yield Finding(
                    ("targets", name, "namespace"),
                    f"target {seen[target.namespace]!r} already uses namespace {target.namespace!r}: each target "
                    "owns its namespace (its quota and network policies), so name another",
                )
            seen.setdefault(target.namespace, name)


def _check_arn_regions(spec: DeploymentSpec) -> Iterator[Finding]:
    """Keys, certificates and CAs are resources in a region too: residency applies to them."""
    from inferstack.planning.endpoint import region_of_certificate

    for model_name, model in spec.models.items():
        if model.source_kms_key_arn:
            region = model.source_kms_key_arn.split(":")[3]
            loc = ("models", model_name, "source_kms_key_arn")
            if model.scheme != "s3":
                yield Finding(
                    loc,
                    f"only S3 weights are decrypted with a KMS key (the source is {model.scheme}://); "
                    "remove source_kms_key_arn",
                )
                continue
            problems = _check_region(spec, loc, region, "aws", what="the weights' KMS key")
            yield from problems
            for name, target in spec.targets.items():
                if problems or _check_model_ref(spec, name):
                    continue
                if target.cloud == "aws" and spec.model_of(name)[0] == model_name and target.region != region:
                    yield Finding(
                        loc,
                        f"the key is in {region}, target {name!r} in {target.region}: S3 decrypts "
                        "with a key of the bucket's region; copy the weights to the target's region",
                    )
    if spec.endpoint is None:
        return
    for i, cert in enumerate(spec.endpoint.certificates):
        region = region_of_certificate(cert) or ""
        cloud = "aws" if cert.startswith("arn:") else "gcp"
        yield from _check_region(spec, ("endpoint", "certificates", i), region, cloud, what="the certificate")
    if spec.endpoint.private_ca_arn:
        region = region_of_certificate(spec.endpoint.private_ca_arn) or ""
        yield from _check_region(spec, ("endpoint", "private_ca_arn"), region, "aws", what="the private CA")


def _check_weights(spec: DeploymentSpec, name: str) -> list[Finding]:
    """Nodes fetch weights from their own cloud's object store with their own identity; a hub
    or a registry is a mirror job, not something a serving node should reach."""
    target = spec.targets[name]
    model_name, model = spec.model_of(name)
    want = _WEIGHTS_SCHEME.get(target.cloud)
    if want is None or model.uri_in(want) is not None:  # on-prem weights come from the site (target.weights)
        return []
    return [
        Finding(
            ("models", model_name, "source"),
            f"target {name!r} runs on {target.cloud.upper()} and loads weights from {want}:// only "
            f"(with its own identity, over a private route); copy the weights to {want}:// in the target's "
            f"region and list that copy in the model's mirrors",
        )
    ]


def _fit(model_name: str, model: Model, loc: Loc, usable: int, what: str, devices: int = 1) -> list[Finding]:
    """The model in the shape's memory, sharded over all its `devices` (the engine's tensor-parallel
    degree on a cloud node is the node's device count)."""
    refusal = sizing.tensor_parallel_refusal(sizing.architecture_of(model_name, model), devices)
    if refusal is not None:
        return [
            Finding(
                loc, f"{what}: the engine shards {model_name} over all its devices, and {refusal}; pick another shape"
            )
        ]
    fp = sizing.footprint(model_name, model)
    if fp.total_bytes <= usable:
        return []
    return [
        Finding(
            loc,
            f"{model_name} in {model.precision} needs {fp.describe()}; {what} offers {usable / GIB:.1f} GiB usable. "
            "Pick a larger shape (or leave it out and let inferstack choose), a lower precision, fp8 KV cache, "
            "fewer concurrent sequences or a shorter context",
        )
    ]


def _check_signal(spec: DeploymentSpec, loc: Loc, signal: str) -> list[Finding]:
    engine = catalog.engines()[spec.serving.engine]
    if signal == "in_flight" and (engine.queue_metric is None or engine.running_metric is None):
        return [
            Finding(
                loc,
                f"{engine.name} exposes no running/waiting-requests gauges to count in-flight load "
                "(in_flight is the default signal): set autoscaling.signal: gpu_utilization",
            )
        ]
    if signal == "queue_depth" and engine.queue_metric is None:
        return [Finding(loc, f"{engine.name} exposes no waiting-requests gauge to scale on; use gpu_utilization")]
    if signal == "requests_per_target" and engine.running_metric is None:
        return [Finding(loc, f"{engine.name} exposes no in-flight-requests gauge to scale on; use gpu_utilization")]
    return []


def check_aws_fleet(spec: DeploymentSpec, name: str, target: AwsGpuFleetTarget) -> list[Finding]:
    base = ("targets", name)
    out = _check_signal(spec, (*base, "autoscaling", "signal"), target.autoscaling.signal)
    if target.capacity.min == 0 and spec.endpoint is None:
        out.append(
            Finding(
                (*base, "capacity", "min"),
                "a group at zero has no node to publish anything, and without an endpoint section no load "
                "balancer sees the clients' connections, so nothing could ever wake it: add an endpoint "
                "section (connections to its load balancer wake the group), or set min: 1 or more",
            )
        )
    zones = catalog.aws_zone_counts().get(target.region)
    wanted = target.network.availability_zones
    if zones is not None and wanted is not None and wanted > zones:
        out.append(
            Finding(
                (*base, "network", "availability_zones"),
                f"{target.region} has {zones} availability zones for an account (got {wanted})",
            )
        )
    resolved = not _check_model_ref(spec, name)
    types = catalog.aws_instance_types()
    for i, itype in enumerate(target.instance_types or ()):  # None: planning.shapes chose, or said why not
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
        elif resolved:
            usable = sizing.usable_bytes(facts.total_accelerator_memory_bytes)
            out += _fit(*spec.model_of(name), loc, usable, facts.describe(), facts.gpu_count)
    return out


def _check_gcp_zones(base: Loc, target: GcpGpuFleetTarget) -> list[Finding]:
    """A regional group places VMs in every zone it is given; a zone without the machine type
    (or the N1 guest accelerator) fails each one placed there. The catalog knows where each is."""
    accelerator = target.accelerator.type if target.accelerator is not None else None
    what = accelerator or target.machine
    offered = catalog.gcp_zones(target.machine, accelerator)
    here = offered.get(target.region, ())
    if not here:
        elsewhere = sorted(offered)
        return [
            Finding(
                (*base, "region"),
                f"{what} is not offered in {target.region} (Google's GPU regions and "
                f"zones page, in the catalog); regions that have it: {', '.join(elsewhere) or 'none known'}",
            )
        ]
    return [
        Finding(
            (*base, "zones", i), f"{what} is not offered in zone {zone}; {target.region} has it in {', '.join(here)}"
        )
        for i, zone in enumerate(target.zones or ())
        if zone.rsplit("-", 1)[0] == target.region and zone not in here
    ]


def _check_cloud_cli_image(spec: DeploymentSpec, name: str, target: GcpGpuFleetTarget) -> list[Finding]:
    """A mirrored Cloud CLI image must be one the nodes may pull: the node's service account reads
    only the engine image's Artifact Registry repository, inside residency."""
    from inferstack.planning.gcp import parse_artifact_registry

    if target.cloud_cli_image is None:
        return []
    loc = ("targets", name, "cloud_cli_image")
    mirror = parse_artifact_registry(target.cloud_cli_image)
    if mirror is None:
        return []  # a public registry (gcr.io): reached over Private Google Access, no grant needed
    engine = parse_artifact_registry(spec.image_of(name) or "")
    if mirror != engine:
        return [
            Finding(
                loc,
                "the nodes may read only the engine image's Artifact Registry repository: put the "
                "Cloud CLI mirror in that repository, or leave cloud_cli_image unset (the pinned public image)",
            )
        ]
    return []


def check_gcp_fleet(spec: DeploymentSpec, name: str, target: GcpGpuFleetTarget) -> list[Finding]:
    base = ("targets", name)
    out = _check_signal(spec, (*base, "autoscaling", "signal"), target.autoscaling.signal)
    burst = spec.overflow is not None and name in spec.overflow.burst
    if target.capacity.min == 0 and not burst:
        # A burst target of the overflow may sit at zero: the gateway's publisher writes its group
        # metric (planning.overflow.publisher); without a publisher image check_overflow warns. Otherwise, why, and what was weighed: planning.gcp.GCP_SIGNALS and the README ("What wakes a fleet
        # at zero"). The internal load balancer's request counts are not a documented autoscaler
        # input for a group with no backends, and clients would get 503s until a node is healthy.
        out.append(
            Finding(
                (*base, "capacity", "min"),
                "a group at zero has no node to publish anything, and on GCP nothing else in the stack "
                "publishes the group's metric, so nothing could ever wake it: set min: 1 or more (a hybrid "
                "overflow gateway that publishes the group's metric will allow 0)",
            )
        )
    out += _check_cloud_cli_image(spec, name, target)
    grace = spec.serving.health_check_grace_seconds
    if grace is not None and grace > 3600:
        out.append(
            Finding(
                ("serving", "health_check_grace_seconds"),
                f"a managed instance group's auto-healing initial delay is at most 3600 s; target {name!r} "
                f"uses 3600, not {grace}",
                "warning",
            )
        )
    if target.autoscaling.signal == "lb_utilization" and spec.endpoint is None:
        out.append(
            Finding(
                (*base, "autoscaling", "signal"),
                "lb_utilization needs the load balancer of an endpoint section; add one, or scale on queue_depth",
            )
        )
    for i, zone in enumerate(target.zones or ()):
        if zone.rsplit("-", 1)[0] != target.region:
            out.append(Finding((*base, "zones", i), f"zone {zone!r} is not in region {target.region!r}"))
    machines, guests = catalog.gcp_machine_types(), catalog.gcp_guest_accelerators()
    loc = (*base, "machine_type")
    if target.machine_type is None:  # planning.shapes chose, or said why not
        return out
    if target.machine_type.startswith("n1-"):
        n1 = catalog.gcp_n1_machine_types()
        if target.machine_type not in n1:
            return out + [
                Finding(loc, f"unknown N1 machine type {target.machine_type!r}{did_you_mean(target.machine_type, n1)}")
            ]
        acc = target.accelerator
        if acc is None:
            return out + [
                Finding(
                    loc,
                    f"{target.machine_type} carries no GPU: add accelerator: {{type: nvidia-tesla-t4, "
                    "count: 1} (N1 takes guest accelerators) or pick an A2/A3/G2 machine type",
                )
            ]
        facts = guests.get(acc.type)
        if facts is None:
            return out + [
                Finding(
                    (*base, "accelerator", "type"),
                    f"unknown N1 guest accelerator {acc.type!r}"
                    f"{did_you_mean(acc.type, guests)}; N1 takes: {', '.join(sorted(guests))}",
                )
            ]
        if acc.count not in facts.counts:
            return out + [
                Finding(
                    (*base, "accelerator", "count"),
                    f"{acc.type} attaches in counts of {', '.join(map(str, facts.counts))} (got {acc.count})",
                )
            ]
        usable = sizing.usable_bytes(facts.memory_mib * catalog.MIB * acc.count)
        what = f"{target.machine_type} with {acc.count}x {facts.gpu}"
        devices = acc.count
    else:
        machine = machines.get(target.machine_type)
        if machine is None:
            return out + [
                Finding(
                    loc,
                    f"unknown GPU machine type {target.machine_type!r}"
                    f"{did_you_mean(target.machine_type, machines)} (A2, A3, A4 and G2 types "
                    "carry GPUs; N1 takes guest accelerators)",
                )
            ]
        if target.accelerator is not None:
            return out + [
                Finding(
                    (*base, "accelerator"),
                    f"{target.machine_type} carries its own "
                    f"{machine.accelerator_count}x {machine.accelerator}: remove accelerator",
                )
            ]
        usable = sizing.usable_bytes(machine.total_accelerator_memory_bytes)
        what = machine.describe()
        devices = machine.accelerator_count
    out += _check_gcp_zones(base, target)
    if not _check_model_ref(spec, name):
        out += _fit(*spec.model_of(name), loc, usable, what, devices)
    return out


def check_tpu(spec: DeploymentSpec, name: str, target: GcpTpuTarget) -> list[Finding]:
    base = ("targets", name)
    out: list[Finding] = []
    if spec.serving.engine != "vllm":
        out.append(
            Finding(
                ("serving", "engine"),
                f"TPU target {name!r} serves with vLLM for TPU; {spec.serving.engine} does not run on TPUs",
            )
        )
    if not _check_model_ref(spec, name) and target.topology is not None:  # None: planning.shapes chose
        gen = catalog.tpu_generations()[target.generation]
        chips = gen.chips_of(target.topology)
        out += _fit(
            *spec.model_of(name),
            (*base, "topology"),
            sizing.usable_bytes(gen.hbm_bytes(target.topology)),
            f"a {target.generation} {target.topology} slice ({chips} chips, {gen.hbm_gib_per_chip} GiB HBM each)",
            chips,
        )
        out += _tpu_boot_disk(spec, name, target)
    return out


def _tpu_boot_disk(spec: DeploymentSpec, name: str, target: GcpTpuTarget) -> list[Finding]:
    """Multi-host slices keep the weights on every host's fixed 100 GiB boot disk (a read-write
    data disk attaches to one VM; single-host slices get one, planning.gcp.tpu_data_disk_gib)."""
    from inferstack.planning.gcp import TPU_BOOT_DISK_GIB, TPU_BOOT_DISK_WEIGHTS_GIB, plan_tpu_hosts

    if plan_tpu_hosts(target) == 1:
        return []
    weights = sizing.footprint(*spec.model_of(name)).weights_bytes
    if weights <= TPU_BOOT_DISK_WEIGHTS_GIB * GIB:
        return []
    return [
        Finding(
            ("targets", name, "topology"),
            f"the weights (~{weights / GIB:.0f} GiB) do not fit next to the runtime and the engine image on "
            f"the {TPU_BOOT_DISK_GIB} GiB boot disk of each host of a multi-host slice (at most "
            f"{TPU_BOOT_DISK_WEIGHTS_GIB} GiB): use a single-host topology, whose weights go to a data disk",
        )
    ]


def check_onprem(spec: DeploymentSpec, name: str, target: OnPremK8sTarget) -> list[Finding]:
    """Each pool against the GPU catalog: the model, its sharing, the fit of the model in what a
    replica gets, and the replicas the pool's devices can hold; nodes claimed twice; the operator
    the pools rely on when the cluster runs its own."""
    out: list[Finding] = []
    if target.cost is None:
        priced = [p for p, pool in sorted(target.pools.items()) if pool.hardware_usd_per_node is not None]
        if priced:
            out.append(
                Finding(
                    ("targets", name, "pools", priced[0], "hardware_usd_per_node"),
                    "a pool's hardware price prices nothing without the target's cost section (power price, PUE, "
                    "amortisation): add targets." + name + ".cost with usd_per_kwh and hardware_usd_per_node",
                )
            )
    resolved = not _check_model_ref(spec, name)
    gpus = catalog.gpu_models()
    for pool_name in sorted(target.pools):
        pool = target.pools[pool_name]
        loc: Loc = ("targets", name, "pools", pool_name)
        gpu = gpus.get(pool.gpu)
        if gpu is None:
            out.append(
                Finding(
                    (*loc, "gpu"),
                    f"unknown GPU model {pool.gpu!r}{did_you_mean(pool.gpu, gpus)} "
                    f"(the catalog knows: {', '.join(sorted(gpus))})",
                )
            )
            continue
        out += _selector_syntax(loc, pool)
        sharing = _pool_sharing(loc, pool, gpu)
        engine = catalog.engines()[spec.serving.engine]
        if isinstance(pool.sharing, TimeSlicing) and engine.memory_fraction_arg is None:
            sharing.append(
                Finding(
                    (*loc, "sharing", "mode"),
                    f"replicas that time-slice a GPU must each bound their share of its memory, and "
                    f"{engine.name} has no flag for it (the first replica to start would take the whole GPU): "
                    "use mode: whole or mig, or an engine such as vllm",
                )
            )
        out += sharing
        if not sharing and resolved:
            fit = _pool_fit(spec, name, pool_name, pool, gpu, loc)
            out += fit or _pool_host_fit(spec, name, pool_name, pool, loc)
    out += _operator_kept(name, target)
    out += _driver_source(name, target)
    out += _cluster_shared(spec, name, target)
    out += [f for f in _check_onprem_nodes(spec) if f.loc[1] == name]
    return out


# Label syntax (Kubernetes "Labels and Selectors": an optional DNS-subdomain prefix and '/', a name of
# at most 63 characters; a value of at most 63, possibly empty; alphanumeric at both ends).
_LABEL_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_LABEL_KEY = re.compile(rf"^([a-z0-9]([-a-z0-9.]{{0,251}}[a-z0-9])?/)?{_LABEL_NAME}$")
_LABEL_VALUE = re.compile(rf"^({_LABEL_NAME})?$")


def _selector_syntax(loc: Loc, pool: NodePool) -> list[Finding]:
    """A selector the API server would refuse fails the Deployment at apply time: say it now."""
    out = []
    for key, value in sorted((pool.node_selector or {}).items()):
        if not _LABEL_KEY.match(key):
            out.append(
                Finding((*loc, "node_selector", key), "is not a label key: [prefix/]name, name at most 63 characters")
            )
        elif not _LABEL_VALUE.match(value):
            out.append(
                Finding(
                    (*loc, "node_selector", key),
                    f"{value!r} is not a label value: at most 63 of a-z, A-Z, 0-9, '-', '_', '.', alphanumeric at both ends",
                )
            )
    return out


def _pool_sharing(loc: Loc, pool: NodePool, gpu: catalog.GpuModel) -> list[Finding]:
    from inferstack.planning.onprem.nodes import (
        DEVICE_PLUGIN_CONFIG_LABEL,
        MIG_CONFIG_LABEL,
        mig_config_name,
        time_slicing_config_name,
    )

    where = (*loc, "sharing")
    sharing = pool.sharing
    if isinstance(sharing, MigSharing):
        if not gpu.supports_mig:
            capable = sorted(g.name for g in catalog.gpu_models().values() if g.supports_mig)
            return [
                Finding(
                    (*where, "mode"),
                    f"{gpu.name} does not support MIG (NVIDIA MIG User Guide, Supported GPUs); GPUs in the catalog "
                    f"that do: {', '.join(capable)}. Use mode: whole or time-slicing",
                )
            ]
        if sharing.profile not in gpu.mig_profiles:
            profiles = ", ".join(
                f"{p.name} ({p.instances} per GPU, {p.memory_mib / 1024:.0f} GiB)" for p in gpu.mig_profiles.values()
            )
            return [
                Finding(
                    (*where, "profile"),
                    f"{gpu.name} has no MIG profile {sharing.profile!r}"
                    f"{did_you_mean(sharing.profile, gpu.mig_profiles)}; its profiles: {profiles}",
                )
            ]
        label, value = MIG_CONFIG_LABEL, mig_config_name(sharing.profile)
    elif isinstance(sharing, TimeSlicing):
        if not gpu.time_slicing:
            return [
                Finding((*where, "mode"), f"{gpu.name} cannot be time-sliced by the device plugin; use mode: whole")
            ]
        label, value = DEVICE_PLUGIN_CONFIG_LABEL, time_slicing_config_name(sharing.replicas)
    else:
        return []
    # Nodes chosen by the cluster's labels are not patched, so inferstack cannot put the label that
    # makes the operator split them; the selector must require it, or the Deployment would land
    # on nodes whose GPUs are not shared the way the replicas are sized.
    selector = pool.node_selector
    if selector is not None and selector.get(label) != value:
        return [
            Finding(
                (*loc, "node_selector"),
                f"a {sharing.mode} pool selected by labels is not patched by inferstack: label its nodes "
                f"{label}={value} (the config inferstack writes for the GPU operator) and add that label to "
                "node_selector, so only nodes configured that way are selected",
            )
        ]
    return []


def _pool_fit(
    spec: DeploymentSpec, name: str, pool_name: str, pool: NodePool, gpu: catalog.GpuModel, loc: Loc
) -> list[Finding]:
    from inferstack.planning.onprem.pools import plan_pool, tensor_parallel_degree

    model_name, model = spec.model_of(name)
    fp = sizing.footprint(model_name, model)
    needs = f"{model_name} in {model.precision} needs {fp.describe()} at {model.context_length} tokens of context"
    advice = "a lower precision or a shorter context"
    if pool.sharing.mode == "whole":
        if tensor_parallel_degree(spec, name, gpu, pool.gpus_per_node) is None:
            usable = int(gpu.memory_bytes * pool.gpus_per_node * sizing.USABLE_FRACTION)
            arch = sizing.architecture_of(model_name, model)
            heads = arch.attention_heads if arch is not None else 0
            why = (
                f"; tensor parallelism must also divide its {heads} attention heads"
                if heads and fp.total_bytes <= usable
                else ""
            )
            return [
                Finding(
                    (*loc, "gpus_per_node"),
                    f"{needs}; one node of {pool.gpus_per_node}x {gpu.describe()} offers {usable / GIB:.1f} GiB "
                    f"usable{why}. A replica runs on one node: use a node with more or larger GPUs, {advice}",
                )
            ]
    else:
        plan = plan_pool(spec, name, pool_name, pool)
        usable = int(plan.memory_bytes_per_device * sizing.USABLE_FRACTION)
        if fp.total_bytes > usable:
            what = (
                f"a {plan.mig_profile} MIG slice of {gpu.name}"
                if plan.mig_profile
                else f"one of {plan.time_slices} time slices of {gpu.describe()} (they share its memory)"
            )
            return [
                Finding(
                    (*loc, "sharing"),
                    f"{needs}; {what} offers {usable / GIB:.1f} GiB usable. Use a larger MIG profile, fewer time "
                    f"slices or whole GPUs, {advice}",
                )
            ]
    plan = plan_pool(spec, name, pool_name, pool)
    holds = plan.max_replicas_on_pool
    if pool.replicas.max > holds:
        per_node = plan.devices_per_node // plan.devices_per_replica
        return [
            Finding(
                (*loc, "replicas", "max"),
                f"the pool holds at most {holds} replicas ({plan.node_count} nodes x {per_node} per node: "
                f"{plan.devices_per_node} {plan.resource} per node, {plan.devices_per_replica} per replica); "
                f"got max {pool.replicas.max}. Lower max or add nodes",
            )
        ]
    return []


def _pool_host_fit(spec: DeploymentSpec, name: str, pool_name: str, pool: NodePool, loc: Loc) -> list[Finding]:
    """With the nodes' CPUs or memory stated, the replicas a pool may run must fit them as well as
    its devices: a replica whose GPU is free but whose CPU or memory is not stays Pending."""
    from inferstack.planning.onprem.capacity import replica_requests, replicas_per_node_by_host
    from inferstack.planning.onprem.pools import plan_pool
    from inferstack.planning.onprem.workload import plan_workload

    if pool.node_cpus is None and pool.node_memory_gib is None:
        return []
    plan = plan_pool(spec, name, pool_name, pool)
    try:
        # This pool alone (another may be invalid, and is reported on its own); the stack names only
        # the namespace, never a pod's requests.
        requests = replica_requests(plan_workload(spec, "check", name, (plan,)), plan)
    except ValueError:  # what else is wrong with the target is reported by its own check
        return []
    if requests is None:
        return []
    by_host = replicas_per_node_by_host(requests, pool.node_cpus, pool.node_memory_gib)
    by_devices = plan.devices_per_node // plan.devices_per_replica
    if by_host is None or pool.replicas.max <= plan.node_count * min(by_host, by_devices):
        return []
    stated = ", ".join(
        f"{v} {unit}"
        for v, unit in ((pool.node_cpus, "CPUs"), (pool.node_memory_gib, "GiB of memory"))
        if v is not None
    )
    by_cpu = replicas_per_node_by_host(requests, pool.node_cpus, None)
    by_memory = replicas_per_node_by_host(requests, None, pool.node_memory_gib)
    field = "node_cpus" if by_cpu is not None and (by_memory is None or by_cpu <= by_memory) else "node_memory_gib"
    return [
        Finding(
            (*loc, field),
            f"a node's GPUs hold {by_devices} replicas, but its {stated} hold {by_host}: each replica requests "
            f"{requests.cpus:g} CPUs and {requests.memory_bytes / GIB:g} GiB, so the pool runs at most "
            f"{plan.node_count * min(by_host, by_devices)} of replicas.max {pool.replicas.max} (the rest would stay "
            "Pending). Lower replicas.max, or use nodes with more CPUs and memory",
        )
    ]


def _operator_kept(name: str, target: OnPremK8sTarget) -> list[Finding]:
    """With gpu_operator.manage false, the cluster's operator must be set up for what inferstack
    writes: its config maps and the dedicated taint. Said once, as warnings."""
    from inferstack.planning.onprem.nodes import DEVICE_PLUGIN_CONFIG_MAP, MIG_CONFIG_MAP, RUNTIME_CLASS
    from inferstack.planning.onprem.pools import DEDICATED_TAINT

    if target.gpu_operator.manage:
        return []
    loc = ("targets", name, "gpu_operator", "manage")
    out = []
    modes = {p.sharing.mode for p in target.pools.values()}
    if modes - {"whole"}:
        out.append(
            Finding(
                loc,
                f"the cluster's GPU operator must read inferstack's config maps in {target.gpu_operator.namespace}: "
                f"migManager.config.name={MIG_CONFIG_MAP}, devicePlugin.config.name={DEVICE_PLUGIN_CONFIG_MAP} "
                "(default 'default') and mig.strategy=mixed, or the pools' MIG and time-slicing labels select nothing",
                "warning",
            )
        )
    out.append(
        Finding(
            loc,
            f"the engine's pods run with runtimeClassName {RUNTIME_CLASS!r}: the cluster's GPU operator must "
            f"provide that RuntimeClass (operator.runtimeClass={RUNTIME_CLASS}, its default)",
            "warning",
        )
    )
    if any(p.dedicated_taint for p in target.pools.values()):
        out.append(
            Finding(
                loc,
                f"pools with dedicated_taint get the NoSchedule taint {DEDICATED_TAINT}: the cluster's GPU operator "
                "must tolerate it (daemonsets.tolerations, and its node-feature-discovery workers), or its device "
                "plugin leaves those nodes without GPUs",
                "warning",
            )
        )
    if any(p.tolerations for p in target.pools.values()):
        out.append(
            Finding(
                loc,
                "the pools' tolerations are the site's taints on their nodes: the cluster's GPU operator must "
                "tolerate them too (daemonsets.tolerations, node-feature-discovery workers), or its device plugin "
                "leaves those nodes without GPUs",
                "warning",
            )
        )
    return out


def _driver_source(name: str, target: OnPremK8sTarget) -> list[Finding]:
    """A driver the operator installs must not come from the internet. The conventional driver
    container downloads kernel headers and compilers from the OS's public repositories when it starts
    (NVIDIA GPU Operator docs, "Install NVIDIA GPU Operator in Air-Gapped Environments"): the spec
    names the site's package mirror (a repo ConfigMap), or a precompiled image that needs none, or
    the nodes' own driver."""
    op = target.gpu_operator
    if not op.manage or op.driver != "operator" or op.driver_precompiled or op.driver_repo_config is not None:
        return []
    return [
        Finding(
            ("targets", name, "gpu_operator", "driver"),
            "the operator's driver container downloads OS packages (kernel headers, compilers) when it builds the "
            "driver, from the internet unless told otherwise. Say where they come from inside the site: "
            "driver_repo_config: <ConfigMap in the operator's namespace whose repo files point at the site's package "
            'mirror>; or driver_precompiled: true with driver_version: <branch, e.g. "580"> (an image that needs no '
            "packages, mirrored in the site's registry); or driver: preinstalled (the nodes have the driver)",
        )
    ]


def _cluster_shared(spec: DeploymentSpec, name: str, target: OnPremK8sTarget) -> list[Finding]:
    """Targets on one cluster share its GPU operator, which the first of them declares."""
    from inferstack.planning.onprem.nodes import cluster_peers

    owner = cluster_peers(spec, name)[0]
    owner_target = spec.targets[owner]
    assert isinstance(owner_target, OnPremK8sTarget)
    if owner == name or owner_target.gpu_operator == target.gpu_operator:
        return []
    return [
        Finding(
            ("targets", name, "gpu_operator"),
            f"targets {owner!r} and {name!r} are on one cluster (kubeconfig key "
            f"{target.cluster.kubeconfig_config_key!r}, context {target.cluster.context!r}), which runs one GPU "
            f"operator, declared by {owner!r}: give both the same gpu_operator section",
        )
    ]


def _check_onprem_nodes(spec: DeploymentSpec) -> list[Finding]:
    """A node belongs to one pool: two pools (of one target or two) would both size their replicas
    on its GPUs, and their labels and taints would overwrite each other."""
    seen: dict[str, str] = {}
    out = []
    for name in sorted(spec.targets):
        target = spec.targets[name]
        if not isinstance(target, OnPremK8sTarget):
            continue
        for pool_name in sorted(target.pools):
            for i, node in enumerate(target.pools[pool_name].nodes or ()):
                here = f"targets.{name}.pools.{pool_name}"
                if node in seen:
                    out.append(
                        Finding(
                            ("targets", name, "pools", pool_name, "nodes", i),
                            f"node {node!r} is already in {seen[node]}; a node belongs to one pool",
                        )
                    )
                else:
                    seen[node] = here
    return out


# -- hybrid overflow ------------------------------------------------------------------------------

_BURST_KINDS = ("aws-gpu-fleet", "gcp-gpu-fleet", "gcp-tpu")
LINK_LOCAL = ipaddress.IPv4Network("169.254.0.0/16")


def check_overflow(spec: DeploymentSpec) -> Iterator[Finding]:
    """The overflow section against the targets it names: an on-prem primary, cloud burst targets
    behind the private endpoint, a link for each cloud they are in, networks apart from the site's,
    and an overflow timeout that outlasts a burst target's cold start (or says why not)."""
    from inferstack.planning.overflow.aws_link import aws_link_findings
    from inferstack.planning.overflow.gcp_link import gcp_link_findings

    ov = spec.overflow
    if ov is None:
        return
    base = ("overflow",)
    primary = spec.targets.get(ov.primary)
    if primary is None:
        yield Finding((*base, "primary"), f"no target named {ov.primary!r}{did_you_mean(ov.primary, spec.targets)}")
    elif not isinstance(primary, OnPremK8sTarget):
        yield Finding(
            (*base, "primary"), f"{ov.primary!r} is a {primary.kind} target; the primary is an onprem-k8s target"
        )
    seen: set[str] = set()
    clouds: set[str] = set()
    for i, name in enumerate(ov.burst):
        loc = (*base, "burst", i)
        target = spec.targets.get(name)
        if name in seen:
            yield Finding(loc, f"{name!r} is listed twice")
            continue
        seen.add(name)
        if target is None:
            yield Finding(loc, f"no target named {name!r}{did_you_mean(name, spec.targets)}")
            continue
        if target.kind not in _BURST_KINDS:
            yield Finding(loc, f"{name!r} is a {target.kind} target; burst targets are {', '.join(_BURST_KINDS)}")
            continue
        clouds.add(target.cloud)
        if spec.endpoint is None:
            yield Finding(
                loc,
                f"burst target {name!r} is reachable only through its private endpoint: add the endpoint section",
            )
        if isinstance(target, GcpTpuTarget) and target.provisioning != "on-demand":
            yield Finding(
                loc,
                f"{name!r} is a queued TPU slice: its address exists only once capacity arrives, so it "
                "cannot burst behind an endpoint; use a single-host on-demand slice",
            )
    if spec.endpoint is not None and spec.endpoint.private_dns_name is None and seen:
        yield Finding(
            ("endpoint", "private_dns_name"),
            "the overflow gateway verifies each burst endpoint's certificate by name: set private_dns_name "
            "(each burst target answers to <target>.<name> when there are several), and cover it in the certificates",
        )
    yield from _overflow_link(spec, clouds)
    yield from aws_link_findings(spec)
    yield from gcp_link_findings(spec)
    if ov.gateway.publisher_image is None:
        # Nothing else writes a burst fleet's wake metric (planning.overflow.publisher): a GCP
        # group's autoscaler never sees demand; an AWS group's wake alarm sees only connections its
        # endpoint could not route, never the primary's queue, and nothing raises overflow.active.
        for name in ov.burst:
            target = spec.targets.get(name)
            if isinstance(target, (AwsGpuFleetTarget, GcpGpuFleetTarget)):
                yield Finding(
                    (*base, "gateway", "publisher_image"),
                    f"burst fleet {name} would never wake: nothing publishes its wake metric, and nothing "
                    "turns the overflow on; set overflow.gateway.publisher_image (the publisher beside Envoy)",
                    "warning",
                )
    if spec.metadata.data_classification not in ov.classifications:
        yield Finding(
            (*base, "classifications"),
            f"the stack's own data is {spec.metadata.data_classification}, which may not leave the primary: only "
            f"requests labelled {', '.join(ov.classifications)} in {ov.classification_header} will overflow",
            "warning",
        )


def check_overflow_timeout(spec: DeploymentSpec) -> Iterator[Finding]:
    """The overflow timeout against each burst target's start-up estimate. It plans the targets, so
    the spec runs it only once everything else checks out (a planner trusts the checks)."""
    from inferstack.kinds import kind_of

    ov = spec.overflow
    if ov is None:
        return
    timeout = ov.gateway.overflow_timeout_seconds
    for name in ov.burst:
        startup, _ = kind_of(spec.targets[name]).startup(spec, _stack_for_checks(spec), name)
        if startup > timeout and ov.gateway.short_timeout_reason is None:
            yield Finding(
                ("overflow", "gateway", "overflow_timeout_seconds"),
                f"burst target {name!r} takes about {startup} s from zero to its first token (its start-up "
                f"estimate), longer than the overflow timeout of {timeout} s: the first overflowed requests "
                f"would time out while it starts. Raise the timeout above {startup} s, or say why not in "
                "short_timeout_reason",
            )


def _stack_for_checks(spec: DeploymentSpec) -> str:
    """Start-up estimates do not depend on the stack's name; the metadata name stands in."""
    return spec.metadata.name


# Inside ranges AWS refuses for a tunnel (EC2 API Reference, VpnTunnelOptionsSpecification
# TunnelInsideCidr: "The following CIDR blocks are reserved and cannot be used").
AWS_RESERVED_INSIDE = tuple(
    ipaddress.IPv4Network(n)
    for n in (
        "169.254.0.0/30",
        "169.254.1.0/30",
        "169.254.2.0/30",
        "169.254.3.0/30",
        "169.254.4.0/30",
        "169.254.5.0/30",
        "169.254.169.252/30",
    )
)


def _overflow_link(spec: DeploymentSpec, clouds: set[str]) -> Iterator[Finding]:
    from inferstack.planning.overflow.ranges import cloud_ranges

    ov = spec.overflow
    assert ov is not None
    link = ov.link
    loc = ("overflow", "link")
    for cloud in ("aws", "gcp"):
        side = getattr(link, cloud)
        if cloud in clouds and side is None:
            yield Finding((*loc, cloud), f"a burst target is in {cloud.upper()}: give its tunnel inside ranges here")
        elif cloud not in clouds and side is not None:
            yield Finding((*loc, cloud), f"no burst target is in {cloud.upper()}: remove this section")
    devices = len(link.site_public_ips)
    if link.aws is not None and len(link.aws.tunnel_inside_cidrs) != 2 * devices:
        yield Finding(
            (*loc, "aws", "tunnel_inside_cidrs"),
            f"AWS gives each site device a VPN connection of two tunnels: {2 * devices} ranges for {devices} "
            f"device(s), got {len(link.aws.tunnel_inside_cidrs)}",
        )
    if link.gcp is not None and len(link.gcp.tunnel_inside_cidrs) not in (2, 2 * devices):
        yield Finding(
            (*loc, "gcp", "tunnel_inside_cidrs"),
            f"HA VPN needs two tunnels (four with two site devices): got {len(link.gcp.tunnel_inside_cidrs)}",
        )
    inside: list[tuple[Loc, ipaddress.IPv4Network]] = []
    for cloud in ("aws", "gcp"):
        side = getattr(link, cloud)
        for i, cidr in enumerate(side.tunnel_inside_cidrs if side is not None else ()):
            where = (*loc, cloud, "tunnel_inside_cidrs", i)
            try:
                net = ipaddress.IPv4Network(cidr)
            except ValueError:
                yield Finding(where, f"{cidr!r} is not an IPv4 range like 169.254.10.0/30")
                continue
            if net.prefixlen != 30 or not net.subnet_of(LINK_LOCAL):
                yield Finding(where, f"{cidr} must be a /30 inside 169.254.0.0/16 (a BGP session's two addresses)")
                continue
            reserved = next((r for r in AWS_RESERVED_INSIDE if net.overlaps(r)), None) if cloud == "aws" else None
            if reserved is not None:
                yield Finding(where, f"{cidr} is {reserved}, which AWS reserves for its own use: pick another /30")
                continue
            clash = next((other for other_loc, other in inside if net.overlaps(other)), None)
            if clash is not None:
                yield Finding(where, f"{cidr} overlaps {clash}: each tunnel needs its own range")
            inside.append((where, net))
    site: list[ipaddress.IPv4Network] = []
    for i, cidr in enumerate(link.onprem_cidrs):
        try:
            site.append(ipaddress.IPv4Network(cidr))
        except ValueError:
            yield Finding((*loc, "onprem_cidrs", i), f"{cidr!r} is not an IPv4 range like 10.20.0.0/16")
    for name, ranges in cloud_ranges(spec):
        for net in site:
            for cloud_range in ranges:
                if net.overlaps(cloud_range):
                    yield Finding(
                        (*loc, "onprem_cidrs"),
                        f"the site's {net} overlaps {cloud_range} of burst target {name!r}: routes over the "
                        "link would be ambiguous; renumber one side",
                    )
