"""The spec loader over a corpus: valid specs load, each invalid one fails at the declared place.

Every file in ``spec_corpus/invalid`` makes one mistake and declares, in its leading comments,
where the loader must blame it::

    # expect-line: 29
    # expect-loc: targets.burst.capacity.max
    # expect-message: must be >= min (got 1 < 2)

``expect-message`` is a substring of the finding's message.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from inferstack.errors import Finding, SpecError, format_loc
from inferstack.spec.loader import load_spec, parse_spec
from inferstack.spec.models import Model

CORPUS = Path(__file__).resolve().parent / "spec_corpus"
VALID = sorted((CORPUS / "valid").glob("*.yaml"))
INVALID = sorted((CORPUS / "invalid").glob("*.yaml"))
_EXPECT = re.compile(r"^#\s*expect-(line|loc|message):\s*(.*?)\s*$")


def expectations(path: Path) -> dict[str, str]:
    """The ``# expect-*`` comments at the top of a corpus file."""
    found: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        m = _EXPECT.match(line)
        if m:
            found[m.group(1)] = m.group(2)
    return found


def test_the_corpus_is_not_empty():
    assert len(VALID) >= 5
    assert len(INVALID) >= 20


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_valid_spec_loads(path):
    loaded = load_spec(path)
    assert loaded.path == str(path)
    assert len(loaded.sha256) == 64
    assert all(w.severity == "warning" for w in loaded.warnings)
    for name in loaded.spec.targets:
        model_name, _ = loaded.spec.model_of(name)
        assert model_name in loaded.spec.models


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_spec_is_blamed_on_the_declared_field_and_line(path):
    expect = expectations(path)
    assert set(expect) == {"line", "loc", "message"}, f"{path.name} must declare expect-line, -loc and -message"
    with pytest.raises(SpecError) as info:
        load_spec(path)
    findings = info.value.findings
    assert findings, "a SpecError carries at least one finding"
    assert all(f.severity == "error" for f in findings)
    matching = [
        f
        for f in findings
        if format_loc(f.loc) == expect["loc"] and f.line == int(expect["line"]) and expect["message"] in f.message
    ]
    assert matching, f"no finding matches {expect}; got:\n{info.value.render()}"


# -- individual behaviours -----------------------------------------------------------------------

MINIMAL = (CORPUS / "valid" / "minimal.yaml").read_text()
DIGEST_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/vllm-openai@sha256:0d4c8d8bd1b4dbbd4ec0a02c4ec7c2fa4f2e3db0e8ee7c1d9b3a1f0e5d6c7b8a"


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_minimal_spec_gets_the_secure_defaults():
    spec = parse_spec(MINIMAL).spec
    target = spec.targets["main"]
    assert spec.version == 1
    assert spec.serving.port == 8000
    assert spec.serving.args == []
    assert target.spot.enabled is False
    assert target.capacity.warm_pool == 0
    assert target.capacity.initial == 1
    assert target.network.creates_vpc
    assert target.root_volume_gib == 200
    assert spec.model_of("main")[0] == "llama-3-8b"


def test_a_digest_pinned_image_gives_no_warning():
    assert DIGEST_IMAGE in MINIMAL
    assert parse_spec(MINIMAL).warnings == ()


def test_a_mutable_image_tag_is_a_warning_not_an_error():
    text = MINIMAL.replace(DIGEST_IMAGE, "123456789012.dkr.ecr.us-east-1.amazonaws.com/vllm-openai:v0.6.3")
    loaded = parse_spec(text, "tagged.yaml")  # does not raise
    assert len(loaded.warnings) == 1
    warning = loaded.warnings[0]
    assert warning.severity == "warning"
    assert warning.loc == ("serving", "image")
    assert format_loc(warning.loc) == "serving.image"
    assert warning.line == _line_of(text, "image:")
    assert "pin the image by digest" in warning.message
    assert warning.render("tagged.yaml") == f"tagged.yaml:{warning.line}: warning: serving.image: {warning.message}"


def test_a_mutable_image_tag_is_an_error_in_production():
    text = MINIMAL.replace(DIGEST_IMAGE, "123456789012.dkr.ecr.us-east-1.amazonaws.com/vllm-openai:v0.6.3")
    text = text.replace("environment: dev", "environment: prod")
    assert "environment: prod" in text
    with pytest.raises(SpecError) as err:
        parse_spec(text, "tagged.yaml")
    assert "required in environment 'prod'" in str(err.value) and "serving.image" in str(err.value)


def test_parameters_8b_parses_to_eight_billion():
    assert "parameters: 8B" in MINIMAL
    assert parse_spec(MINIMAL).spec.models["llama-3-8b"].parameters == 8_000_000_000


@pytest.mark.parametrize(
    ("written", "count"),
    [
        ("8B", 8_000_000_000),
        ("70.6B", 70_600_000_000),
        ("1.5T", 1_500_000_000_000),
        ("350M", 350_000_000),
        ("125K", 125_000),
        ("8b", 8_000_000_000),
        (" 8B ", 8_000_000_000),
        (8_030_261_248, 8_030_261_248),
    ],
)
def test_parameter_counts_are_parsed_from_sizes(written, count):
    model = Model.model_validate(
        {"parameters": written, "precision": "bf16", "context_length": 8192, "source": "s3://bucket/prefix"}
    )
    assert model.parameters == count


@pytest.mark.parametrize("written", ["8X", "8", "eight billion", "8.B", "B8", "8 B B", "8030261248"])
def test_parameter_strings_without_a_known_suffix_are_rejected(written):
    with pytest.raises(SpecError) as info:
        parse_spec(MINIMAL.replace("parameters: 8B", f"parameters: '{written}'"))
    (finding,) = info.value.findings
    assert format_loc(finding.loc) == "models.llama-3-8b.parameters"
    assert "write a number or a size like '8B'" in finding.message


def test_parameter_count_may_be_a_plain_integer():
    text = MINIMAL.replace("parameters: 8B", "parameters: 8030261248")
    assert parse_spec(text).spec.models["llama-3-8b"].parameters == 8_030_261_248


def test_parameter_count_must_be_positive():
    with pytest.raises(SpecError) as info:
        parse_spec(MINIMAL.replace("parameters: 8B", "parameters: 0"))
    (finding,) = info.value.findings
    assert format_loc(finding.loc) == "models.llama-3-8b.parameters"
    assert "greater than 0" in finding.message


TWO = """\
metadata: {name: order, team: ml, environment: dev, data_classification: internal}
residency: {jurisdiction: eu}
models:
  llama-3-8b: {parameters: 8B, precision: bf16, context_length: 8192, source: s3://m-eu/llama-3-8b}
  mixtral: {parameters: 46.7B, precision: fp8, context_length: 8192, source: s3://m-eu/mixtral}
serving: {engine: vllm, image: "%s"}
targets:
  small:
    kind: aws-gpu-fleet
    model: llama-3-8b
    region: eu-central-1
    image: "%s"
    instance_types: [g6.xlarge]
    capacity: {min: 1, max: 2}
    autoscaling: {signal: queue_depth, target: 4}
  large:
    kind: aws-gpu-fleet
    model: mixtral
    region: eu-west-1
    image: "%s"
    instance_types: [p4d.24xlarge]
    capacity: {min: 1, max: 2}
    autoscaling: {signal: gpu_utilization, target: 70}
""" % (DIGEST_IMAGE, DIGEST_IMAGE.replace("us-east-1", "eu-central-1"), DIGEST_IMAGE.replace("us-east-1", "eu-west-1"))  # noqa: UP031 (YAML flow maps are full of braces)


def _swap_blocks(text: str, first: str, second: str, end: str | None) -> str:
    """Swap two adjacent blocks: from `first` to `second`, and from `second` to `end`."""
    a = text.index(first)
    b = text.index(second)
    c = text.index(end) if end else len(text)
    return text[:a] + text[b:c] + text[a:b] + text[c:]


def test_reordering_models_and_targets_changes_nothing():
    reordered = _swap_blocks(TWO, "  small:\n", "  large:\n", None)
    reordered = _swap_blocks(reordered, "  llama-3-8b:", "  mixtral:", "serving:")
    assert reordered != TWO
    assert list(parse_spec(reordered).spec.targets) == ["large", "small"]
    original, moved = parse_spec(TWO).spec, parse_spec(reordered).spec
    assert original == moved
    for name in ("small", "large"):
        assert original.model_of(name) == moved.model_of(name)
    assert moved.model_of("large")[0] == "mixtral"


def test_every_error_is_reported_at_once_sorted_by_line():
    text = MINIMAL.replace("precision: bf16", "precision: bf17").replace("min: 1", "min: -1")
    with pytest.raises(SpecError) as info:
        parse_spec(text, "two.yaml")
    findings = info.value.findings
    assert [format_loc(f.loc) for f in findings] == ["models.llama-3-8b.precision", "targets.main.capacity.min"]
    assert [f.line for f in findings] == [_line_of(text, "precision:"), _line_of(text, "min: -1")]


def test_spec_error_renders_path_line_loc_message():
    text = MINIMAL.replace("      min: 1\n      max: 2\n", "      min: 3\n      max: 2\n")
    with pytest.raises(SpecError) as info:
        parse_spec(text, "stacks/broken.yaml")
    line = _line_of(text, "max: 2")
    assert info.value.render() == f"stacks/broken.yaml:{line}: targets.main.capacity.max: must be >= min (got 2 < 3)"
    assert str(info.value) == info.value.render()
    assert info.value.exit_code == 2
    assert re.fullmatch(r"[^:]+:\d+: [\w.\-\[\]]+: .+", info.value.render())


def test_a_finding_without_a_line_renders_without_one():
    assert Finding(("serving", "port"), "bad").render("x.yaml") == "x.yaml: serving.port: bad"
    assert Finding((), "bad", line=3).render() == "spec:3: (spec): bad"
    assert format_loc(("targets", "burst", "instance_types", 1)) == "targets.burst.instance_types[1]"


def test_unreadable_file_is_a_spec_error(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(SpecError) as info:
        load_spec(missing)
    (finding,) = info.value.findings
    assert finding.loc == ()
    assert "cannot read the spec" in finding.message
    assert info.value.render().startswith(f"{missing}: (spec): ")


@pytest.mark.parametrize("text", ["", "- just\n- a list\n", "42\n"])
def test_a_document_that_is_not_a_mapping_is_rejected_at_line_one(text):
    with pytest.raises(SpecError) as info:
        parse_spec(text, "x.yaml")
    (finding,) = info.value.findings
    assert finding.line == 1
    assert "must be a YAML mapping" in finding.message


def test_stack_name_is_the_file_stem(tmp_path):
    path = tmp_path / "staging.yaml"
    path.write_text(MINIMAL)
    assert load_spec(path).stack == "staging"


def test_sha256_identifies_the_text():
    a, b = parse_spec(MINIMAL), parse_spec(MINIMAL + "\n# a comment\n")
    assert a.spec == b.spec
    assert a.sha256 != b.sha256


def test_a_model_loads_on_each_cloud_from_the_copy_in_that_clouds_store():
    from inferstack.spec.models import Model

    model = Model(
        parameters=8_000_000_000,
        precision="bf16",
        context_length=8192,
        source="s3://models-eu/llama/8b/",
        mirrors=["gs://models-europe-west4/llama/8b"],
    )
    assert model.copy_in("s3") == ("models-eu", "llama/8b")
    assert model.copy_in("gs") == ("models-europe-west4", "llama/8b")
    assert model.uri_in("hf") is None
    with pytest.raises(ValueError, match="s3://bucket/prefix or gs://bucket/prefix"):
        Model(parameters=8, precision="bf16", context_length=8, source="s3://a-b/c", mirrors=["hf://org/model"])
