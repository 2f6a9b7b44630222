"""GcpOverflowLink through the mocks over hand-built plans (one and two site devices, two and four
tunnels, keys generated or from config), and the pure plan: tunnel pairing, BGP addresses, the
spec's rules for the GCP link, and the plan drawn from a whole spec."""

from __future__ import annotations

import json
from pathlib import Path

import pulumi
import pytest
import yaml

from conftest import Resources
from gcplink_fixture import FORWARDING_RULE, NETWORK, PROJECT, REGION, SITE_IPS, SUBNET, link_plan, record_link
from inferstack.components.overflow_gcp_link import PresharedKeysError, parse_preshared_keys
from inferstack.errors import SpecError, format_loc
from inferstack.planning.overflow.gcp_link import (
    RESTRICTED_GOOGLE_APIS,
    gcp_link_findings,
    plan_gcp_link,
    plan_tunnels,
    tunnel_pairs,
)
from inferstack.spec import checks
from inferstack.spec.loader import parse_spec
from inferstack.spec.models import DeploymentSpec, OverflowLink

COMPONENT = "urn:pulumi:dev::inferstack::inferstack:overflow:GcpOverflowLink::chat-link"
TUNNEL = "gcp:compute/vPNTunnel:VPNTunnel"
RULE = "gcp:compute/regionNetworkFirewallPolicyRule:RegionNetworkFirewallPolicyRule"
PLACEHOLDER_PSK = "x" * 32  # what the mocks answer for a RandomPassword of the plan's length


@pytest.fixture(scope="module")
def one_device() -> Resources:
    return Resources(record_link(link_plan(devices=1, tunnels=2)))


@pytest.fixture(scope="module")
def two_devices() -> Resources:
    return Resources(record_link(link_plan(devices=2, tunnels=2)))


@pytest.fixture(scope="module")
def full_mesh() -> Resources:
    return Resources(record_link(link_plan(devices=2, tunnels=4)))


def _pairs(r: Resources) -> list[tuple[int, int]]:
    tunnels = sorted(r.of_type(TUNNEL), key=lambda t: t["name"])
    return [(t["inputs"]["vpnGatewayInterface"], t["inputs"]["peerExternalGatewayInterface"]) for t in tunnels]


# -- resources ---------------------------------------------------------------------------------


def test_one_device_every_resource_once_or_per_tunnel(one_device):
    counts = one_device.plan.count_by_type()
    assert counts == {
        "gcp:compute/haVpnGateway:HaVpnGateway": 1,
        "gcp:compute/externalVpnGateway:ExternalVpnGateway": 1,
        "gcp:compute/router:Router": 1,
        TUNNEL: 2,
        "gcp:compute/routerInterface:RouterInterface": 2,
        "gcp:compute/routerPeer:RouterPeer": 2,
        "random:index/randomPassword:RandomPassword": 2,
        "gcp:compute/regionNetworkFirewallPolicy:RegionNetworkFirewallPolicy": 1,
        "gcp:compute/regionNetworkFirewallPolicyAssociation:RegionNetworkFirewallPolicyAssociation": 1,
        RULE: 3,
        "pulumi:providers:gcp": 1,
    }


def test_every_resource_is_the_components_child_and_gcp_ones_use_the_targets_provider(full_mesh):
    provider = full_mesh.one("pulumi:providers:gcp")["urn"]
    for r in full_mesh.all:
        if r["custom"] and not r["type"].startswith("pulumi:providers:"):
            assert r["parent"] == COMPONENT, r["name"]
            if r["type"].startswith("gcp:"):
                assert r["provider"] == provider, r["name"]


def test_residency_every_regional_resource_in_the_targets_region_and_project(full_mesh):
    for r in full_mesh.all:
        if r["type"].startswith("gcp:"):
            assert r["inputs"]["project"] == PROJECT, r["name"]
            # The external VPN gateway is global in the API; it only records the site's addresses.
            if r["type"] != "gcp:compute/externalVpnGateway:ExternalVpnGateway":
                assert r["inputs"]["region"] == REGION, r["name"]


def test_ha_vpn_gateway_on_the_targets_network_ipv4_labelled(one_device):
    gw = one_device.one("gcp:compute/haVpnGateway:HaVpnGateway")["inputs"]
    assert gw["network"] == NETWORK
    assert gw["stackType"] == "IPV4_ONLY"
    assert gw["labels"]["workload"] == "overflow-link"


def test_one_device_is_single_ip_internally_redundant_and_both_interfaces_reach_it(one_device):
    site = one_device.one("gcp:compute/externalVpnGateway:ExternalVpnGateway")["inputs"]
    assert site["redundancyType"] == "SINGLE_IP_INTERNALLY_REDUNDANT"
    assert site["interfaces"] == [{"id": 0, "ipAddress": SITE_IPS[0]}]
    assert _pairs(one_device) == [(0, 0), (1, 0)]


def test_two_devices_are_two_ips_redundancy_interface_0_to_0_and_1_to_1(two_devices):
    site = two_devices.one("gcp:compute/externalVpnGateway:ExternalVpnGateway")["inputs"]
    assert site["redundancyType"] == "TWO_IPS_REDUNDANCY"
    assert site["interfaces"] == [{"id": 0, "ipAddress": SITE_IPS[0]}, {"id": 1, "ipAddress": SITE_IPS[1]}]
    assert _pairs(two_devices) == [(0, 0), (1, 1)]


def test_four_tunnels_are_the_full_mesh(full_mesh):
    assert sorted(_pairs(full_mesh)) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert _pairs(full_mesh)[:2] == [(0, 0), (1, 1)]  # the first two as with two tunnels


def test_tunnels_ikev2_on_the_gateway_the_site_and_the_router(one_device):
    gw = one_device.one("gcp:compute/haVpnGateway:HaVpnGateway")["urn"]
    site = one_device.one("gcp:compute/externalVpnGateway:ExternalVpnGateway")["urn"]
    router = one_device.one("gcp:compute/router:Router")["urn"]
    for t in one_device.of_type(TUNNEL):
        assert t["inputs"]["ikeVersion"] == 2
        assert t["propertyDependencies"]["vpnGateway"] == [gw]
        assert t["propertyDependencies"]["peerExternalGateway"] == [site]
        assert t["propertyDependencies"]["router"] == [router]


def test_cloud_router_custom_advertises_the_private_subnet_and_restricted_apis_only(one_device):
    bgp = one_device.one("gcp:compute/router:Router")["inputs"]["bgp"]
    assert bgp["asn"] == 64514
    assert bgp["advertiseMode"] == "CUSTOM"
    assert "advertisedGroups" not in bgp  # no ALL_SUBNETS: the proxy-only and PSC ranges stay unannounced
    assert [r["range"] for r in bgp["advertisedIpRanges"]] == [SUBNET, RESTRICTED_GOOGLE_APIS]


def test_each_tunnel_has_a_router_interface_and_a_bgp_peer_with_the_inside_hosts(two_devices):
    interfaces = sorted(two_devices.of_type("gcp:compute/routerInterface:RouterInterface"), key=lambda r: r["name"])
    peers = sorted(two_devices.of_type("gcp:compute/routerPeer:RouterPeer"), key=lambda r: r["name"])
    tunnels = sorted(two_devices.of_type(TUNNEL), key=lambda r: r["name"])
    assert [i["inputs"]["ipRange"] for i in interfaces] == ["169.254.10.1/30", "169.254.11.1/30"]
    for interface, peer, tunnel in zip(interfaces, peers, tunnels, strict=True):
        assert interface["propertyDependencies"]["vpnTunnel"] == [tunnel["urn"]]
        assert peer["propertyDependencies"]["interface"] == [interface["urn"]]
    assert [(p["inputs"]["ipAddress"], p["inputs"]["peerIpAddress"], p["inputs"]["peerAsn"]) for p in peers] == [
        ("169.254.10.1", "169.254.10.2", 65010),
        ("169.254.11.1", "169.254.11.2", 65010),
    ]


# -- secrets -----------------------------------------------------------------------------------


def test_generated_keys_are_random_passwords_of_32_letters_and_digits_and_secret_in_the_tunnels(full_mesh):
    passwords = full_mesh.of_type("random:index/randomPassword:RandomPassword")
    assert [p["inputs"] for p in passwords] == [{"length": 32, "special": False}] * 4
    assert {t["inputs"]["sharedSecret"] for t in full_mesh.of_type(TUNNEL)} == {"[secret]"}
    each_tunnel = {t["propertyDependencies"]["sharedSecret"][0] for t in full_mesh.of_type(TUNNEL)}
    assert each_tunnel == {p["urn"] for p in passwords}  # one key per tunnel, none shared


def test_no_key_in_clear_anywhere_in_the_plan_or_its_outputs(full_mesh):
    assert PLACEHOLDER_PSK not in full_mesh.plan.dumps()


def test_keys_from_the_secret_config_key_are_secret_and_nothing_is_generated():
    keys = ["k-one-aaaaaaaaaaaaaaaaaaaaaaaaaaaa", "k-two-bbbbbbbbbbbbbbbbbbbbbbbbbbbb"]
    plan = record_link(
        link_plan(preshared_keys_config_key="gcpVpnKeys"), secrets={"inferstack:gcpVpnKeys": json.dumps(keys)}
    )
    r = Resources(plan)
    assert r.of_type("random:index/randomPassword:RandomPassword") == []
    assert {t["inputs"]["sharedSecret"] for t in r.of_type(TUNNEL)} == {"[secret]"}
    assert not any(k in plan.dumps() for k in keys)


def test_a_missing_config_key_fails_naming_it():
    with pytest.raises(pulumi.ConfigMissingError, match="inferstack:gcpVpnKeys"):
        record_link(link_plan(preshared_keys_config_key="gcpVpnKeys"))


@pytest.mark.parametrize("value", ['["only-one"]', "not json", '["a", ""]', '{"a": "b"}'])
def test_config_keys_must_be_one_per_tunnel_and_the_error_never_shows_them(value):
    with pytest.raises(PresharedKeysError) as e:
        parse_preshared_keys(value, 2, "gcpVpnKeys")
    assert "inferstack:gcpVpnKeys" in str(e.value) and "2 non-empty" in str(e.value)
    assert "only-one" not in str(e.value)


# -- firewall ----------------------------------------------------------------------------------


def _rules(r: Resources) -> dict[str, dict]:
    return {x["name"].removeprefix("chat-link-"): x["inputs"] for x in r.of_type(RULE)}


def test_the_policy_is_associated_with_the_targets_network(one_device):
    assoc = one_device.one("gcp:compute/regionNetworkFirewallPolicyAssociation:RegionNetworkFirewallPolicyAssociation")
    policy = one_device.one("gcp:compute/regionNetworkFirewallPolicy:RegionNetworkFirewallPolicy")
    assert assoc["inputs"]["attachmentTarget"] == NETWORK
    assert assoc["propertyDependencies"]["firewallPolicy"] == [policy["urn"]]


def test_every_rule_targets_only_the_endpoints_forwarding_rule_and_logs(one_device):
    for inputs in _rules(one_device).values():
        assert inputs["targetType"] == "INTERNAL_MANAGED_LB"
        assert inputs["targetForwardingRules"] == [FORWARDING_RULE]
        assert inputs["direction"] == "INGRESS"
        assert inputs["enableLogging"] is True


def test_the_site_reaches_the_listener_port_only_and_every_other_source_is_denied_after(one_device):
    rules = _rules(one_device)
    site, psc, rest = rules["site"], rules["psc"], rules["rest"]
    assert site["action"] == "allow"
    assert site["match"] == {
        "srcIpRanges": ["10.20.0.0/16", "10.21.0.0/16"],
        "layer4Configs": [{"ipProtocol": "tcp", "ports": ["443"]}],
    }
    # The endpoint's Private Service Connect consumers arrive from its NAT range: still admitted.
    assert psc["action"] == "allow" and psc["match"]["srcIpRanges"] == ["10.80.18.0/24"]
    assert rest["action"] == "deny"
    assert rest["match"] == {"srcIpRanges": ["0.0.0.0/0"], "layer4Configs": [{"ipProtocol": "all"}]}
    assert site["priority"] < rest["priority"] and psc["priority"] < rest["priority"]


def test_no_vpc_firewall_rule_names_the_site(one_device):
    # The backends only ever see the proxy-only subnet: a VPC rule for the site would be dead weight.
    assert one_device.of_type("gcp:compute/firewall:Firewall") == []


# -- outputs for the site's network team --------------------------------------------------------


def test_outputs_give_the_site_team_interfaces_asns_and_bgp_addresses(two_devices):
    out = two_devices.plan.outputs
    interfaces = out["gcp_vpn_interfaces"]
    assert len(interfaces) == 2 and all(ip.startswith("203.0.113.") for ip in interfaces)
    assert out["gcp_router_asn"] == 64514
    assert out["gcp_advertised_ranges"] == [SUBNET, RESTRICTED_GOOGLE_APIS]
    assert out["gcp_vpn_tunnels"][1] == {
        "tunnel": 1,
        "site_device": 1,
        "site_public_ip": SITE_IPS[1],
        "google_interface": 1,
        "google_public_ip": interfaces[1],
        "inside_cidr": "169.254.11.0/30",
        "site_bgp_ip": "169.254.11.2",
        "google_bgp_ip": "169.254.11.1",
        "site_asn": 65010,
        "google_asn": 64514,
        "ike_version": 2,
    }
    assert not any("secret" in key or "key" in key for t in out["gcp_vpn_tunnels"] for key in t)


# -- the pure plan ------------------------------------------------------------------------------


def test_tunnel_pairs_follow_the_ha_vpn_topologies():
    assert tunnel_pairs(1, 2) == ((0, 0), (1, 0))
    assert tunnel_pairs(2, 2) == ((0, 0), (1, 1))
    assert tunnel_pairs(2, 4) == ((0, 0), (1, 1), (0, 1), (1, 0))
    for devices, tunnels in ((1, 4), (2, 3), (1, 1)):
        with pytest.raises(ValueError):
            tunnel_pairs(devices, tunnels)


def test_cloud_router_takes_the_first_host_and_the_site_the_second():
    t = plan_tunnels(1, ["169.254.21.4/30", "169.254.21.8/30"])
    assert [(x.cloud_router_ip, x.site_ip, x.ha_interface, x.site_interface) for x in t] == [
        ("169.254.21.5", "169.254.21.6", 0, 0),
        ("169.254.21.9", "169.254.21.10", 1, 0),
    ]


def _link(**changes) -> dict:
    link = {
        "site_public_ips": ["84.17.40.10"],
        "site_asn": 65010,
        "onprem_cidrs": ["10.20.0.0/16"],
        "gcp": {"tunnel_inside_cidrs": ["169.254.10.0/30", "169.254.11.0/30"]},
    }
    link.update(changes)
    return link


@pytest.mark.parametrize(
    ("cidrs", "message"),
    [
        (["169.254.10.0/29", "169.254.11.0/30"], "must be a /30 inside 169.254.0.0/16"),
        (["10.0.0.0/30", "169.254.11.0/30"], "must be a /30 inside 169.254.0.0/16"),
        (["169.254.10.1/30", "169.254.11.0/30"], "is not an IPv4 network"),  # host bits set
        (["169.254.10.0/30", "169.254.169.252/30"], "metadata server"),
        (["169.254.10.0/30", "169.254.10.0/30"], "each tunnel needs its own /30"),
    ],
)
def test_the_spec_refuses_inside_ranges_the_cloud_router_would(cidrs, message):
    with pytest.raises(ValueError, match=message):
        OverflowLink.model_validate(_link(gcp={"tunnel_inside_cidrs": cidrs}))


def test_the_spec_refuses_tunnel_counts_that_do_not_fit_the_devices():
    four = ["169.254.10.0/30", "169.254.11.0/30", "169.254.12.0/30", "169.254.13.0/30"]
    with pytest.raises(ValueError, match="4 tunnels do not fit 1 site device"):
        OverflowLink.model_validate(_link(gcp={"tunnel_inside_cidrs": four}))
    with pytest.raises(ValueError, match="3 tunnels do not fit 2 site device"):
        OverflowLink.model_validate(
            _link(site_public_ips=["84.17.40.10", "84.17.40.20"], gcp={"tunnel_inside_cidrs": four[:3]})
        )
    ok = OverflowLink.model_validate(
        _link(site_public_ips=["84.17.40.10", "84.17.40.20"], gcp={"tunnel_inside_cidrs": four})
    )
    assert ok.gcp is not None and len(ok.gcp.tunnel_inside_cidrs) == 4


def test_the_spec_refuses_the_sites_asn_on_the_cloud_router_and_aws_ranges_reused():
    with pytest.raises(ValueError, match="needs an ASN of its own"):
        OverflowLink.model_validate(_link(site_asn=64514))
    with pytest.raises(ValueError, match="an AWS tunnel's inside range too"):
        OverflowLink.model_validate(_link(aws={"tunnel_inside_cidrs": ["169.254.11.0/30", "169.254.30.0/30"]}))


ROOT = Path(__file__).resolve().parent.parent


def _hybrid_spec() -> DeploymentSpec:
    """research.yaml's GCP targets with stacks/onprem.yaml's primary and an overflow section."""
    spec = yaml.safe_load((ROOT / "stacks" / "research.yaml").read_text())
    onprem = yaml.safe_load((ROOT / "stacks" / "onprem.yaml").read_text())
    spec["targets"]["muc"] = onprem["targets"]["muc"]
    spec["overflow"] = {
        "primary": "muc",
        "burst": ["chat"],
        "link": {
            "site_public_ips": ["84.17.40.10", "84.17.40.20"],
            "site_asn": 65010,
            "onprem_cidrs": ["10.20.0.0/16"],
            "gcp": {"tunnel_inside_cidrs": ["169.254.10.0/30", "169.254.11.0/30"], "router_asn": 64600},
        },
        "gateway": {
            "image": "registry.muc.acme.internal/envoyproxy/envoy@sha256:" + "a" * 64,
            "publisher_image": "registry.muc.acme.internal/inferstack/publisher@sha256:" + "b" * 64,
            "tls_secret": "gateway-tls",
            "client_certificate_secret": "publisher-cert",
            "client_certificate_cn": "overflow-publisher",
            "cloud_ca_secret": "cloud-ca",
            "service_account_issuer": "https://muc.acme.internal",
        },
    }
    return DeploymentSpec.model_validate(spec)


def test_plan_from_the_spec():
    plan = plan_gcp_link(_hybrid_spec(), "research", "chat")
    assert plan is not None
    assert (plan.project, plan.region, plan.router_asn, plan.site_asn) == (
        "acme-ml-staging",
        "europe-west4",
        64600,
        65010,
    )
    assert plan.redundancy_type == "TWO_IPS_REDUNDANCY"
    assert [(t.ha_interface, t.site_interface) for t in plan.tunnels] == [(0, 0), (1, 1)]
    assert plan.listener_port == 443
    assert plan.psc_cidr == "10.80.18.0/24"  # the endpoint's PSC NAT range beside 10.80.0.0/20
    assert plan.labels["workload"] == "overflow-link"
    assert plan.preshared_keys_config_key is None
    assert len(plan.name) <= 50


def test_no_plan_for_a_target_that_is_not_a_gcp_burst_target():
    spec = _hybrid_spec()
    assert plan_gcp_link(spec, "research", "reasoning") is None  # not in burst
    assert plan_gcp_link(spec, "research", "muc") is None
    no_gcp = spec.model_copy(
        update={
            "overflow": spec.overflow.model_copy(update={"link": spec.overflow.link.model_copy(update={"gcp": None})})
        }
    )
    assert plan_gcp_link(no_gcp, "research", "chat") is None


def _spec_error(link: dict) -> list[tuple[str, str]]:
    spec = _hybrid_spec().model_dump(mode="json", exclude_none=True)
    spec["overflow"]["link"] = link
    with pytest.raises(SpecError) as e:
        parse_spec(yaml.safe_dump(spec), "hybrid.yaml")
    assert all(f.line is not None for f in e.value.findings)
    return [(format_loc(f.loc), f.message) for f in e.value.findings]


def test_a_bad_link_is_a_spec_error_naming_the_field_and_its_line():
    two = {"site_public_ips": ["84.17.40.10", "84.17.40.20"], "site_asn": 65010, "onprem_cidrs": ["10.20.0.0/16"]}
    found = _spec_error({**two, "gcp": {"tunnel_inside_cidrs": ["169.254.10.0/30", "169.254.169.252/30"]}})
    assert found == [
        (
            "overflow.link.gcp.tunnel_inside_cidrs[1]",
            "169.254.169.252/30 holds 169.254.169.254, the VMs' metadata server: pick another /30",
        )
    ]
    found = _spec_error(
        {**two, "gcp": {"tunnel_inside_cidrs": ["169.254.10.0/30", "169.254.11.0/30", "169.254.12.0/30"]}}
    )
    assert found == [
        ("overflow.link.gcp.tunnel_inside_cidrs", "3 tunnels do not fit 2 site device(s): give 2, or 4 for a full mesh")
    ]


def _findings(spec: DeploymentSpec) -> list[tuple[str, str, str]]:
    return [
        (format_loc(f.loc), f.severity, f.message)
        for f in checks.check_overflow(spec)
        if "gcp" in str(f.loc) or "onprem_cidrs" in str(f.loc) or f.loc[:2] == ("overflow", "burst")
    ]


def _with_overflow(spec: DeploymentSpec, **changes) -> DeploymentSpec:
    assert spec.overflow is not None
    link = changes.pop("link", {})
    overflow = spec.overflow.model_copy(update={**changes, "link": spec.overflow.link.model_copy(update=link)})
    return spec.model_copy(update={"overflow": overflow})


def test_cross_section_rules_of_the_gcp_link():
    spec = _hybrid_spec()
    assert _findings(spec) == []
    assert _findings(_with_overflow(spec, link={"gcp": None})) == [
        ("overflow.link.gcp", "error", "a burst target is in GCP: give its tunnel inside ranges here")
    ]
    assert ("overflow.link.gcp", "error", "no burst target is in GCP: remove this section") in _findings(
        _with_overflow(spec, burst=["muc"])
    )
    (second,) = [f for f in gcp_link_findings(_with_overflow(spec, burst=["chat", "reasoning"]))]
    assert format_loc(second.loc) == "overflow.burst[1]" and "second GCP burst target" in second.message
    # chat's network: 10.80.0.0/20, its proxy-only /23 and PSC NAT /24 right after
    overlapping = _findings(_with_overflow(spec, link={"onprem_cidrs": ["10.20.0.0/16", "10.80.16.0/22"]}))
    assert [msg.split(":")[0] for _, _, msg in overlapping] == [
        "the site's 10.80.16.0/22 overlaps 10.80.16.0/23 of burst target 'chat'",
        "the site's 10.80.16.0/22 overlaps 10.80.18.0/24 of burst target 'chat'",
    ]
