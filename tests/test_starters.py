"""Starter templates: `inferstack templates`, `inferstack new`, the search path, and the
repository as a `pulumi new` template. Every starter renders with its defaults and plans clean
under the policy pack; every bad value is refused (exit 2) before anything is written."""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import tomllib
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from conftest import ROOT, STACKS
from inferstack import cli, starters
from inferstack.cli import main
from inferstack.offline.engine import run_program
from inferstack.offline.policy import analyze
from inferstack.planning.policy_config import derive
from inferstack.spec.loader import load_spec

BUILTIN = ROOT / "templates" / "starters"
STARTERS = [
    "aws-autoscaling-llm",
    "gcp-tpu-llm",
    "onprem-baseline-cloud-burst",
    "private-endpoint-internal",
    "spot-batch-pool",
]


def run(*args: str, env: dict[str, str] | None = None, input: str | None = None):
    env = {starters.ENV_VAR: "", **(env or {})}
    return CliRunner().invoke(main, list(args), env=env, input=input, catch_exceptions=False)


def refused(result, *fragments: str) -> None:
    """Exit 2, one clear message (every fragment in it), no traceback."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.output, result.output


def nothing_in(directory: Path) -> bool:
    return not directory.exists() or not any(directory.iterdir())


def user_template(root: Path, name: str, manifest: dict, spec: str, pulumi: str | None = None) -> Path:
    d = root / name
    d.mkdir(parents=True)
    (d / starters.MANIFEST).write_text(yaml.safe_dump(manifest, sort_keys=False))
    (d / starters.SPEC_TEMPLATE).write_text(spec)
    if pulumi is not None:
        (d / starters.PULUMI_TEMPLATE).write_text(pulumi)
    return d


# -- the built-in starters -----------------------------------------------------------------------


def test_the_builtin_starters_are_listed_with_their_parameters():
    found, broken = starters.discover(starters.search_path((), environ={}))
    assert broken == []
    assert [t.name for t in found] == STARTERS
    assert all(t.source.origin == "built-in" and t.directory.parent == BUILTIN for t in found)
    result = run("templates")
    assert result.exit_code == 0, result.output
    for name in STARTERS:
        assert f"{name}: " in result.output
    assert "data_classification" in result.output and "eu-central-1, us-east-1" in result.output
    doc = json.loads(run("templates", "--format", "json").output)
    assert [t["name"] for t in doc] == STARTERS
    aws = doc[0]
    assert aws["origin"] == "built-in" and aws["shadows"] == [] and aws["stack_parameter"] == "environment"
    region = next(p for p in aws["parameters"] if p["name"] == "region")
    assert region == {
        "name": "region",
        "type": "string",
        "default": "eu-central-1",
        "description": region["description"],
        "allowed": ["eu-central-1", "us-east-1"],
    }


@pytest.mark.parametrize("name", STARTERS)
def test_every_starter_renders_with_its_defaults_and_plans_clean(name, tmp_path):
    """`inferstack new` outside a terminal takes the defaults; the spec validates without a
    warning, and its plan has no policy violation at all (mandatory or advisory)."""
    out = tmp_path / "stacks"
    result = run("new", name, str(out))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["Pulumi.dev.yaml", "dev.yaml"]
    text = (out / "dev.yaml").read_text()
    assert text.startswith("# yaml-language-server: $schema=../schema/inferstack.schema.json\n")
    assert yaml.safe_load((out / "Pulumi.dev.yaml").read_text()) == {"config": {"inferstack:spec": "dev.yaml"}}
    loaded = load_spec(out / "dev.yaml")
    assert loaded.warnings == ()
    assert loaded.spec.metadata.environment == "dev"
    plan = run_program(loaded)
    report = analyze(plan.to_json(), derive(loaded.spec))
    assert [v.to_json() for v in report.violations] == []


@pytest.mark.parametrize("name", STARTERS)
def test_every_allowed_value_gives_a_valid_spec(name, tmp_path):
    """Each allowed value (and each boolean's other value), with the rest at their defaults."""
    template = starters.find(name, starters.search_path((), environ={}))
    cases: list[dict] = [{}]
    for p in template.manifest.parameters:
        others = p.allowed or ([True, False] if p.type == "boolean" else [])
        cases += [{p.name: v} for v in others if v != p.default]
    assert len(cases) > 1
    for values in cases:
        rendered = starters.render(template, values, tmp_path)
        loaded = starters.validate(rendered, tmp_path)
        assert loaded.warnings == (), values


def test_set_values_reach_the_spec_and_name_the_stack(tmp_path):
    result = run(
        "new",
        "aws-autoscaling-llm",
        str(tmp_path),
        "--set",
        "environment=prod",
        "--set",
        "region=us-east-1",
        "--set",
        "max_capacity=8",
        "--set",
        "spot=false",
    )
    assert result.exit_code == 0, result.output
    spec = load_spec(tmp_path / "prod.yaml").spec
    fleet = spec.targets["fleet"]
    assert spec.metadata.environment == "prod" and spec.residency.jurisdiction == "us"
    assert fleet.region == "us-east-1" and fleet.capacity.max == 8 and not fleet.spot.enabled
    assert spec.serving.image.startswith("123456789012.dkr.ecr.us-east-1.amazonaws.com/")
    assert yaml.safe_load((tmp_path / "Pulumi.prod.yaml").read_text())["config"] == {"inferstack:spec": "prod.yaml"}


def test_the_hybrid_starter_keeps_its_stack_config_notes(tmp_path):
    assert run("new", "onprem-baseline-cloud-burst", str(tmp_path), "--set", "environment=burst").exit_code == 0
    text = (tmp_path / "Pulumi.burst.yaml").read_text()
    assert "pulumi config set --secret inferstack:kubeconfig" in text
    assert text.endswith('config:\n  inferstack:spec: "burst.yaml"\n')


def test_schema_comment_points_at_the_nearest_schema(tmp_path):
    (tmp_path / "schema").mkdir()
    (tmp_path / "schema" / "inferstack.schema.json").write_text("{}")
    assert starters.schema_path(tmp_path / "teams" / "chat") == "../../schema/inferstack.schema.json"
    assert starters.schema_path(ROOT / "stacks") == "../schema/inferstack.schema.json"
    assert starters.schema_path(Path("/")) == starters.DEFAULT_SCHEMA


# -- bad input: exit 2, a message naming the parameter and the fix, nothing written ---------


@pytest.mark.parametrize(
    ("sets", "fragments"),
    [
        (["replicas=3"], ["has no parameter 'replicas'", "(parameters: environment,"]),
        (["max_capacty=3"], ["has no parameter 'max_capacty'; did you mean 'max_capacity'?"]),
        (["max_capacity=four"], ["max_capacity is an integer, not 'four'", "--set max_capacity=4"]),
        (["spot=yes"], ["spot is a boolean, not 'yes'", "--set spot=true or false"]),
        (["region=eu-west-2"], ["region: 'eu-west-2' is not one of the allowed values (eu-central-1, us-east-1)"]),
        (["max_capacity=65"], ["max_capacity: 65 is above the maximum 64"]),
        (["environment=Prod"], ["environment: 'Prod' does not match the pattern"]),
        (["name=a\nb"], ["holds a control character or line break"]),
        (["region"], ["--set 'region': expected key=value, e.g. --set environment=dev"]),
        (["=x"], ["expected key=value"]),
        (["spot=true", "spot=false"], ["spot is set twice"]),
    ],
    ids=lambda v: v[0] if isinstance(v, list) else None,
)
def test_bad_parameters_are_refused(sets, fragments, tmp_path):
    out = tmp_path / "stacks"
    args = [a for s in sets for a in ("--set", s)]
    refused(run("new", "aws-autoscaling-llm", str(out), *args), *fragments)
    assert nothing_in(out)


def test_an_unknown_template_is_refused_with_a_suggestion(tmp_path):
    refused(
        run("new", "aws-autoscaling", str(tmp_path / "x")),
        "unknown template 'aws-autoscaling'; did you mean 'aws-autoscaling-llm'?",
        "`inferstack templates` lists them",
    )
    assert nothing_in(tmp_path / "x")


def test_a_rendered_spec_that_fails_validation_writes_nothing(tmp_path):
    out = tmp_path / "stacks"
    result = run("new", "aws-autoscaling-llm", str(out), "--set", "min_capacity=5", "--set", "max_capacity=2")
    refused(
        result,
        f"{out / 'dev.yaml'}:",
        "targets.fleet.capacity.max: must be >= min (got 2 < 5) (set by max_capacity)",
        "nothing was written: change max_capacity (--set NAME=VALUE)",
    )
    assert nothing_in(out)


def test_existing_files_are_never_overwritten(tmp_path):
    (tmp_path / "dev.yaml").write_text("mine\n")
    refused(run("new", "spot-batch-pool", str(tmp_path)), f"{tmp_path / 'dev.yaml'} exists", "--set environment=")
    assert (tmp_path / "dev.yaml").read_text() == "mine\n"
    assert not (tmp_path / "Pulumi.dev.yaml").exists()
    (tmp_path / "dev.yaml").unlink()
    (tmp_path / "Pulumi.dev.yaml").write_text("mine\n")
    refused(run("new", "spot-batch-pool", str(tmp_path)), "Pulumi.dev.yaml exists")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Pulumi.dev.yaml"]
    (tmp_path / "file").write_text("")
    refused(run("new", "spot-batch-pool", str(tmp_path / "file")), "is not a directory")


def test_writing_is_both_files_or_neither(tmp_path, monkeypatch):
    template = starters.find("spot-batch-pool", starters.search_path((), environ={}))
    rendered = starters.render(template, {}, tmp_path)
    calls = []

    def link(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise FileExistsError(dst)
        os.link(src, dst)

    monkeypatch.setattr(starters.os, "link", link)
    with pytest.raises(starters.StarterError, match="appeared while writing; nothing was written"):
        starters.write(rendered, tmp_path, "environment")
    assert list(tmp_path.iterdir()) == []  # neither file, no temporary left behind


# -- prompting -------------------------------------------------------------------------------


def test_a_terminal_is_asked_for_each_parameter_not_set(tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "_stdin_is_tty", lambda: True)
    template = starters.find("spot-batch-pool", starters.search_path((), environ={}))
    asked = [p.name for p in template.manifest.parameters if p.name != "zone"]
    answers = {"environment": "nightly", "slices": "many\n3"}  # a bad answer is asked again
    result = run(
        "new",
        "spot-batch-pool",
        str(tmp_path),
        "--set",
        "zone=europe-west4-a",
        input="".join(answers.get(name, "") + "\n" for name in asked),
    )
    assert result.exit_code == 0, result.output
    for p in template.manifest.parameters:
        shown = f"{p.name} ({p.description}"
        assert (shown in result.output) == (p.name != "zone"), p.name
    assert "[dev]:" in result.output and "[2]:" in result.output
    assert "slices is an integer, not 'many'" in result.output
    batch = load_spec(tmp_path / "nightly.yaml").spec.targets["batch"]
    assert batch.slices == 3 and batch.zone == "europe-west4-a"


def test_no_input_never_prompts(tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "_stdin_is_tty", lambda: True)
    result = run("new", "spot-batch-pool", str(tmp_path), "--no-input")
    assert result.exit_code == 0, result.output
    assert "environment (" not in result.output and (tmp_path / "dev.yaml").is_file()


# -- the search path -------------------------------------------------------------------------

TINY = {
    "description": "the AWS starter, reduced to its stack name",
    "parameters": [{"name": "environment", "type": "string", "default": "dev", "description": "stack name"}],
}


def test_earlier_search_path_entries_win(tmp_path):
    """--template-dir (in order) before INFERSTACK_TEMPLATE_PATH (in order) before the built-ins."""
    spec = (BUILTIN / "aws-autoscaling-llm" / "spec.yaml.j2").read_text()
    dirs = {}
    for label in ("flag1", "flag2", "env1", "env2"):
        manifest = {**TINY, "description": f"from {label}"}
        defaults = {
            p.name: p.default
            for p in starters.load_manifest(BUILTIN / "aws-autoscaling-llm" / "manifest.yaml").parameters
        }
        body = "".join(f"{{% set {k} = {json.dumps(v)} %}}\n" for k, v in defaults.items() if k != "environment")
        user_template(tmp_path / label, "aws-autoscaling-llm", manifest, body + spec)
        dirs[label] = tmp_path / label
    env = {starters.ENV_VAR: os.pathsep.join([str(dirs["env1"]), "", str(dirs["env2"])])}

    def listed(*flags: str) -> dict:
        args = [a for f in flags for a in ("--template-dir", str(dirs[f]))]
        doc = json.loads(run("templates", "--format", "json", *args, env=env).output)
        return next(t for t in doc if t["name"] == "aws-autoscaling-llm")

    first = listed("flag1", "flag2")
    assert first["description"] == "from flag1" and first["origin"] == "--template-dir"
    assert first["shadows"] == [str(dirs[d] / "aws-autoscaling-llm") for d in ("flag2", "env1", "env2")] + [
        str(BUILTIN / "aws-autoscaling-llm")
    ]
    assert listed("flag2")["description"] == "from flag2"
    by_env = listed()
    assert by_env["description"] == "from env1" and by_env["origin"] == starters.ENV_VAR
    table = run("templates", "--template-dir", str(dirs["flag2"]), env=env).output
    assert f"from {dirs['flag2'] / 'aws-autoscaling-llm'} (--template-dir; shadows {dirs['env1']}" in table
    result = run("new", "aws-autoscaling-llm", str(tmp_path / "out"), "--template-dir", str(dirs["flag2"]), env=env)
    assert result.exit_code == 0, result.output
    assert load_spec(tmp_path / "out" / "dev.yaml").spec.targets["fleet"].region == "eu-central-1"
    # Built-ins a user directory does not shadow stay listed.
    assert {t["name"] for t in json.loads(run("templates", "--format", "json", env=env).output)} == set(STARTERS)


def test_a_missing_search_directory_is_refused(tmp_path):
    refused(run("templates", "--template-dir", str(tmp_path / "nope")), "--template-dir", "not a directory")
    refused(run("templates", env={starters.ENV_VAR: str(tmp_path / "nope")}), starters.ENV_VAR, "not a directory")


def test_a_bad_manifest_names_the_file_and_the_field(tmp_path):
    manifest = {
        "description": "broken",
        "stack_paramter": "environment",
        "parameters": [
            {"name": "environment", "type": "string", "default": "dev", "description": "d"},
            {"name": "replicas", "type": "int", "default": 1, "description": "d"},
            {"name": "zone", "type": "string", "default": "a", "allowed": ["b", "c"], "description": "d"},
        ],
    }
    user_template(tmp_path, "broken", manifest, "version: 1\n")
    file = tmp_path / "broken" / "manifest.yaml"
    for args in (("templates",), ("new", "broken", str(tmp_path / "out"))):
        refused(
            run(*args, "--template-dir", str(tmp_path)),
            f"{file}: stack_paramter: unknown field; did you mean 'stack_parameter'?",
            f"{file}: parameters[1].type (parameter 'replicas'): Input should be 'string', 'integer' or 'boolean'",
            f"{file}: parameters[2] (parameter 'zone'): default: 'a' is not one of the allowed values (b, c)",
        )
    assert nothing_in(tmp_path / "out")
    # the other templates are still listed, the built-ins among them; the exit code says one is broken
    listed = run("templates", "--template-dir", str(tmp_path))
    assert listed.exit_code == 2 and "aws-autoscaling-llm:" in listed.output
    # and `new` with a good template is not held up by the broken one
    good = run("new", "aws-autoscaling-llm", str(tmp_path / "good"), "--template-dir", str(tmp_path), "--no-input")
    assert good.exit_code == 0, good.output


@pytest.mark.parametrize(
    ("parameter", "message"),
    [
        ({"name": "schema_path", "type": "string", "default": "x", "description": "d"}, "is reserved"),
        ({"name": "n", "type": "integer", "default": 1, "pattern": "1", "description": "d"}, "only a string parameter"),
        ({"name": "n", "type": "integer", "default": True, "description": "d"}, "True is not an integer"),
        (
            {"name": "n", "type": "boolean", "default": 1.5, "description": "d"},
            "must be a string, an integer or a boolean",
        ),
        ({"name": "Bad-Name", "type": "string", "default": "x", "description": "d"}, "parameters[1].name"),
    ],
)
def test_manifest_rules(parameter, message, tmp_path):
    manifest = {**TINY, "parameters": [*TINY["parameters"], parameter]}
    (tmp_path / "manifest.yaml").write_text(yaml.safe_dump(manifest))
    with pytest.raises(starters.StarterError, match=None) as raised:
        starters.load_manifest(tmp_path / "manifest.yaml")
    assert message in str(raised.value)


# -- rendering cannot inject YAML ------------------------------------------------------------

FREE = {
    "description": "a free-text parameter",
    "parameters": [
        {"name": "environment", "type": "string", "default": "dev", "description": "stack name"},
        {"name": "team", "type": "string", "default": "ml-platform", "description": "any text"},
    ],
}


@pytest.mark.parametrize(
    "value", ['x", "evil": "1', "a: b", "- [x]", "{a: 1}", "#c", "'q'", "yes", "null", "0o17", "ü ✓"]
)
def test_the_yaml_filter_keeps_a_string_one_string(value):
    assert yaml.safe_load(f"k: {starters.to_yaml(value)}\n") == {"k": value}


def _aws_spec_with_team(expression: str) -> str:
    """The AWS starter's rendered spec (plain YAML), its team printed by `expression`."""
    template = starters.find("aws-autoscaling-llm", starters.search_path((), environ={}))
    text = starters.render(template, {}, Path("/")).spec_text
    assert 'team: "ml-platform"' in text and "{" + "{" not in text
    return text.replace('team: "ml-platform"', f"team: {expression}")


def test_a_hostile_value_stays_inside_its_field(tmp_path):
    spec = _aws_spec_with_team("{{ team | yaml }}")
    user_template(tmp_path / "t", "free", FREE, spec)
    result = run("new", "free", str(tmp_path / "out"), "--template-dir", str(tmp_path / "t"), "--set", 'team=x", "y: 1')
    refused(result, "metadata.team:", "must be a lower-case name")
    assert nothing_in(tmp_path / "out")


def test_a_template_printing_a_raw_value_does_not_render(tmp_path):
    spec = _aws_spec_with_team("{{ team }}")
    user_template(tmp_path, "raw", FREE, spec)
    refused(
        run("new", "raw", str(tmp_path / "out"), "--template-dir", str(tmp_path)),
        f"{tmp_path / 'raw' / 'spec.yaml.j2'}: 'ml-platform' printed without the yaml filter",
    )
    user_template(tmp_path, "undef", FREE, "team: {{ owner | yaml }}\n")
    refused(run("new", "undef", str(tmp_path / "out"), "--template-dir", str(tmp_path)), "'owner' is undefined")
    user_template(tmp_path, "pulumi", FREE, spec.replace("{{ team }}", "{{ team | yaml }}"), "config: {}\n")
    refused(
        run("new", "pulumi", str(tmp_path / "out"), "--template-dir", str(tmp_path)),
        "Pulumi.dev.yaml: config.inferstack:spec must name the rendered spec 'dev.yaml'",
    )
    assert nothing_in(tmp_path / "out")


# -- packaging and `pulumi new` --------------------------------------------------------------


def test_the_starters_ship_in_the_wheel():
    """Every file of templates/starters matches inferstack.templates' package data."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert setuptools["package-dir"]["inferstack.templates"] == "templates"
    globs = setuptools["package-data"]["inferstack.templates"]
    files = [p.relative_to(ROOT / "templates").as_posix() for p in BUILTIN.rglob("*") if p.is_file()]
    assert files and all(any(fnmatch.fnmatch(f, g) and f.count("/") == g.count("/") for g in globs) for f in files)
    assert starters.builtin_dir() == BUILTIN


def test_the_repository_is_a_pulumi_new_template():
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    template = project["template"]
    # The keys of Pulumi's project schema (ProjectTemplate, ProjectTemplateConfigValue).
    assert set(template) <= {"displayName", "description", "quickstart", "config", "important", "metadata"}
    assert isinstance(template["description"], str) and template["description"]
    assert list(template["config"]) == ["inferstack:spec"]
    spec = template["config"]["inferstack:spec"]
    assert set(spec) <= {"description", "default", "secret"} and spec["description"]
    # The program reads stacks/<inferstack:spec> (__main__.py): the default must be a spec there.
    default = STACKS / spec["default"]
    assert default.is_file() and default.suffix == ".yaml"
    assert load_spec(default).spec.version == 1
    assert project["stackConfigDir"] == "stacks"


def test_builtin_starters_need_no_copy_of_the_repository(tmp_path):
    """A copy of a starter directory (as a platform team would start from) renders the same."""
    shutil.copytree(BUILTIN / "gcp-tpu-llm", tmp_path / "tpl" / "gcp-tpu-llm")
    ours = starters.find("gcp-tpu-llm", starters.search_path((str(tmp_path / "tpl"),), environ={}))
    builtin = starters.find("gcp-tpu-llm", starters.search_path((), environ={}))
    assert ours.source.origin == "--template-dir" and ours.shadows == (BUILTIN / "gcp-tpu-llm",)
    assert starters.render(ours, {}, tmp_path) == starters.render(builtin, {}, tmp_path)


def test_a_template_cannot_reach_python_from_its_expressions(tmp_path):
    manifest = {
        "description": "escape",
        "parameters": [{"name": "environment", "type": "string", "default": "dev", "description": "d"}],
    }
    user_template(tmp_path, "escape", manifest, "{{ ''.__class__.__mro__[1].__subclasses__() }}\n")
    result = run("new", "escape", str(tmp_path / "out"), "--template-dir", str(tmp_path), "--no-input")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert nothing_in(tmp_path / "out")
