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


# -- the publisher's identities: what the stack creates and the publisher reads ---------------------
#
# The publisher (planning.overflow.publisher) runs beside Envoy in the gateway pod. Its static
# config (trigger, burst clusters, wake metrics) is planned and hashed with the gateway's. What it
# needs from the clouds is known only once the stack has created it (the Roles Anywhere trust
# anchor's and profile's ARNs, the GCP project number in the Workload Identity audience), so
# deploy_overflow writes it into this ConfigMap in the gateway's namespace after the identities
# exist, and the publisher re-reads it on every cycle (a change needs no restart):
#
#   identity.json = {
#     "aws": {"<burst target>": {"region": "eu-central-1",
#                                "trustAnchorArn": "arn:aws:rolesanywhere:...:trust-anchor/...",
#                                "profileArn": "arn:aws:rolesanywhere:...:profile/...",
#                                "roleArn": "arn:aws:iam::123456789012:role/..."}},
#     "gcp": {"<burst target>": {"project": "my-project",
#                                "credentialConfig": {<external_account credential configuration:
#                                   audience //iam.googleapis.com/projects/NUM/locations/global/
#                                   workloadIdentityPools/POOL/providers/PROVIDER, subject_token_type
#                                   urn:ietf:params:oauth:token-type:jwt, token_url
#                                   https://sts.googleapis.com/v1/token, credential_source.file
#                                   GCP_TOKEN_PATH>}}}
#   }
#
# Until the ConfigMap exists (the first `pulumi up` creates it after the gateway), the publisher
# keeps the overflow off and says so in its log; the volume is optional for that reason.
PUBLISHER_IDENTITY_CONFIGMAP = "overflow-publisher-identity"
PUBLISHER_IDENTITY_FILE = "identity.json"
PUBLISHER_IDENTITY_DIR = "/etc/inferstack/identity"
# The client certificate (tls.crt, tls.key; spec: overflow.gateway.client_certificate_secret) that
# aws_signing_helper presents to IAM Roles Anywhere.
PUBLISHER_CLIENT_TLS_DIR = "/etc/inferstack/client-tls"
# The projected service-account token the publisher trades at Google's STS. Its audience is fixed
# here (the WIF provider's allowed audience) so the pod spec needs no deploy-time value.
GCP_TOKEN_DIR = "/var/run/secrets/inferstack/gcp"
GCP_TOKEN_PATH = GCP_TOKEN_DIR + "/token"
GCP_TOKEN_EXPIRATION_SECONDS = 3600


def gcp_token_audience(stack: str) -> str:
    """The `aud` of the publisher's projected token, and the only audience the stack's WIF
    provider accepts (oidc.allowedAudiences)."""
    return f"inferstack-overflow-{stack}"
