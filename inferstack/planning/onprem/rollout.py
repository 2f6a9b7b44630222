"""How long a Deployment's rollout may take, so `pulumi up` waits for it and no longer.

A rolling update replaces pods a batch at a time: at most maxSurge new pods above the desired
count and maxUnavailable old ones missing, so each step replaces maxSurge + maxUnavailable pods
(Kubernetes, "Deployments", Rolling Update Deployment). A GPU replica's new pod needs the devices
its old pod holds (the pools have no spare device at maxSurge 0, and the surge pod's device is
taken by the first batch), so each batch takes the old pods' termination (their grace period) and
the new pods' start-up (their startup probe's budget). A pool at its max replica count rolls in
ceil(replicas / batch) such steps; the margin covers scheduling, the image's pull and the GPU
operator's first driver install on a new node, once.

pulumi-kubernetes waits 10 minutes for a Deployment by default; a resource's custom timeouts
replace that (the provider prefers them to the `pulumi.com/timeoutSeconds` annotation, which its
docs call the older way; pulumi/pulumi-kubernetes#672).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

ROLLOUT_MARGIN_SECONDS = 20 * 60
DEFAULT_GRACE_SECONDS = 30  # PodSpec.terminationGracePeriodSeconds when unset
DEFAULT_ROLLING = "25%"  # RollingUpdateDeployment: maxSurge and maxUnavailable when unset


def rollout_seconds(
    *, replicas: int, max_surge: int, max_unavailable: int, pod_seconds: int, margin: int = ROLLOUT_MARGIN_SECONDS
) -> int:
    """ceil(replicas / (maxSurge + maxUnavailable)) batches of `pod_seconds` each, plus the margin."""
    batch = max_surge + max_unavailable
    if batch < 1:
        raise ValueError("maxSurge and maxUnavailable are both 0: the rollout can never replace a pod")
    if replicas < 1:
        raise ValueError(f"a rollout of {replicas} replicas")
    return math.ceil(replicas / batch) * pod_seconds + margin


def _absolute(value: int | str, replicas: int, round_up: bool) -> int:
    """An IntOrString of the rolling update as a pod count: a percentage of the replicas, maxSurge
    rounded up and maxUnavailable down (as the Deployment controller does)."""
    if isinstance(value, int):
        return value
    share = float(value.rstrip("%")) / 100 * replicas
    return math.ceil(share) if round_up else math.floor(share)


def pod_seconds(pod_spec: Mapping[str, Any]) -> int:
    """One batch: the old pod's grace period, then the new pod's longest startup probe budget
    (initialDelaySeconds + periodSeconds x failureThreshold, with the API's defaults 0, 10, 3)."""
    budget = 0
    for container in pod_spec.get("containers") or []:
        probe = container.get("startupProbe") or {}
        if probe:
            budget = max(
                budget,
                probe.get("initialDelaySeconds", 0) + probe.get("periodSeconds", 10) * probe.get("failureThreshold", 3),
            )
    return pod_spec.get("terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS) + budget


def deployment_rollout_seconds(body: Mapping[str, Any], replicas: int) -> int:
    """The rollout of a Deployment body at `replicas` pods (for an autoscaled one, its max)."""
    spec = body.get("spec") or {}
    strategy = spec.get("strategy") or {}
    if strategy.get("type") == "Recreate":  # every old pod goes, then every new one starts: one batch
        return rollout_seconds(
            replicas=1,
            max_surge=0,
            max_unavailable=1,
            pod_seconds=pod_seconds((spec.get("template") or {}).get("spec") or {}),
        )
    rolling = strategy.get("rollingUpdate") or {}
    return rollout_seconds(
        replicas=replicas,
        max_surge=_absolute(rolling.get("maxSurge", DEFAULT_ROLLING), replicas, round_up=True),
        max_unavailable=_absolute(rolling.get("maxUnavailable", DEFAULT_ROLLING), replicas, round_up=False),
        pod_seconds=pod_seconds((spec.get("template") or {}).get("spec") or {}),
    )
