"""Regression tests for user mistakes that once produced a traceback: every one must exit 2
with a message that names the place, and plan nothing."""

from __future__ import annotations

import itertools
import json
import resource
import subprocess
import sys

import pytest
from click.testing import CliRunner

from conftest import DEV_NO_ENDPOINT, ROOT, STACKS, stack_text
from inferstack import limits
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
        (
            DEV_NO_ENDPOINT.replace("      max: 4\n", "      max: 1000000000000000000000000000000\n"),
            "less than or equal to 1000",
        ),
        (DEV_NO_ENDPOINT.replace("target: 4\n", "target: .inf\n"), "finite number"),
        (DEV_NO_ENDPOINT.replace("parameters: 8B", "parameters: 1" + "0" * 400 + "B"), "is too large"),
        (DEV_NO_ENDPOINT.replace("      min: 1\n", "      min: 1\n      5: 1\n"), "capacity[5]"),
        (
            DEV_NO_ENDPOINT.replace("      availability_zones: 2\n", "      availability_zones: 4\n"),
            "eu-central-1 has 3 availability zones",
        ),
    ],
    ids=[
        "not-utf8",
        "empty",
        "list",
        "yaml-syntax",
        "huge-max",
        "infinite-target",
        "huge-parameters",
        "int-key",
        "too-many-zones",
    ],
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


@pytest.mark.parametrize(("name", "flag"), [("a::b$c", True), ("x" * 101, True), ("my stack", False)])
def test_a_stack_name_pulumi_refuses_is_refused(tmp_path, name, flag):
    if flag:
        result = _invoke("plan", str(STACKS / "dev.yaml"), "--stack", name)
    else:
        spec = tmp_path / f"{name}.yaml"
        spec.write_text(stack_text("dev.yaml"))
        result = _invoke("plan", str(spec))
    assert result.exit_code == 2 and "a Pulumi stack name is 1 to 100 letters" in result.output, result.output


def test_unwritable_out_path_is_refused_before_planning(tmp_path):
    result = _invoke("plan", str(STACKS / "dev.yaml"), "--out", str(tmp_path / "missing" / "plan.json"))
    assert result.exit_code == 2 and "does not exist" in result.output


@pytest.mark.parametrize(
    "document",
    [
        "[]",
        '"x"',
        '{"version": 1, "stack": "s", "resources": [1, 2]}',
        '{"version": 1, "stack": "s", "resources": [{}]}',
        '{"version": 2, "stack": "s", "resources": []}',
    ],
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
    [
        ('{"cost-stack-gpu-count-limit": "Advisory"}', "unknown enforcement level 'Advisory'"),
        ('{"cost-stack-gpu-count-limit": 5}', "must be an enforcement level"),
        ('{"cost-stack-gpu-count-limit": {"enforcementLevel": "loud"}}', "unknown enforcement level 'loud'"),
        ('["advisory"]', "must be a JSON object"),
    ],
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


# -- input that once stalled or exhausted the process -------------------------------------------
# These run the CLI in a child process under an address-space limit and a timeout, so a
# regression fails here in seconds instead of hanging CI or taking the runner's memory.
# The bound is generous for a spec that fails to load (under 100 MB), far below the gigabyte an
# alias bomb reached.
MEMORY_BYTES = 1 << 30
SECONDS = 30


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))


def _bounded(*args: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(
            [sys.executable, "-m", "inferstack.cli", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=SECONDS,
            preexec_fn=_limit_memory,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"inferstack {' '.join(a[:80] for a in args)} ran past {SECONDS} s")


def _alias_bomb(levels: int = 9, width: int = 9) -> str:
    """The "billion laughs": each level an anchored list of `width` aliases of the one before."""
    names = [f"l{i}" for i in range(levels)]
    lines = [f"{names[0]}: &{names[0]} [" + ", ".join(["lol"] * width) + "]"]
    for prev, name in itertools.pairwise(names):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * width) + "]")
    return "\n".join(lines) + "\n"


def _assert_refused(result: subprocess.CompletedProcess, *words: str, most: int = 10_000) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    for word in words:
        assert word in result.stderr, result.stderr[-2000:]
    assert len(result.stderr) < most, "a message echoed the input back"


def test_an_alias_bomb_is_refused_while_composing(tmp_path):
    bomb = _alias_bomb()
    assert len(bomb) < 500
    spec = _spec(tmp_path, bomb)
    for command in ("validate", "plan", "policy-config"):
        _assert_refused(_bounded(command, spec), f"{spec}:5:", "aliases expand to more than")


def test_an_alias_inside_its_own_anchor_is_refused(tmp_path):
    _assert_refused(_bounded("validate", _spec(tmp_path, "metadata: &m\n  name: *m\n")), ":2:", "recursive alias")


def test_aliases_that_share_settings_between_targets_still_work(tmp_path):
    """The bound counts expanded nodes, so ordinary reuse (`<<: *fleet`, a list used twice) passes."""
    text = DEV_NO_ENDPOINT.replace("  burst:\n    kind: aws-gpu-fleet\n", "  burst: &fleet\n    kind: aws-gpu-fleet\n")
    text += "".join(f"  more{i}:\n    <<: *fleet\n" for i in range(3))
    result = _invoke("validate", _spec(tmp_path, text))
    assert result.exit_code == 0, result.output


def test_deep_nesting_is_refused_with_a_line(tmp_path):
    spec = _spec(tmp_path, "version: 1\nmetadata: " + "[" * 20_000 + "]" * 20_000 + "\n")
    for command in ("validate", "plan", "policy-config"):
        _assert_refused(_bounded(command, spec), f"{spec}:2:", f"nested deeper than {limits.MAX_DEPTH} levels")


def test_nesting_just_inside_the_bound_is_an_ordinary_error(tmp_path):
    depth = limits.MAX_DEPTH - 2
    result = _invoke("validate", _spec(tmp_path, "metadata: " + "[" * depth + "]" * depth + "\n"))
    assert result.exit_code == 2 and "nested deeper" not in result.output and "metadata" in result.output


def test_an_oversized_spec_is_refused_unread(tmp_path):
    spec = _spec(tmp_path, DEV_NO_ENDPOINT + "# " + "x" * limits.SPEC_BYTES + "\n")
    _assert_refused(_bounded("validate", spec), "larger than 256 KiB")
    _assert_refused(_bounded("validate", "/dev/zero"), "larger than 256 KiB")


def test_a_spec_of_too_many_values_is_refused_while_reading(tmp_path):
    """Under the byte bound, 120,000 one-letter items would take the YAML reader many seconds."""
    spec = _spec(
        tmp_path, DEV_NO_ENDPOINT.replace("  jurisdiction: eu\n", "  regions: [" + ",".join(["x"] * 120_000) + "]\n")
    )
    assert len(DEV_NO_ENDPOINT) < 3000 and (tmp_path / "spec.yaml").stat().st_size < limits.SPEC_BYTES
    _assert_refused(_bounded("validate", spec), f"more than {limits.MAX_NODES} values")


def test_thousands_of_mistakes_show_the_first_hundred_and_a_count(tmp_path):
    extra = "".join(f"  k{i}: 1\n" for i in range(5000))
    result = _bounded(
        "validate", _spec(tmp_path, DEV_NO_ENDPOINT.replace("  team: ml-platform\n", "  team: ml-platform\n" + extra))
    )
    _assert_refused(result, "... and 4900 more error(s) not shown", "5000 error(s) in", most=100 * 300)
    assert result.stderr.count("unknown field") == 100


def test_a_number_past_pythons_digit_limit_is_an_error_not_a_crash(tmp_path):
    spec = _spec(tmp_path, DEV_NO_ENDPOINT.replace("      max: 4\n", "      max: " + "9" * 5000 + "\n"))
    line = DEV_NO_ENDPOINT.splitlines().index("      max: 4") + 1
    _assert_refused(_bounded("validate", spec), f"{spec}:{line}:", "a number of 5000 digits")


HUGE = 5 << 20


@pytest.mark.parametrize(
    ("before", "after", "words"),
    [
        ("region: eu-central-1", "region: {}", "unknown AWS region 'eeeee"),
        ("parameters: 8B", "parameters: {}", "write a number or a size"),
        (
            "  team: ml-platform\n",
            "  team: ml-platform\n  ? {}\n  : 1\n",
            "unknown field",
        ),  # an explicit key: any length
        ("    kind: aws-gpu-fleet\n", "    kind: aws-gpu-fleet\n    model: {}\n", "no model named"),
    ],
    ids=["region", "pattern", "unknown-key", "did-you-mean"],
)
def test_messages_quote_a_long_value_short(monkeypatch, before, after, words):
    from inferstack.errors import SpecError
    from inferstack.spec.loader import parse_spec

    monkeypatch.setattr(limits, "SPEC_BYTES", 2 * HUGE)  # a 5 MB value, past the file bound

    assert before in DEV_NO_ENDPOINT
    value = "e" * HUGE
    with pytest.raises(SpecError) as caught:
        parse_spec(DEV_NO_ENDPOINT.replace(before, after.format(value)), "spec.yaml")
    rendered = caught.value.render()
    assert words in rendered, rendered[:500]
    assert f"({HUGE} characters)" in rendered
    assert len(rendered) < 2_000


def test_a_long_value_is_quoted_short_through_the_cli(tmp_path):
    value = "e" * 200_000  # under the file bound
    spec = _spec(tmp_path, DEV_NO_ENDPOINT.replace("region: eu-central-1", f"region: {value}"))
    _assert_refused(_bounded("validate", spec), "unknown AWS region", "(200000 characters)")


def test_messages_are_cut_even_when_a_value_reached_them_another_way():
    from inferstack.errors import Finding, quote

    assert Finding(("x",), "y" * 100_000).render().endswith("y")
    assert len(Finding(("x",), "y" * 100_000).render()) < 2_100
    assert quote("abc") == "'abc'" and quote(10**5000).startswith("an integer of about 5001 digits")


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("[" * 100_000 + "]" * 100_000, "nests deeper than"),
        ('{"version": 1, "stack": "s", "resources": [{"inputs": ' + "[" * 500 + "]" * 500 + "}]}", "nests deeper than"),
        (" " * (limits.PLAN_BYTES + 1), "larger than 64 MiB"),
    ],
    ids=["deep", "deep-inputs", "huge"],
)
def test_check_bounds_the_plan_file(tmp_path, content, words):
    path = tmp_path / "plan.json"
    path.write_text(content)
    _assert_refused(_bounded("check", str(path)), words)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ('{"a": ' * 50_000 + "1" + "}" * 50_000, "nests deeper than"),
        ('{"' + "k" * 100_000 + '": 5}', "must be an enforcement level"),
        (" " * (limits.PACK_CONFIG_BYTES + 1), "larger than 1 MiB"),
    ],
    ids=["deep", "long-name", "huge"],
)
def test_check_bounds_the_pack_config(tmp_path, content, words):
    plan = tmp_path / "plan.json"
    plan.write_text('{"version": 1, "stack": "s", "resources": []}')
    config = tmp_path / "config.json"
    config.write_text(content)
    _assert_refused(_bounded("check", str(plan), "--config", str(config)), words)
