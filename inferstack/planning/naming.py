"""Names and tags: derived from the spec's keys only, so reordering a spec renames nothing."""

from __future__ import annotations

import hashlib
import re

from inferstack.spec.models import DeploymentSpec

MANAGED_BY = "inferstack"


def resource_prefix(spec: DeploymentSpec, stack: str, target: str) -> str:
    """Physical-name prefix for one target's resources: deployment, stack, target.

    Kept to 40 characters so that every AWS name built on it (IAM roles: 64, ASGs and log
    groups: 255, Pulumi's 8-character auto-name suffix) stays within its limit.
    """
    full = f"{spec.metadata.name}-{stack}-{target}"
    if len(full) <= 40:
        return full
    # Cut to fit, keeping a hash of the whole so two long names never collide.
    return f"{full[:34].rstrip('-')}-{hashlib.sha256(full.encode()).hexdigest()[:5]}"


def standard_tags(spec: DeploymentSpec, stack: str, model: str, workload: str = "serving") -> dict[str, str]:
    """The tags every resource carries, for cost attribution and for the policy pack.

    Keys are lower-case with dashes so the same set is valid as GCP labels.
    """
    return {
        "stack": stack,
        "environment": spec.metadata.environment,
        "team": spec.metadata.team,
        "model": model,
        "data-classification": spec.metadata.data_classification,
        "workload": workload,
        "managed-by": MANAGED_BY,
    }


_LABEL_BAD = re.compile(r"[^a-z0-9_-]")


def gcp_labels(tags: dict[str, str]) -> dict[str, str]:
    """Tags as GCP labels: lower-case letters, digits, '-' and '_', at most 63 characters."""
    return {_LABEL_BAD.sub("-", k.lower())[:63]: _LABEL_BAD.sub("-", v.lower())[:63] for k, v in tags.items()}


def gcp_name(*parts: str, limit: int = 63) -> str:
    """A GCP resource name (RFC 1035: lower-case, starts with a letter, no trailing dash).

    A name cut to fit keeps a short hash of the whole, so two long names never collide.
    """
    name = re.sub(r"[^a-z0-9-]", "-", "-".join(parts).lower())
    if len(name) <= limit:
        return name.rstrip("-")
    digest = hashlib.sha256(name.encode()).hexdigest()[:5]
    return f"{name[: limit - 6].rstrip('-')}-{digest}"


# Kubernetes names and labels (API reference, "Object Names and IDs" and "Labels and Selectors",
# v1.31): a DNS-1123 label is at most 63 characters of a-z, 0-9 and '-', starting and ending with
# an alphanumeric; a label value is at most 63 characters of A-Z, a-z, 0-9, '-', '_' and '.',
# starting and ending with an alphanumeric (or empty).
_K8S_NAME_BAD = re.compile(r"[^a-z0-9-]+")
_K8S_VALUE_BAD = re.compile(r"[^A-Za-z0-9_.-]+")
_K8S_LIMIT = 63


def _cut(value: str, limit: int, strip: str) -> str:
    """`value` within `limit` characters; a value cut to fit keeps a hash of the whole, so two long
    values never collide."""
    if len(value) <= limit:
        return value
    digest = hashlib.sha256(value.encode()).hexdigest()[:5]
    return f"{value[: limit - 6].rstrip(strip)}-{digest}"


def k8s_name(*parts: str, limit: int = _K8S_LIMIT) -> str:
    """A Kubernetes object name valid as a DNS-1123 label (namespaces, Services, and every name
    that ends up in a label or a pod's hostname)."""
    name = _K8S_NAME_BAD.sub("-", "-".join(parts).lower()).strip("-") or "x"
    return _cut(name, limit, "-")


def k8s_labels(tags: dict[str, str]) -> dict[str, str]:
    """Tags as Kubernetes labels: keys are already valid label names (standard_tags); values are
    made valid label values (a Pulumi stack name may hold characters a label may not)."""
    out = {}
    for key, value in tags.items():
        clean = _K8S_VALUE_BAD.sub("-", value).strip("-_.")
        out[key] = _cut(clean, _K8S_LIMIT, "-_.")
    return out
