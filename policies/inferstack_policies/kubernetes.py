"""Kubernetes workloads (on-prem GPU pools and overflow gateways): the restricted Pod Security
profile plus resource limits and images pinned by digest.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from pulumi_policy import ResourceValidationArgs, Severity

from ._rules import get, items, resource_rule, truthy

WORKLOADS = {
    "kubernetes:core/v1:Pod": ("spec",),
    "kubernetes:apps/v1:Deployment": ("spec", "template", "spec"),
    "kubernetes:apps/v1:StatefulSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:DaemonSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:ReplicaSet": ("spec", "template", "spec"),
    "kubernetes:batch/v1:Job": ("spec", "template", "spec"),
    "kubernetes:batch/v1:CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


def pod_spec(args: ResourceValidationArgs) -> Mapping[str, Any]:
    return get(args.props, *WORKLOADS[args.resource_type]) or {}


def containers(spec: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [*items(spec, "initContainers"), *items(spec, "containers")]


def _name(c: Mapping[str, Any]) -> str:
    return get(c, "name", default="?")


def workload_rule(name: str, description: str, remediation: str, severity: Severity = Severity.HIGH):
    return resource_rule(name, description, severity=severity, remediation=remediation, types=tuple(WORKLOADS))


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
    "security-kubernetes-workload-require-resource-limits",
    "Containers set CPU and memory limits, so one model cannot starve a node.",
    "set resources.limits.cpu and resources.limits.memory (and nvidia.com/gpu for GPU containers).",
    Severity.MEDIUM,
)
def resource_limits(args, config) -> Iterator[str]:
    for c in containers(pod_spec(args)):
        limits = get(c, "resources", "limits") or {}
        missing = [r for r in ("cpu", "memory") if r not in limits]
        if get(c, "resources", "requests", "nvidia.com/gpu") and "nvidia.com/gpu" not in limits:
            missing.append("nvidia.com/gpu")
        if missing:
            yield f"Container {_name(c)} has no limit for {', '.join(missing)}."


@workload_rule(
    "security-kubernetes-workload-require-image-digest",
    "Images are pinned by digest, so every replica runs the same bits.",
    "reference the image as repo@sha256:<digest>.",
    Severity.MEDIUM,
)
def image_digest(args, config) -> Iterator[str]:
    for c in containers(pod_spec(args)):
        if not _DIGEST.search(str(get(c, "image", default=""))):
            yield f"Container {_name(c)} uses a mutable image reference {get(c, 'image')!r}."
