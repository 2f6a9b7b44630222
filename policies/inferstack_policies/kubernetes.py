"""Kubernetes (the on-prem target and overflow gateways): every pod passes the `restricted` Pod
Security Standard, namespaces say which standard they enforce, the engine's namespaces deny
traffic by default, GPUs are limited per container and capped per namespace (an advisory cost
rule), images are pinned in production, nothing is exposed outside the cluster without a stated
reason, and charts are pinned and fetched over TLS.

Resource types are pulumi-kubernetes tokens: `kubernetes:<group>/<version>:<Kind>` with the core
group spelled `core`; custom resources (`apiextensions.CustomResource`) register as
`kubernetes:<apiVersion>:<kind>`, e.g. `kubernetes:keda.sh/v1alpha1:ScaledObject`
(pulumi_kubernetes 4.34 apiextensions/CustomResource.py). Properties are the API's own camelCase
JSON (metadata, spec), as the API server receives them.

Labels and annotations the rules read, which inferstack's on-prem planner sets:
- `workload` (the standard label, planning/naming.py): `serving` or `batch` marks a namespace or a
  workload that runs the engine; system namespaces (the GPU operator's) carry another value.
- `environment` (the standard label): decides whether images must be pinned by digest.
- `pod-security.kubernetes.io/enforce`: the Pod Security Standard the namespace enforces.
- `inferstack.io/location`: the site's country, which residency checks.
- `inferstack.io/privileged-reason` (annotation): why a system namespace enforces `privileged`.
- `inferstack.io/exposure-reason` (annotation): why a Service is reachable from outside the cluster.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator, Mapping
from typing import Any

from pulumi_policy import EnforcementLevel, ResourceValidationArgs, Severity, StackValidationArgs
from pulumi_policy.proxy import UnknownValueError

from ._rules import K8S_LOCATION_LABEL, K8S_NAMESPACE, get, items, resource_rule, stack_rule, truthy

WORKLOADS = {
    "kubernetes:core/v1:Pod": ("spec",),
    "kubernetes:apps/v1:Deployment": ("spec", "template", "spec"),
    "kubernetes:apps/v1:StatefulSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:DaemonSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:ReplicaSet": ("spec", "template", "spec"),
    "kubernetes:batch/v1:Job": ("spec", "template", "spec"),
    "kubernetes:batch/v1:CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
NAMESPACE = K8S_NAMESPACE
SERVICE = "kubernetes:core/v1:Service"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
RESOURCE_QUOTA = "kubernetes:core/v1:ResourceQuota"
INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
GATEWAY_API = "kubernetes:gateway.networking.k8s.io/"

WORKLOAD_LABEL = "workload"
ENGINE_WORKLOADS = ("serving", "batch")
ENVIRONMENT_LABEL = "environment"
PSS_ENFORCE = "pod-security.kubernetes.io/enforce"
PSS_LEVELS = ("privileged", "baseline", "restricted")
LOCATION_LABEL = K8S_LOCATION_LABEL
PRIVILEGED_REASON = "inferstack.io/privileged-reason"
EXPOSURE_REASON = "inferstack.io/exposure-reason"

_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
# NVIDIA device plugin resources: nvidia.com/gpu, and nvidia.com/mig-<profile> under the mixed
# MIG strategy (NVIDIA GPU Operator docs, "GPU Operator with MIG").
_GPU_RESOURCE = "nvidia.com/"


def pod_spec(args: ResourceValidationArgs) -> Mapping[str, Any]:
    return get(args.props, *WORKLOADS[args.resource_type]) or {}


def containers(spec: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [*items(spec, "initContainers"), *items(spec, "containers")]


def _name(c: Mapping[str, Any]) -> str:
    return get(c, "name", default="?")


def labels_of(props: Any) -> Mapping[str, Any]:
    return get(props, "metadata", "labels") or {}


def workload_labels(args: ResourceValidationArgs) -> Mapping[str, Any]:
    """The workload's labels, with its pod template's filling in what the object itself lacks."""
    template = get(args.props, *WORKLOADS[args.resource_type][:-1], "metadata", "labels") or {}
    return {**template, **labels_of(args.props)}


def is_engine(labels: Mapping[str, Any]) -> bool:
    return labels.get(WORKLOAD_LABEL) in ENGINE_WORKLOADS


def workload_rule(name: str, description: str, remediation: str, severity: Severity = Severity.HIGH, config=None):
    return resource_rule(
        name, description, severity=severity, remediation=remediation, types=tuple(WORKLOADS), config=config
    )


# -- the restricted Pod Security Standard, control by control ----------------------------------
# Kubernetes docs, "Pod Security Standards" (kubernetes.io/docs/concepts/security/pod-security-standards,
# read 2026-12): the fields each control restricts and the values it allows. Where the allowed set
# grew with the version (safe sysctls in 1.27/1.29, container_engine_t in 1.31), the rules take the
# newest: Pod Security admission of an older cluster is then stricter than the pack, never looser.


@workload_rule(
    "security-kubernetes-workload-require-non-root",
    "Containers run as a non-root user.",
    "set securityContext.runAsNonRoot: true (pod or container) and a non-zero runAsUser.",
)
def non_root(args, config) -> Iterator[str]:
    spec = pod_spec(args)
    pod_ok = truthy(get(spec, "securityContext", "runAsNonRoot"))
    for c in containers(spec):
        own = get(c, "securityContext", "runAsNonRoot")
        if not (truthy(own) if own is not None else pod_ok):
            yield f"Container {_name(c)} may run as root."
        if get(c, "securityContext", "runAsUser") == 0 or (get(spec, "securityContext", "runAsUser") == 0):
            yield f"Container {_name(c)} runs as UID 0."


@workload_rule(
    "security-kubernetes-workload-disallow-privileged",
    "No privileged containers and no privilege escalation.",
    "remove securityContext.privileged and set allowPrivilegeEscalation: false.",
    Severity.CRITICAL,
)
def unprivileged(args, config) -> Iterator[str]:
    for c in containers(pod_spec(args)):
        if truthy(get(c, "securityContext", "privileged")):
            yield f"Container {_name(c)} is privileged."
        if get(c, "securityContext", "allowPrivilegeEscalation") is not False:
            yield f"Container {_name(c)} allows privilege escalation."


@workload_rule(
    "security-kubernetes-workload-require-drop-all-capabilities",
    "Containers drop every Linux capability and add none back but NET_BIND_SERVICE (restricted).",
    "set securityContext.capabilities.drop: [ALL] and remove capabilities.add (NET_BIND_SERVICE only if needed).",
)
def drop_all_capabilities(args, config) -> Iterator[str]:
    for c in containers(pod_spec(args)):
        if "ALL" not in list(items(c, "securityContext", "capabilities", "drop")):
            yield f"Container {_name(c)} does not drop ALL capabilities."
        added = [cap for cap in items(c, "securityContext", "capabilities", "add") if cap != "NET_BIND_SERVICE"]
        if added:
            yield f"Container {_name(c)} adds capabilities {added}."


@workload_rule(
    "security-kubernetes-workload-require-seccomp-profile",
    "Every container runs under the runtime's default seccomp profile or a node-local one (restricted).",
    "set securityContext.seccompProfile.type: RuntimeDefault on the pod (or Localhost with a profile).",
)
def seccomp(args, config) -> Iterator[str]:
    spec = pod_spec(args)
    pod = get(spec, "securityContext", "seccompProfile", "type")
    if pod not in (None, "RuntimeDefault", "Localhost"):
        # Admission rejects an Unconfined pod-level profile even when every container overrides it.
        yield f"The pod's seccomp profile is {pod}."
    for c in containers(spec):
        kind = get(c, "securityContext", "seccompProfile", "type") or pod
        if kind not in ("RuntimeDefault", "Localhost"):
            yield f"Container {_name(c)} runs with seccomp profile {kind or 'unset (Unconfined on most runtimes)'}."


@workload_rule(
    "security-kubernetes-workload-disallow-host-namespaces",
    "Pods do not share the node's network, PID or IPC namespace.",
    "remove hostNetwork, hostPID and hostIPC; expose the engine through a Service.",
    Severity.CRITICAL,
)
def no_host_namespaces(args, config) -> Iterator[str]:
    spec = pod_spec(args)
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if truthy(get(spec, field)):
            yield f"The pod sets {field}."


@workload_rule(
    "security-kubernetes-workload-disallow-host-ports",
    "No container binds a port on the node (hostPort), which would bypass the Service and the NetworkPolicy.",
    "remove ports[].hostPort; reach the engine through its Service.",
)
def no_host_ports(args, config) -> Iterator[str]:
    for c in containers(pod_spec(args)):
        for port in items(c, "ports"):
            if get(port, "hostPort"):
                yield f"Container {_name(c)} binds host port {get(port, 'hostPort')}."


@workload_rule(
    "security-kubernetes-workload-disallow-hostpath-volumes",
    "No hostPath volumes: a pod that mounts the node's filesystem can read other tenants' data or take the node.",
    "use an emptyDir, a PersistentVolumeClaim or a CSI volume instead of hostPath.",
    Severity.CRITICAL,
)
def no_host_path(args, config) -> Iterator[str]:
    for volume in items(pod_spec(args), "volumes"):
        if get(volume, "hostPath") is not None:
            yield f"Volume {get(volume, 'name', default='?')} mounts the node's {get(volume, 'hostPath', 'path')!r}."


RESTRICTED_VOLUME_TYPES = (
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
)


@workload_rule(
    "security-kubernetes-workload-require-restricted-volume-types",
    "Volumes are of the types `restricted` allows (configMap, csi, downwardAPI, emptyDir, ephemeral, "
    "persistentVolumeClaim, projected, secret); network and in-tree volumes go through a claim.",
    "mount network storage (nfs, iscsi, ...) through a PersistentVolume and its claim.",
)
def restricted_volume_types(args, config) -> Iterator[str]:
    for volume in items(pod_spec(args), "volumes"):
        kinds = [k for k in (volume or {}) if k != "name" and k not in RESTRICTED_VOLUME_TYPES]
        # hostPath has a rule of its own, with a stronger severity.
        for kind in (k for k in kinds if k != "hostPath"):
            yield f"Volume {get(volume, 'name', default='?')} is of type {kind}, which restricted pods may not mount."


# Sysctls the baseline standard allows (namespaced, safe) as of Kubernetes 1.29.
SAFE_SYSCTLS = (
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
)
SELINUX_TYPES = ("", "container_t", "container_init_t", "container_kvm_t", "container_engine_t")


def _unsafe_context(where: str, ctx: Any) -> Iterator[str]:
    """The baseline controls a pod or container security context can break."""
    if truthy(get(ctx, "windowsOptions", "hostProcess")):
        yield f"{where} runs as a Windows HostProcess."
    if get(ctx, "appArmorProfile", "type") not in (None, "RuntimeDefault", "Localhost"):
        yield f"{where} sets AppArmor profile {get(ctx, 'appArmorProfile', 'type')}."
    selinux = get(ctx, "seLinuxOptions") or {}
    if (get(selinux, "type") or "") not in SELINUX_TYPES or get(selinux, "user") or get(selinux, "role"):
        yield f"{where} sets custom SELinux options {dict(selinux)}."
    if get(ctx, "procMount") not in (None, "Default"):
        yield f"{where} unmasks /proc (procMount {get(ctx, 'procMount')})."


@workload_rule(
    "security-kubernetes-workload-disallow-unsafe-options",
    "No pod breaks the rest of the baseline standard: Windows HostProcess, AppArmor unconfined, custom "
    "SELinux user, role or type, unmasked /proc, unsafe sysctls, probes or hooks aimed at another host.",
    "remove the option: the runtime's defaults (RuntimeDefault AppArmor, container_t, masked /proc) are what "
    "restricted requires.",
)
def unsafe_options(args, config) -> Iterator[str]:
    spec = pod_spec(args)
    yield from _unsafe_context("The pod", get(spec, "securityContext"))
    for sysctl in items(spec, "securityContext", "sysctls"):
        if get(sysctl, "name") not in SAFE_SYSCTLS:
            yield f"The pod sets the unsafe sysctl {get(sysctl, 'name')}."
    annotations = get(args.props, *WORKLOADS[args.resource_type][:-1], "metadata", "annotations") or {}
    for key, value in annotations.items():
        if str(key).startswith("container.apparmor.security.beta.kubernetes.io/") and not (
            value == "runtime/default" or str(value).startswith("localhost/")
        ):
            yield f"Annotation {key} sets AppArmor profile {value}."
    for c in containers(spec):
        yield from _unsafe_context(f"Container {_name(c)}", get(c, "securityContext"))
        handlers = [get(c, p) for p in ("livenessProbe", "readinessProbe", "startupProbe")]
        handlers += [get(c, "lifecycle", hook) for hook in ("postStart", "preStop")]
        for handler in filter(None, handlers):
            host = get(handler, "httpGet", "host") or get(handler, "tcpSocket", "host")
            if host:
                yield f"Container {_name(c)} probes or hooks another host ({host})."


@workload_rule(
    "security-kubernetes-workload-require-readonly-rootfs",
    "Containers have a read-only root filesystem.",
    "set securityContext.readOnlyRootFilesystem: true and mount an emptyDir where the engine writes.",
    Severity.MEDIUM,
)
def readonly_root(args, config) -> Iterator[str]:
    for c in containers(pod_spec(args)):
        if not truthy(get(c, "securityContext", "readOnlyRootFilesystem")):
            yield f"Container {_name(c)} has a writable root filesystem."


@workload_rule(
    "security-kubernetes-workload-disallow-serviceaccount-token",
    "Pods do not mount a service account token: the engine never calls the Kubernetes API, so a token "
    "would only serve whoever breaks into the pod.",
    "set automountServiceAccountToken: false in the pod spec.",
)
def no_service_account_token(args, config) -> Iterator[str]:
    if get(pod_spec(args), "automountServiceAccountToken") is not False:
        yield "The pod mounts a service account token (automountServiceAccountToken is not false)."


# -- resources ----------------------------------------------------------------------------------


@workload_rule(
    "security-kubernetes-workload-require-resource-limits",
    "Containers set CPU and memory limits, so one model cannot starve a node.",
    "set resources.limits.cpu and resources.limits.memory.",
    Severity.MEDIUM,
)
def resource_limits(args, config) -> Iterator[str]:
    for c in containers(pod_spec(args)):
        limits = get(c, "resources", "limits") or {}
        missing = [r for r in ("cpu", "memory") if r not in limits]
        if missing:
            yield f"Container {_name(c)} has no limit for {', '.join(missing)}."


# The NVIDIA container runtime exposes the GPUs NVIDIA_VISIBLE_DEVICES names; CUDA base images set
# it to `all`, so a container on that runtime that asks for no GPU sees every GPU of the node
# unless it sets `void` (runc behaviour) or `none` (NVIDIA Container Toolkit docs, "Specialized
# Configurations with Docker", NVIDIA_VISIBLE_DEVICES; k8s-device-plugin README's warning).
NO_GPU_VALUES = ("void", "none")


@workload_rule(
    "security-kubernetes-workload-require-gpu-limits",
    "Every GPU a container asks for is a limit equal to its request (extended resources cannot be "
    "overcommitted), and a container on the GPU runtime class without a GPU limit hides the node's GPUs.",
    "set resources.limits for each nvidia.com/* resource (equal to any request); on the GPU runtime "
    "class, give containers that need no GPU the env NVIDIA_VISIBLE_DEVICES=void.",
    config={
        "gpuRuntimeClasses": {
            "type": "array",
            "items": {"type": "string"},
            "default": ["nvidia"],
            "description": "RuntimeClass names that run containers under the NVIDIA container runtime.",
        }
    },
)
def gpu_limits(args, config) -> Iterator[str]:
    # Kubernetes docs, "Resource Management for Pods and Containers" > extended resources: they
    # cannot be overcommitted, so request and limit must be equal when both are given.
    spec = pod_spec(args)
    on_gpu_runtime = get(spec, "runtimeClassName") in config["gpuRuntimeClasses"]
    for c in containers(spec):
        requests = get(c, "resources", "requests") or {}
        limits = get(c, "resources", "limits") or {}
        for resource, amount in requests.items():
            if not str(resource).startswith(_GPU_RESOURCE):
                continue
            if resource not in limits:
                yield f"Container {_name(c)} requests {resource} without a limit."
            elif str(limits[resource]) != str(amount):
                yield f"Container {_name(c)} requests {amount} {resource} but limits {limits[resource]}."
        has_gpu = any(str(r).startswith(_GPU_RESOURCE) for r in limits)
        if on_gpu_runtime and not has_gpu:
            env = {get(e, "name"): get(e, "value") for e in items(c, "env")}
            if env.get("NVIDIA_VISIBLE_DEVICES") not in NO_GPU_VALUES:
                yield (
                    f"Container {_name(c)} runs on the GPU runtime class with no GPU limit: it may see "
                    "every GPU of the node."
                )


@workload_rule(
    "security-kubernetes-workload-require-image-digest",
    "In production, images are pinned by digest, so every replica runs the same bits; the environment "
    "comes from the workload's standard `environment` label, and a workload without one counts as production.",
    "reference the image as repo@sha256:<digest>.",
    Severity.MEDIUM,
    config={
        "productionEnvironments": {
            "type": "array",
            "items": {"type": "string"},
            "default": ["prod", "production"],
            "description": "Values of the environment label that mean production.",
        }
    },
)
def image_digest(args, config) -> Iterator[str]:
    environment = workload_labels(args).get(ENVIRONMENT_LABEL)
    if environment is not None and environment not in config["productionEnvironments"]:
        return
    for c in containers(pod_spec(args)):
        if not _DIGEST.search(str(get(c, "image", default=""))):
            yield f"Container {_name(c)} uses a mutable image reference {get(c, 'image')!r} in production."


# -- namespaces ---------------------------------------------------------------------------------


@resource_rule(
    "security-kubernetes-namespace-require-pod-security-label",
    "Every namespace enforces a Pod Security Standard: `restricted` where the engine runs (workload label "
    "serving or batch), at least `baseline` elsewhere, `privileged` only for a system namespace whose "
    f"{PRIVILEGED_REASON} annotation says why.",
    severity=Severity.HIGH,
    remediation=f"label the namespace {PSS_ENFORCE}: restricted (baseline for system namespaces); a system "
    f"operator that needs privileged pods gets its own namespace with an {PRIVILEGED_REASON} annotation.",
    types=(NAMESPACE,),
)
def namespace_pod_security(args: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterator[str]:
    labels = labels_of(args.props)
    level = labels.get(PSS_ENFORCE)
    reason = str(get(args.props, "metadata", "annotations", PRIVILEGED_REASON) or "").strip()
    if level not in PSS_LEVELS:
        yield f"The namespace enforces no Pod Security Standard ({PSS_ENFORCE}={level!r})."
    elif is_engine(labels):
        if level != "restricted":
            yield f"The engine's namespace enforces {level!r}, not 'restricted'."
    elif level == "privileged" and not reason:
        yield f"The namespace enforces 'privileged' with no {PRIVILEGED_REASON} annotation saying why."


def _namespace(props: Any) -> str:
    return get(props, "metadata", "namespace") or "default"


def _empty_selector(selector: Any) -> bool:
    """A label selector that selects everything: missing or with no terms."""
    return not get(selector, "matchLabels") and not list(items(selector, "matchExpressions"))


def _admits_everyone(rule: Any) -> str | None:
    """Why an ingress rule admits every source, or None."""
    peers = list(items(rule, "from"))
    if not peers:
        return "an ingress rule without `from` admits every source"
    for peer in peers:
        if get(peer, "namespaceSelector") is not None and _empty_selector(get(peer, "namespaceSelector")):
            if get(peer, "podSelector") is None or _empty_selector(get(peer, "podSelector")):
                return "an ingress rule admits every pod of every namespace"
        cidr = get(peer, "ipBlock", "cidr")
        if cidr is not None:
            try:
                if ipaddress.ip_network(str(cidr), strict=False).prefixlen == 0:
                    return f"an ingress rule admits {cidr}"
            except ValueError:
                return f"an ingress rule admits the unreadable range {cidr!r}"
    return None


@stack_rule(
    "security-kubernetes-namespace-require-default-deny-networkpolicy",
    "Every namespace the engine runs in (labelled workload serving or batch, or holding the stack's pods) "
    "has a NetworkPolicy that selects every pod for ingress (deny by default), and no policy there admits "
    "every source.",
    severity=Severity.HIGH,
    remediation="add a NetworkPolicy with podSelector: {} and policyTypes: [Ingress] to the namespace, and "
    "admit only the namespaces that need the engine (gateway, metrics scraper) by namespaceSelector.",
)
def default_deny(args: StackValidationArgs, config: Mapping[str, Any]) -> Iterator[tuple[str, str | None]]:
    # A pod is isolated for ingress once any policy with policyTypes Ingress selects it (Ingress
    # is implied when policyTypes is absent); policies add up, so one allow-all undoes the deny.
    # Kubernetes docs, "Network Policies" (concepts/services-networking/network-policies).
    engine: dict[str, str | None] = {}
    denied: set[str] = set()
    for r in args.resources:
        try:
            if r.resource_type == NAMESPACE and is_engine(labels_of(r.props)):
                name = get(r.props, "metadata", "name")
                engine[name or r.name] = r.urn
            elif r.resource_type in WORKLOADS:
                engine.setdefault(_namespace(r.props), r.urn)
        except UnknownValueError:
            yield (
                f"{r.resource_type} {r.name}: its namespace is unknown at preview, so its policies cannot be checked.",
                r.urn,
            )
    for r in args.resources:
        if r.resource_type != NETWORK_POLICY:
            continue
        try:
            namespace = _namespace(r.props)
            types = list(items(r.props, "spec", "policyTypes")) or ["Ingress"]
            if "Ingress" in types and _empty_selector(get(r.props, "spec", "podSelector")):
                denied.add(namespace)
            for rule in items(r.props, "spec", "ingress"):
                why = _admits_everyone(rule)
                if why and namespace in engine:
                    yield f"NetworkPolicy {r.name} in {namespace}: {why}.", r.urn
        except UnknownValueError:
            yield f"NetworkPolicy {r.name}: a value is unknown at preview, so it cannot be checked.", r.urn
    for namespace, urn in sorted(engine.items()):
        if namespace not in denied:
            yield f"Namespace {namespace} runs the engine with no default-deny ingress NetworkPolicy.", urn


@stack_rule(
    "cost-kubernetes-namespace-require-gpu-quota",
    "Every GPU resource (nvidia.com/*) the stack's pods ask for is capped in their namespace by a "
    "ResourceQuota (`requests.<resource>`), so a runaway autoscaler cannot take the cluster's shared GPUs.",
    severity=Severity.MEDIUM,
    enforcement=EnforcementLevel.ADVISORY,
    remediation="add a ResourceQuota to the namespace with spec.hard `requests.nvidia.com/gpu` (or the MIG "
    "resource) at the replicas the pool may run times the devices each takes.",
)
def gpu_quota(args: StackValidationArgs, config: Mapping[str, Any]) -> Iterator[tuple[str, str | None]]:
    # Kubernetes docs, "Resource Quotas" > quota for extended resources: extended resources cannot
    # be overcommitted, so only `requests.<name>` quota items are allowed (limits.* is rejected).
    capped: set[tuple[str, str]] = set()
    for r in args.resources:
        if r.resource_type == RESOURCE_QUOTA:
            for item in get(r.props, "spec", "hard") or {}:
                if str(item).startswith(f"limits.{_GPU_RESOURCE}"):
                    yield f"ResourceQuota {r.name} caps {item}: the API server only accepts requests.* for GPUs.", r.urn
                elif str(item).startswith(f"requests.{_GPU_RESOURCE}"):
                    capped.add((_namespace(r.props), str(item).removeprefix("requests.")))
    for r in args.resources:
        if r.resource_type not in WORKLOADS:
            continue
        spec = get(r.props, *WORKLOADS[r.resource_type]) or {}
        asked = {
            str(res)
            for c in containers(spec)
            for part in ("limits", "requests")
            for res in get(c, "resources", part) or {}
            if str(res).startswith(_GPU_RESOURCE)
        }
        for resource in sorted(asked - {res for ns, res in capped if ns == _namespace(r.props)}):
            yield f"{r.name} asks for {resource} in {_namespace(r.props)}, where no ResourceQuota caps it.", r.urn


# -- exposure -----------------------------------------------------------------------------------


@resource_rule(
    "security-kubernetes-service-disallow-external-exposure",
    "Services stay inside the cluster (ClusterIP): no LoadBalancer, NodePort or externalIPs unless the "
    f"Service's {EXPOSURE_REASON} annotation says why.",
    severity=Severity.HIGH,
    remediation="use type ClusterIP and reach the engine through the internal route (Gateway API or Ingress "
    f"with TLS); an exposure that is really needed carries an {EXPOSURE_REASON} annotation.",
    types=(SERVICE,),
)
def service_internal(args: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterator[str]:
    if str(get(args.props, "metadata", "annotations", EXPOSURE_REASON) or "").strip():
        return
    kind = get(args.props, "spec", "type") or "ClusterIP"
    if kind in ("LoadBalancer", "NodePort"):
        yield f"The Service is of type {kind}, reachable from outside the cluster."
    if list(items(args.props, "spec", "externalIPs")):
        yield "The Service has externalIPs."


@resource_rule(
    "security-kubernetes-ingress-require-tls",
    "Routes into the cluster terminate TLS: every Ingress host is covered by a `tls` entry with a Secret, "
    "every Gateway listener speaks HTTPS or TLS, and an HTTPRoute attaches to one named (HTTPS) listener.",
    severity=Severity.HIGH,
    remediation="add spec.tls with the host and its certificate Secret (the spec's ingress.tls_secret); "
    "attach routes only to HTTPS listeners, by parentRefs[].sectionName.",
    types=(INGRESS, f"{GATEWAY_API}v1:Gateway", f"{GATEWAY_API}v1:HTTPRoute"),
)
def ingress_tls(args: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterator[str]:
    # Gateway API v1 (gateway-api.sigs.k8s.io, API reference): a Gateway's listeners[].protocol;
    # a route's parentRefs[].sectionName names one listener, and when it is empty the route
    # attaches to every listener of the Gateway, a plain HTTP one included.
    if args.resource_type.endswith(":Gateway"):
        for listener in items(args.props, "spec", "listeners"):
            if get(listener, "protocol") not in ("HTTPS", "TLS"):
                yield f"Listener {get(listener, 'name', default='?')} speaks {get(listener, 'protocol')!r}, not TLS."
        return
    if args.resource_type.endswith(":HTTPRoute"):
        for parent in items(args.props, "spec", "parentRefs"):
            if (get(parent, "kind") or "Gateway") == "Gateway" and not get(parent, "sectionName"):
                yield (
                    f"The route attaches to every listener of Gateway {get(parent, 'name')!r} (no sectionName), "
                    "plain HTTP ones included."
                )
        return
    tls = list(items(args.props, "spec", "tls"))
    if not tls:
        yield "The Ingress has no TLS section: it serves plain HTTP."
        return
    covered = {h for t in tls if get(t, "secretName") for h in items(t, "hosts")}
    for t in tls:
        if not get(t, "secretName"):
            yield f"A TLS entry for {list(items(t, 'hosts'))} names no certificate Secret."
    for rule in items(args.props, "spec", "rules"):
        host = get(rule, "host")
        if host is None or host not in covered:
            yield f"Host {host or '(any)'} is not covered by a TLS entry with a Secret."


# -- charts -------------------------------------------------------------------------------------

_EXACT_VERSION = re.compile(r"^v?\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")
_SCHEME = re.compile(r"^([a-z][a-z0-9+.-]*)://")
HELM_V3 = "kubernetes:helm.sh/v3:Release"
HELM_V4 = "kubernetes:helm.sh/v4:Chart"


def _repository_problem(url: Any, *, bare_is_oci: bool = False) -> str | None:
    scheme = _SCHEME.match(str(url or ""))
    if not url:
        return "names no chart repository"
    if scheme is None:
        return None if bare_is_oci else f"names the repository {url!r} without https:// or oci://"
    if scheme.group(1) not in ("https", "oci"):
        return f"fetches the chart over {scheme.group(1)}:// ({url})"
    return None


def _version_problem(version: Any) -> str | None:
    if not version:
        return "pins no chart version (the latest is installed)"
    if not _EXACT_VERSION.match(str(version)):
        return f"asks for the chart version {version!r}, not one exact version"
    return None


def _chart_problems(token: str, props: Any) -> Iterator[str]:
    kind = token.rsplit(":", 1)[-1]
    spec = get(props, "spec") or {}
    if token in (HELM_V3, HELM_V4):
        # pulumi-kubernetes Release/Chart: `version` is "the exact chart version ... if not
        # specified, the latest"; `repositoryOpts.repo`, or a chart given as a URL.
        chart = str(get(props, "chart") or "")
        repo = get(props, "repositoryOpts", "repo") or (chart if _SCHEME.match(chart) else None)
        yield from filter(None, (_repository_problem(repo), _version_problem(get(props, "version"))))
        if truthy(get(props, "plainHttp")):
            yield "fetches the chart over plain HTTP (plainHttp)"
    elif token.startswith("kubernetes:helm.toolkit.fluxcd.io/") and kind == "HelmRelease":
        # Flux HelmRelease v2: spec.chart.spec.version is a semver range, "*" when empty; with
        # spec.chartRef the version is the referenced OCIRepository's (fluxcd.io, "Helm Releases").
        if get(spec, "chart") is not None:
            problem = _version_problem(get(spec, "chart", "spec", "version"))
            if problem:
                yield problem
    elif token.startswith("kubernetes:source.toolkit.fluxcd.io/") and kind in ("HelmRepository", "OCIRepository"):
        problem = _repository_problem(get(spec, "url"))
        if problem:
            yield problem
        if kind == "OCIRepository" and not get(spec, "ref", "digest"):
            tag = get(spec, "ref", "tag")
            if get(spec, "ref", "semver") is not None or _version_problem(tag):
                yield f"asks for {get(spec, 'ref') or 'the latest tag'}, not one exact version or digest"
    elif token.startswith("kubernetes:argoproj.io/") and kind == "Application":
        # Argo CD Application: spec.source (or sources[]) repoURL, chart, targetRevision; an OCI
        # Helm repository is written without a scheme (argo-cd.readthedocs.io, "Helm").
        sources = [get(spec, "source")] if get(spec, "source") else list(items(spec, "sources"))
        for source in sources:
            if get(source, "chart"):
                problem = _repository_problem(get(source, "repoURL"), bare_is_oci=True)
                yield from filter(None, (problem, _version_problem(get(source, "targetRevision"))))


@resource_rule(
    "security-kubernetes-helm-release-require-pinned-chart",
    "Charts (Helm releases, Flux HelmRelease/HelmRepository/OCIRepository, Argo CD Applications) are one "
    "exact version fetched over https:// or oci://, so what runs is what was reviewed.",
    severity=Severity.HIGH,
    remediation="set the chart version to one exact version (e.g. v25.10.0, no range, never empty) and the "
    "repository to an https:// or oci:// URL of the site's mirror.",
    types=(
        "kubernetes:helm.sh/",
        "kubernetes:helm.toolkit.fluxcd.io/",
        "kubernetes:source.toolkit.fluxcd.io/",
        "kubernetes:argoproj.io/",
    ),
)
def pinned_chart(args: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterator[str]:
    for problem in _chart_problems(args.resource_type, args.props):
        yield f"The chart {problem}."
