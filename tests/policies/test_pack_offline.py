"""The pack end to end, as the engine runs it: a separate process spoken to over Analyzer gRPC."""

from __future__ import annotations

import importlib
import inspect
import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from conftest import DEV_NO_ENDPOINT, EXAMPLE_STACKS, STACKS, plan_of_file, stack_text
from inferstack.cli import main
from inferstack.offline.policy import PolicyPackError, analyze, default_pack_dir
from inferstack.planning import policy_config
from inferstack.policy_pack.inferstack_policies import RULES
from inferstack.policy_pack.inferstack_policies.tags import AWS_UNTAGGABLE
from inferstack.spec.loader import load_spec, parse_spec

DEV = stack_text("dev.yaml")


def _plan_cli(tmp_path, text: str, *extra: str):
    spec = tmp_path / "dev.yaml"
    spec.write_text(text)
    return CliRunner().invoke(main, ["plan", str(spec), *extra])


@pytest.mark.parametrize("spec", EXAMPLE_STACKS, ids=lambda p: p.stem)
def test_example_stacks_have_no_violation_over_grpc(spec):
    loaded = load_spec(spec)
    report = analyze(plan_of_file(str(spec)).to_json(), policy_config.derive(loaded.spec))
    assert report.pack == "inferstack" and report.version == "0.1.0"
    assert report.violations == []


def test_public_ip_opt_out_is_accepted_by_the_spec_and_blocked_by_the_pack(tmp_path):
    text = DEV.replace("      availability_zones: 2\n", "      availability_zones: 2\n      public_ip: true\n")
    result = _plan_cli(tmp_path, text)
    assert result.exit_code == 1, result.output
    assert "warning: targets.burst.network.public_ip" in result.output
    assert "mandatory high security-compute-instance-disallow-public-ip" in result.output
    assert "blocked: 1 mandatory" in result.output


def test_residency_exception_is_accepted_by_the_spec_and_blocked_by_the_pack(tmp_path):
    text = (
        DEV_NO_ENDPOINT.replace("  jurisdiction: eu\n", "  jurisdiction: eu\n  exceptions: [us-east-1]\n")
        .replace("region: eu-central-1", "region: us-east-1")
        .replace("ecr.eu-central-1", "ecr.us-east-1")
        .replace("[g6.xlarge, g5.xlarge]", "[g6.xlarge]")
    )
    out = tmp_path / "plan.json"
    result = _plan_cli(tmp_path, text, "--out", str(out))
    assert result.exit_code == 1, result.output
    assert "warning: residency.exceptions[0]" in result.output
    doc = json.loads(out.read_text())
    policies = {v["policy"] for v in doc["policy"]["violations"] if v["enforcement"] == "mandatory"}
    assert policies == {"residency-aws-resource-require-allowed-region"}
    assert doc["policy"]["mandatory"] == len(
        [r for r in doc["resources"] if r["custom"] and not r["type"].startswith("aws:iam/")]
    )


def test_check_on_a_saved_plan_uses_its_config_or_the_given_one(tmp_path):
    out = tmp_path / "plan.json"
    assert _plan_cli(tmp_path, DEV, "--out", str(out)).exit_code == 0
    assert CliRunner().invoke(main, ["check", str(out)]).exit_code == 0
    us_only = tmp_path / "config.json"
    us_only.write_text(json.dumps({"residency-aws-resource-require-allowed-region": {"allowedRegions": ["us-east-1"]}}))
    result = CliRunner().invoke(main, ["check", str(out), "--config", str(us_only), "--format", "json"])
    assert result.exit_code == 1
    assert json.loads(result.output)["mandatory"] > 0


def test_a_policy_can_be_downgraded_in_the_config(tmp_path):
    out = tmp_path / "plan.json"
    _plan_cli(tmp_path, DEV, "--out", str(out))
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"residency-aws-resource-require-allowed-region": "advisory"}))
    result = CliRunner().invoke(main, ["check", str(out), "--config", str(config)])
    assert result.exit_code == 0
    assert "advisory critical residency-aws-resource-require-allowed-region" in result.output


def test_bad_plan_files_exit_2(tmp_path):
    (tmp_path / "x.json").write_text("{not json")
    assert CliRunner().invoke(main, ["check", str(tmp_path / "x.json")]).exit_code == 2
    (tmp_path / "y.json").write_text('{"version": 7}')
    assert CliRunner().invoke(main, ["check", str(tmp_path / "y.json")]).exit_code == 2
    assert CliRunner().invoke(main, ["check", str(tmp_path / "missing.json")]).exit_code == 2


def test_a_pack_that_cannot_start_is_an_error_never_a_pass(tmp_path, monkeypatch):
    (tmp_path / "__main__.py").write_text("import sys\nsys.exit('boom: no such pack')\n")
    (tmp_path / "PulumiPolicy.yaml").write_text("runtime: python\nversion: 0.0.1\n")
    with pytest.raises(PolicyPackError, match="did not start: boom: no such pack"):
        analyze(plan_of_file(str(STACKS / "dev.yaml")).to_json(), {}, pack_dir=tmp_path)
    monkeypatch.setattr("inferstack.offline.policy.default_pack_dir", lambda: tmp_path)
    result = CliRunner().invoke(main, ["plan", str(STACKS / "dev.yaml")])
    assert result.exit_code == 3 and "the policy check could not run" in result.output


def test_the_pack_prints_nothing_before_its_port():
    import subprocess

    process = subprocess.Popen([sys.executable, "-u", "__main__.py"], cwd=default_pack_dir(), stdout=subprocess.PIPE)
    try:
        assert process.stdout.readline().strip().isdigit()
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stdout.close()


def test_derived_config_names_only_policies_the_pack_declares():
    config = policy_config.derive(load_spec(STACKS / "prod.yaml").spec)
    assert config.pop(policy_config.ALL) == "mandatory"  # Pulumi's key for every policy's level
    for name, settings in config.items():
        assert name in RULES, name
        assert set(settings) <= set(RULES[name].config), name


def test_untaggable_list_matches_the_aws_provider_schema():
    """The pack cannot import pulumi-aws; this keeps its list of untaggable types honest."""
    for token in AWS_UNTAGGABLE:
        pkg, module, cls = token.split(":")
        mod = importlib.import_module(f"pulumi_{pkg}.{module.split('/')[0]}")
        assert "tags" not in inspect.signature(getattr(mod, cls)._internal_init).parameters, token


def test_the_packs_health_check_ranges_are_the_ones_the_firewall_opens():
    """The pack imports nothing from inferstack; this keeps their copies of Google's ranges equal."""
    from inferstack.planning.gcp import HEALTH_CHECK_RANGES
    from inferstack.policy_pack.inferstack_policies.security import GOOGLE_HEALTH_CHECK_RANGES

    assert list(HEALTH_CHECK_RANGES) == GOOGLE_HEALTH_CHECK_RANGES


def _mutated(stack: str, token: str, change) -> dict:
    doc = json.loads(json.dumps(plan_of_file(str(STACKS / stack)).to_json()))
    for r in doc["resources"]:
        if r["type"] == token:
            change(r["inputs"])
    return doc


@pytest.mark.parametrize(
    "rule,stack,token,change",
    [
        (
            "security-gcp-compute-require-shielded-vm",
            "research.yaml",
            "gcp:compute/instanceTemplate:InstanceTemplate",
            lambda i: i["shieldedInstanceConfig"].update(enableSecureBoot=False),
        ),
        (
            "security-gcp-compute-block-project-ssh-keys",
            "research.yaml",
            "gcp:compute/instanceTemplate:InstanceTemplate",
            lambda i: i["metadata"].update({"block-project-ssh-keys": "FALSE"}),
        ),
        (
            "security-gcp-compute-require-dedicated-service-account",
            "research.yaml",
            "gcp:compute/instanceTemplate:InstanceTemplate",
            lambda i: i["serviceAccount"].update(email="123-compute@developer.gserviceaccount.com"),
        ),
        (
            "security-gcp-compute-require-os-login",
            "batch.yaml",
            "pulumi-python:dynamic:Resource",
            lambda i: [s["node"]["metadata"].pop("enable-oslogin") for s in i["body"]["tpu"]["nodeSpec"]],
        ),
        (
            # The AWS link's customer gateways: a device the spec does not name is a foreign peer.
            "residency-vpn-peer-require-allowed-ip",
            "hybrid.yaml",
            "aws:ec2/customerGateway:CustomerGateway",
            lambda i: i.update(ipAddress="192.0.2.99"),
        ),
        (
            "security-aws-ec2-disallow-key-pair",
            "dev.yaml",
            "aws:ec2/launchTemplate:LaunchTemplate",
            lambda i: i.update(keyName="ops"),
        ),
        (
            "security-aws-cloudwatch-loggroup-require-retention-kms",
            "dev.yaml",
            "aws:cloudwatch/logGroup:LogGroup",
            lambda i: i.pop("kmsKeyId"),
        ),
        (
            "security-aws-s3bucket-require-tls-only",
            "dev.yaml",
            "aws:s3/bucketPolicy:BucketPolicy",
            lambda i: i.update(
                policy=json.dumps(
                    {"Statement": [s for s in json.loads(i["policy"])["Statement"] if s["Effect"] != "Deny"]}
                )
            ),
        ),
    ],
)
def test_new_rules_block_a_broken_plan_over_grpc(rule, stack, token, change):
    """The red-team's broken plans, and the scanner's findings, through the pack process."""
    doc = _mutated(stack, token, change)
    report = analyze(doc, policy_config.derive(load_spec(STACKS / stack).spec))
    assert {(v.policy, v.enforcement) for v in report.violations} == {(rule, "mandatory")}


def test_short_log_retention_is_advisory_unless_the_stack_is_strict():
    """An advisory rule reports under standard enforcement and blocks under strict, the default
    of environment prod (guardrails.enforcement); a rule's own entry in the config still wins."""
    doc = _mutated("prod.yaml", "aws:cloudwatch/logGroup:LogGroup", lambda i: i.update(retentionInDays=30))
    rule = "security-aws-cloudwatch-loggroup-retention-minimum"
    strict = policy_config.derive(load_spec(STACKS / "prod.yaml").spec)
    assert {(v.policy, v.enforcement) for v in analyze(doc, strict).violations} == {(rule, "mandatory")}
    standard = {k: v for k, v in strict.items() if k != policy_config.ALL}
    assert {(v.policy, v.enforcement) for v in analyze(doc, standard).violations} == {(rule, "advisory")}
    own_entry = {**strict, rule: {**strict[rule], "enforcementLevel": "advisory"}}
    assert {(v.policy, v.enforcement) for v in analyze(doc, own_entry).violations} == {(rule, "advisory")}


def test_enforcement_is_strict_in_prod_and_set_by_the_spec():
    dev = stack_text("dev.yaml")
    assert policy_config.ALL not in policy_config.derive(parse_spec(dev, "dev.yaml").spec)
    strict_dev = dev.replace("guardrails:", "guardrails:\n  enforcement: strict", 1)
    if strict_dev == dev:
        strict_dev = dev + "\nguardrails:\n  enforcement: strict\n"
    assert policy_config.derive(parse_spec(strict_dev, "dev.yaml").spec)[policy_config.ALL] == "mandatory"
    prod = load_spec(STACKS / "prod.yaml")
    assert prod.spec.strict_policy()
    relaxed = prod.spec.model_copy(
        update={"guardrails": prod.spec.guardrails.model_copy(update={"enforcement": "standard"})}
    )
    assert policy_config.ALL not in policy_config.derive(relaxed)


def test_the_retention_minimum_is_the_specs_for_its_environment():
    config = policy_config.derive(load_spec(STACKS / "prod.yaml").spec)
    assert config[policy_config.LOG_RETENTION] == {"minLogRetentionDays": 365}
    config = policy_config.derive(load_spec(STACKS / "dev.yaml").spec)
    assert config[policy_config.LOG_RETENTION] == {"minLogRetentionDays": 30}
