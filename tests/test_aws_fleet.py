"""AwsGpuFleet through mocks: every security default, asserted on the registered inputs."""

from __future__ import annotations

import importlib
import inspect
import json
from functools import cache

import pytest

from conftest import DEV_NO_ENDPOINT, Resources, plan_of_text, stack_text

LT = "aws:ec2/launchTemplate:LaunchTemplate"
ASG = "aws:autoscaling/group:Group"
KEY = "aws:kms/key:Key"
SG_IN = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
SG_OUT = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
POLICY = "aws:autoscaling/policy:Policy"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"

DEV_TEXT = stack_text("dev.yaml")
EXISTING_VPC = DEV_TEXT.replace(
    "    network:\n      cidr: 10.64.0.0/16\n      availability_zones: 2\n",
    "    network:\n      vpc_id: vpc-0a1b2c3d4e5f60718\n      subnet_ids: [subnet-0a1b2c3d4e5f60718, subnet-0f1e2d3c4b5a69788]\n",
)


@pytest.fixture(scope="module")
def plain() -> Resources:
    """The dev fleet without a private endpoint in front of it."""
    return Resources(plan_of_text(DEV_NO_ENDPOINT, "dev"))


@pytest.fixture(scope="module")
def existing() -> Resources:
    assert EXISTING_VPC != DEV_TEXT
    return Resources(plan_of_text(EXISTING_VPC, "existing"))


# -- launch template -------------------------------------------------------------------------


def test_launch_template_requires_imdsv2_with_hop_limit_one(dev):
    meta = dev.one(LT)["inputs"]["metadataOptions"]
    assert meta["httpTokens"] == "required"
    assert meta["httpPutResponseHopLimit"] == 1
    assert meta["httpEndpoint"] == "enabled"


def test_launch_template_has_no_public_ip_no_key_pair(dev):
    inputs = dev.one(LT)["inputs"]
    assert [ni["associatePublicIpAddress"] for ni in inputs["networkInterfaces"]] == ["false"]
    assert "keyName" not in inputs


def test_root_volume_is_gp3_encrypted_with_the_stacks_customer_managed_key(dev):
    ebs = dev.one(LT)["inputs"]["blockDeviceMappings"][0]["ebs"]
    assert ebs["encrypted"] == "true"
    assert ebs["volumeType"] == "gp3"
    assert ebs["volumeSize"] == 200
    assert ebs["kmsKeyId"].startswith("arn:aws:kms:eu-central-1:123456789012:key/")


def test_kms_key_rotates_and_is_protected_from_deletion(dev):
    key = dev.one(KEY)
    assert key["inputs"]["enableKeyRotation"] is True
    assert key["inputs"]["deletionWindowInDays"] == 30
    assert key["options"]["protect"] is True
    policy = json.loads(key["inputs"]["policy"])
    actions = [a for s in policy["Statement"] for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])]
    assert "kms:*" not in actions and "*" not in actions


def test_launch_template_uses_the_gpu_ami_from_the_public_ssm_parameter(dev):
    assert dev.one(LT)["inputs"]["imageId"].startswith("ami-")


def test_detailed_monitoring_and_tagged_instances_volumes_interfaces(dev):
    inputs = dev.one(LT)["inputs"]
    assert inputs["monitoring"] == {"enabled": True}
    kinds = {spec["resourceType"] for spec in inputs["tagSpecifications"]}
    assert kinds == {"instance", "volume", "network-interface"}


# -- IAM ---------------------------------------------------------------------------------------


def _statements(policy: str) -> list[dict]:
    return json.loads(policy)["Statement"]


def test_node_role_reads_only_the_model_prefix_and_no_wildcard_action(dev):
    node = dev.one("aws:iam/rolePolicy:RolePolicy", "burst-node")
    stmts = {s["Sid"]: s for s in _statements(node["inputs"]["policy"])}
    assert stmts["ReadModelWeights"]["Resource"] == (
        "arn:aws:s3:::acme-models-eu-central-1/meta-llama/Llama-3.1-8B-Instruct/*"
    )
    assert stmts["PullEngineImage"]["Resource"] == "arn:aws:ecr:eu-central-1:123456789012:repository/vllm-openai"
    assert stmts["PublishScalingSignal"]["Condition"] == {"StringEquals": {"cloudwatch:namespace": "InferStack"}}
    for s in stmts.values():
        actions = [s["Action"]] if isinstance(s["Action"], str) else s["Action"]
        assert "*" not in actions and not any(a.endswith(":*") for a in actions), s


def test_node_role_gets_session_manager_not_ssh(dev):
    # Session Manager's own actions inline; no managed policy (AmazonSSMManagedInstanceCore
    # would let every node read every SSM parameter of the account).
    assert not dev.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    policy = json.loads(dev.one("aws:iam/rolePolicy:RolePolicy", "burst-node")["inputs"]["policy"])
    (session,) = [s for s in policy["Statement"] if s.get("Sid") == "SessionManager"]
    assert sorted(session["Action"]) == [
        "ssm:UpdateInstanceInformation",
        "ssmmessages:CreateControlChannel",
        "ssmmessages:CreateDataChannel",
        "ssmmessages:OpenControlChannel",
        "ssmmessages:OpenDataChannel",
    ]
    assert not [
        a
        for s in policy["Statement"]
        for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
        if a.startswith(("ssm:Get", "ssm:Describe", "ssm:List"))
    ]
    ports = {(r["inputs"]["fromPort"], r["inputs"]["toPort"]) for r in dev.of_type(SG_IN)}
    assert all(not lo <= 22 <= hi for lo, hi in ports)


# -- network -----------------------------------------------------------------------------------


def test_private_subnets_in_two_zones_without_internet_routes(dev):
    subnets = dev.of_type("aws:ec2/subnet:Subnet")
    assert len(subnets) == 2
    assert {s["inputs"]["availabilityZone"] for s in subnets} == {"eu-central-1a", "eu-central-1b"}
    assert all(s["inputs"]["mapPublicIpOnLaunch"] is False for s in subnets)
    types = {r["type"] for r in dev.all}
    assert not types & {
        "aws:ec2/internetGateway:InternetGateway",
        "aws:ec2/natGateway:NatGateway",
        "aws:ec2/route:Route",
    }
    assert all(not t["inputs"].get("routes") for t in dev.of_type("aws:ec2/routeTable:RouteTable"))


def test_vpc_endpoints_let_nodes_work_without_internet(dev):
    services = {
        e["inputs"]["serviceName"].removeprefix("com.amazonaws.eu-central-1.")
        for e in dev.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")
    }
    # autoscaling: the nodes complete their own lifecycle hooks, with no internet route
    assert services == {
        "s3",
        "ecr.api",
        "ecr.dkr",
        "sts",
        "logs",
        "monitoring",
        "autoscaling",
        "ssm",
        "ssmmessages",
        "ec2messages",
    }
    interface = [
        e for e in dev.of_type("aws:ec2/vpcEndpoint:VpcEndpoint") if e["inputs"]["vpcEndpointType"] == "Interface"
    ]
    assert all(e["inputs"]["privateDnsEnabled"] is True for e in interface)


def test_default_security_group_is_emptied_and_flow_logs_are_on(dev):
    default = dev.one("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup")
    assert not default["inputs"].get("ingress") and not default["inputs"].get("egress")
    flow = dev.one("aws:ec2/flowLog:FlowLog")
    assert flow["inputs"]["trafficType"] == "ALL"
    groups = dev.of_type("aws:cloudwatch/logGroup:LogGroup")
    assert all(g["inputs"]["kmsKeyId"].startswith("arn:aws:kms:") for g in groups)


def test_without_an_endpoint_the_serving_port_admits_only_the_vpc(plain):
    serving = plain.one(SG_IN, "burst-serving")["inputs"]
    assert (serving["fromPort"], serving["toPort"], serving["ipProtocol"]) == (8000, 8000, "tcp")
    assert serving["cidrIpv4"] == "10.64.0.0/16"
    for rule in plain.of_type(SG_IN) + plain.of_type(SG_OUT):
        assert rule["inputs"]["description"], rule["name"]
        assert rule["inputs"].get("cidrIpv4") != "0.0.0.0/0" or rule["type"] == SG_OUT


def test_egress_is_https_to_the_vpc_endpoints_only(dev):
    egress = {r["name"]: r["inputs"] for r in dev.of_type(SG_OUT) if r["name"].startswith("burst-egress")}
    assert set(egress) == {"burst-egress-endpoints", "burst-egress-s3"}
    assert all((e["fromPort"], e["toPort"]) == (443, 443) for e in egress.values())
    assert egress["burst-egress-endpoints"]["cidrIpv4"] == "10.64.0.0/16"
    assert egress["burst-egress-s3"]["prefixListId"].startswith("pl-")


def test_existing_vpc_is_looked_up_not_created(existing):
    assert not existing.of_type("aws:ec2/vpc:Vpc")
    asg = existing.one(ASG)["inputs"]
    assert asg["vpcZoneIdentifiers"] == ["subnet-0a1b2c3d4e5f60718", "subnet-0f1e2d3c4b5a69788"]
    sg = existing.one("aws:ec2/securityGroup:SecurityGroup", "burst-nodes")
    assert sg["inputs"]["vpcId"] == "vpc-0a1b2c3d4e5f60718"
    egress = existing.one(SG_OUT, "burst-egress-https")["inputs"]
    assert (egress["fromPort"], egress["toPort"]) == (443, 443)


# -- the group and its scaling -----------------------------------------------------------------


def test_group_mixes_instance_types_with_the_spot_settings(dev):
    asg = dev.one(ASG)
    mixed = asg["inputs"]["mixedInstancesPolicy"]
    assert [o["instanceType"] for o in mixed["launchTemplate"]["overrides"]] == ["g6.xlarge", "g5.xlarge"]
    dist = mixed["instancesDistribution"]
    assert dist == {
        "onDemandBaseCapacity": 0,
        "onDemandPercentageAboveBaseCapacity": 0,
        "spotAllocationStrategy": "price-capacity-optimized",
    }
    assert asg["inputs"]["capacityRebalance"] is True
    assert "instanceType" not in dev.one(LT)["inputs"]


def test_group_never_fights_the_autoscaler_and_refreshes_on_template_change(dev):
    asg = dev.one(ASG)
    assert asg["options"]["ignoreChanges"] == ["desiredCapacity"]
    refresh = asg["inputs"]["instanceRefresh"]
    assert refresh["strategy"] == "Rolling"
    prefs = refresh["preferences"]
    # launch before terminating, roll back a refresh whose nodes never pass, skip nodes already current
    assert (prefs["minHealthyPercentage"], prefs["maxHealthyPercentage"]) == (100, 200)
    assert prefs["autoRollback"] is True and prefs["skipMatching"] is True
    spec = asg["inputs"]["mixedInstancesPolicy"]["launchTemplate"]["launchTemplateSpecification"]
    assert spec["version"] == "1"  # the template's latest version, not "$Latest"


def test_group_capacity_grace_and_tags(dev):
    asg = dev.one(ASG)["inputs"]
    assert (asg["minSize"], asg["maxSize"], asg["desiredCapacity"]) == (0, 4, 1)
    # The launch hook holds nodes until healthy; the grace after it covers the NLB's first checks.
    assert asg["healthCheckGracePeriod"] == 120
    assert all(t["propagateAtLaunch"] for t in asg["tags"])
    assert {t["key"]: t["value"] for t in asg["tags"]} == dev.one(LT)["inputs"]["tags"]


def test_queue_depth_target_tracking_on_the_per_instance_signal(dev):
    track = dev.one(POLICY, "burst-track-queue-depth")["inputs"]
    assert track["policyType"] == "TargetTrackingScaling"
    cfg = track["targetTrackingConfiguration"]
    assert cfg["targetValue"] == 4
    assert cfg["disableScaleIn"] is True
    metric = cfg["customizedMetricSpecification"]
    assert (metric["namespace"], metric["metricName"], metric["statistic"]) == (
        "InferStack",
        "PendingRequests",
        "Average",
    )
    assert metric["metricDimensions"] == [{"name": "AutoScalingGroupName", "value": "assistant-dev-burst"}]
    assert "InferStack" in dev.user_data() and "vllm:num_requests_waiting" in dev.user_data()


def test_scale_in_waits_the_cooldown_and_zero_can_wake(dev):
    scale_in = dev.one(POLICY, "burst-scale-in")["inputs"]
    assert (scale_in["scalingAdjustment"], scale_in["cooldown"]) == (-1, 300)
    alarm = dev.one(ALARM, "burst-scale-in")["inputs"]
    assert alarm["evaluationPeriods"] == 5
    assert {q["metric"]["period"] for q in alarm["metricQueries"] if "metric" in q} == {60}
    assert dev.one(POLICY, "burst-wake")["inputs"]["adjustmentType"] == "ExactCapacity"


def test_warm_pool_group_uses_one_on_demand_type_and_no_mixed_policy(prod):
    asg = prod.one(ASG, "steady-asg")["inputs"]
    assert asg["warmPool"]["poolState"] == "Stopped"
    assert asg["warmPool"]["maxGroupPreparedCapacity"] == 1
    assert "mixedInstancesPolicy" not in asg
    assert asg["capacityRebalance"] is False
    lt = prod.one(LT, "steady-lt")["inputs"]
    assert lt["instanceType"] == "g6e.12xlarge"
    # min 2: the group is never empty, so no wake-up alarm
    assert not [a for a in prod.of_type(ALARM) if a["name"] == "steady-wake"]


def test_in_flight_signal_tracks_and_scales_in_on_the_same_metric(prod):
    track = prod.one(POLICY, "steady-track-in-flight")["inputs"]["targetTrackingConfiguration"]
    assert track["customizedMetricSpecification"]["metricName"] == "InFlightRequests"
    alarm = prod.one(ALARM, "steady-scale-in")["inputs"]
    assert (alarm["metricName"], alarm["threshold"]) == ("InFlightRequests", 12)  # half the target of 24


# -- every resource ----------------------------------------------------------------------------


@cache
def _accepts_tags(token: str) -> bool:
    """Whether a resource type takes `tags`, read off the pulumi_aws class itself."""
    pkg, module, cls = token.split(":")
    mod = importlib.import_module(f"pulumi_{pkg}.{module.split('/')[0]}")
    return "tags" in inspect.signature(getattr(mod, cls)._internal_init).parameters


def test_every_taggable_resource_carries_the_standard_tags(dev, prod):
    for res in (dev, prod):
        expected = res.one(LT) if res is dev else res.one(LT, "steady-lt")
        tags = expected["inputs"]["tags"]
        assert set(tags) == {"stack", "environment", "team", "model", "data-classification", "workload", "managed-by"}
        for r in res.all:
            if r["custom"] and r["type"].startswith("aws:") and _accepts_tags(r["type"]):
                if r["type"] == ASG:
                    got = {t["key"]: t["value"] for t in r["inputs"]["tags"]}
                else:
                    got = r["inputs"].get("tags", {})
                assert tags.items() <= got.items(), f"{r['type']} {r['name']} lacks tags"


def test_every_cloud_resource_has_an_explicit_provider(dev, prod):
    for res in (dev, prod):
        for r in res.all:
            if r["custom"] and not r["type"].startswith("pulumi:providers:"):
                assert (
                    r["provider"] == f"urn:pulumi:{res.plan.stack}::inferstack::pulumi:providers:aws::aws-eu-central-1"
                ), r["urn"]


def test_children_are_parented_to_their_component(dev):
    fleet = next(r for r in dev.all if r["type"] == "inferstack:fleet:AwsGpuFleet")
    net = next(r for r in dev.all if r["type"] == "inferstack:network:AwsPrivateNetwork")
    assert net["parent"] == fleet["urn"]
    assert dev.one("aws:ec2/vpc:Vpc")["parent"] == net["urn"]
    assert dev.one(ASG)["parent"] == fleet["urn"]


def test_kms_encrypted_weights_are_decryptable_through_s3_only():
    text = DEV_NO_ENDPOINT.replace(
        "    source: s3://acme-models-eu-central-1/meta-llama/Llama-3.1-8B-Instruct/\n",
        "    source: s3://acme-models-eu-central-1/meta-llama/Llama-3.1-8B-Instruct/\n"
        "    source_kms_key_arn: arn:aws:kms:eu-central-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab\n",
    )
    res = Resources(plan_of_text(text, "dev"))
    stmts = {
        s["Sid"]: s for s in _statements(res.one("aws:iam/rolePolicy:RolePolicy", "burst-node")["inputs"]["policy"])
    }
    decrypt = stmts["DecryptModelWeightsThroughS3"]
    assert decrypt["Action"] == "kms:Decrypt" and decrypt["Resource"].endswith(
        ":key/1234abcd-12ab-34cd-56ef-1234567890ab"
    )
    assert decrypt["Condition"] == {"StringEquals": {"kms:ViaService": "s3.eu-central-1.amazonaws.com"}}
