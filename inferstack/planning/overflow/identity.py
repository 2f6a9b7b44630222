"""The publisher's cloud identities: no long-lived key anywhere.

Pure planning. The overflow publisher (planning.overflow.publisher) writes each burst target's
wake metric into that target's cloud, from the site, as:

- **AWS**: an IAM role it assumes through IAM Roles Anywhere. The trust anchor is the site's CA
  (the spec's `site_ca_config_key`, a PEM bundle); the publisher presents its client certificate
  (`client_certificate_secret`, issued by that CA). The role's trust policy admits
  rolesanywhere.amazonaws.com only for sessions of this trust anchor (`aws:SourceArn`) and of the
  publisher's certificate (`aws:PrincipalTag/x509Subject/CN`, the spec's `client_certificate_cn`):
  another certificate of the site's CA gets nothing. Its one permission is
  `cloudwatch:PutMetricData` in the wake metric's namespace (PutMetricData has no resource-level
  permissions; the `cloudwatch:namespace` condition key is what scopes it). IAM Roles Anywhere
  docs: "Trust model" (the role trust policy's principal, actions sts:AssumeRole, sts:TagSession,
  sts:SetSourceIdentity, and the x509Subject principal tags), "Creating a trust anchor"
  (CERTIFICATE_BUNDLE source); CloudWatch "Using condition keys to limit access to CloudWatch
  namespaces".

- **GCP**: a Workload Identity Federation pool and OIDC provider that trust the cluster's service
  account issuer. The cluster is on the site and its issuer is not on the internet, so the
  provider carries the issuer's JWKS (`jwks_config_key`) and Google verifies tokens without
  fetching them (WIF "Configure Workload Identity Federation with Kubernetes": "upload the
  cluster's JWKS"). The provider accepts only the publisher's projected token audience and only
  the gateway's service account (`attribute_condition` on `assertion.sub`), and the federated
  principal may only impersonate one service account (roles/iam.workloadIdentityUser on it), which
  holds roles/monitoring.metricWriter on the burst target's project. Impersonation rather than a
  grant to the federated principal itself: every Google API accepts a service account's token,
  while direct resource access has per-product limits (IAM "Identity federation: products and
  limitations").

Pool IDs stay reserved for 30 days after deletion (IAM "Manage workload identity pools": a deleted
pool can be undeleted for 30 days, and its ID cannot be reused), so the component adds a random
suffix to the pool's ID: a destroyed and re-created stack gets a new pool instead of a conflict.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from inferstack.planning.naming import gcp_labels, gcp_name, k8s_labels, resource_prefix, standard_tags
from inferstack.planning.overflow import (
    GCP_TOKEN_PATH,
    PUBLISHER_IDENTITY_CONFIGMAP,
    PUBLISHER_IDENTITY_FILE,
    gcp_token_audience,
)
from inferstack.planning.overflow.gateway import GATEWAY_NAME, gateway_namespace
from inferstack.planning.overflow.plan import wake_metric
from inferstack.spec.models import DeploymentSpec

# CreateProfile durationSeconds: 900..43200 (the default 3600). The helper refreshes before expiry.
SESSION_SECONDS = 3600
GCP_METRIC_WRITER = "roles/monitoring.metricWriter"
GCP_WORKLOAD_IDENTITY_USER = "roles/iam.workloadIdentityUser"
GCP_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"
GCP_STS_URL = "https://sts.googleapis.com/v1/token"
# Workload identity pool and provider IDs: 4-32 of a-z, 0-9 and '-'; "gcp-" is reserved (IAM REST
# projects.locations.workloadIdentityPools.create, workloadIdentityPoolId). The component appends
# "-" and 4 hex characters to the pool's ID, so its stem is at most 27.
POOL_ID_SUFFIX = 5
POOL_ID_MAX = 32
# Service account IDs: 6-30 characters, [a-z]([-a-z0-9]*[a-z0-9]) (IAM serviceAccounts.create).
SERVICE_ACCOUNT_ID_MAX = 30


@dataclass(frozen=True)
class AwsPublisherIdentityPlan:
    target: str
    region: str
    name: str  # trust anchor, profile and role name
    tags: dict[str, str]
    namespace: str  # the one CloudWatch namespace the role may write
    client_certificate_cn: str
    site_ca_config_key: str
    session_seconds: int = SESSION_SECONDS


@dataclass(frozen=True)
class GcpPublisherIdentityPlan:
    target: str
    project: str
    pool_stem: str  # the pool's ID less the component's random suffix
    provider_id: str
    service_account_id: str
    display_name: str
    labels: dict[str, str]
    issuer: str
    jwks_config_key: str
    audience: str  # the publisher's projected token audience, the only one the provider allows
    subject: str  # system:serviceaccount:<gateway namespace>:<gateway service account>


@dataclass(frozen=True)
class PublisherIdentitiesPlan:
    aws: tuple[AwsPublisherIdentityPlan, ...]
    gcp: tuple[GcpPublisherIdentityPlan, ...]
    namespace: str  # the gateway's: where the identity ConfigMap goes
    labels: dict[str, str]  # the gateway's objects' labels
    config_map: str = PUBLISHER_IDENTITY_CONFIGMAP


def plan_identities(spec: DeploymentSpec, stack: str) -> PublisherIdentitiesPlan | None:
    """One identity per burst target the publisher writes a wake metric for (a TPU slice has
    none); None when the spec names no publisher, which then wakes nothing and needs nothing."""
    overflow = spec.overflow
    if overflow is None or overflow.gateway.publisher_image is None:
        return None
    gateway = overflow.gateway
    namespace = gateway_namespace(spec, stack)
    subject = f"system:serviceaccount:{namespace}:{GATEWAY_NAME}"
    aws: list[AwsPublisherIdentityPlan] = []
    gcp: list[GcpPublisherIdentityPlan] = []
    for name in overflow.burst:
        metric = wake_metric(spec, stack, name)
        if metric is None:
            continue
        prefix = resource_prefix(spec, stack, name)
        model_name, _ = spec.model_of(name)
        tags = standard_tags(spec, stack, model_name, "overflow-publisher")
        if metric.cloud == "aws":
            aws.append(
                AwsPublisherIdentityPlan(
                    target=name,
                    region=metric.region,
                    name=f"{prefix}-publisher",
                    tags=tags,
                    namespace=metric.namespace,
                    client_certificate_cn=gateway.client_certificate_cn,
                    site_ca_config_key=gateway.site_ca_config_key,
                )
            )
        else:
            assert metric.project is not None
            gcp.append(
                GcpPublisherIdentityPlan(
                    target=name,
                    project=metric.project,
                    pool_stem=_id(prefix, "pub", limit=POOL_ID_MAX - POOL_ID_SUFFIX),
                    provider_id=_id(prefix, "k8s", limit=POOL_ID_MAX),
                    service_account_id=_id(prefix, "pub", limit=SERVICE_ACCOUNT_ID_MAX),
                    display_name=f"overflow publisher {name}"[:32],  # at most 32 characters
                    labels=gcp_labels(tags),
                    issuer=gateway.service_account_issuer,
                    jwks_config_key=gateway.jwks_config_key,
                    audience=gcp_token_audience(stack),
                    subject=subject,
                )
            )
    primary_model, _ = spec.model_of(overflow.primary)
    labels = k8s_labels(standard_tags(spec, stack, primary_model, "gateway"))
    return PublisherIdentitiesPlan(aws=tuple(aws), gcp=tuple(gcp), namespace=namespace, labels=labels)


def _id(*parts: str, limit: int) -> str:
    """A pool, provider or service account ID: a GCP name within `limit`, never "gcp-" first."""
    value = gcp_name(*parts, limit=limit)
    return "x" + value[1:] if value.startswith("gcp-") else value


# -- the documents, from the values the clouds return ------------------------------------------


def federated_principal(project_number: str, pool_id: str, subject: str) -> str:
    """The IAM principal of the gateway's service account through the pool (IAM "Principal
    identifiers": principal://iam.googleapis.com/projects/NUMBER/locations/global/
    workloadIdentityPools/POOL/subject/SUBJECT)."""
    return (
        f"principal://iam.googleapis.com/projects/{project_number}/locations/global/"
        f"workloadIdentityPools/{pool_id}/subject/{subject}"
    )


def credential_config(project_number: str, pool_id: str, provider_id: str, service_account_email: str) -> dict:
    """The external_account credential configuration the publisher reads (the shape of `gcloud
    iam workload-identity-pools create-cred-config`), for the projected token at GCP_TOKEN_PATH."""
    return {
        "type": "external_account",
        "audience": (
            f"//iam.googleapis.com/projects/{project_number}/locations/global/"
            f"workloadIdentityPools/{pool_id}/providers/{provider_id}"
        ),
        "subject_token_type": GCP_TOKEN_TYPE,
        "token_url": GCP_STS_URL,
        "credential_source": {"file": GCP_TOKEN_PATH},
        "service_account_impersonation_url": (
            "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/"
            f"{service_account_email}:generateAccessToken"
        ),
    }


def identity_document(aws: dict[str, dict[str, str]], gcp: dict[str, dict[str, Any]]) -> dict[str, str]:
    """The identity ConfigMap's data (planning.overflow's contract): identity.json, keys sorted so
    the same identities give the same bytes."""
    return {PUBLISHER_IDENTITY_FILE: json.dumps({"aws": aws, "gcp": gcp}, indent=2, sort_keys=True) + "\n"}
