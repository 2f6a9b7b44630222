"""Names and tags: derived from the spec's keys only, so reordering a spec renames nothing."""

from __future__ import annotations

from inferstack.spec.models import DeploymentSpec

MANAGED_BY = "inferstack"


def resource_prefix(spec: DeploymentSpec, stack: str, target: str) -> str:
    """Physical-name prefix for one target's resources: deployment, stack, target.

    Kept to 40 characters so that every AWS name built on it (IAM roles: 64, ASGs and log
    groups: 255, Pulumi's 8-character auto-name suffix) stays within its limit.
    """
    return f"{spec.metadata.name}-{stack}-{target}"[:40].rstrip("-")


def standard_tags(spec: DeploymentSpec, stack: str, model: str) -> dict[str, str]:
    """The tags every resource carries, for cost attribution and for the policy pack.

    Keys are lower-case with dashes so the same set is valid as GCP labels.
    """
    return {
        "stack": stack,
        "environment": spec.metadata.environment,
        "team": spec.metadata.team,
        "model": model,
        "data-classification": spec.metadata.data_classification,
        "managed-by": MANAGED_BY,
    }
