"""Environments on a base: `extends:` merges, errors at the file and line that wrote the value,
`inferstack show`, and the example stacks' dev, staging and prod on one base."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import EXAMPLE_STACKS, STACKS
from inferstack.cli import main
from inferstack.errors import SpecError
from inferstack.planning import policy_config
from inferstack.spec.loader import MAX_EXTENDS, load_spec, parse_spec
from inferstack.spec.resolved import resolved_yaml

# A whole spec, in the shape of the example stacks, for a base to hold.
BASE = """\
version: 1
metadata:
  name: assistant
  team: ml-platform
  data_classification: internal
residency:
  jurisdiction: eu
models:
  llama-3-8b:
    parameters: 8B
    precision: bf16
    context_length: 8192
    source: s3://acme-models-eu-central-1/meta-llama/Llama-3.1-8B-Instruct/
serving:
  engine: vllm
  image: 123456789012.dkr.ecr.eu-central-1.amazonaws.com/vllm-openai@sha256:0d4c8d8bd1b4dbbd4ec0a02c4ec7c2fa4f2e3db0e8ee7c1d9b3a1f0e5d6c7b8a
  port: 8000
  args: ["--enable-prefix-caching"]
targets:
  fleet:
    kind: aws-gpu-fleet
    region: eu-central-1
    instance_types: [g6.xlarge, g5.xlarge]
    capacity: {min: 1, max: 4}
    autoscaling: {signal: queue_depth, target: 4}
    network: {cidr: 10.64.0.0/16, availability_zones: 2}
  second:
    kind: aws-gpu-fleet
    region: eu-central-1
    instance_types: [g6.xlarge]
    capacity: {min: 1, max: 2}
    autoscaling: {signal: queue_depth, target: 4}
    network: {cidr: 10.65.0.0/16, availability_zones: 2}
"""


def _write(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return tmp_path / next(iter(files))


def _errors(path: Path) -> list[str]:
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    return caught.value.render().splitlines()


def _line(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


# -- the merge -------------------------------------------------------------------------------------


def test_maps_merge_lists_replace_null_removes_and_plus_appends(tmp_path):
    spec = _write(
        tmp_path,
        {
            "dev.yaml": """\
            extends: base/app.yaml
            metadata:
              environment: dev
            serving:
              args+: ["--max-num-seqs", "64"]
            targets:
              second: null
              fleet:
                instance_types: [g5.xlarge]
                capacity: {max: 2}
            """,
            "base/app.yaml": BASE,
        },
    )
    loaded = load_spec(spec)
    fleet = loaded.spec.targets["fleet"]
    assert loaded.spec.metadata.environment == "dev" and loaded.spec.metadata.team == "ml-platform"
    assert list(loaded.spec.targets) == ["fleet"]  # null removed the base's second target
    assert fleet.instance_types == ["g5.xlarge"]  # a list replaces
    assert (fleet.capacity.min, fleet.capacity.max) == (1, 2)  # a map merges key by key
    assert loaded.spec.serving.args == ["--enable-prefix-caching", "--max-num-seqs", "64"]
    assert loaded.sources == (str(spec), str(tmp_path / "base/app.yaml"))
    assert "extends" not in loaded.resolved


def test_a_chain_of_bases_merges_in_order(tmp_path):
    spec = _write(
        tmp_path,
        {
            "env/prod.yaml": "extends: ../org/team.yaml\nmetadata: {environment: prod}\n",
            "org/team.yaml": "extends: defaults.yaml\nmetadata: {team: search}\n",
            "org/defaults.yaml": BASE,
        },
    )
    loaded = load_spec(spec)
    assert (loaded.spec.metadata.team, loaded.spec.metadata.environment) == ("search", "prod")
    assert len(loaded.sources) == 3


def test_the_digest_covers_every_file_of_the_chain(tmp_path):
    spec = _write(tmp_path, {"dev.yaml": "extends: base.yaml\nmetadata: {environment: dev}\n", "base.yaml": BASE})
    before = load_spec(spec).sha256
    (tmp_path / "base.yaml").write_text(BASE.replace("max: 4", "max: 5"))
    assert load_spec(spec).sha256 != before  # a plan of the old base is stale


def test_a_saved_plan_of_an_older_base_is_refused(tmp_path):
    spec = _write(tmp_path, {"dev.yaml": "extends: base.yaml\nmetadata: {environment: dev}\n", "base.yaml": BASE})
    plan = tmp_path / "plan.json"
    assert CliRunner().invoke(main, ["plan", str(spec), "--out", str(plan), "--skip-policy"]).exit_code == 0
    (tmp_path / "base.yaml").write_text(BASE.replace("max: 4", "max: 5"))
    result = CliRunner().invoke(main, ["simulate", str(spec), "--plan", str(plan)])
    assert result.exit_code == 2
    assert "planned from another version of the spec" in result.output


# -- errors point where the value was written ------------------------------------------------------


def test_an_error_in_the_base_names_the_base_file_and_line(tmp_path):
    spec = _write(
        tmp_path,
        {
            "dev.yaml": "extends: base.yaml\nmetadata: {environment: dev}\n",
            "base.yaml": BASE.replace("max: 2}", "max: 0}"),
        },
    )
    (error,) = _errors(spec)
    base = tmp_path / "base.yaml"
    assert error.startswith(f"{base}:{_line(base, 'max: 0')}: targets.second.capacity.max: ")


def test_an_error_in_the_overlay_names_the_overlay_line(tmp_path):
    spec = _write(
        tmp_path,
        {
            "dev.yaml": "extends: base.yaml\nmetadata:\n  environment: dev\ntargets:\n  fleet:\n    capacity: {max: 0}\n",
            "base.yaml": BASE,
        },
    )
    (error,) = _errors(spec)
    assert error.startswith(f"{spec}:6: targets.fleet.capacity.max: ")


def test_a_cross_field_error_blames_the_overlay_that_broke_it(tmp_path):
    # min comes from the base, max from the overlay: max is the field blamed, at the overlay's line.
    spec = _write(
        tmp_path,
        {
            "dev.yaml": "extends: base.yaml\nmetadata: {environment: dev}\ntargets:\n  fleet:\n    capacity:\n      max: 1\n      min: 3\n",
            "base.yaml": BASE,
        },
    )
    (error,) = _errors(spec)
    assert error.startswith(f"{spec}:6: targets.fleet.capacity.max: must be >= min")


def test_an_unknown_field_in_the_base_is_reported_there_with_a_suggestion(tmp_path):
    spec = _write(
        tmp_path,
        {
            "dev.yaml": "extends: base.yaml\nmetadata: {environment: dev}\n",
            "base.yaml": BASE.replace("port: 8000", "prot: 8000"),
        },
    )
    (error,) = _errors(spec)
    assert error.startswith(
        f"{tmp_path / 'base.yaml'}:{_line(tmp_path / 'base.yaml', 'prot:')}: serving.prot: unknown field"
    )
    assert "did you mean 'port'" in error


def test_a_field_missing_from_both_is_reported_at_the_mapping_that_lacks_it(tmp_path):
    spec = _write(tmp_path, {"dev.yaml": "extends: base.yaml\n", "base.yaml": BASE})
    (error,) = _errors(spec)
    assert error == f"{tmp_path / 'base.yaml'}:2: metadata.environment: required field is missing"


def test_invalid_yaml_in_the_base_is_reported_in_the_base(tmp_path):
    spec = _write(tmp_path, {"dev.yaml": "extends: base.yaml\n", "base.yaml": "metadata: {name: [\n"})
    (error,) = _errors(spec)
    assert error.startswith(f"{tmp_path / 'base.yaml'}:") and "not valid YAML" in error


@pytest.mark.parametrize(
    ("extends", "files", "where", "message"),
    [
        ("missing.yaml", {}, "dev.yaml:2", "missing.yaml: cannot read the spec"),
        ("/etc/base.yaml", {}, "dev.yaml:2", "is an absolute path; write it relative to this file"),
        ("base.txt", {"base.txt": BASE}, "dev.yaml:2", "is not a .yaml file"),
        ("[a.yaml]", {}, "dev.yaml:2", "must be the path of a base spec"),
        ("dev.yaml", {}, "dev.yaml:2", "is already in the chain"),
        # the base that closes the loop is blamed, in its own file
        ("loop.yaml", {"loop.yaml": "extends: dev.yaml\n"}, "loop.yaml:1", "is already in the chain"),
    ],
)
def test_a_bad_extends_names_the_line_and_the_fix(tmp_path, extends, files, where, message):
    spec = _write(tmp_path, {"dev.yaml": f"# a comment\nextends: {extends}\n", **files})
    errors = _errors(spec)
    assert len(errors) == 1
    assert errors[0].startswith(f"{tmp_path / where}: extends: ") and message in errors[0]


def test_a_chain_too_long_is_refused(tmp_path):
    files = {"dev.yaml": "extends: b0.yaml\n"}
    for i in range(MAX_EXTENDS + 1):
        files[f"b{i}.yaml"] = f"extends: b{i + 1}.yaml\n"
    files[f"b{MAX_EXTENDS + 1}.yaml"] = BASE
    (error,) = _errors(_write(tmp_path, files))
    assert f"more than {MAX_EXTENDS} bases deep" in error


@pytest.mark.parametrize(
    ("overlay", "message"),
    [
        ("serving:\n  args+: --debug\n", "args+: appends a list to the base's args; give a list"),
        ("serving:\n  port+: [1]\n", "port+: appends to a list, but the base's port is not a list"),
        ("serving:\n  args: []\n  args+: [a]\n", "both args: and args+: are set; keep one"),
    ],
)
def test_append_mistakes_name_the_key(tmp_path, overlay, message):
    spec = _write(tmp_path, {"dev.yaml": f"extends: base.yaml\n{overlay}", "base.yaml": BASE})
    (error,) = _errors(spec)
    assert error.startswith(f"{spec}:") and message in error


def test_parse_spec_resolves_extends_next_to_its_source(tmp_path):
    _write(tmp_path, {"base.yaml": BASE})
    loaded = parse_spec("extends: base.yaml\nmetadata: {environment: test}\n", str(tmp_path / "text.yaml"))
    assert loaded.spec.metadata.environment == "test"


def test_the_cli_prints_base_errors_and_exits_2(tmp_path):
    spec = _write(tmp_path, {"dev.yaml": "extends: base.yaml\n", "base.yaml": BASE.replace("max: 4}", "max: -1}")})
    result = CliRunner().invoke(main, ["validate", str(spec)])
    assert result.exit_code == 2
    assert f"{tmp_path / 'base.yaml'}:" in result.output and "Traceback" not in result.output


# -- inferstack show -------------------------------------------------------------------------------


def test_show_prints_the_resolved_spec_that_validates_on_its_own(tmp_path):
    result = CliRunner().invoke(main, ["show", str(STACKS / "dev.yaml")])
    assert result.exit_code == 0
    assert result.output.startswith("# ") and "extends" not in result.output.splitlines()[1:]
    flat = tmp_path / "dev.yaml"
    flat.write_text(result.output)
    assert load_spec(flat).spec == load_spec(STACKS / "dev.yaml").spec
    assert "capacity:\n      min: 0\n" in result.output  # block style stays block
    assert '  args: ["--enable-prefix-caching"]\n' in result.output  # flow style stays flow


def test_show_origins_marks_each_value_with_its_file_and_line():
    out = CliRunner().invoke(main, ["show", "--origins", str(STACKS / "dev.yaml")]).output
    base = STACKS / "base" / "assistant.yaml"
    region = next(line for line in out.splitlines() if line.strip().startswith("region:"))
    file, line = region.rsplit("# ", 1)[1].rsplit(":", 1)
    assert file == str(base) and base.read_text().splitlines()[int(line) - 1].strip() == "region: eu-central-1"
    env = next(line for line in out.splitlines() if line.strip().startswith("environment:"))
    assert env.endswith(f"# {STACKS / 'dev.yaml'}:{_line(STACKS / 'dev.yaml', 'environment: dev')}")


def test_show_full_fills_in_the_defaults():
    out = CliRunner().invoke(main, ["show", "--full", str(STACKS / "prod.yaml")]).output
    assert "observability:" in out and "log_retention_days" not in out  # None is left out
    assert "  enforcement: strict\n" in out


def test_show_refuses_origins_with_full_and_a_bad_spec():
    assert CliRunner().invoke(main, ["show", "--full", "--origins", str(STACKS / "dev.yaml")]).exit_code == 2
    assert CliRunner().invoke(main, ["show", "nope.yaml"]).exit_code == 2


def test_resolved_yaml_of_a_spec_without_a_base_is_its_content():
    loaded = load_spec(STACKS / "research.yaml")
    assert parse_spec(resolved_yaml(loaded), "research.yaml").spec == loaded.spec


# -- the example environments ----------------------------------------------------------------------

ENVIRONMENTS = ("dev", "staging", "prod")


@pytest.fixture(scope="module")
def environments():
    return {env: load_spec(STACKS / f"{env}.yaml") for env in ENVIRONMENTS}


def test_dev_staging_and_prod_share_one_base_and_its_residency(environments):
    base = STACKS / "base" / "assistant.yaml"
    for env, loaded in environments.items():
        assert loaded.sources == (str(STACKS / f"{env}.yaml"), str(base)), env
        assert loaded.spec.metadata.environment == env
        assert loaded.spec.metadata.name == "assistant"
        assert loaded.spec.residency == environments["prod"].spec.residency
        assert (STACKS / f"Pulumi.{env}.yaml").read_text().rstrip().endswith(f"inferstack:spec: {env}.yaml")


def test_dev_is_smaller_and_all_spot(environments):
    dev, prod = environments["dev"].spec, environments["prod"].spec
    assert set(dev.targets) < set(prod.targets)
    for target in dev.targets.values():
        assert target.spot.enabled and target.spot.on_demand_base == 0 and target.spot.on_demand_percentage == 0
        assert target.capacity.max <= prod.targets["burst"].capacity.max


def test_prod_protects_its_load_balancers_and_enforces_every_rule(environments):
    prod, staging, dev = (environments[e].spec for e in ("prod", "staging", "dev"))
    assert prod.endpoint.deletion_protection is True
    assert prod.guardrails.enforcement == "strict"
    assert policy_config.derive(prod)[policy_config.ALL] == "mandatory"
    for lower in (staging, dev):
        assert policy_config.ALL not in policy_config.derive(lower)


def test_every_environment_plans_clean_and_stays_apart(environments):
    from inferstack.offline.engine import run_program
    from inferstack.offline.policy import analyze

    cidrs = {}
    for env, loaded in environments.items():
        plan = run_program(loaded)
        report = analyze(plan.to_json(), policy_config.derive(loaded.spec))
        assert report.violations == [], (env, report.violations)
        cidrs[env] = {t.network.cidr for t in loaded.spec.targets.values()}
    assert not (cidrs["dev"] & cidrs["staging"]) and not (cidrs["staging"] & cidrs["prod"])


def test_the_schemas_accept_every_example_stack_and_catch_a_typo():
    """What an editor checks with the stacks' `$schema` comments: a whole spec against the
    spec's schema, an environment file and its base against the overlay schema."""
    import jsonschema
    from ruamel.yaml import YAML

    schemas = {
        name: json.loads((STACKS.parent / "schema" / f"{name}.schema.json").read_text())
        for name in ("inferstack", "inferstack-overlay")
    }
    for path in [*EXAMPLE_STACKS, STACKS / "base" / "assistant.yaml"]:
        text = path.read_text()
        wanted = text.splitlines()[0].rsplit("/", 1)[1].removesuffix(".schema.json")
        assert wanted == ("inferstack-overlay" if "extends:" in text or "base" in path.parts else "inferstack")
        jsonschema.validate(YAML(typ="safe").load(text), schemas[wanted])
    for schema in schemas.values():
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({"metadata": {"enviroment": "dev"}}, schema)


# -- what a review found -----------------------------------------------------------------------------


def test_null_on_a_key_the_base_lacks_is_an_error_with_a_suggestion(tmp_path):
    spec = _write(tmp_path, {"dev.yaml": "extends: base.yaml\ntargets:\n  secnd: null\n", "base.yaml": BASE})
    (error,) = _errors(spec)
    assert error.startswith(f"{spec}:3: targets.secnd: null removes a key of the base, which has no secnd")
    assert "did you mean 'second'" in error


def test_a_target_of_another_kind_replaces_the_base_target_whole(tmp_path):
    # the base's AWS fields (instance_types, capacity, network) do not leak into a GCP target
    spec = _write(
        tmp_path,
        {
            "dev.yaml": """\
            extends: base.yaml
            metadata: {environment: dev}
            residency: {regions: [eu-central-1, europe-west4]}
            targets:
              second:
                kind: gcp-gpu-fleet
            """,
            "base.yaml": BASE,
        },
    )
    errors = _errors(spec)
    assert all("unknown field" not in e for e in errors), errors
    assert any("targets.second" in e and "required field is missing" in e for e in errors), errors


@pytest.mark.parametrize("extends", ['"a\\0.yaml"', "loop1.yaml"])
def test_an_unresolvable_base_path_is_an_error_not_a_traceback(tmp_path, extends):
    (tmp_path / "loop1.yaml").symlink_to(tmp_path / "loop2.yaml")
    (tmp_path / "loop2.yaml").symlink_to(tmp_path / "loop1.yaml")
    spec = _write(tmp_path, {"dev.yaml": f"extends: {extends}\n"})
    (error,) = _errors(spec)
    assert error.startswith(f"{spec}:1: extends: ")


def test_the_digest_does_not_depend_on_how_the_path_is_spelled(tmp_path, monkeypatch):
    spec = _write(
        tmp_path, {"env/dev.yaml": "extends: ../base.yaml\nmetadata: {environment: dev}\n", "base.yaml": BASE}
    )
    digest = load_spec(spec).sha256
    monkeypatch.chdir(tmp_path)
    assert load_spec("env/dev.yaml").sha256 == load_spec("./env/../env/dev.yaml").sha256 == digest


def test_an_append_key_without_a_base_says_so(tmp_path):
    spec = tmp_path / "dev.yaml"
    spec.write_text(
        BASE.replace("  args: [", "  args+: [").replace(
            "  team: ml-platform\n", "  team: ml-platform\n  environment: dev\n"
        )
    )
    (error,) = _errors(spec)
    assert error.endswith("serving.args+: appends to a base's args, and this spec extends no base; write args: [...]")
