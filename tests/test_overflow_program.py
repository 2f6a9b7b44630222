"""The hybrid example through the program: each burst target's link attaches to that target's own
network and endpoint, and the link's secrets stay secret."""

from __future__ import annotations

import json

import pytest

from conftest import STACKS, Resources, plan_of_file


@pytest.fixture(scope="module")
def hybrid() -> Resources:
    return Resources(plan_of_file(str(STACKS / "hybrid.yaml")))


def test_the_gcp_link_attaches_to_the_burst_targets_network_and_endpoint(hybrid):
    (gateway,) = hybrid.of_type("gcp:compute/haVpnGateway:HaVpnGateway")
    (network,) = hybrid.of_type("gcp:compute/network:Network")
    assert gateway["inputs"]["network"].endswith(f"/global/networks/{network['inputs']['name']}")
    (rule,) = [r for r in hybrid.of_type("gcp:compute/forwardingRule:ForwardingRule") if "endpoint" in r["name"]][:1]
    site = hybrid.one(
        "gcp:compute/regionNetworkFirewallPolicyRule:RegionNetworkFirewallPolicyRule", "gcp-burst-link-site"
    )
    assert site["inputs"]["match"]["srcIpRanges"] == ["10.20.0.0/16"]
    assert len(site["inputs"]["targetForwardingRules"]) == 1
    assert rule["inputs"]["loadBalancingScheme"] == "INTERNAL_MANAGED"


def test_no_pre_shared_key_is_in_clear_in_the_plan(hybrid):
    tunnels = hybrid.of_type("gcp:compute/vPNTunnel:VPNTunnel")
    assert len(tunnels) == 4 and all(t["inputs"]["sharedSecret"] == "[secret]" for t in tunnels)
    text = json.dumps(hybrid.plan.to_json())
    for password in hybrid.of_type("random:index/randomPassword:RandomPassword"):
        assert password["inputs"].get("result") in (None, "[secret]")
    assert 'sharedSecret": "' not in text.replace('sharedSecret": "[secret]', "")


def test_the_aws_burst_fleet_wakes_on_the_publishers_demand_not_on_the_gateways_health_checks(hybrid):
    # Envoy health-checks the burst endpoint every few seconds: each check is a new TLS flow the
    # empty NLB resets, so the NLB's demand metrics would wake the fleet for ever. With a publisher,
    # the wake alarm reads InferStack/PendingRequests for the group, and that alone.
    wake = hybrid.one("aws:cloudwatch/metricAlarm:MetricAlarm", "aws-burst-wake")["inputs"]
    queries = {q["id"]: q for q in wake["metricQueries"]}
    assert set(queries) == {"desired", "pending", "wake"}
    pending = queries["pending"]["metric"]
    assert (pending["namespace"], pending["metricName"]) == ("InferStack", "PendingRequests")
    assert queries["wake"]["expression"] == "IF(desired < 1 AND (FILL(pending, 0)) > 0, 1, 0)"
    assert "AWS/NetworkELB" not in json.dumps(wake)


def _deps(r: dict, key: str) -> list[str]:
    return [u.rsplit("::", 1)[1] for u in r["propertyDependencies"].get(key, [])]


def test_the_aws_link_attaches_to_the_burst_fleets_vpc_route_tables_key_and_endpoint(hybrid):
    vgw = hybrid.one("aws:ec2/vpnGateway:VpnGateway", "aws-burst-link-vgw")
    assert _deps(vgw, "vpcId") == ["aws-burst-net-vpc"]
    propagations = hybrid.of_type("aws:ec2/vpnGatewayRoutePropagation:VpnGatewayRoutePropagation")
    assert sorted(d for p in propagations for d in _deps(p, "routeTableId")) == [
        "aws-burst-net-private-0",
        "aws-burst-net-private-1",
    ]
    logs = hybrid.one("aws:cloudwatch/logGroup:LogGroup", "aws-burst-link-tunnel-logs")
    assert _deps(logs, "kmsKeyId") == ["aws-burst-key"]
    rule = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
    assert _deps(hybrid.one(rule, "aws-burst-link-site-tls-0"), "securityGroupId") == ["aws-burst-endpoint-nlb"]
    assert _deps(hybrid.one(rule, "aws-burst-link-site-apis-0"), "securityGroupId") == ["aws-burst-net-endpoints"]
    (nlb,) = hybrid.of_type("aws:lb/loadBalancer:LoadBalancer")
    record = hybrid.one("aws:route53/record:Record", "aws-burst-link-endpoint-name")
    assert record["propertyDependencies"]["aliases"] == [nlb["urn"]]
    zone = hybrid.one("aws:route53/zone:Zone", "aws-burst-link-endpoint-name")
    assert _deps(zone, "vpcs") == ["aws-burst-net-vpc"]
    subnets = ["aws-burst-net-private-0", "aws-burst-net-private-1"]
    assert _deps(hybrid.one("aws:route53/resolverEndpoint:ResolverEndpoint"), "ipAddresses") == subnets
    assert _deps(hybrid.one("aws:ec2/vpcEndpoint:VpcEndpoint", "aws-burst-link-rolesanywhere"), "subnetIds") == subnets


def test_the_aws_links_keys_are_secret_in_the_plan_and_its_outputs(hybrid):
    vpns = hybrid.of_type("aws:ec2/vpnConnection:VpnConnection")
    assert len(vpns) == 2
    assert {v["inputs"][f"tunnel{t}PresharedKey"] for v in vpns for t in (1, 2)} == {"[secret]"}
    assert hybrid.plan.outputs["overflow.aws-burst.aws_vpn_preshared_keys"] == "[secret]"
    assert "x" * 32 not in hybrid.plan.dumps()  # the mocks' stand-in for a generated key


def test_keys_taken_from_config_plan_offline_masked_and_nothing_generated(tmp_path):
    """A spec that takes the tunnels' keys from stack config plans offline as `pulumi preview`
    would with the config set: a placeholder per tunnel answers the key, in the form AWS accepts."""
    from conftest import plan_of_text, stack_text
    from inferstack.offline.engine import offline_config
    from inferstack.planning.overflow.aws_link import preshared_key_problem
    from inferstack.spec.loader import parse_spec

    text = stack_text("hybrid.yaml")
    for cloud, key in (("aws", "awsVpnKeys"), ("gcp", "gcpVpnKeys")):
        text = text.replace(f"    {cloud}:\n", f"    {cloud}:\n      preshared_keys_config_key: {key}\n", 1)
    config = offline_config(parse_spec(text, "hybrid.yaml").spec)
    aws, gcp = json.loads(config["inferstack:awsVpnKeys"]), json.loads(config["inferstack:gcpVpnKeys"])
    assert (len(aws), len(gcp)) == (4, 4)  # two site devices: two tunnels each to AWS, four HA VPN tunnels
    assert all(preshared_key_problem(k) is None for k in aws)
    plan = Resources(plan_of_text(text, "hybrid"))
    assert not plan.of_type("random:index/randomPassword:RandomPassword")
    dumped = json.dumps(plan.all)
    assert "offline_placeholder_psk" not in dumped
    for tunnel in plan.of_type("gcp:compute/vPNTunnel:VPNTunnel"):
        assert tunnel["inputs"]["sharedSecret"] == "[secret]"
