"""Regression tests for user mistakes that once produced a traceback: every one must exit 2
with a message that names the place, and plan nothing."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from conftest import DEV_NO_ENDPOINT, STACKS
from inferstack.cli import main


def _invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def _spec(tmp_path, text: str | bytes):
    path = tmp_path / "spec.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(path)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (b"\xff\xfe", "not UTF-8"),
        ("", "must be a YAML mapping"),
        ("- a\n- b\n", "must be a YAML mapping"),
        ("metadata: [1, 2\n", "not valid YAML"),
        (DEV_NO_ENDPOINT.replace("      max: 4\n", "      max: 1000000000000000000000000000000\n"), "less than or equal to 1000"),
        (DEV_NO_ENDPOINT.replace("target: 4\n", "target: .inf\n"), "finite number"),
        (DEV_NO_ENDPOINT.replace("parameters: 8B", "parameters: 1" + "0" * 400 + "B"), "is too large"),
        (DEV_NO_ENDPOINT.replace("      min: 1\n", "      min: 1\n      5: 1\n"), "capacity[5]"),
        (DEV_NO_ENDPOINT.replace("      availability_zones: 2\n", "      availability_zones: 4\n"),
         "eu-central-1 has 3 availability zones"),
    ],
    ids=["not-utf8", "empty", "list", "yaml-syntax", "huge-max", "infinite-target", "huge-parameters", "int-key",
         "too-many-zones"],
)
def test_bad_specs_exit_2_with_a_message(tmp_path, text, words):
    for command in ("validate", "plan", "policy-config"):
        result = _invoke(command, _spec(tmp_path, text))
        assert result.exit_code == 2, (command, result.output)
        assert words in result.output and "Traceback" not in result.output


def test_merge_keys_keep_a_line_for_merged_fields(tmp_path):
    text = DEV_NO_ENDPOINT.replace("  burst:\n    kind: aws-gpu-fleet\n", "  burst: &fleet\n    kind: aws-gpu-fleet\n")
    text = text.replace("    root_volume_gib: 200\n", "    root_volume_gib: 200\n    model: llama-3-8bx\n")
    text += "  other:\n    <<: *fleet\n"
    result = _invoke("validate", _spec(tmp_path, text.replace("targets:\n", "targets:\n", 1)))
    assert result.exit_code == 2 and "targets.other.model: no model named 'llama-3-8bx'" in result.output


def test_unwritable_out_path_is_refused_before_planning(tmp_path):
    result = _invoke("plan", str(STACKS / "dev.yaml"), "--out", str(tmp_path / "missing" / "plan.json"))
    assert result.exit_code == 2 and "does not exist" in result.output


@pytest.mark.parametrize(
    "document",
    ["[]", '"x"', '{"version": 1, "stack": "s", "resources": [1, 2]}', '{"version": 1, "stack": "s", "resources": [{}]}',
     '{"version": 2, "stack": "s", "resources": []}'],
)
def test_check_refuses_documents_that_are_not_plans(tmp_path, document):
    path = tmp_path / "plan.json"
    path.write_text(document)
    config = tmp_path / "config.json"
    config.write_text("{}")  # a valid config: the plan document alone is at fault
    result = _invoke("check", str(path), "--config", str(config))
    assert result.exit_code == 2 and "not an inferstack plan" in result.output, result.output


@pytest.mark.parametrize(
    ("config", "words"),
    [('{"cost-stack-gpu-count-limit": "Advisory"}', "unknown enforcement level 'Advisory'"),
     ('{"cost-stack-gpu-count-limit": 5}', "must be an enforcement level"),
     ('{"cost-stack-gpu-count-limit": {"enforcementLevel": "loud"}}', "unknown enforcement level 'loud'"),
     ('["advisory"]', "must be a JSON object")],
)
def test_check_refuses_a_malformed_pack_config(tmp_path, config, words):
    plan = tmp_path / "plan.json"
    assert _invoke("plan", str(STACKS / "dev.yaml"), "--out", str(plan)).exit_code == 0
    path = tmp_path / "config.json"
    path.write_text(config)
    result = _invoke("check", str(plan), "--config", str(path))
    assert result.exit_code == 2 and words in result.output, result.output


def test_check_refuses_a_binary_config(tmp_path):
    plan = tmp_path / "plan.json"
    assert _invoke("plan", str(STACKS / "dev.yaml"), "--out", str(plan)).exit_code == 0
    config = tmp_path / "config.json"
    config.write_bytes(b"\xff\xfe\x00")
    result = _invoke("check", str(plan), "--config", str(config))
    assert result.exit_code == 2 and "not UTF-8" in result.output


def test_an_empty_plan_with_a_null_policy_section_needs_a_config(tmp_path):
    path = tmp_path / "plan.json"
    path.write_text('{"version": 1, "stack": "s", "resources": [], "policy": null}')
    result = _invoke("check", str(path))
    assert result.exit_code == 2 and "holds no policy config" in result.output


def test_a_plan_without_policy_config_needs_one(tmp_path):
    plan = tmp_path / "plan.json"
    assert _invoke("plan", str(STACKS / "dev.yaml"), "--out", str(plan), "--skip-policy").exit_code == 0
    assert "policy" not in json.loads(plan.read_text())
    result = _invoke("check", str(plan))
    assert result.exit_code == 2 and "holds no policy config" in result.output
