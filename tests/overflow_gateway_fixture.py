"""A hand-built overflow for the gateway's tests: the Munich primary of stacks/onprem.yaml with an
overflow section, and two burst upstreams (AWS first, GCP second) built by hand, as the lead's
planner glue would build them from the fleets' private endpoints."""

from __future__ import annotations

from conftest import STACKS
from inferstack.planning.overflow import BurstUpstream, WakeMetric
from inferstack.spec.loader import parse_spec
from inferstack.spec.models import DeploymentSpec

OVERFLOW = """
overflow:
  primary: muc
  burst: [aws-burst, gcp-burst]
  trigger: {pending_requests: 32, for_seconds: 30, primary_unhealthy: true}
  classifications: [public, internal]
  classification_header: x-data-classification
  link:
    site_public_ips: [185.30.200.10]
    site_asn: 65010
    onprem_cidrs: [10.40.0.0/16]
  gateway:
    image: registry.muc.acme.internal/mirror/envoyproxy/envoy@sha256:{digest}
    publisher_image: registry.muc.acme.internal/mirror/inferstack/publisher@sha256:{digest}
    tls_secret: overflow-gateway-tls
    client_certificate_secret: overflow-publisher-client
    cloud_ca_secret: burst-endpoints-ca
    service_account_issuer: https://muc-gpu-prod.acme.internal
    overflow_timeout_seconds: 900
""".replace("{digest}", "b" * 64)

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
    """stacks/onprem.yaml (its stack classification replaced) with the overflow above."""
    text = (STACKS / "onprem.yaml").read_text()
    text = text.replace("data_classification: confidential", f"data_classification: {classification}")
    return parse_spec(text + OVERFLOW + extra, "hybrid-fixture").spec
