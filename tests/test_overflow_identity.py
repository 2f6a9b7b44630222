"""The overflow publisher's identities: an IAM Roles Anywhere role on AWS, Workload Identity
Federation on GCP, and the identity ConfigMap that joins them to the publisher's script. The last
test runs the rendered publisher against the ConfigMap the stack writes, so the contract between
the two is checked end to end."""

from __future__ import annotations

import json
import re
import shutil

import pytest
from test_overflow_publisher import BUSY, HYBRID, aws_points, gcp_series, run_publisher, spec_of

from conftest import STACKS, Resources, plan_of_file
from inferstack.components.overflow_identity import cluster_jwks, site_ca_bundle
from inferstack.errors import CloudCheckError
from inferstack.planning import iam
from inferstack.planning.overflow import PUBLISHER_IDENTITY_CONFIGMAP, PUBLISHER_IDENTITY_FILE, gcp_token_audience
from inferstack.planning.overflow.gateway import GATEWAY_NAME, gateway_namespace
from inferstack.planning.overflow.identity import plan_identities

PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"


@pytest.fixture(scope="module")
def hybrid() -> Resources:
    return Resources(plan_of_file(str(STACKS / "hybrid.yaml")))


# -- the plan ---------------------------------------------------------------------------------


def test_one_identity_per_burst_target_that_has_a_wake_metric():
    plan = plan_identities(spec_of(), "hybrid")
    assert plan is not None
    assert [a.target for a in plan.aws] == ["aws-burst"] and [g.target for g in plan.gcp] == ["gcp-burst"]
    (aws,) = plan.aws
    assert aws.region == "eu-central-1" and aws.namespace == "InferStack"
    assert aws.client_certificate_cn == "overflow-publisher.muc.acme.internal"
    (gcp,) = plan.gcp
    assert gcp.project == "acme-ml-prod"
    assert gcp.subject == f"system:serviceaccount:{gateway_namespace(spec_of(), 'hybrid')}:{GATEWAY_NAME}"
    assert gcp.audience == gcp_token_audience("hybrid")
    assert plan.namespace == gateway_namespace(spec_of(), "hybrid")


def test_without_a_publisher_there_is_no_identity():
    text = re.sub(r"\n    publisher_image: [^\n]+", "", HYBRID)
    assert plan_identities(spec_of(text), "hybrid") is None


@pytest.mark.parametrize("metadata_name", ["assistant", "a-long-deployment-name-for-a-team"[:32]])
def test_gcp_ids_are_within_the_iam_apis_limits(metadata_name):
    text = HYBRID.replace("  name: assistant\n", f"  name: {metadata_name}\n", 1)
    assert f"name: {metadata_name}" in text
    (gcp,) = plan_identities(spec_of(text), "a-long-stack-name-for-tests").gcp
    # Pool and provider IDs: 4-32 of [a-z0-9-], not "gcp-" first; the pool gets "-" and 4 hex.
    for value, limit in ((gcp.pool_stem, 27), (gcp.provider_id, 32)):
        assert re.fullmatch(rf"[a-z0-9-]{{4,{limit}}}", value) and not value.startswith("gcp-"), value
    # Service account IDs: 6-30, [a-z]([-a-z0-9]*[a-z0-9]).
    assert re.fullmatch(r"[a-z][-a-z0-9]{4,28}[a-z0-9]", gcp.service_account_id), gcp.service_account_id
    assert len(gcp.display_name) <= 32


# -- the AWS documents ------------------------------------------------------------------------


def test_the_role_admits_only_this_anchors_sessions_of_the_publishers_certificate():
    anchor = "arn:aws:rolesanywhere:eu-central-1:123456789012:trust-anchor/0a1b"
    (statement,) = json.loads(iam.roles_anywhere_trust(anchor, "publisher.site"))["Statement"]
    assert statement["Principal"] == {"Service": "rolesanywhere.amazonaws.com"}
    assert sorted(statement["Action"]) == ["sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"]
    assert statement["Condition"] == {
        "ArnEquals": {"aws:SourceArn": anchor},
        "StringEquals": {"aws:PrincipalTag/x509Subject/CN": "publisher.site"},
    }


def test_the_role_may_put_metric_data_in_one_namespace_and_nothing_else():
    (statement,) = json.loads(iam.put_metric_policy("InferStack"))["Statement"]
    assert statement["Action"] == "cloudwatch:PutMetricData" and statement["Effect"] == "Allow"
    assert statement["Condition"] == {"StringEquals": {"cloudwatch:namespace": "InferStack"}}


# -- the config the identities are made from -----------------------------------------------------


def test_a_ca_bundle_is_pem_certificates_only():
    assert site_ca_bundle(PEM + "\n\n", "siteCaPem") == PEM + "\n"
    with pytest.raises(CloudCheckError, match="inferstack:siteCaPem is not a PEM certificate bundle"):
        site_ca_bundle("not a certificate", "siteCaPem")
    with pytest.raises(CloudCheckError, match="holds a private key"):
        site_ca_bundle(PEM + "\n-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----", "siteCaPem")
    with pytest.raises(CloudCheckError, match="at most 8000"):
        site_ca_bundle(PEM.replace("MIIB", "A" * 8000), "siteCaPem")


def test_a_jwks_is_a_key_set():
    assert json.loads(cluster_jwks('{"keys": [{"kty": "RSA"}]}', "clusterJwks")) == {"keys": [{"kty": "RSA"}]}
    for bad in ("{}", '{"keys": []}', "[1]", "not json"):
        with pytest.raises(CloudCheckError, match="inferstack:clusterJwks is not a JWKS"):
            cluster_jwks(bad, "clusterJwks")


# -- through the program --------------------------------------------------------------------------


def test_the_aws_role_trusts_the_stacks_anchor_and_the_profile_vends_that_role(hybrid):
    anchor = hybrid.one("aws:rolesanywhere/trustAnchor:TrustAnchor", "aws-burst-publisher-anchor")
    source = anchor["inputs"]["source"]
    assert source["sourceType"] == "CERTIFICATE_BUNDLE"
    assert source["sourceData"]["x509CertificateData"].startswith("-----BEGIN CERTIFICATE-----")
    assert anchor["inputs"]["enabled"] is True
    role = hybrid.one("aws:iam/role:Role", "aws-burst-publisher-role")
    (trust,) = json.loads(role["inputs"]["assumeRolePolicy"])["Statement"]
    created = identity_json(hybrid)["aws"]["aws-burst"]  # the ARNs the clouds returned
    assert re.fullmatch(
        r"arn:aws:rolesanywhere:eu-central-1:[0-9]{12}:trust-anchor/[0-9a-f-]+", created["trustAnchorArn"]
    )
    assert trust["Condition"]["ArnEquals"]["aws:SourceArn"] == created["trustAnchorArn"]
    assert trust["Condition"]["StringEquals"] == {
        "aws:PrincipalTag/x509Subject/CN": "overflow-publisher.muc.acme.internal"
    }
    policy = hybrid.one("aws:iam/rolePolicy:RolePolicy", "aws-burst-publisher-role")
    assert policy["inputs"]["policy"] == iam.put_metric_policy("InferStack")
    profile = hybrid.one("aws:rolesanywhere/profile:Profile", "aws-burst-publisher-profile")
    assert profile["inputs"]["roleArns"] == [created["roleArn"]]
    assert created["roleArn"].endswith(":role/" + role["inputs"]["name"])
    # The profile's sessions fit the role's maximum (CreateSession fails otherwise).
    assert profile["inputs"]["durationSeconds"] <= role["inputs"]["maxSessionDuration"]
    # Only the role's own policy: no managed policy on the profile or the role.
    assert "managedPolicyArns" not in profile["inputs"] and "managedPolicyArns" not in role["inputs"]


def test_the_gcp_provider_trusts_the_clusters_issuer_for_the_gateways_account_only(hybrid):
    pool = hybrid.one("gcp:iam/workloadIdentityPool:WorkloadIdentityPool", "gcp-burst-publisher-pool")
    pool_id = pool["inputs"]["workloadIdentityPoolId"]
    assert re.fullmatch(r"[a-z0-9-]{1,27}-[0-9a-f]{4}", pool_id)
    provider = hybrid.one(
        "gcp:iam/workloadIdentityPoolProvider:WorkloadIdentityPoolProvider", "gcp-burst-publisher-provider"
    )["inputs"]
    assert provider["workloadIdentityPoolId"] == pool_id
    oidc = provider["oidc"]
    assert oidc["issuerUri"] == "https://muc-gpu-prod.k8s.acme.internal"
    assert oidc["allowedAudiences"] == [gcp_token_audience("hybrid")]
    assert json.loads(oidc["jwksJson"])["keys"]
    subject = f"system:serviceaccount:{gateway_namespace(spec_of(), 'hybrid')}:{GATEWAY_NAME}"
    assert provider["attributeCondition"] == f'assertion.sub == "{subject}"'
    assert provider["attributeMapping"] == {"google.subject": "assertion.sub"}


def test_only_the_federated_gateway_account_may_impersonate_the_metric_writer(hybrid):
    account = hybrid.one("gcp:serviceaccount/account:Account", "gcp-burst-publisher-sa")["inputs"]
    email = f"{account['accountId']}@acme-ml-prod.iam.gserviceaccount.com"
    writer = hybrid.one("gcp:projects/iAMMember:IAMMember", "gcp-burst-publisher-metric-writer")["inputs"]
    assert writer == {
        "project": "acme-ml-prod",
        "role": "roles/monitoring.metricWriter",
        "member": f"serviceAccount:{email}",
    }
    federated = hybrid.one("gcp:serviceaccount/iAMMember:IAMMember", "gcp-burst-publisher-federated")["inputs"]
    assert federated["role"] == "roles/iam.workloadIdentityUser"
    assert federated["serviceAccountId"] == f"projects/acme-ml-prod/serviceAccounts/{email}"
    pool_id = hybrid.one("gcp:iam/workloadIdentityPool:WorkloadIdentityPool", "gcp-burst-publisher-pool")["inputs"][
        "workloadIdentityPoolId"
    ]
    assert re.fullmatch(
        rf"principal://iam\.googleapis\.com/projects/[0-9]+/locations/global/workloadIdentityPools/{pool_id}/subject/"
        rf"system:serviceaccount:[a-z0-9-]+:{GATEWAY_NAME}",
        federated["member"],
    )
    # Nothing else is granted to anything federated.
    members = [r["inputs"].get("member", "") for r in hybrid.plan.resources if "iAMMember" in r["type"]]
    assert [m for m in members if m.startswith(("principal://", "principalSet://"))] == [federated["member"]]


def identity_json(hybrid: Resources) -> dict:
    config_map = hybrid.one("kubernetes:core/v1:ConfigMap", "overflow-publisher-identity")["inputs"]
    assert config_map["metadata"]["name"] == PUBLISHER_IDENTITY_CONFIGMAP
    assert config_map["metadata"]["namespace"] == gateway_namespace(spec_of(), "hybrid")
    return json.loads(config_map["data"][PUBLISHER_IDENTITY_FILE])


def test_the_identity_config_map_names_what_the_stack_created(hybrid):
    identity = identity_json(hybrid)
    aws = identity["aws"]["aws-burst"]
    assert set(aws) == {"region", "trustAnchorArn", "profileArn", "roleArn"}
    assert re.fullmatch(r"arn:aws:rolesanywhere:eu-central-1:[0-9]{12}:profile/[0-9a-f-]+", aws["profileArn"])
    role = hybrid.one("aws:iam/role:Role", "aws-burst-publisher-role")["inputs"]
    assert aws["roleArn"] == f"arn:aws:iam::123456789012:role/{role['name']}"
    assert aws["region"] == "eu-central-1"
    config = identity["gcp"]["gcp-burst"]["credentialConfig"]
    pool_id = hybrid.one("gcp:iam/workloadIdentityPool:WorkloadIdentityPool", "gcp-burst-publisher-pool")["inputs"][
        "workloadIdentityPoolId"
    ]
    assert config["audience"].endswith(f"/workloadIdentityPools/{pool_id}/providers/assistant-hybrid-gcp-burst-k8s")
    assert config["token_url"] == "https://sts.googleapis.com/v1/token"
    assert config["subject_token_type"] == "urn:ietf:params:oauth:token-type:jwt"
    account_id = hybrid.one("gcp:serviceaccount/account:Account", "gcp-burst-publisher-sa")["inputs"]["accountId"]
    email = f"{account_id}@acme-ml-prod.iam.gserviceaccount.com"
    assert config["service_account_impersonation_url"].endswith(f"/serviceAccounts/{email}:generateAccessToken")
    # The projected token the pod mounts is the one the provider accepts.
    (gateway,) = [
        d for d in hybrid.of_type("kubernetes:apps/v1:Deployment") if d["inputs"]["metadata"]["name"] == GATEWAY_NAME
    ]
    projected = [
        s["serviceAccountToken"]
        for v in gateway["inputs"]["spec"]["template"]["spec"]["volumes"]
        for s in (v.get("projected") or {}).get("sources", [])
        if "serviceAccountToken" in s
    ]
    assert [p["audience"] for p in projected] == [gcp_token_audience("hybrid")]


@pytest.mark.skipif(shutil.which("jq") is None, reason="the publisher's script needs jq")
def test_the_publisher_writes_both_wake_metrics_with_the_identity_the_stack_writes(hybrid, tmp_path):
    identity = identity_json(hybrid)
    run, capture = run_publisher(tmp_path, [BUSY] * 4, identity)
    assert "malformed" not in run.stderr and "no AWS identity" not in run.stderr
    assert aws_points(run)
    config = (capture / "aws.config").read_text()
    assert f"--role-arn {identity['aws']['aws-burst']['roleArn']}" in config
    assert f"--trust-anchor-arn {identity['aws']['aws-burst']['trustAnchorArn']}" in config
    assert gcp_series(run)
    assert run.ran("curl", "iamcredentials.googleapis.com", "generateAccessToken")
