"""What the AWS APIs would refuse or get wrong at `pulumi up`, and the hardening around it:
the Auto Scaling service-linked role the key policy names, standard zones only, consumer zones,
KMS administrators without grants, the flow-logs role's confused-deputy conditions, log group
names and retention, the access-log lifecycle, and the endpoint's name in consumer VPCs.
"""

from __future__ import annotations

import json

import pytest

from conftest import DEV_TEXT, STACKS, Resources, plan_of_file, plan_of_text, stack_text
from inferstack.errors import SpecError
from inferstack.offline import mocks
from inferstack.offline.engine import record
from inferstack.planning import iam
from inferstack.planning.aws_fleet import plan_aws_fleet
from inferstack.planning.endpoint import check_consumer_zones
from inferstack.spec.loader import load_spec, parse_spec

PROD = STACKS / "prod.yaml"
SLR = "aws:iam/serviceLinkedRole:ServiceLinkedRole"
KEY = "aws:kms/key:Key"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"


@pytest.fixture(scope="module")
def prod() -> Resources:
    return Resources(plan_of_file(str(PROD)))


@pytest.fixture(scope="module")
def dev() -> Resources:
    return Resources(plan_of_file(str(STACKS / "dev.yaml")))


def _calls(text: str, stack: str, token: str) -> list[dict]:
    from inferstack.program import build

    spec = parse_spec(text, f"{stack}.yaml").spec
    monitor = record(lambda: build(spec, stack), stack)
    return [args for t, args in monitor.mocks.calls if t == token]


# -- the Auto Scaling service-linked role ---------------------------------------------------------


def test_a_fresh_account_gets_the_autoscaling_role_once_and_every_key_waits_for_it(prod):
    (role,) = prod.of_type(SLR)  # two fleets, one account: one role
    assert role["inputs"]["awsServiceName"] == "autoscaling.amazonaws.com"
    # A later run finds the role and stops declaring it: it must then be kept, not deleted.
    assert role["options"]["retainOnDelete"] is True
    keys = prod.of_type(KEY)
    assert len(keys) == 2 and all(role["urn"] in k["options"]["dependsOn"] for k in keys)
    # The role the key policy names is the one AWS creates for the service.
    policy = json.loads(keys[0]["inputs"]["policy"])
    principals = {s["Sid"]: s["Principal"] for s in policy["Statement"]}
    assert principals["AutoScalingEncryptsVolumes"]["AWS"] == (
        "arn:aws:iam::123456789012:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"
    )


def test_the_role_is_looked_up_by_path_and_exact_name():
    (lookup,) = _calls(DEV_TEXT, "dev", "aws:iam/getRoles:getRoles")
    assert lookup["pathPrefix"] == "/aws-service-role/autoscaling.amazonaws.com/"
    assert lookup["nameRegex"] == "^AWSServiceRoleForAutoScaling$"


def test_an_account_that_has_the_role_adopts_it(monkeypatch):
    monkeypatch.setitem(mocks.EXISTING_ROLES, f"^{iam.AUTOSCALING_ROLE_NAME}$", [iam.AUTOSCALING_ROLE_NAME])
    res = Resources(plan_of_text(DEV_TEXT, "dev"))
    assert not res.of_type(SLR)
    assert res.one(KEY)["options"]["dependsOn"] == []


# -- zones -------------------------------------------------------------------------------------


def test_subnets_only_in_standard_zones_that_need_no_opt_in():
    (lookup,) = _calls(DEV_TEXT, "dev", "aws:index/getAvailabilityZones:getAvailabilityZones")
    assert lookup["state"] == "available"
    assert {f["name"]: f["values"] for f in lookup["filters"]} == {
        "opt-in-status": ["opt-in-not-required"],
        "zone-type": ["availability-zone"],
    }


def test_consumer_subnets_outside_the_fleets_zones_are_an_error_naming_them():
    subnets = ("subnet-0c0ffee0c0ffee011", "subnet-0c0ffee0c0ffee012")
    assert check_consumer_zones("vpc-1", subnets, ["euc1-az1", "euc1-az2"], ["euc1-az1", "euc1-az2"]) == list(subnets)
    with pytest.raises(ValueError) as error:
        check_consumer_zones("vpc-1", subnets, ["euc1-az1", "euc1-az3"], ["euc1-az1", "euc1-az2"])
    message = str(error.value)
    assert "endpoint.aws_consumers" in message and "subnet-0c0ffee0c0ffee012 (euc1-az3)" in message
    assert "subnet-0c0ffee0c0ffee011" not in message and "euc1-az1, euc1-az2" in message


def test_consumer_zones_are_compared_by_az_id(prod):
    calls = _calls(stack_text("prod.yaml"), "prod", "aws:ec2/getSubnet:getSubnet")
    assert {c["id"] for c in calls} == {"subnet-0c0ffee0c0ffee011", "subnet-0c0ffee0c0ffee012"}
    endpoint = prod.one("aws:ec2/vpcEndpoint:VpcEndpoint", "burst-endpoint-consumer-0")
    assert endpoint["inputs"]["subnetIds"] == ["subnet-0c0ffee0c0ffee011", "subnet-0c0ffee0c0ffee012"]


# -- hardening ---------------------------------------------------------------------------------


def test_key_administrators_cannot_grant_themselves_use(prod):
    policy = json.loads(prod.one(KEY, "burst-key")["inputs"]["policy"])
    admin = next(s for s in policy["Statement"] if s["Sid"] == "KeyAdministration")
    assert not [a for a in admin["Action"] if "*" in a]
    assert "kms:CreateGrant" not in admin["Action"]
    assert not set(admin["Action"]) & {"kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:ReEncryptFrom"}
    assert {"kms:PutKeyPolicy", "kms:ScheduleKeyDeletion", "kms:RevokeGrant"} <= set(admin["Action"])
    # Auto Scaling keeps its grant, for AWS resources only.
    grant = next(s for s in policy["Statement"] if s["Sid"] == "AutoScalingAttachesVolumes")
    assert grant["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}


def test_the_flow_logs_role_trusts_only_this_accounts_flow_logs(dev):
    trust = json.loads(dev.one("aws:iam/role:Role", "burst-net-flow-logs")["inputs"]["assumeRolePolicy"])
    (statement,) = trust["Statement"]
    assert statement["Principal"] == {"Service": "vpc-flow-logs.amazonaws.com"}
    assert statement["Condition"] == {
        "StringEquals": {"aws:SourceAccount": "123456789012"},
        "ArnLike": {"aws:SourceArn": "arn:aws:ec2:eu-central-1:123456789012:vpc-flow-log/*"},
    }


# -- names and retention -----------------------------------------------------------------------


def test_the_log_group_name_carries_deployment_stack_and_target(dev):
    assert dev.one(LOG_GROUP, "burst-engine-logs")["inputs"]["name"] == "/inferstack/assistant/dev/burst"
    other = parse_spec(DEV_TEXT.replace("  name: assistant\n", "  name: support-bot\n"), "dev.yaml").spec
    assert plan_aws_fleet(other, "dev", "burst").log_group_name == "/inferstack/support-bot/dev/burst"
    assert "/inferstack/support-bot/dev/burst" in plan_aws_fleet(other, "dev", "burst").user_data


def test_every_log_group_keeps_a_month_outside_production_and_a_year_in_it(dev, prod):
    assert {g["name"]: g["inputs"]["retentionInDays"] for g in dev.of_type(LOG_GROUP)} == {
        "burst-engine-logs": 30,
        "burst-metric-logs": 30,
        "burst-net-flow-logs": 30,
    }
    assert len(prod.of_type(LOG_GROUP)) == 6
    assert {g["inputs"]["retentionInDays"] for g in prod.of_type(LOG_GROUP)} == {365}
    production = DEV_TEXT.replace("  environment: dev\n", "  environment: production\n")
    assert parse_spec(production, "dev.yaml").spec.log_retention_days() == 365


def test_the_metric_events_may_be_kept_shorter_and_the_pack_reports_it():
    res = Resources(plan_of_text(DEV_TEXT + "\nobservability:\n  metrics_log_retention_days: 7\n", "dev"))
    days = {g["name"]: g["inputs"]["retentionInDays"] for g in res.of_type(LOG_GROUP)}
    assert days == {"burst-engine-logs": 30, "burst-metric-logs": 7, "burst-net-flow-logs": 30}
    assert all(g["inputs"]["kmsKeyId"] for g in res.of_type(LOG_GROUP))


def test_the_spec_sets_retention_for_every_log_group():
    res = Resources(plan_of_text(DEV_TEXT + "\nobservability:\n  log_retention_days: 731\n", "dev"))
    assert {g["inputs"]["retentionInDays"] for g in res.of_type(LOG_GROUP)} == {731}


@pytest.mark.parametrize("days", [0, 100, 366, -1])
def test_a_retention_cloudwatch_does_not_offer_is_an_error_naming_the_field(days):
    with pytest.raises(SpecError) as error:
        parse_spec(DEV_TEXT + f"\nobservability:\n  log_retention_days: {days}\n", "dev.yaml")
    message = error.value.render()
    assert "observability.log_retention_days" in message and "365" in message and "Traceback" not in message


def test_the_access_log_lifecycle_aborts_incomplete_uploads_and_keeps_expiring(prod):
    (rule,) = prod.one(
        "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", "burst-endpoint-access-logs"
    )["inputs"]["rules"]
    assert rule["abortIncompleteMultipartUpload"] == {"daysAfterInitiation": 7}
    assert rule["expiration"]["days"] == 90 and rule["noncurrentVersionExpiration"]["noncurrentDays"] == 30
    assert rule["filter"] == {"prefix": ""} and rule["status"] == "Enabled"


# -- the endpoint's name in consumer VPCs ------------------------------------------------------


def test_each_consumer_vpc_resolves_the_certificates_name_to_its_interface_endpoint(prod):
    for target in ("steady", "burst"):
        zone = prod.one("aws:route53/zone:Zone", f"{target}-endpoint-consumer-0")
        name = f"{target}.llm.prod.acme.example"
        assert zone["inputs"]["name"] == name
        assert zone["inputs"]["vpcs"] == [{"vpcId": "vpc-0c0ffee0c0ffee001"}]
        record_ = prod.one("aws:route53/record:Record", f"{target}-endpoint-consumer-0")["inputs"]
        assert record_["zoneId"]
        assert (record_["name"], record_["type"]) == (name, "A")
        (alias,) = record_["aliases"]
        assert alias["name"].startswith("vpce-") and ".vpce-svc." in alias["name"]
        assert alias["zoneId"] == "Z0OFFLINE" and alias["evaluateTargetHealth"] is True
        cert_domain = f"{target}.llm.prod.acme.example"
        assert prod.plan.outputs[f"{target}.endpoint_domain"] == cert_domain
        (zone_id,) = prod.plan.outputs[f"{target}.consumer_zone_ids"]
        assert zone_id.startswith("Z") and record_["zoneId"] == zone_id


def test_one_aws_target_answers_to_the_specs_name_itself():
    spec = load_spec(STACKS.parent / "tests" / "spec_corpus" / "valid" / "endpoint-aws-private-ca.yaml").spec
    target = next(iter(spec.targets))
    plan = plan_aws_fleet(spec, "corpus", target)
    assert plan.endpoint is not None and plan.endpoint.domain_name == "llm.internal.acme.example"


def test_the_regional_entry_is_the_endpoints_name_not_a_zonal_one():
    from types import SimpleNamespace

    from inferstack.components.aws_endpoint import regional_entry

    zonal = SimpleNamespace(dns_name="vpce-0a-1b-eu-central-1a.vpce-svc-0c.eu-central-1.vpce.amazonaws.com")
    regional = SimpleNamespace(dns_name="vpce-0a-1b.vpce-svc-0c.eu-central-1.vpce.amazonaws.com")
    assert regional_entry([zonal, regional]) is regional


def test_a_consumer_subnet_in_another_zone_stops_the_run_with_the_error(monkeypatch):
    answer = mocks.CloudMocks.call

    def call(self, args):
        result = answer(self, args)
        if args.token == "aws:ec2/getSubnet:getSubnet" and args.args["id"].endswith("012"):
            result = {**result, "availabilityZoneId": "euc1-az3"}
        return result

    monkeypatch.setattr(mocks.CloudMocks, "call", call)
    with pytest.raises(Exception, match=r"subnet-0c0ffee0c0ffee012 \(euc1-az3\)"):
        plan_of_text(stack_text("prod.yaml"), "prod")
