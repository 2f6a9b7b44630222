"""Behaviour an audit found no failing test for: each assertion here pins one of them."""

from __future__ import annotations

import json

import pytest

from conftest import DEV_NO_ENDPOINT, STACKS, Resources, plan_of_file, plan_of_text
from inferstack import catalog
from inferstack.errors import SpecError
from inferstack.offline.engine import record
from inferstack.planning import policy_config
from inferstack.program import build
from inferstack.spec.loader import load_spec, parse_spec

VALID = STACKS.parent / "tests" / "spec_corpus" / "valid"
ASG = "aws:autoscaling/group:Group"


# The GCP regions inside the EU jurisdiction, as the catalog lists them.
EU_GCP = [
    "europe-central2",
    "europe-north1",
    "europe-north2",
    "europe-southwest1",
    "europe-west1",
    "europe-west10",
    "europe-west12",
    "europe-west3",
    "europe-west4",
    "europe-west8",
    "europe-west9",
]


@pytest.fixture(scope="module")
def dev() -> Resources:
    return Resources(plan_of_file(str(STACKS / "dev.yaml")))


def test_the_ami_comes_from_the_public_ssm_parameter_of_the_gpu_ami():
    monitor = record(lambda: build(load_spec(STACKS / "dev.yaml").spec, "dev"), "dev")
    asked = [args["name"] for token, args in monitor.mocks.calls if token == "aws:ssm/getParameter:getParameter"]
    assert asked == ["/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-amazon-linux-2023/latest/ami-id"]


def test_zero_capacity_wiring_alarms_act_on_their_policies_and_group_metrics_are_on(dev):
    policies = {r["name"]: r for r in dev.of_type("aws:autoscaling/policy:Policy")}
    alarms = {r["name"]: r for r in dev.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")}
    for name in ("burst-wake", "burst-scale-in"):
        assert alarms[name]["propertyDependencies"]["alarmActions"] == [policies[name]["urn"]]
        assert len(alarms[name]["inputs"]["alarmActions"]) == 1
    # queue_depth scales out; scale-in acts on in-flight load, only once nodes average under one request
    queries = {q["id"]: q for q in alarms["burst-scale-in"]["inputs"]["metricQueries"]}
    assert queries["load"]["metric"]["metricName"] == "InFlightRequests"
    assert alarms["burst-scale-in"]["inputs"]["threshold"] == 1
    assert "GroupInServiceInstances" in dev.one(ASG)["inputs"]["enabledMetrics"]


def test_the_key_lets_auto_scaling_encrypt_and_attach_volumes(dev):
    policy = json.loads(dev.one("aws:kms/key:Key")["inputs"]["policy"])
    role = "arn:aws:iam::123456789012:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"
    grants = {s["Sid"]: s for s in policy["Statement"] if s["Principal"] == {"AWS": role}}
    assert set(grants) == {"AutoScalingEncryptsVolumes", "AutoScalingAttachesVolumes"}
    assert "kms:GenerateDataKey*" in grants["AutoScalingEncryptsVolumes"]["Action"]
    assert grants["AutoScalingAttachesVolumes"]["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}


def test_interface_endpoints_sit_in_the_private_subnets_behind_their_group(dev):
    endpoints = [
        r
        for r in dev.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")
        if r["inputs"]["vpcEndpointType"] == "Interface" and r["name"].startswith("burst-net-")
    ]
    assert len(endpoints) == 9
    subnets = sorted(r["urn"] for r in dev.of_type("aws:ec2/subnet:Subnet"))
    group = dev.one("aws:ec2/securityGroup:SecurityGroup", "burst-net-endpoints")["urn"]
    for e in endpoints:
        assert sorted(e["propertyDependencies"]["subnetIds"]) == subnets
        assert e["propertyDependencies"]["securityGroupIds"] == [group]
    vpc = dev.one("aws:ec2/vpc:Vpc")["inputs"]
    assert vpc["enableDnsSupport"] is True and vpc["enableDnsHostnames"] is True


def test_policy_config_carries_every_limit_from_the_spec():
    text = DEV_NO_ENDPOINT + "guardrails: {max_gpus: 12}\n"
    derived = policy_config.derive(parse_spec(text, "dev.yaml").spec)
    eu_aws = ["eu-central-1", "eu-north-1", "eu-south-1", "eu-south-2", "eu-west-1", "eu-west-3"]
    assert derived == {
        "residency-aws-resource-require-allowed-region": {"allowedRegions": eu_aws},
        "residency-gcp-resource-require-allowed-location": {
            "allowedRegions": EU_GCP,
            "allowedZones": [],
            "allowedMultiRegions": [],
        },
        "residency-storage-replica-require-allowed-region": {"allowedRegions": sorted([*eu_aws, *EU_GCP])},
        "residency-aws-s3bucket-disallow-outside-replication": {"allowedRegions": eu_aws},
        "residency-vpn-peer-require-allowed-ip": {"allowedPeerIps": []},
        "tags-resource-require-standard-tags": {
            "requiredTags": ["stack", "environment", "team", "model", "data-classification"]
        },
        "cost-stack-gpu-count-limit": {"maxGpus": 12, "gpusPerInstanceType": {"g5.xlarge": 1, "g6.xlarge": 1}},
        "security-aws-cloudwatch-loggroup-retention-minimum": {"minLogRetentionDays": 30},
        # An on-prem site may be in any EU member state.
        "residency-kubernetes-namespace-require-allowed-location": {
            "allowedLocations": sorted(catalog.jurisdictions()["eu"].sites)
        },
    }


def test_n1_guest_accelerators_reach_the_instance_template():
    res = Resources(plan_of_file(str(VALID / "gcp-n1-t4-existing-network.yaml")))
    it = res.one("gcp:compute/instanceTemplate:InstanceTemplate")["inputs"]
    assert it["machineType"] == "n1-standard-8"
    assert it["guestAccelerators"] == [{"type": "nvidia-tesla-t4", "count": 1}]


def test_reserved_single_host_slices_are_queued_resources():
    res = Resources(plan_of_file(str(VALID / "tpu-v5p-reserved.yaml")))
    assert not res.of_type("gcp:tpu/v2Vm:V2Vm")
    (queued,) = res.of_type("pulumi-python:dynamic:Resource")
    # v2 has no `guaranteed.reserved` (that is v2alpha1); the node's schedulingConfig says it.
    assert "guaranteed" not in queued["inputs"]["body"]
    assert queued["inputs"]["body"]["tpu"]["nodeSpec"][0]["node"]["schedulingConfig"] == {"reserved": True}
    assert queued["inputs"]["body"]["tpu"]["nodeSpec"][0]["node"]["acceleratorType"] == "v5p-8"


@pytest.fixture(scope="module")
def research() -> Resources:
    return Resources(plan_of_file(str(STACKS / "research.yaml")))


def test_gcp_endpoint_sits_in_the_private_subnet_with_its_nat_subnet(research):
    rule = research.one("gcp:compute/forwardingRule:ForwardingRule", "chat-endpoint-ilb")
    subnet = research.one("gcp:compute/subnetwork:Subnetwork", "chat-net-private")
    assert rule["propertyDependencies"]["subnetwork"] == [subnet["urn"]]
    psc = research.one("gcp:compute/serviceAttachment:ServiceAttachment", "chat-endpoint-psc")
    nat = research.one("gcp:compute/subnetwork:Subnetwork", "chat-endpoint-psc-nat")
    assert psc["propertyDependencies"]["natSubnets"] == [nat["urn"]]
    outputs = research.plan.outputs
    for target in ("chat", "reasoning"):
        assert "/serviceAttachments/" in outputs[f"{target}.service_attachment"]
        assert outputs[f"{target}.endpoint_address"].startswith("10.")
        assert len(outputs[f"{target}.consumer_addresses"]) == 1


def test_consumers_get_the_dns_names_of_their_interface_endpoints():
    outputs = plan_of_file(str(STACKS / "prod.yaml")).outputs
    for target in ("steady", "burst"):
        (name,) = outputs[f"{target}.consumer_dns_names"]
        assert name.endswith(".vpce.amazonaws.com")


def test_gcp_deletion_protection_guards_the_load_balancer():
    text = (STACKS / "research.yaml").read_text().replace("endpoint:\n", "endpoint:\n  deletion_protection: true\n")
    res = Resources(plan_of_text(text, "research"))
    for token, name in (
        ("gcp:compute/forwardingRule:ForwardingRule", "chat-endpoint-ilb"),
        ("gcp:compute/regionBackendService:RegionBackendService", "chat-endpoint-backend"),
        ("gcp:compute/serviceAttachment:ServiceAttachment", "chat-endpoint-psc"),
    ):
        assert res.one(token, name)["options"]["protect"] is True
    staging = Resources(plan_of_file(str(STACKS / "research.yaml")))
    assert staging.one("gcp:compute/forwardingRule:ForwardingRule", "chat-endpoint-ilb")["options"]["protect"] is False


def test_gcp_groups_can_scale_on_the_endpoints_load_balancer_utilisation():
    text = (
        (STACKS / "research.yaml")
        .read_text()
        .replace("signal: queue_depth, target: 4", "signal: lb_utilization, target: 0.7")
    )
    res = Resources(plan_of_text(text, "research"))
    policy = res.one("gcp:compute/regionAutoscaler:RegionAutoscaler")["inputs"]["autoscalingPolicy"]
    assert policy["loadBalancingUtilization"] == {"target": 0.7} and "metrics" not in policy
    script = res.one("gcp:compute/instanceTemplate:InstanceTemplate")["inputs"]["metadata"]["startup-script"]
    # The node agent still ships GPU metrics, and publishes no autoscaling signal.
    agent = script[script.index("<<'AGENT'") : script.index("\nAGENT\n")]
    assert (
        "publish_gpu" in agent and "signal()" not in agent and "custom.googleapis.com/inferstack/pending" not in agent
    )


@pytest.mark.parametrize(
    "signal", ["in_flight", "queue_depth", "requests_per_target", "gpu_utilization", "lb_utilization"]
)
def test_nothing_wakes_a_gcp_group_from_zero_so_min_0_is_refused(signal):
    """No node publishes at zero and nothing else in the stack writes the group's metric: every
    signal is refused at min 0 (the old code let the per-group signals through)."""
    target = "0.7" if signal == "lb_utilization" else "4"
    text = (
        (STACKS / "research.yaml")
        .read_text()
        .replace("capacity: {min: 2, max: 6}", "capacity: {min: 0, max: 6, desired: 1}")
        .replace("signal: queue_depth, target: 4", f"signal: {signal}, target: {target}")
    )
    with pytest.raises(SpecError, match="nothing else in the stack publishes the group's metric") as info:
        parse_spec(text, "research.yaml")
    assert "targets.chat.capacity.min" in str(info.value) and "min: 1 or more" in str(info.value)


def test_lb_utilization_needs_an_endpoint_and_is_a_fraction():
    text = (
        (STACKS / "research.yaml")
        .read_text()
        .replace("signal: queue_depth, target: 4", "signal: lb_utilization, target: 70")
    )
    with pytest.raises(SpecError, match="lb_utilization is a fraction"):
        parse_spec(text, "research.yaml")
    no_endpoint = text.replace("target: 70", "target: 0.7")
    no_endpoint = no_endpoint[: no_endpoint.index("\n# Reachable only")] + "\n"
    with pytest.raises(SpecError, match="needs the load balancer of an endpoint section"):
        parse_spec(no_endpoint, "research.yaml")
    aws = DEV_NO_ENDPOINT.replace("signal: queue_depth", "signal: lb_utilization")  # target 4: not a fraction
    with pytest.raises(SpecError, match="lb_utilization is the GCP load balancer's signal") as info:
        parse_spec(aws, "dev.yaml")
    assert "fraction" not in info.value.render()  # the AWS message comes first, not the GCP one
