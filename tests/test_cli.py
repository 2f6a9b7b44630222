"""The `inferstack` command as a user runs it: plan table and JSON, validate, schema, bad input."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from conftest import EXAMPLE_STACKS, ROOT, STACKS, stack_text
from inferstack.cli import main
from inferstack.spec.models import DeploymentSpec


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.mark.parametrize("spec", EXAMPLE_STACKS, ids=lambda p: p.stem)
def test_every_example_stack_plans(spec):
    result = run("plan", str(spec))
    assert result.exit_code == 0, result.output
    assert any(
        f"inferstack:{t}" in result.output
        for t in ("fleet:AwsGpuFleet", "fleet:GcpGpuFleet", "tpu:GcpTpuSlice", "onprem:OnPremK8s")
    )
    assert any(line.endswith(" components") and "resources," in line for line in result.output.splitlines())
    assert "policy inferstack@0.1.0: passed: 0 mandatory" in result.output.splitlines()[-1]


def test_plan_json_is_the_documented_document_and_byte_identical(tmp_path):
    first = run("plan", str(STACKS / "dev.yaml"), "--format", "json")
    second = run("plan", str(STACKS / "dev.yaml"), "--format", "json", "--out", str(tmp_path / "plan.json"))
    assert first.exit_code == second.exit_code == 0
    assert first.output == second.output == (tmp_path / "plan.json").read_text()
    doc = json.loads(first.output)
    assert doc["version"] == 1 and doc["stack"] == "dev"
    assert doc["spec"]["path"].endswith("dev.yaml") and len(doc["spec"]["sha256"]) == 64
    r = doc["resources"][0]
    assert set(r) == {
        "urn",
        "type",
        "name",
        "parent",
        "custom",
        "provider",
        "propertyDependencies",
        "inputs",
        "options",
    }
    assert set(r["options"]) == {"protect", "ignoreChanges", "dependsOn", "deleteBeforeReplace", "retainOnDelete"}
    assert [x["urn"] for x in doc["resources"]] == sorted(x["urn"] for x in doc["resources"])
    assert doc["policy"]["mandatory"] == 0 and doc["policy"]["violations"] == []
    assert (
        doc["policy"]["config"]["residency-aws-resource-require-allowed-region"]["allowedRegions"][0] == "eu-central-1"
    )


def test_reordering_targets_renames_nothing(tmp_path):
    text = stack_text("prod.yaml")
    steady, burst, end = text.index("  steady:\n"), text.index("  burst:\n"), text.index("\nendpoint:") + 1
    reordered = text[:steady] + text[burst:end] + text[steady:burst] + text[end:]
    assert reordered != text
    spec = tmp_path / "prod.yaml"
    spec.write_text(reordered)
    a = json.loads(run("plan", str(STACKS / "prod.yaml"), "--format", "json").output)
    b = json.loads(run("plan", str(spec), "--format", "json").output)
    assert [r["urn"] for r in a["resources"]] == [r["urn"] for r in b["resources"]]
    assert a["resources"] == b["resources"]


def test_secrets_never_appear_in_clear():
    import pulumi

    from inferstack.offline.mocks import SECRET, clean

    raw = {"a": {pulumi.runtime.rpc._special_sig_key: pulumi.runtime.rpc._special_secret_sig, "value": "hunter2"}}
    assert clean(raw) == {"a": SECRET}


def test_bad_spec_exits_2_with_file_line_and_field(tmp_path):
    text = (
        stack_text("dev.yaml").replace("      max: 4\n", "      max: 0\n").replace("      min: 0\n", "      min: 2\n")
    )
    spec = tmp_path / "dev.yaml"
    spec.write_text(text)
    result = CliRunner().invoke(main, ["plan", str(spec)])
    assert result.exit_code == 2
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if ln.strip() == "max: 0")
    assert (
        f"{spec}:{line}: targets.burst.capacity.max: input should be greater than or equal to 1 (got 0)"
        in result.output
    )
    assert "Traceback" not in result.output


def test_cross_field_error_names_the_field(tmp_path):
    text = (
        stack_text("dev.yaml").replace("      max: 4\n", "      max: 1\n").replace("      min: 0\n", "      min: 2\n")
    )
    spec = tmp_path / "dev.yaml"
    spec.write_text(text)
    result = CliRunner().invoke(main, ["validate", str(spec)])
    assert result.exit_code == 2
    assert "targets.burst.capacity.max: must be >= min (got 1 < 2)" in result.output


def test_missing_file_and_unknown_flag_exit_2(tmp_path):
    assert CliRunner().invoke(main, ["plan", str(tmp_path / "nope.yaml")]).exit_code == 2
    assert CliRunner().invoke(main, ["plan", "--bogus", str(STACKS / "dev.yaml")]).exit_code == 2


def test_validate_ok_and_warns_on_mutable_tag(tmp_path):
    assert run("validate", str(STACKS / "dev.yaml")).exit_code == 0
    text = stack_text("dev.yaml")
    digest_line = next(ln for ln in text.splitlines() if "image:" in ln)
    spec = tmp_path / "dev.yaml"
    spec.write_text(
        text.replace(digest_line, "  image: 123456789012.dkr.ecr.eu-central-1.amazonaws.com/vllm-openai:v0.11.0")
    )
    result = CliRunner().invoke(main, ["validate", str(spec)])
    assert result.exit_code == 0
    assert "warning: serving.image: a tag is mutable" in result.output


def test_schema_is_the_models_and_the_committed_file_is_current():
    result = run("schema")
    schema = json.loads(result.output)
    assert schema["properties"].pop("extends")["type"] == "string"  # the loader's, not the model's
    assert schema == DeploymentSpec.model_json_schema()
    assert (ROOT / "schema" / "inferstack.schema.json").read_text() == result.output, (
        "schema/inferstack.schema.json is stale: run `inferstack schema > schema/inferstack.schema.json`"
    )
    overlay = run("schema", "--overlay").output
    assert (ROOT / "schema" / "inferstack-overlay.schema.json").read_text() == overlay, (
        "schema/inferstack-overlay.schema.json is stale: run "
        "`inferstack schema --overlay > schema/inferstack-overlay.schema.json`"
    )


# -- output that CI logs can read --------------------------------------------------------------


def _violating_check(tmp_path):
    """`check` over the dev plan with a region allow-list that the plan breaks: one violation per
    resource, each under its URN."""
    plan = tmp_path / "plan.json"
    assert run("plan", str(STACKS / "dev.yaml"), "--out", str(plan)).exit_code == 0
    doc = json.loads(plan.read_text())
    config = doc["policy"]["config"]
    config["residency-aws-resource-require-allowed-region"] = {
        "enforcementLevel": "mandatory",
        "allowedRegions": ["us-east-1"],
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return doc, ["check", str(plan), "--config", str(path)]


def test_piped_output_keeps_every_urn_and_type_on_one_line(tmp_path):
    doc, args = _violating_check(tmp_path)
    result = CliRunner().invoke(main, args)  # output captured: not a terminal, as in CI
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    longest = max((r["urn"] for r in doc["resources"] if r["custom"]), key=len)
    assert len(longest) > 120
    assert longest in lines
    plan = run("plan", str(STACKS / "prod.yaml")).output.splitlines()
    for r in json.loads(run("plan", str(STACKS / "prod.yaml"), "--format", "json").output)["resources"]:
        assert any(r["type"] in ln and r["name"] in ln for ln in plan), r["urn"]


def test_a_terminal_still_gets_a_layout_that_fits_it(tmp_path, monkeypatch):
    import io
    import re

    from inferstack.offline.policy import PolicyReport, Violation
    from inferstack.offline.report import console_for, print_policy

    monkeypatch.setenv("COLUMNS", "80")
    urn = "urn:pulumi:dev::inferstack::inferstack:fleet:AwsGpuFleet$aws:ec2/launchTemplate:LaunchTemplate::" + "x" * 60
    report = PolicyReport("inferstack", "0.1.0", [Violation(urn, "p", "mandatory", "high", "desc\n" + "word " * 40)])
    out = io.StringIO()
    print_policy(report, console_for(out, force_terminal=True))
    text = re.sub(r"\x1b\[[0-9;]*m", "", out.getvalue())
    assert max(len(line) for line in text.splitlines()) <= 80
    assert urn not in text.splitlines()  # wrapped to the terminal, as a person reads it
