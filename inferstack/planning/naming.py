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
