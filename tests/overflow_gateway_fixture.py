"""The gateway's tests' overflow: stacks/hybrid.yaml, and two burst upstreams (AWS first, GCP second) built by hand, as the lead's
planner glue would build them from the fleets' private endpoints."""

from __future__ import annotations

from conftest import STACKS
from inferstack.planning.overflow import BurstUpstream, WakeMetric
from inferstack.spec.loader import parse_spec
from inferstack.spec.models import DeploymentSpec

CLOUD_CIDRS = ("10.64.0.0/16", "10.80.0.0/16")

BURST = (
    # Given out of order: the planner orders by priority.
    BurstUpstream(
        target="gcp-burst",
        cloud="gcp",
        region="europe-west4",
        priority=1,
        host="gcp-burst.assistant.internal.example",
        port=443,
        cold_start_seconds=420,
        wake=WakeMetric(
            cloud="gcp",
            region="europe-west4",
            project="acme-inference",
            namespace="",
            name="custom.googleapis.com/inferstack/pending_requests",
            dimensions={"group": "assistant-hybrid-gcp-burst"},
            resource="generic_node",
        ),
    ),
    BurstUpstream(
        target="aws-burst",
        cloud="aws",
        region="eu-central-1",
        priority=0,
        host="aws-burst.assistant.internal.example",
        port=443,
        cold_start_seconds=480,
        wake=WakeMetric(
            cloud="aws",
            region="eu-central-1",
            project=None,
            namespace="InferStack",
            name="PendingRequests",
            dimensions={"AutoScalingGroupName": "assistant-hybrid-aws-burst"},
        ),
    ),
)


def hybrid_spec(classification: str = "confidential", extra: str = "") -> DeploymentSpec:
    """stacks/hybrid.yaml, its stack classification replaced (and `extra` appended)."""
    text = (STACKS / "hybrid.yaml").read_text()
    text = text.replace("data_classification: internal", f"data_classification: {classification}", 1)
    return parse_spec(text + extra, "hybrid-fixture").spec
