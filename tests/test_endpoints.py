"""Private endpoints through mocks: AWS PrivateLink (prod.yaml) and GCP Private Service Connect
(research.yaml), every item of the endpoint issue on the registered inputs."""

from __future__ import annotations

import json

import pytest

from conftest import DEV_NO_ENDPOINT, STACKS, Resources, plan_of_file, plan_of_text, stack_text

NLB = "aws:lb/loadBalancer:LoadBalancer"
LISTENER = "aws:lb/listener:Listener"
SERVICE = "aws:ec2/vpcEndpointService:VpcEndpointService"
SG_IN = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"


@pytest.fixture(scope="module")
def prod() -> Resources:
    return Resources(plan_of_file(str(STACKS / "prod.yaml")))


@pytest.fixture(scope="module")
def research() -> Resources:
    return Resources(plan_of_file(str(STACKS / "research.yaml")))


def _one(res: Resources, token: str, name: str) -> dict:
    return res.one(token, name)["inputs"]


# -- AWS ------------------------------------------------------------------------------------------


def test_internal_nlb_across_the_private_subnets_cross_zone_protected_in_prod(prod):
    nlb = _one(prod, NLB, "assistant-prod-burst")
    assert nlb["internal"] is True and nlb["loadBalancerType"] == "network"
    assert nlb["enableCrossZoneLoadBalancing"] is True and nlb["enableDeletionProtection"] is True
    subnets = [r["name"] for r in prod.of_type("aws:ec2/subnet:Subnet") if r["name"].startswith("burst-")]
    assert len(nlb["subnets"]) == len(subnets) == 2
    assert nlb["accessLogs"]["enabled"] is True and nlb["accessLogs"]["prefix"] == "nlb"
    assert "name" not in nlb  # auto-named: replace-safe


def test_tls_listener_with_a_tls12_policy_and_the_specs_certificate(prod):
    listener = _one(prod, LISTENER, "burst-endpoint-tls")
    assert (listener["protocol"], listener["port"]) == ("TLS", 443)
    assert listener["sslPolicy"] == "ELBSecurityPolicy-TLS13-1-2-2021-06"
    assert listener["certificateArn"].startswith("arn:aws:acm:eu-central-1:123456789012:certificate/")


def test_target_group_health_checks_the_engine_and_the_group_joins_it(prod):
    group = _one(prod, "aws:lb/targetGroup:TargetGroup", "assistant-prod-burst")
    assert (group["port"], group["protocol"]) == (8000, "TCP")
    assert (group["healthCheck"]["protocol"], group["healthCheck"]["path"]) == ("HTTP", "/health")
    asg = _one(prod, "aws:autoscaling/group:Group", "burst-asg")
    assert asg["healthCheckType"] == "ELB" and len(asg["targetGroupArns"]) == 1


def test_endpoint_service_requires_acceptance_and_names_its_principals(prod):
    service = _one(prod, SERVICE, "burst-endpoint-service")
    assert service["acceptanceRequired"] is True
    assert service["allowedPrincipals"] == [
        "arn:aws:iam::111122223333:root",
        "arn:aws:iam::444455556666:role/chat-frontend",
    ]
    # No private DNS name: it would wait for a TXT verification nobody makes; the consumer
    # VPCs resolve the name through their private hosted zones.
    assert "privateDnsName" not in service


def test_consumer_vpc_gets_an_interface_endpoint_that_is_accepted(prod):
    endpoint = _one(prod, "aws:ec2/vpcEndpoint:VpcEndpoint", "burst-endpoint-consumer-0")
    assert endpoint["vpcId"] == "vpc-0c0ffee0c0ffee001" and endpoint["vpcEndpointType"] == "Interface"
    assert endpoint["subnetIds"] == ["subnet-0c0ffee0c0ffee011", "subnet-0c0ffee0c0ffee012"]
    assert prod.one("aws:ec2/vpcEndpointConnectionAccepter:VpcEndpointConnectionAccepter", "burst-endpoint-consumer-0")


def test_serving_port_accepts_only_the_load_balancer(prod):
    rule = prod.one(SG_IN, "burst-serving")
    assert "cidrIpv4" not in rule["inputs"] and rule["inputs"]["referencedSecurityGroupId"].startswith("sg-")
    nlb_sg = prod.one("aws:ec2/securityGroup:SecurityGroup", "burst-endpoint-nlb")
    assert rule["propertyDependencies"]["referencedSecurityGroupId"] == [nlb_sg["urn"]]


def test_access_log_bucket_is_private_versioned_encrypted_and_expires(prod):
    pab = _one(prod, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "burst-endpoint-access-logs")
    assert all(pab[k] for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"))
    versioning = _one(prod, "aws:s3/bucketVersioning:BucketVersioning", "burst-endpoint-access-logs")
    assert versioning["versioningConfiguration"]["status"] == "Enabled"
    sse = _one(
        prod,
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        "burst-endpoint-access-logs",
    )
    default = sse["rules"][0]["applyServerSideEncryptionByDefault"]
    assert default["sseAlgorithm"] == "aws:kms" and default["kmsMasterKeyId"].startswith("arn:aws:kms:eu-central-1:")
    lifecycle = _one(
        prod, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", "burst-endpoint-access-logs"
    )
    assert lifecycle["rules"][0]["expiration"]["days"] == 90
    policy = json.loads(_one(prod, "aws:s3/bucketPolicy:BucketPolicy", "burst-endpoint-access-logs")["policy"])
    sids = {s["Sid"]: s for s in policy["Statement"]}
    assert sids["DenyInsecureTransport"]["Effect"] == "Deny"
    assert sids["LogDeliveryWrite"]["Principal"] == {"Service": "delivery.logs.amazonaws.com"}
    key_policy = json.loads(prod.one("aws:kms/key:Key", "burst-key")["inputs"]["policy"])
    assert "LoadBalancerAccessLogDelivery" in {s["Sid"] for s in key_policy["Statement"]}


def test_endpoint_outputs_for_consumers(prod):
    outputs = prod.plan.outputs
    assert outputs["burst.endpoint_service_name"] and outputs["burst.endpoint_dns_name"]


def test_private_ca_issues_the_certificate_when_the_spec_has_none():
    text = stack_text("prod.yaml")
    cert_line = next(ln for ln in text.splitlines() if ln.startswith("  certificates:"))
    text = text.replace(
        cert_line,
        "  private_ca_arn: arn:aws:acm-pca:eu-central-1:123456789012:certificate-authority/"
        "0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d",
    )
    res = Resources(plan_of_text(text, "prod"))
    cert = res.one("aws:acm/certificate:Certificate", "burst-endpoint-cert")["inputs"]
    assert cert["domainName"] == "burst.llm.prod.acme.example"
    assert cert["certificateAuthorityArn"].startswith("arn:aws:acm-pca:eu-central-1:")


def test_without_an_endpoint_section_nodes_admit_the_vpc_and_nothing_fronts_them():
    dev = Resources(plan_of_text(DEV_NO_ENDPOINT, "dev"))
    assert not dev.of_type(NLB) and not dev.of_type(SERVICE)
    assert dev.one(SG_IN, "burst-serving")["inputs"]["cidrIpv4"] == "10.64.0.0/16"


# -- GCP ------------------------------------------------------------------------------------------


def test_internal_https_load_balancer_with_tls12_and_the_specs_certificate(research):
    rule = _one(research, "gcp:compute/forwardingRule:ForwardingRule", "chat-endpoint-ilb")
    assert rule["loadBalancingScheme"] == "INTERNAL_MANAGED" and rule["portRange"] == "443"
    assert rule["allowGlobalAccess"] is False and rule["labels"]["team"] == "research"
    proxy = _one(research, "gcp:compute/regionTargetHttpsProxy:RegionTargetHttpsProxy", "chat-endpoint-https")
    assert proxy["sslCertificates"] == ["projects/acme-ml-staging/regions/europe-west4/sslCertificates/llm-internal"]
    tls = _one(research, "gcp:compute/regionSslPolicy:RegionSslPolicy", "chat-endpoint-tls")
    assert (tls["minTlsVersion"], tls["profile"]) == ("TLS_1_2", "RESTRICTED")
    backend = _one(research, "gcp:compute/regionBackendService:RegionBackendService", "chat-endpoint-backend")
    assert backend["loadBalancingScheme"] == "INTERNAL_MANAGED"
    assert backend["backends"][0]["group"].endswith("/instanceGroups/assistant-research-chat-zcb22")
    health = _one(research, "gcp:compute/regionHealthCheck:RegionHealthCheck", "chat-endpoint-health")
    assert health["httpHealthCheck"] == {"port": 8000, "requestPath": "/health"}


def test_proxy_only_and_psc_subnets_beside_the_targets_subnet(research):
    proxy = _one(research, "gcp:compute/subnetwork:Subnetwork", "chat-endpoint-proxy-only")
    psc = _one(research, "gcp:compute/subnetwork:Subnetwork", "chat-endpoint-psc-nat")
    assert (proxy["purpose"], proxy["ipCidrRange"]) == ("REGIONAL_MANAGED_PROXY", "10.80.16.0/23")
    assert (psc["purpose"], psc["ipCidrRange"]) == ("PRIVATE_SERVICE_CONNECT", "10.80.18.0/24")
    allow = _one(research, "gcp:compute/firewall:Firewall", "chat-endpoint-allow-proxies")
    assert allow["sourceRanges"] == ["10.80.16.0/23"]


def test_service_attachment_accepts_only_the_listed_projects_manually(research):
    psc = _one(research, "gcp:compute/serviceAttachment:ServiceAttachment", "chat-endpoint-psc")
    assert psc["connectionPreference"] == "ACCEPT_MANUAL"
    assert [c["projectIdOrNum"] for c in psc["consumerAcceptLists"]] == ["acme-chat-frontend", "acme-eval-harness"]
    assert (
        "/projects/acme-ml-staging/regions/europe-west4/serviceAttachments/"
        in research.plan.outputs["chat.service_attachment"]
    )


def test_consumer_network_gets_a_psc_endpoint(research):
    rule = _one(research, "gcp:compute/forwardingRule:ForwardingRule", "chat-endpoint-consumer-0")
    assert rule["project"] == "acme-chat-frontend" and rule["loadBalancingScheme"] == ""
    assert rule["network"] == "projects/acme-chat-frontend/global/networks/frontend"
    attachment = research.one("gcp:compute/serviceAttachment:ServiceAttachment", "chat-endpoint-psc")
    assert rule["target"].startswith("projects/acme-ml-staging/regions/europe-west4/serviceAttachments/")
    assert research.one("gcp:compute/forwardingRule:ForwardingRule", "chat-endpoint-consumer-0")[
        "propertyDependencies"
    ]["target"] == [attachment["urn"]]


def test_tpu_vm_is_a_hybrid_neg_backend(research):
    neg = _one(research, "gcp:compute/networkEndpointGroup:NetworkEndpointGroup", "reasoning-endpoint-tpu-0")
    assert neg["networkEndpointType"] == "NON_GCP_PRIVATE_IP_PORT" and neg["zone"] == "europe-west4-a"
    endpoint = _one(research, "gcp:compute/networkEndpoint:NetworkEndpoint", "reasoning-endpoint-tpu-0")
    assert endpoint["ipAddress"].startswith("10.") and endpoint["port"] == 8000


def test_load_balancer_and_target_group_are_auto_named_within_the_elb_limit():
    """A fixed name makes every replacing change fail (the new one is created first and ELB names
    are unique per account and region); Pulumi's auto-name adds '-' and 7 random characters."""
    text = stack_text("prod.yaml").replace("  burst:\n", "  overflow-burst-capacity-fleet-2:\n")
    res = Resources(plan_of_text(text, "prod"))
    for token in (NLB, "aws:lb/targetGroup:TargetGroup"):
        found = res.of_type(token)
        assert len(found) == 2 and all("name" not in r["inputs"] and "namePrefix" not in r["inputs"] for r in found)
        stems = [r["name"] for r in found]
        assert len(set(stems)) == 2 and all(len(s) + 8 <= 32 for s in stems), stems
