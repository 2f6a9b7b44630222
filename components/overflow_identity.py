"""The overflow publisher's cloud identities, and the ConfigMap that tells the publisher about them.

AwsPublisherIdentity: an IAM Roles Anywhere trust anchor on the site's CA, a role only that
anchor's sessions of the publisher's certificate may assume, allowed PutMetricData in the wake
metric's namespace and nothing else, and the profile that vends it.

GcpPublisherIdentity: a Workload Identity Federation pool and OIDC provider trusting the cluster's
service-account issuer (by its JWKS: the issuer is inside the site), accepting the publisher's
audience and the gateway's service account only, and a service account with
roles/monitoring.metricWriter on the burst target's project that only that federated principal
may impersonate.

publisher_identity_config_map: identity.json in the gateway's namespace, on the primary's cluster
(planning.overflow, the contract). Why each choice: planning.overflow.identity.
"""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s
import pulumi_random as random

from inferstack.errors import CloudCheckError
from inferstack.planning import iam
from inferstack.planning.overflow.identity import (
    GCP_METRIC_WRITER,
    GCP_WORKLOAD_IDENTITY_USER,
    AwsPublisherIdentityPlan,
    GcpPublisherIdentityPlan,
    PublisherIdentitiesPlan,
    credential_config,
    federated_principal,
    identity_document,
)

CONFIG_NAMESPACE = "inferstack"
PEM_CERTIFICATE = "-----BEGIN CERTIFICATE-----"


def site_ca_bundle(value: str, key: str) -> str:
    """The trust anchor's CERTIFICATE_BUNDLE: PEM certificates only (CreateTrustAnchor
    x509CertificateData: 1-8000 characters). A private key pasted by mistake is refused before it
    reaches AWS (or the state)."""
    text = value.strip()
    if "PRIVATE KEY" in text:
        raise CloudCheckError(
            f"stack config inferstack:{key} holds a private key: it must hold the site CA's certificate"
        )
    if not text.startswith(PEM_CERTIFICATE) or not text.endswith("-----END CERTIFICATE-----"):
        raise CloudCheckError(
            f"stack config inferstack:{key} is not a PEM certificate bundle: set it to the site CA's certificate "
            f"(pulumi config set inferstack:{key} < site-ca.pem)"
        )
    if len(text) > 8000:
        raise CloudCheckError(
            f"stack config inferstack:{key} is {len(text)} characters; a Roles Anywhere trust anchor takes at most "
            "8000: name the issuing CA of the publisher's certificate only"
        )
    return text + "\n"


def cluster_jwks(value: str, key: str) -> str:
    """The provider's jwksJson: a JSON Web Key Set (an object with a non-empty `keys` list), as the
    cluster serves it at <issuer>/openid/v1/jwks (`kubectl get --raw /openid/v1/jwks`)."""
    try:
        document = json.loads(value)
    except ValueError:
        document = None
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list) or not document["keys"]:
        raise CloudCheckError(
            f"stack config inferstack:{key} is not a JWKS: set it to the cluster's "
            f"(kubectl get --raw /openid/v1/jwks | pulumi config set inferstack:{key})"
        )
    return json.dumps(document, sort_keys=True, separators=(",", ":"))


class AwsPublisherIdentity(pulumi.ComponentResource):
    document: pulumi.Output[dict]  # this target's entry of identity.json

    def __init__(self, name: str, plan: AwsPublisherIdentityPlan, opts: pulumi.ResourceOptions | None = None):
        super().__init__("inferstack:overflow:AwsPublisherIdentity", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        key = plan.site_ca_config_key
        # A CA certificate is public: plain config, so the plan and the state show what is trusted.
        bundle = site_ca_bundle(pulumi.Config(CONFIG_NAMESPACE).require(key), key)
        anchor = aws.rolesanywhere.TrustAnchor(
            f"{name}-anchor",
            name=plan.name,
            enabled=True,
            source=aws.rolesanywhere.TrustAnchorSourceArgs(
                source_type="CERTIFICATE_BUNDLE",
                source_data=aws.rolesanywhere.TrustAnchorSourceSourceDataArgs(x509_certificate_data=bundle),
            ),
            tags=plan.tags,
            opts=child,
        )
        role = aws.iam.Role(
            f"{name}-role",
            name=plan.name,
            description=f"inferstack overflow publisher: wake metric of {plan.target}",
            assume_role_policy=anchor.arn.apply(lambda arn: iam.roles_anywhere_trust(arn, plan.client_certificate_cn)),
            max_session_duration=plan.session_seconds,
            tags=plan.tags,
            opts=child,
        )
        aws.iam.RolePolicy(f"{name}-role", role=role.id, policy=iam.put_metric_policy(plan.namespace), opts=child)
        profile = aws.rolesanywhere.Profile(
            f"{name}-profile",
            name=plan.name,
            enabled=True,
            role_arns=[role.arn],
            duration_seconds=plan.session_seconds,
            tags=plan.tags,
            opts=child,
        )
        self.document = pulumi.Output.all(anchor.arn, profile.arn, role.arn).apply(
            lambda arns: {"region": plan.region, "trustAnchorArn": arns[0], "profileArn": arns[1], "roleArn": arns[2]}
        )
        self.register_outputs({"document": self.document})


class GcpPublisherIdentity(pulumi.ComponentResource):
    document: pulumi.Output[dict]

    def __init__(self, name: str, plan: GcpPublisherIdentityPlan, opts: pulumi.ResourceOptions | None = None):
        super().__init__("inferstack:overflow:GcpPublisherIdentity", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        key = plan.jwks_config_key
        jwks = cluster_jwks(pulumi.Config(CONFIG_NAMESPACE).require(key), key)  # public keys: plain config
        number = gcp.organizations.get_project_output(
            project_id=plan.project, opts=pulumi.InvokeOutputOptions(parent=self)
        ).number
        # A deleted pool's ID is held for 30 days: a fresh suffix per pool (planning.overflow.identity).
        suffix = random.RandomId(f"{name}-pool", byte_length=2, opts=child)
        pool_id = suffix.hex.apply(lambda h: f"{plan.pool_stem}-{h}")
        pool = gcp.iam.WorkloadIdentityPool(
            f"{name}-pool",
            project=plan.project,
            workload_identity_pool_id=pool_id,
            display_name=plan.display_name,
            description=f"The site cluster's service accounts, for the overflow publisher of {plan.target}",
            opts=child,
        )
        provider = gcp.iam.WorkloadIdentityPoolProvider(
            f"{name}-provider",
            project=plan.project,
            workload_identity_pool_id=pool.workload_identity_pool_id,
            workload_identity_pool_provider_id=plan.provider_id,
            display_name=plan.display_name,
            description=f"The cluster's issuer {plan.issuer}, by its JWKS",
            attribute_mapping={"google.subject": "assertion.sub"},
            attribute_condition=f"assertion.sub == {json.dumps(plan.subject)}",
            oidc=gcp.iam.WorkloadIdentityPoolProviderOidcArgs(
                issuer_uri=plan.issuer, allowed_audiences=[plan.audience], jwks_json=jwks
            ),
            opts=child,
        )
        account = gcp.serviceaccount.Account(
            f"{name}-sa",
            project=plan.project,
            account_id=plan.service_account_id,
            display_name=plan.display_name,
            description=f"inferstack overflow publisher: writes the wake metric of {plan.target}",
            opts=child,
        )
        gcp.projects.IAMMember(
            f"{name}-metric-writer",
            project=plan.project,
            role=GCP_METRIC_WRITER,
            member=account.email.apply(lambda e: f"serviceAccount:{e}"),
            opts=child,
        )
        gcp.serviceaccount.IAMMember(
            f"{name}-federated",
            service_account_id=account.name,
            role=GCP_WORKLOAD_IDENTITY_USER,
            member=pulumi.Output.all(number, pool.workload_identity_pool_id).apply(
                lambda a: federated_principal(str(a[0]), a[1], plan.subject)
            ),
            opts=child,
        )
        self.document = pulumi.Output.all(
            number, pool.workload_identity_pool_id, provider.workload_identity_pool_provider_id, account.email
        ).apply(lambda a: {"project": plan.project, "credentialConfig": credential_config(str(a[0]), a[1], a[2], a[3])})
        self.register_outputs({"document": self.document})


def publisher_identity_config_map(
    name: str,
    plan: PublisherIdentitiesPlan,
    documents: dict[str, dict[str, pulumi.Output[dict]]],
    *,
    opts: pulumi.ResourceOptions,
) -> k8s.core.v1.ConfigMap:
    """identity.json, once every identity exists: the publisher re-reads it each cycle."""
    clouds = sorted(documents)
    targets = [(c, t) for c in clouds for t in sorted(documents[c])]
    data = pulumi.Output.all(*(documents[c][t] for c, t in targets)).apply(
        lambda docs: identity_document(
            {t: d for (c, t), d in zip(targets, docs, strict=True) if c == "aws"},
            {t: d for (c, t), d in zip(targets, docs, strict=True) if c == "gcp"},
        )
    )
    return k8s.core.v1.ConfigMap(
        name,
        metadata=k8s.meta.v1.ObjectMetaArgs(name=plan.config_map, namespace=plan.namespace, labels=plan.labels),
        data=data,
        opts=opts,
    )
