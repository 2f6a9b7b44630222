"""Pure planning of the private endpoints, no Pulumi: what each target's endpoint plan holds,
decided from the spec's `endpoint` section (stacks/prod.yaml on AWS, stacks/research.yaml on GCP).
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

import pytest

from conftest import STACKS, stack_text
from inferstack.planning.endpoint import (
    AWS_TLS_POLICY,
    LISTENER_PORT,
    AwsEndpointConsumerPlan,
    GcpEndpointConsumerPlan,
    adjacent_ranges,
    certificate_for,
    is_acm,
    plan_aws_endpoint,
    plan_gcp_endpoint,
    region_of_certificate,
)
from inferstack.spec.loader import load_spec, parse_spec
from inferstack.spec.models import DeploymentSpec

ROOT = Path(__file__).resolve().parent.parent
PROD = STACKS / "prod.yaml"
RESEARCH = ROOT / "stacks" / "research.yaml"
VALID = Path(__file__).resolve().parent / "spec_corpus" / "valid"

PROD_CERT = "arn:aws:acm:eu-central-1:123456789012:certificate/6f1c2b3a-1d2e-4f5a-9b8c-7d6e5f4a3b2c"
PROD_PRINCIPALS = ("arn:aws:iam::111122223333:root", "arn:aws:iam::444455556666:role/chat-frontend")
RESEARCH_CERT = "projects/acme-ml-staging/regions/europe-west4/sslCertificates/llm-internal"
PCA = "arn:aws:acm-pca:eu-central-1:123456789012:certificate-authority/11112222-3333-4444-5555-666677778888"
ELB_NAME = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$")  # alphanumerics and inner hyphens


def _edit(path: Path, *replacements: tuple[str, str]) -> DeploymentSpec:
    """The spec at `path` with text replaced (each `old` must occur exactly once), through the loader."""
    text = stack_text(path.name) if path.parent == STACKS else path.read_text(encoding="utf-8")
    for old, new in replacements:
        assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {path.name}"
        text = text.replace(old, new)
    return parse_spec(text, path.name).spec


def _without_endpoint(path: Path) -> DeploymentSpec:
    text = stack_text(path.name) if path.parent == STACKS else path.read_text(encoding="utf-8")
    head, sep, _ = text.partition("\nendpoint:\n")
    assert sep, f"{path.name} has no endpoint section"
    # Without an endpoint nothing could wake a group at zero (a spec error): keep one node.
    head = head.replace("capacity: {min: 0,", "capacity: {min: 1,")
    return parse_spec(head + "\n", path.name).spec


def prod() -> DeploymentSpec:
    return load_spec(PROD).spec


def research() -> DeploymentSpec:
    return load_spec(RESEARCH).spec


# -- AWS: stacks/prod.yaml ---------------------------------------------------------------------


@pytest.mark.parametrize("target", ["steady", "burst"])
def test_prod_aws_endpoint_plan(target):
    plan = plan_aws_endpoint(prod(), "prod", target)
    assert plan is not None
    assert plan.lb_name == f"assistant-prod-{target}"
    assert len(plan.lb_name) + 8 <= 32  # Pulumi's auto-name suffix
    assert plan.certificate_arn == PROD_CERT
    assert plan.private_ca_arn is None
    # Two AWS targets: one name per endpoint service, under the spec's name.
    assert plan.domain_name == f"{target}.llm.prod.acme.example"
    assert plan.allowed_principals == PROD_PRINCIPALS
    assert plan.consumers == (
        AwsEndpointConsumerPlan("vpc-0c0ffee0c0ffee001", ("subnet-0c0ffee0c0ffee011", "subnet-0c0ffee0c0ffee012")),
    )
    assert plan.deletion_protection is True  # environment: prod
    assert plan.target_port == 8000
    assert plan.health_path == "/health"  # vLLM's
    assert plan.listener_port == 443 == LISTENER_PORT
    assert plan.ssl_policy == "ELBSecurityPolicy-TLS13-1-2-2021-06" == AWS_TLS_POLICY


def test_prod_load_balancer_names_are_distinct_per_target():
    spec = prod()
    names = {plan_aws_endpoint(spec, "prod", t).lb_name for t in spec.targets}
    assert names == {"assistant-prod-steady", "assistant-prod-burst"}


def test_long_names_are_cut_to_the_elb_limit_and_stay_distinct():
    spec = _edit(
        PROD,
        ("  name: assistant\n", "  name: assistant-platform-europe\n"),
        ("  steady:\n", "  steady-on-demand-fleet-one:\n"),
        ("  burst:\n", "  steady-on-demand-fleet-two:\n"),
    )
    names = [plan_aws_endpoint(spec, "production", t).lb_name for t in spec.targets]
    assert len(names) == 2
    assert len(set(names)) == 2
    for name in names:
        assert len(name) <= 24  # the auto-name's random 8 characters bring it to 32 at most
        assert ELB_NAME.match(name), name
        assert name.startswith("assistant-platform-")


def test_principals_are_sorted():
    spec = _edit(
        PROD,
        (
            '["arn:aws:iam::111122223333:root", "arn:aws:iam::444455556666:role/chat-frontend"]',
            '["arn:aws:iam::444455556666:role/chat-frontend", "999988887777", "arn:aws:iam::111122223333:root"]',
        ),
    )
    plan = plan_aws_endpoint(spec, "prod", "steady")
    assert plan.allowed_principals == (
        "999988887777",
        "arn:aws:iam::111122223333:root",
        "arn:aws:iam::444455556666:role/chat-frontend",
    )


def test_allow_any_principal_plans_the_wildcard():
    spec = _edit(
        PROD,
        (
            '  allowed_principals: ["arn:aws:iam::111122223333:root", "arn:aws:iam::444455556666:role/chat-frontend"]\n',
            "  allow_any_principal: true\n",
        ),
    )
    assert spec.endpoint.allowed_principals == []
    for target in ("steady", "burst"):
        assert plan_aws_endpoint(spec, "prod", target).allowed_principals == ("*",)


def test_allow_any_principal_with_a_list_is_an_error_not_a_silent_choice():
    from inferstack.errors import SpecError

    text = stack_text("prod.yaml").replace("  certificates:", "  allow_any_principal: true\n  certificates:")
    with pytest.raises(SpecError, match="choose one: allow_any_principal"):
        parse_spec(text, "prod.yaml")


def test_allow_any_principal_corpus_spec_loads_with_one_warning():
    loaded = load_spec(VALID / "endpoint-allow-any-principal.yaml")
    assert [w.loc for w in loaded.warnings] == [("endpoint", "allow_any_principal")]
    assert "policy pack flags it" in loaded.warnings[0].message
    assert plan_aws_endpoint(loaded.spec, "corpus", "main").allowed_principals == ("*",)


def test_deletion_protection_is_on_in_prod_and_can_be_turned_off():
    off = _edit(PROD, ("  deletion_protection: true\n", "  deletion_protection: false\n"))
    assert off.endpoint.deletion_protection is False
    assert plan_aws_endpoint(off, "prod", "steady").deletion_protection is False
    assert plan_aws_endpoint(off, "prod", "burst").deletion_protection is False


def test_deletion_protection_follows_the_environment():
    unset = ("  deletion_protection: true\n", "")  # prod.yaml writes the default out
    staging = _edit(PROD, ("  environment: prod\n", "  environment: staging\n"), unset)
    assert plan_aws_endpoint(staging, "staging", "steady").deletion_protection is False
    production = _edit(PROD, ("  environment: prod\n", "  environment: production\n"), unset)
    assert plan_aws_endpoint(production, "production", "steady").deletion_protection is True
    forced = _edit(PROD, ("  environment: prod\n", "  environment: staging\n"))
    assert plan_aws_endpoint(forced, "staging", "steady").deletion_protection is True


def test_private_ca_and_no_certificate_issues_one_for_the_private_dns_name():
    spec = load_spec(VALID / "endpoint-aws-private-ca.yaml").spec
    assert spec.endpoint.certificates == []
    plan = plan_aws_endpoint(spec, "corpus", "main")
    assert plan.certificate_arn is None
    assert plan.private_ca_arn == PCA
    assert plan.domain_name == "llm.internal.acme.example"  # the only AWS target: the spec's name
    assert plan.allowed_principals == ("111122223333", "arn:aws:iam::444455556666:role/chat-frontend")
    assert plan.deletion_protection is False  # environment: test


def test_private_ca_without_a_dns_name_uses_prefix_and_region():
    spec = _edit(
        PROD,
        (f'  certificates: ["{PROD_CERT}"]\n', f"  private_ca_arn: {PCA}\n"),
        ("  private_dns_name: llm.prod.acme.example\n", ""),
    )
    for target in ("steady", "burst"):
        plan = plan_aws_endpoint(spec, "prod", target)
        assert plan.certificate_arn is None
        assert plan.private_ca_arn == PCA
        assert plan.domain_name == f"assistant-prod-{target}.eu-central-1.internal"


def test_a_certificate_in_the_spec_wins_over_the_private_ca():
    spec = _edit(PROD, ("  private_dns_name:", f"  private_ca_arn: {PCA}\n  private_dns_name:"))
    plan = plan_aws_endpoint(spec, "prod", "steady")
    assert plan.certificate_arn == PROD_CERT
    assert plan.private_ca_arn == PCA


def test_aws_plan_is_none_without_an_endpoint_or_for_gcp_targets():
    bare = _without_endpoint(PROD)
    assert bare.endpoint is None
    assert plan_aws_endpoint(bare, "prod", "steady") is None
    assert plan_aws_endpoint(bare, "prod", "burst") is None
    spec = research()
    assert plan_aws_endpoint(spec, "research", "chat") is None
    assert plan_aws_endpoint(spec, "research", "reasoning") is None


# -- GCP: stacks/research.yaml -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "proxy", "psc"),
    [("chat", "10.80.16.0/23", "10.80.18.0/24"), ("reasoning", "10.81.16.0/23", "10.81.18.0/24")],
)
def test_research_gcp_endpoint_plan(target, proxy, psc):
    plan = plan_gcp_endpoint(research(), "research", target)
    assert plan is not None
    assert plan.name == f"assistant-research-{target}"
    assert plan.certificate == RESEARCH_CERT
    assert plan.consumer_projects == ("acme-chat-frontend", "acme-eval-harness")
    assert plan.consumers == (GcpEndpointConsumerPlan("acme-chat-frontend", "frontend", "frontend-europe-west4"),)
    assert plan.proxy_cidr == proxy
    assert plan.psc_cidr == psc
    assert plan.deletion_protection is False  # environment: staging
    assert plan.target_port == 8000
    assert plan.health_path == "/health"
    assert plan.listener_port == 443


def test_research_ranges_sit_right_after_each_subnet_and_do_not_overlap_it():
    spec = research()
    for name, target in spec.targets.items():
        plan = plan_gcp_endpoint(spec, "research", name)
        subnet = ipaddress.IPv4Network(target.network.subnet_cidr)
        proxy, psc = ipaddress.IPv4Network(plan.proxy_cidr), ipaddress.IPv4Network(plan.psc_cidr)
        assert proxy.network_address == subnet.broadcast_address + 1
        assert psc.network_address == proxy.broadcast_address + 1
        assert (proxy.prefixlen, psc.prefixlen) == (23, 24)
        assert not proxy.overlaps(subnet) and not psc.overlaps(subnet) and not psc.overlaps(proxy)


def test_consumer_projects_are_sorted():
    spec = _edit(
        RESEARCH,
        (
            "consumer_projects: [acme-chat-frontend, acme-eval-harness]",
            "consumer_projects: [acme-eval-harness, acme-batch-jobs, acme-chat-frontend]",
        ),
    )
    plan = plan_gcp_endpoint(spec, "research", "chat")
    assert plan.consumer_projects == ("acme-batch-jobs", "acme-chat-frontend", "acme-eval-harness")


def test_explicit_proxy_and_psc_cidrs_override_the_adjacent_ones():
    spec = _edit(
        RESEARCH,
        (
            "    network: {cidr: 10.80.0.0/20}\n",
            "    network: {cidr: 10.80.0.0/20, proxy_cidr: 10.99.0.0/23, psc_cidr: 10.99.4.0/24}\n",
        ),
    )
    chat = plan_gcp_endpoint(spec, "research", "chat")
    assert (chat.proxy_cidr, chat.psc_cidr) == ("10.99.0.0/23", "10.99.4.0/24")
    reasoning = plan_gcp_endpoint(spec, "research", "reasoning")  # untouched
    assert (reasoning.proxy_cidr, reasoning.psc_cidr) == ("10.81.16.0/23", "10.81.18.0/24")


def test_one_explicit_range_keeps_the_default_of_the_other():
    spec = _edit(
        RESEARCH,
        ("    network: {cidr: 10.81.0.0/20}\n", "    network: {cidr: 10.81.0.0/20, psc_cidr: 10.99.8.0/24}\n"),
    )
    plan = plan_gcp_endpoint(spec, "research", "reasoning")
    assert (plan.proxy_cidr, plan.psc_cidr) == ("10.81.16.0/23", "10.99.8.0/24")


def test_the_default_subnet_gets_the_default_adjacent_ranges():
    spec = _edit(RESEARCH, ("    network: {cidr: 10.81.0.0/20}\n", ""))
    assert spec.targets["reasoning"].network.cidr is None
    plan = plan_gcp_endpoint(spec, "research", "reasoning")
    assert (plan.proxy_cidr, plan.psc_cidr) == ("10.80.16.0/23", "10.80.18.0/24")


def test_existing_network_uses_the_ranges_the_spec_names():
    spec = load_spec(VALID / "endpoint-gcp-existing-network.yaml").spec
    plan = plan_gcp_endpoint(spec, "corpus", "chat")
    assert (plan.proxy_cidr, plan.psc_cidr) == ("10.90.0.0/23", "10.90.2.0/24")
    assert plan.certificate == "projects/acme-ml-test/regions/europe-west4/sslCertificates/llm-internal"
    assert plan.consumer_projects == ("acme-chat-frontend",)
    assert plan.consumers == ()
    assert plan.deletion_protection is True  # endpoint.deletion_protection: true, environment test


def test_gcp_deletion_protection_in_prod():
    spec = _edit(RESEARCH, ("  environment: staging\n", "  environment: prod\n"))
    assert plan_gcp_endpoint(spec, "research", "chat").deletion_protection is True


def test_gcp_plan_is_none_without_an_endpoint_or_for_aws_targets():
    bare = _without_endpoint(RESEARCH)
    assert bare.endpoint is None
    assert plan_gcp_endpoint(bare, "research", "chat") is None
    assert plan_gcp_endpoint(bare, "research", "reasoning") is None
    spec = prod()
    assert plan_gcp_endpoint(spec, "prod", "steady") is None
    assert plan_gcp_endpoint(spec, "prod", "burst") is None


def test_a_spec_with_both_clouds_plans_each_target_on_its_own_cloud():
    spec = load_spec(VALID / "endpoint-aws-and-gcp.yaml").spec
    aws = plan_aws_endpoint(spec, "mixed", "aws-main")
    gcp = plan_gcp_endpoint(spec, "mixed", "gcp-main")
    assert aws.certificate_arn == PROD_CERT
    assert aws.allowed_principals == ("arn:aws:iam::111122223333:root", "arn:aws:iam::444455556666:user/ci")
    assert aws.domain_name == "corpus-mixed-aws-main.eu-central-1.internal"
    assert gcp.certificate == "projects/acme-ml-test/regions/europe-west4/sslCertificates/llm-internal"
    assert gcp.consumer_projects == ("acme-chat-frontend", "acme-eval-harness")
    assert plan_gcp_endpoint(spec, "mixed", "aws-main") is None
    assert plan_aws_endpoint(spec, "mixed", "gcp-main") is None


# -- adjacent_ranges ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subnet", "expected"),
    [
        ("10.80.0.0/20", ("10.80.16.0/23", "10.80.18.0/24")),
        ("10.81.0.0/20", ("10.81.16.0/23", "10.81.18.0/24")),
        ("10.80.16.0/20", ("10.80.32.0/23", "10.80.34.0/24")),
        ("10.80.0.0/22", ("10.80.4.0/23", "10.80.6.0/24")),
        ("10.70.0.0/16", ("10.71.0.0/23", "10.71.2.0/24")),
        ("192.168.0.0/23", ("192.168.2.0/23", "192.168.4.0/24")),
    ],
)
def test_adjacent_ranges(subnet, expected):
    assert adjacent_ranges(subnet) == expected


@pytest.mark.parametrize("subnet", ["10.80.0.0/24", "10.80.0.0/26"])
def test_adjacent_ranges_of_a_small_subnet(subnet):
    proxy, psc = (ipaddress.IPv4Network(r) for r in adjacent_ranges(subnet))
    net = ipaddress.IPv4Network(subnet)
    assert (proxy.prefixlen, psc.prefixlen) == (23, 24)
    assert not proxy.overlaps(net) and not psc.overlaps(net) and not psc.overlaps(proxy)


# -- certificates ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("certificate", "region"),
    [
        (PROD_CERT, "eu-central-1"),
        ("arn:aws-us-gov:acm:us-gov-west-1:123456789012:certificate/0a1b2c3d-4e5f", "us-gov-west-1"),
        (PCA, "eu-central-1"),
        ("arn:aws:acm-pca:eu-west-1:123456789012:certificate-authority/11112222-3333", "eu-west-1"),
        (RESEARCH_CERT, "europe-west4"),
        ("projects/acme-ml-test/regions/us-central1/sslCertificates/a", "us-central1"),
        ("arn:aws:acm:eu-central-1:12345:certificate/6f1c", None),  # 5-digit account
        ("projects/acme-ml-test/global/sslCertificates/llm-internal", None),  # global, not regional
        ("llm-internal", None),
    ],
)
def test_region_of_certificate(certificate, region):
    assert region_of_certificate(certificate) == region


def test_is_acm_tells_acm_certificates_from_private_cas_and_gcp_certificates():
    assert is_acm(PROD_CERT) is True
    assert is_acm(PCA) is False
    assert is_acm(RESEARCH_CERT) is False


CERTS = {
    ("aws", "eu-central-1"): PROD_CERT,
    ("aws", "eu-west-1"): "arn:aws:acm:eu-west-1:123456789012:certificate/0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
    ("gcp", "europe-west4"): "projects/acme-ml-test/regions/europe-west4/sslCertificates/llm-internal",
    ("gcp", "europe-west1"): "projects/acme-ml-test/regions/europe-west1/sslCertificates/llm-west1",
}


def _four_certificates() -> DeploymentSpec:
    spec = _edit(
        VALID / "endpoint-aws-and-gcp.yaml",
        (
            f"    - {PROD_CERT}\n",
            f"    - {CERTS['gcp', 'europe-west1']}\n    - {PROD_CERT}\n    - {CERTS['aws', 'eu-west-1']}\n",
        ),
    )
    assert len(spec.endpoint.certificates) == 4
    return spec


@pytest.mark.parametrize(("cloud", "region"), sorted(CERTS))
def test_certificate_for_picks_by_cloud_and_region(cloud, region):
    project = "acme-ml-test" if cloud == "gcp" else ""
    assert certificate_for(_four_certificates(), cloud, region, project) == CERTS[cloud, region]


def test_certificate_for_a_gcp_target_must_be_of_its_project():
    assert certificate_for(_four_certificates(), "gcp", "europe-west4", "another-project") is None


@pytest.mark.parametrize(
    ("cloud", "region"), [("aws", "europe-west4"), ("gcp", "eu-central-1"), ("aws", "us-east-1"), ("gcp", "us-east1")]
)
def test_certificate_for_finds_nothing_for_another_cloud_or_region(cloud, region):
    assert certificate_for(_four_certificates(), cloud, region) is None


def test_the_mixed_spec_plans_the_certificate_of_each_targets_cloud_and_region():
    spec = _four_certificates()
    assert plan_aws_endpoint(spec, "mixed", "aws-main").certificate_arn == CERTS["aws", "eu-central-1"]
    assert plan_gcp_endpoint(spec, "mixed", "gcp-main").certificate == CERTS["gcp", "europe-west4"]


def test_load_balancer_name_never_begins_with_internal():
    spec = _edit(PROD, ("  name: assistant\n", "  name: internal\n"))
    assert not plan_aws_endpoint(spec, "prod", "steady").lb_name.startswith("internal-")
