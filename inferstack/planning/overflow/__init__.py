"""Hybrid overflow: the plan of the path from the on-prem primary to its cloud burst targets.

Modules: `gateway` (Envoy's config and the gateway's Kubernetes objects on the primary's cluster),
`publisher` (the sidecar that evaluates the trigger and publishes the wake metric, and the cloud
identities it uses: IAM Roles Anywhere, Workload Identity Federation), `aws_link` and `gcp_link`
(the site-to-site VPN of each cloud). This module holds what they share: the burst upstreams, in
order of preference, and the metric each burst target wakes on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class WakeMetric:
    """The metric a burst target's autoscaler wakes on, as the publisher must write it.

    AWS: CloudWatch `namespace`/`name` with `dimensions` (the group's name). GCP: the Cloud
    Monitoring metric type `name` (custom.googleapis.com/...) on the `resource` type with its
    labels (`dimensions`)."""

    cloud: str  # aws | gcp
    region: str
    project: str | None  # GCP project; None on AWS
    namespace: str  # AWS namespace; '' on GCP
    name: str
    dimensions: Mapping[str, str]
    resource: str = ""  # GCP monitored-resource type


@dataclass(frozen=True)
class BurstUpstream:
    """One burst target as the gateway sees it: reachable only at its private endpoint, over the link."""

    target: str
    cloud: str  # aws | gcp
    region: str
    priority: int  # 0 is tried first
    host: str  # the name Envoy connects to and verifies (SNI and certificate)
    port: int
    cold_start_seconds: int  # from zero to serving: the start-up estimate of the target's kind
    wake: WakeMetric | None  # None: a target with no autoscaler (TPU slices), always serving
