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
