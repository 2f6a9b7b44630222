"""AwsOverflowLink through the mocks over hand-built plans (one and two site devices, a virtual
private gateway or the spec's transit gateway, keys generated or from config), and the pure plan:
connection pairing, BGP addresses, the pre-shared key rules, and the plan drawn from hybrid.yaml."""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterator

import pytest
from awslink_fixture import (
    API_SG,
    INSIDE,
    KMS,
    NLB_DNS,
    NLB_SG,
    NLB_ZONE,
    ONPREM,
    REGION,
    ROUTE_TABLES,
    SITE_IPS,
    SUBNETS,
    TGW,
    VPC,
    link_plan,
    record_link,
)

from conftest import STACKS, Resources, plan_of_file, plan_of_text
from inferstack.components.overflow_aws_link import BGP_ASN_MAX, check_transit_gateway_asn
from inferstack.components.overflow_gcp_link import PresharedKeysError
from inferstack.offline.mocks import CloudMocks
from inferstack.planning.overflow.aws_link import (
    amazon_side_asn,
    aws_first_character,
    aws_link_findings,
    plan_aws_link,
    plan_connections,
    preshared_key_problem,
)
from inferstack.spec.loader import load_spec
from inferstack.spec.models import AwsEndpointConsumer, AwsNetwork

COMPONENT = "urn:pulumi:dev::inferstack::inferstack:overflow:AwsOverflowLink::chat-link"
VPN = "aws:ec2/vpnConnection:VpnConnection"
CGW = "aws:ec2/customerGateway:CustomerGateway"
VGW = "aws:ec2/vpnGateway:VpnGateway"
PROPAGATION = "aws:ec2/vpnGatewayRoutePropagation:VpnGatewayRoutePropagation"
ATTACHMENT = "aws:ec2transitgateway/vpcAttachment:VpcAttachment"
ROUTE = "aws:ec2/route:Route"
RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
SG = "aws:ec2/securityGroup:SecurityGroup"
RESOLVER = "aws:route53/resolverEndpoint:ResolverEndpoint"
LOGS = "aws:cloudwatch/logGroup:LogGroup"
PASSWORD = "random:index/randomPassword:RandomPassword"
PLACEHOLDER_PSK = "x" * 32  # what the mocks answer for a RandomPassword of the plan's length

# What AWS would still negotiate if a list were left to its defaults ("Tunnel options for your
# Site-to-Site VPN connection"): none of it may appear in a tunnel's proposals.
WEAK_ENCRYPTION = {"AES128", "AES128-GCM-16"}
WEAK_INTEGRITY = {"SHA1"}
WEAK_DH = {2, 5, 17, 18, 22, 23, 24}  # MODP-1024/1536 and the small or RFC 5114 groups


@pytest.fixture(scope="module")
def one_device() -> Resources:
    return Resources(record_link(link_plan(devices=1)))


@pytest.fixture(scope="module")
def two_devices() -> Resources:
    return Resources(record_link(link_plan(devices=2)))


@pytest.fixture(scope="module")
def transit() -> Resources:
    return Resources(record_link(link_plan(devices=2, transit_gateway_id=TGW, amazon_side_asn=None)))


def _vpns(r: Resources) -> list[dict]:
    return sorted(r.of_type(VPN), key=lambda v: v["name"])


def _rules(r: Resources, stem: str) -> list[dict]:
    return [x["inputs"] for x in r.of_type(RULE) if x["name"].removeprefix("chat-link-").startswith(stem)]


def _strings(value) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


# -- resources ---------------------------------------------------------------------------------


def test_two_devices_every_resource_once_per_link_device_tunnel_or_site_network(two_devices):
    assert two_devices.plan.count_by_type() == {
        LOGS: 1,
        VGW: 1,
        PROPAGATION: 2,  # one per private route table
        CGW: 2,
        VPN: 2,
        PASSWORD: 4,  # one per tunnel
        SG: 2,  # the resolver's and the Roles Anywhere endpoint's
        RULE: 2 * (1 + 1 + 2 + 1),  # per site network: TLS, APIs, DNS udp+tcp, Roles Anywhere
        "aws:ec2/vpcEndpoint:VpcEndpoint": 1,
        RESOLVER: 1,
        "aws:route53/zone:Zone": 1,
        "aws:route53/record:Record": 1,
        "pulumi:providers:aws": 1,
    }


def test_every_resource_is_the_components_child_and_aws_ones_use_the_targets_provider(transit):
    provider = transit.one("pulumi:providers:aws")["urn"]
    for r in transit.all:
        if r["custom"] and not r["type"].startswith("pulumi:providers:"):
            assert r["parent"] == COMPONENT, r["name"]
            if r["type"].startswith("aws:"):
                assert r["provider"] == provider, r["name"]


def test_one_customer_gateway_per_device_ipsec1_with_the_sites_asn(two_devices):
    gateways = sorted(two_devices.of_type(CGW), key=lambda g: g["name"])
    assert [(g["inputs"]["ipAddress"], g["inputs"]["type"], g["inputs"]["bgpAsn"]) for g in gateways] == [
        (SITE_IPS[0], "ipsec.1", "65010"),
        (SITE_IPS[1], "ipsec.1", "65010"),
    ]
    assert all("bgpAsnExtended" not in g["inputs"] for g in gateways)
    # Its own device name: an identical CreateCustomerGateway returns an existing gateway instead.
    assert [g["inputs"]["deviceName"] for g in gateways] == [
        "assistant-dev-chat-vpn-site-0",
        "assistant-dev-chat-vpn-site-1",
    ]


def test_a_four_byte_site_asn_beyond_bgp_asn_goes_in_bgp_asn_extended():
    # CreateCustomerGateway: BgpAsn 1..2,147,483,647; larger ASNs only in BgpAsnExtended.
    r = Resources(record_link(link_plan(devices=1, site_asn=4_200_000_000)))
    (gateway,) = r.of_type(CGW)
    assert gateway["inputs"]["bgpAsnExtended"] == "4200000000"
    assert "bgpAsn" not in gateway["inputs"]
    (edge,) = Resources(record_link(link_plan(devices=1, site_asn=BGP_ASN_MAX))).of_type(CGW)
    assert edge["inputs"]["bgpAsn"] == str(BGP_ASN_MAX) and "bgpAsnExtended" not in edge["inputs"]


def test_vgw_on_the_vpc_with_a_private_amazon_asn_and_propagation_into_each_route_table(two_devices):
    vgw = two_devices.one(VGW)
    assert vgw["inputs"]["vpcId"] == VPC
    assert vgw["inputs"]["amazonSideAsn"] == "64512"
    propagations = two_devices.of_type(PROPAGATION)
    assert sorted(p["inputs"]["routeTableId"] for p in propagations) == sorted(ROUTE_TABLES)
    assert all(p["propertyDependencies"]["vpnGatewayId"] == [vgw["urn"]] for p in propagations)
    for v in _vpns(two_devices):
        assert v["propertyDependencies"]["vpnGatewayId"] == [vgw["urn"]]
        assert "transitGatewayId" not in v["inputs"]
    assert two_devices.of_type(ATTACHMENT) == [] and two_devices.of_type(ROUTE) == []


def test_subnets_sharing_a_route_table_get_one_propagation_or_route_per_table_and_network():
    # A repeated CreateRoute of one destination in one table fails (RouteAlreadyExists), and two
    # propagation resources of one table would switch it off for both when either goes.
    shared = (ROUTE_TABLES[0], ROUTE_TABLES[0])
    vgw = Resources(record_link(link_plan(devices=1), route_tables=shared))
    assert [p["inputs"]["routeTableId"] for p in vgw.of_type(PROPAGATION)] == [ROUTE_TABLES[0]]
    tgw = Resources(
        record_link(link_plan(devices=1, transit_gateway_id=TGW, amazon_side_asn=None), route_tables=shared)
    )
    routes = sorted((r["inputs"]["routeTableId"], r["inputs"]["destinationCidrBlock"]) for r in tgw.of_type(ROUTE))
    assert routes == [(ROUTE_TABLES[0], c) for c in ONPREM]


def test_an_existing_vpcs_subnets_on_one_table_give_the_link_that_table_once(monkeypatch):
    """Through the program: the network looks up the table of each existing subnet (here the
    VPC's main table, for both) and hands the link each table once."""
    shared = "rtb-0a1b2c3d4e5f6a7b8"
    original = CloudMocks.call

    def call(self, args):
        if args.token == "aws:ec2/getRouteTable:getRouteTable":
            return {"id": shared, "routeTableId": shared, "subnetId": args.args.get("subnetId"), "vpcId": VPC}
        return original(self, args)

    monkeypatch.setattr(CloudMocks, "call", call)
    text = (STACKS / "hybrid.yaml").read_text()
    existing = text.replace(
        "network: {cidr: 10.64.0.0/16, availability_zones: 2}",
        f"network: {{vpc_id: {VPC}, subnet_ids: [{SUBNETS[0]}, {SUBNETS[1]}]}}",
        1,
    )
    assert existing != text
    r = Resources(plan_of_text(existing, "hybrid"))
    assert [p["inputs"]["routeTableId"] for p in r.of_type(PROPAGATION)] == [shared]
    assert r.one(RESOLVER)["inputs"]["ipAddresses"] == [{"subnetId": SUBNETS[0]}, {"subnetId": SUBNETS[1]}]


def test_transit_gateway_attachment_on_the_private_subnets_and_a_route_per_table_and_site_network(transit):
    assert transit.of_type(VGW) == [] and transit.of_type(PROPAGATION) == []
    attachment = transit.one(ATTACHMENT)
    assert attachment["inputs"]["transitGatewayId"] == TGW
    assert attachment["inputs"]["vpcId"] == VPC
    assert attachment["inputs"]["subnetIds"] == list(SUBNETS)
    routes = {(r["inputs"]["routeTableId"], r["inputs"]["destinationCidrBlock"]) for r in transit.of_type(ROUTE)}
    assert routes == {(t, c) for t in ROUTE_TABLES for c in ONPREM}
    for r in transit.of_type(ROUTE):
        assert r["inputs"]["transitGatewayId"] == TGW
        assert attachment["urn"] in r["options"]["dependsOn"]  # the attachment first: no route to nowhere
    for v in _vpns(transit):
        assert v["inputs"]["transitGatewayId"] == TGW and "vpnGatewayId" not in v["inputs"]


def test_the_transit_gateways_own_asn_is_the_aws_side_and_may_not_be_the_sites(transit):
    assert transit.plan.outputs["aws_vpn_asn"] == 64512  # the mocks' transit gateway: AWS's default
    assert {t["aws_asn"] for t in transit.plan.outputs["aws_vpn_tunnels"]} == {64512}
    plan = link_plan(devices=1, transit_gateway_id=TGW, amazon_side_asn=None, site_asn=64512)
    with pytest.raises(ValueError, match="has ASN 64512, the site's own"):
        check_transit_gateway_asn(plan, 64512)
    with pytest.raises(ValueError, match="give the site a different ASN"):
        record_link(plan)


def test_each_connection_uses_bgp_its_devices_gateway_and_the_plans_inside_ranges(two_devices):
    gateways = {g["urn"]: g["inputs"]["ipAddress"] for g in two_devices.of_type(CGW)}
    for device, v in enumerate(_vpns(two_devices)):
        inputs = v["inputs"]
        assert inputs["type"] == "ipsec.1"
        assert inputs["staticRoutesOnly"] is False
        (cgw,) = v["propertyDependencies"]["customerGatewayId"]
        assert gateways[cgw] == SITE_IPS[device]
        assert (inputs["tunnel1InsideCidr"], inputs["tunnel2InsideCidr"]) == INSIDE[2 * device : 2 * device + 2]


@pytest.mark.parametrize("tunnel", [1, 2])
def test_both_tunnels_ikev2_only_and_only_strong_proposals(two_devices, tunnel):
    for v in _vpns(two_devices):
        t = {
            k.removeprefix(f"tunnel{tunnel}"): val for k, val in v["inputs"].items() if k.startswith(f"tunnel{tunnel}")
        }
        assert t["IkeVersions"] == ["ikev2"]
        for phase in ("Phase1", "Phase2"):
            assert t[f"{phase}EncryptionAlgorithms"] == ["AES256-GCM-16", "AES256"]
            assert t[f"{phase}IntegrityAlgorithms"] == ["SHA2-256", "SHA2-384", "SHA2-512"]
            assert t[f"{phase}DhGroupNumbers"] == [14, 15, 16, 19, 20, 21]
            assert not WEAK_ENCRYPTION & set(t[f"{phase}EncryptionAlgorithms"])
            assert not WEAK_INTEGRITY & set(t[f"{phase}IntegrityAlgorithms"])
            assert not WEAK_DH & set(t[f"{phase}DhGroupNumbers"])
        # VpnTunnelOptionsSpecification: lifetimes 900..28800 and 900..3600, DPD timeout >= 30,
        # DPD action clear|none|restart, startup action add|start.
        assert (t["Phase1LifetimeSeconds"], t["Phase2LifetimeSeconds"]) == (28_800, 3_600)
        assert t["DpdTimeoutSeconds"] == 30 and t["DpdTimeoutAction"] == "restart"
        assert t["StartupAction"] == "start"


@pytest.mark.parametrize("tunnel", [1, 2])
def test_tunnel_and_bgp_logs_enabled_to_the_links_log_group_as_json(one_device, tunnel):
    logs = one_device.one(LOGS)
    (v,) = one_device.of_type(VPN)
    options = v["inputs"][f"tunnel{tunnel}LogOptions"]["cloudwatchLogOptions"]
    arn = f"arn:aws:logs:{REGION}:123456789012:log-group:/inferstack/assistant/dev/chat/vpn"
    assert options == {
        "logEnabled": True,
        "logGroupArn": arn,
        "logOutputFormat": "json",
        # The BGP sessions' logs too: the link routes by BGP, and a flapping session is its outage.
        "bgpLogEnabled": True,
        "bgpLogGroupArn": arn,
        "bgpLogOutputFormat": "json",
    }
    assert v["propertyDependencies"][f"tunnel{tunnel}LogOptions"] == [logs["urn"]]


def test_the_log_group_is_encrypted_with_the_fleets_key_and_expires(one_device):
    logs = one_device.one(LOGS)["inputs"]
    assert logs["kmsKeyId"] == KMS
    assert logs["retentionInDays"] == 90
    assert logs["name"] == "/inferstack/assistant/dev/chat/vpn"


# -- pre-shared keys ---------------------------------------------------------------------------


def test_generated_keys_are_one_random_password_per_tunnel_without_specials_and_secret(two_devices):
    passwords = two_devices.of_type(PASSWORD)
    assert [p["inputs"] for p in passwords] == [{"length": 32, "special": False}] * 4
    used = []
    for v in _vpns(two_devices):
        for t in (1, 2):
            assert v["inputs"][f"tunnel{t}PresharedKey"] == "[secret]"
            used += v["propertyDependencies"][f"tunnel{t}PresharedKey"]
    assert sorted(used) == sorted(p["urn"] for p in passwords)  # one key per tunnel, none shared


def test_no_key_in_clear_anywhere_in_the_plan_or_its_outputs(two_devices):
    text = two_devices.plan.dumps()
    assert PLACEHOLDER_PSK not in text
    assert two_devices.plan.outputs["aws_vpn_preshared_keys"] == "[secret]"
    assert all(p["inputs"].get("result") in (None, "[secret]") for p in two_devices.of_type(PASSWORD))
    for t in two_devices.plan.outputs["aws_vpn_tunnels"]:
        assert not any("key" in k or "secret" in k for k in t)


KEYS = ["site.key_one_aaaaaaaaaaaaaaaaaaaaa", "site.key_two_bbbbbbbbbbbbbbbbbbbbb"]


def test_keys_from_the_secret_config_key_are_secret_and_nothing_is_generated():
    plan = record_link(
        link_plan(devices=1, preshared_keys_config_key="awsVpnKeys"),
        secrets={"inferstack:awsVpnKeys": json.dumps(KEYS)},
    )
    r = Resources(plan)
    assert r.of_type(PASSWORD) == []
    (v,) = r.of_type(VPN)
    assert (v["inputs"]["tunnel1PresharedKey"], v["inputs"]["tunnel2PresharedKey"]) == ("[secret]", "[secret]")
    assert not any(k in plan.dumps() for k in KEYS)
    assert plan.outputs["aws_vpn_preshared_keys"] == "[secret]"


@pytest.mark.parametrize(
    ("keys", "rule"),
    [
        (["0starts_with_zero", KEYS[1]], "not starting with 0"),
        ([KEYS[0], "has-a-dash-in-it"], "letters, digits, '.' and '_'"),
        ([KEYS[0], "short"], "8 to 64"),
        ([KEYS[0], "k" * 65], "8 to 64"),
    ],
)
def test_config_keys_aws_refuses_are_a_clear_error_naming_the_key_never_its_value(keys, rule):
    with pytest.raises(ValueError) as e:
        record_link(
            link_plan(devices=1, preshared_keys_config_key="awsVpnKeys"),
            secrets={"inferstack:awsVpnKeys": json.dumps(keys)},
        )
    index = next(i for i, k in enumerate(keys) if preshared_key_problem(k))
    assert f"inferstack:awsVpnKeys[{index}] is not a key AWS accepts" in str(e.value) and rule in str(e.value)
    assert keys[index] not in str(e.value)


@pytest.mark.parametrize("value", [json.dumps(KEYS[:1]), "not json", json.dumps(KEYS + KEYS)])
def test_config_keys_must_be_one_per_tunnel(value):
    with pytest.raises(ValueError, match=r"inferstack:awsVpnKeys must be a secret JSON list of 2 non-empty") as e:
        record_link(
            link_plan(devices=1, preshared_keys_config_key="awsVpnKeys"), secrets={"inferstack:awsVpnKeys": value}
        )
    assert KEYS[0] not in str(e.value)
    assert issubclass(PresharedKeysError, ValueError)


# -- what the site may reach -------------------------------------------------------------------


def test_resolver_inbound_one_address_per_private_subnet_behind_its_own_group(two_devices):
    resolver = two_devices.one(RESOLVER)
    inputs = resolver["inputs"]
    assert inputs["direction"] == "INBOUND"
    assert inputs["protocols"] == ["Do53"]
    assert inputs["name"] == "assistant-dev-chat-inbound"
    assert [ip["subnetId"] for ip in inputs["ipAddresses"]] == list(SUBNETS)
    (sg,) = [s for s in two_devices.of_type(SG) if s["name"] == "chat-link-resolver"]
    assert len(inputs["securityGroupIds"]) == 1
    assert resolver["propertyDependencies"]["securityGroupIds"] == [sg["urn"]]
    assert two_devices.plan.outputs["aws_resolver_ips"] == ["192.0.2.10", "192.0.2.11"]


def test_one_private_subnet_still_gives_the_resolver_the_two_addresses_aws_requires():
    # CreateResolverEndpoint: an inbound endpoint needs at least two IP addresses.
    r = Resources(record_link(link_plan(devices=1), subnets=SUBNETS[:1]))
    ips = r.one(RESOLVER)["inputs"]["ipAddresses"]
    assert [ip["subnetId"] for ip in ips] == [SUBNETS[0], SUBNETS[0]]


def test_an_existing_vpc_with_more_subnets_gives_the_resolver_at_most_six_addresses():
    # Route 53 Resolver quotas: 6 IP addresses per endpoint.
    subnets = tuple(f"subnet-0a1b2c3d4e5f607{i:02d}" for i in range(8))
    r = Resources(record_link(link_plan(devices=1), subnets=subnets))
    ips = r.one(RESOLVER)["inputs"]["ipAddresses"]
    assert [ip["subnetId"] for ip in ips] == list(subnets[:6])


def test_resolver_admits_only_the_sites_networks_on_53_udp_and_tcp(two_devices):
    sg = next(s for s in two_devices.of_type(SG) if s["name"] == "chat-link-resolver")
    rules = [r for r in two_devices.of_type(RULE) if r["name"].startswith("chat-link-resolver-")]
    assert {(r["inputs"]["ipProtocol"], r["inputs"]["cidrIpv4"]) for r in rules} == {
        (p, c) for p in ("udp", "tcp") for c in ONPREM
    }
    for r in rules:
        assert (r["inputs"]["fromPort"], r["inputs"]["toPort"]) == (53, 53)
        assert r["propertyDependencies"]["securityGroupId"] == [sg["urn"]]


def test_the_endpoints_load_balancer_admits_the_sites_networks_on_its_listener_only(two_devices):
    rules = _rules(two_devices, "site-tls")
    assert sorted(r["cidrIpv4"] for r in rules) == sorted(ONPREM)
    for r in rules:
        assert r["securityGroupId"] == NLB_SG
        assert (r["ipProtocol"], r["fromPort"], r["toPort"]) == ("tcp", 443, 443)


def test_the_networks_api_endpoints_admit_the_site_on_443_and_nothing_without_that_group(two_devices):
    rules = _rules(two_devices, "site-apis")
    assert sorted(r["cidrIpv4"] for r in rules) == sorted(ONPREM)
    assert all(r["securityGroupId"] == API_SG and (r["fromPort"], r["toPort"]) == (443, 443) for r in rules)
    existing_vpc = Resources(record_link(link_plan(devices=1), api_sg=None))
    assert _rules(existing_vpc, "site-apis") == []


def test_private_hosted_zone_in_the_vpc_aliases_the_load_balancer(one_device):
    zone = one_device.one("aws:route53/zone:Zone")
    assert zone["inputs"]["name"] == "llm.acme.internal"
    assert zone["inputs"]["vpcs"] == [{"vpcId": VPC}]  # private: no delegation set, no public record
    record = one_device.one("aws:route53/record:Record")
    assert record["inputs"]["name"] == "llm.acme.internal" and record["inputs"]["type"] == "A"
    assert record["inputs"]["aliases"] == [{"name": NLB_DNS, "zoneId": NLB_ZONE, "evaluateTargetHealth": True}]
    assert record["propertyDependencies"]["zoneId"] == [zone["urn"]]


def test_roles_anywhere_interface_endpoint_private_dns_in_the_private_subnets_with_its_own_group(two_devices):
    endpoint = two_devices.one("aws:ec2/vpcEndpoint:VpcEndpoint")["inputs"]
    assert endpoint["serviceName"] == f"com.amazonaws.{REGION}.rolesanywhere"
    assert endpoint["vpcEndpointType"] == "Interface"
    assert endpoint["privateDnsEnabled"] is True
    assert endpoint["subnetIds"] == list(SUBNETS)
    sg = next(s for s in two_devices.of_type(SG) if s["name"] == "chat-link-rolesanywhere")
    assert sg["inputs"]["vpcId"] == VPC
    rules = [r for r in two_devices.of_type(RULE) if r["name"].startswith("chat-link-rolesanywhere-")]
    assert sorted(r["inputs"]["cidrIpv4"] for r in rules) == sorted(ONPREM)
    for r in rules:
        assert (r["inputs"]["ipProtocol"], r["inputs"]["fromPort"], r["inputs"]["toPort"]) == ("tcp", 443, 443)
        assert r["propertyDependencies"]["securityGroupId"] == [sg["urn"]]


def test_no_resource_opens_anything_to_the_internet(two_devices, transit):
    for r in (*two_devices.all, *transit.all):
        assert not {"0.0.0.0/0", "::/0"} & set(_strings(r["inputs"])), r["name"]
    # Every ingress rule names one of the site's networks; no egress rule is added at all.
    for r in two_devices.of_type(RULE):
        assert r["inputs"]["cidrIpv4"] in ONPREM
    assert not any(r["type"] == "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule" for r in two_devices.all)
    for sg in two_devices.of_type(SG):
        assert "ingress" not in sg["inputs"] and "egress" not in sg["inputs"]


# -- outputs for the site's network team --------------------------------------------------------


def test_outputs_give_the_site_team_outside_and_inside_addresses_asns_and_resolvers(two_devices):
    out = two_devices.plan.outputs
    tunnels = out["aws_vpn_tunnels"]
    assert len(tunnels) == 4
    assert [(t["site_device"], t["tunnel"], t["inside_cidr"]) for t in tunnels] == [
        (0, 1, INSIDE[0]),
        (0, 2, INSIDE[1]),
        (1, 1, INSIDE[2]),
        (1, 2, INSIDE[3]),
    ]
    assert tunnels[2] | {"aws_public_ip": None} == {
        "site_device": 1,
        "site_public_ip": SITE_IPS[1],
        "tunnel": 1,
        "aws_public_ip": None,
        "inside_cidr": "169.254.10.8/30",
        "site_bgp_ip": "169.254.10.10",
        "aws_bgp_ip": "169.254.10.9",
        "site_asn": 65010,
        "aws_asn": 64512,
        "ike_versions": ["ikev2"],
        "encryption": ["AES256-GCM-16", "AES256"],
        "integrity": ["SHA2-256", "SHA2-384", "SHA2-512"],
        "dh_groups": [14, 15, 16, 19, 20, 21],
    }
    # The outside addresses AWS assigned each connection's tunnels (TEST-NET-3 offline).
    assert all(t["aws_public_ip"].startswith("203.0.113.") for t in tunnels)
    assert len({t["aws_public_ip"] for t in tunnels}) == 4
    assert out["aws_vpn_asn"] == 64512
    assert len(out["aws_vpn_connections"]) == 2 and all(c.startswith("vpn-") for c in out["aws_vpn_connections"])
    assert out["aws_resolver_ips"] == ["192.0.2.10", "192.0.2.11"]
    assert out["aws_vpn_preshared_keys"] == "[secret]"


# -- the pure plan ------------------------------------------------------------------------------


def test_plan_connections_gives_device_i_ranges_2i_and_2i_plus_1_aws_first_host_site_second():
    conns = plan_connections(SITE_IPS, INSIDE)
    assert [(c.device, c.site_public_ip) for c in conns] == [(0, SITE_IPS[0]), (1, SITE_IPS[1])]
    assert [(t.index, t.inside_cidr, t.aws_ip, t.site_ip) for c in conns for t in c.tunnels] == [
        (1, "169.254.10.0/30", "169.254.10.1", "169.254.10.2"),
        (2, "169.254.10.4/30", "169.254.10.5", "169.254.10.6"),
        (1, "169.254.10.8/30", "169.254.10.9", "169.254.10.10"),
        (2, "169.254.10.12/30", "169.254.10.13", "169.254.10.14"),
    ]
    (only,) = plan_connections(SITE_IPS[:1], INSIDE[:2])
    assert [t.inside_cidr for t in only.tunnels] == list(INSIDE[:2])


def test_the_amazon_side_asn_is_private_and_never_the_sites():
    assert amazon_side_asn(65010) == 64512
    assert amazon_side_asn(64512) == 64513


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("abcdefgh", None),  # 8: the shortest
        ("A" * 64, None),  # 64: the longest
        ("with.dots_and_underscores9", None),
        ("abcdefg", "8 to 64 letters, digits, '.' and '_'"),
        ("A" * 65, "8 to 64 letters, digits, '.' and '_'"),
        ("has-dash-inside", "8 to 64 letters, digits, '.' and '_'"),
        ("has space inside", "8 to 64 letters, digits, '.' and '_'"),
        ("ünïcode-keys", "8 to 64 letters, digits, '.' and '_'"),
        ("0leadingzero", "not starting with 0"),
    ],
)
def test_preshared_key_problem_follows_awss_rules(key, problem):
    assert preshared_key_problem(key) == problem


def test_a_generated_key_with_a_leading_zero_becomes_acceptable_and_others_stay():
    assert aws_first_character("0" + "a" * 31) == "A" + "a" * 31
    assert aws_first_character("b" * 32) == "b" * 32
    assert preshared_key_problem(aws_first_character("0" * 32)) is None


@pytest.fixture(scope="module")
def hybrid_spec():
    return load_spec(STACKS / "hybrid.yaml")


def test_plan_from_hybrid_yaml(hybrid_spec):
    plan = plan_aws_link(hybrid_spec.spec, hybrid_spec.stack, "aws-burst")
    assert plan is not None
    assert (plan.target, plan.region, plan.site_asn, plan.amazon_side_asn) == (
        "aws-burst",
        "eu-central-1",
        65010,
        64512,
    )
    assert plan.transit_gateway_id is None and plan.preshared_keys_config_key is None
    assert plan.onprem_cidrs == ("10.20.0.0/16",)
    assert [(c.device, c.site_public_ip) for c in plan.connections] == [(0, "198.51.100.10"), (1, "198.51.100.11")]
    assert [t.inside_cidr for c in plan.connections for t in c.tunnels] == [
        "169.254.10.0/30",
        "169.254.10.4/30",
        "169.254.10.8/30",
        "169.254.10.12/30",
    ]
    assert plan.tunnel_count == 4
    assert plan.listener_port == 443
    assert plan.domain_name.endswith("llm.acme.internal")
    assert plan.log_group_name.endswith("/vpn") and plan.log_retention_days > 0
    assert plan.tags["workload"] == "overflow-link"
    assert len(plan.resolver_name) <= 64


def test_no_aws_plan_for_a_gcp_burst_target_or_a_target_outside_burst(hybrid_spec):
    spec = hybrid_spec.spec
    assert plan_aws_link(spec, hybrid_spec.stack, "gcp-burst") is None
    assert plan_aws_link(spec, hybrid_spec.stack, "muc") is None
    no_aws = spec.model_copy(
        update={
            "overflow": spec.overflow.model_copy(update={"link": spec.overflow.link.model_copy(update={"aws": None})})
        }
    )
    assert plan_aws_link(no_aws, hybrid_spec.stack, "aws-burst") is None


def test_the_fleets_key_lets_cloudwatch_logs_encrypt_the_tunnel_log_group():
    """The link's log group takes the fleet's key: CreateLogGroup with a KMS key fails unless the
    key policy lets logs.<region>.amazonaws.com use it for that group ("Encrypt log data in
    CloudWatch Logs using AWS KMS")."""
    r = Resources(plan_of_file(str(STACKS / "hybrid.yaml")))
    key = r.one("aws:kms/key:Key", "aws-burst-key")
    group = r.one(LOGS, "aws-burst-link-tunnel-logs")
    assert group["propertyDependencies"]["kmsKeyId"] == [key["urn"]]
    arn = f"arn:aws:logs:eu-central-1:123456789012:log-group:{group['inputs']['name']}"
    (logs,) = [
        st
        for st in json.loads(key["inputs"]["policy"])["Statement"]
        if st["Principal"] == {"Service": "logs.eu-central-1.amazonaws.com"}
    ]
    assert logs["Effect"] == "Allow"
    # What the Logs documentation's key policy grants the service: encrypt, decrypt, data keys, describe.
    assert {"kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"} <= set(
        logs["Action"]
    )
    (pattern,) = logs["Condition"]["ArnLike"].values()
    assert fnmatch.fnmatchcase(arn, pattern)


def _with_site_asn(spec, asn: int, region: str | None = None):
    link = spec.overflow.link.model_copy(update={"site_asn": asn})
    targets = dict(spec.targets)
    if region is not None:
        targets["aws-burst"] = targets["aws-burst"].model_copy(update={"region": region})
    return spec.model_copy(update={"overflow": spec.overflow.model_copy(update={"link": link}), "targets": targets})


@pytest.mark.parametrize(
    ("asn", "region", "refused"),
    [
        (7224, "eu-central-1", True),  # reserved in every region
        (9059, "eu-west-1", True),
        (9059, "eu-central-1", False),  # reserved in eu-west-1 only
        (10124, "ap-northeast-1", True),
        (17943, "ap-southeast-1", True),
        (65010, "eu-west-1", False),
    ],
)
def test_a_site_asn_aws_reserves_in_the_targets_region_is_a_spec_error(hybrid_spec, asn, region, refused):
    findings = [f for f in aws_link_findings(_with_site_asn(hybrid_spec.spec, asn, region)) if "site_asn" in f.loc]
    if refused:
        (f,) = findings
        assert f.loc == ("overflow", "link", "site_asn")
        assert f"AWS reserves ASN {asn}" in f.message and "give the site another ASN" in f.message
    else:
        assert findings == []


def test_an_endpoint_consumer_in_the_burst_fleets_own_vpc_is_a_spec_error(hybrid_spec):
    # Route 53 CreateHostedZone: ConflictingDomainExists when a private zone of that name is already
    # associated with the VPC, which the consumer's zone would be.
    spec = hybrid_spec.spec
    existing = AwsNetwork(vpc_id=VPC, subnet_ids=list(SUBNETS))
    targets = dict(spec.targets)
    targets["aws-burst"] = targets["aws-burst"].model_copy(update={"network": existing})
    other = AwsEndpointConsumer(vpc_id="vpc-0f0e0d0c0b0a09080", subnet_ids=["subnet-0f0e0d0c0b0a09081"])
    same = AwsEndpointConsumer(vpc_id=VPC, subnet_ids=[SUBNETS[0]])
    endpoint = spec.endpoint.model_copy(update={"aws_consumers": [other, same]})
    found = [
        f
        for f in aws_link_findings(spec.model_copy(update={"targets": targets, "endpoint": endpoint}))
        if f.severity == "error"
    ]
    assert [(f.loc, f.message.split(":")[0]) for f in found] == [
        (("endpoint", "aws_consumers", 1, "vpc_id"), f"{VPC} is the VPC of burst target 'aws-burst'")
    ]
    assert "Route 53 refuses a second zone of that name" in found[0].message
    # A consumer elsewhere, or a fleet in a VPC of its own making, is fine.
    endpoint = spec.endpoint.model_copy(update={"aws_consumers": [other]})
    found = aws_link_findings(spec.model_copy(update={"targets": targets, "endpoint": endpoint}))
    assert [f for f in found if f.severity == "error"] == []
    assert list(aws_link_findings(spec)) == []


def _existing_vpc(spec, transit_gateway_id: str | None = None):
    targets = dict(spec.targets)
    existing = AwsNetwork(vpc_id=VPC, subnet_ids=list(SUBNETS))
    targets["aws-burst"] = targets["aws-burst"].model_copy(update={"network": existing})
    aws = spec.overflow.link.aws.model_copy(update={"transit_gateway_id": transit_gateway_id})
    link = spec.overflow.link.model_copy(update={"aws": aws})
    overflow = spec.overflow.model_copy(update={"link": link})
    return spec.model_copy(update={"targets": targets, "overflow": overflow})


def test_an_existing_vpc_warns_of_what_the_link_cannot_add_to_it(hybrid_spec):
    # A VPC takes one virtual private gateway at a time (AttachVpnGateway), a transit gateway one
    # attachment per VPC (Transit Gateways quotas), and the stack
    # makes no interface endpoints in a VPC it did not create: the publisher's metric needs one.
    (warning,) = aws_link_findings(_existing_vpc(hybrid_spec.spec))
    assert warning.severity == "warning"
    assert warning.loc == ("targets", "aws-burst", "network", "vpc_id")
    assert "a VPC takes only one at a time" in warning.message and "transit_gateway_id" in warning.message
    assert "com.amazonaws.eu-central-1.monitoring" in warning.message
    (warning,) = aws_link_findings(_existing_vpc(hybrid_spec.spec, TGW))
    assert "virtual private gateway" not in warning.message and "monitoring" in warning.message
    assert f"attached to {TGW} (a transit gateway takes one attachment per VPC" in warning.message
