"""Golden manifests: what `inferstack render stacks/onprem.yaml` writes (the same files a render-mode
target writes at `pulumi up`), one file per object. Regenerate with INFERSTACK_UPDATE_GOLDEN=1
after a deliberate change, and review the diff like code."""

from __future__ import annotations

import os
import shutil

import pytest
from click.testing import CliRunner

from conftest import ROOT, STACKS
from inferstack.cli import main

GOLDEN = ROOT / "tests" / "golden" / "onprem"


def _files(root) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*.yaml"))}


# The example as written (apply mode: the GPU operator is a Helm release, which `render` leaves
# out), and the same site in render mode for each GitOps tool (the operator as their object).
RENDER_MODE = "    location: de\n    mode: render\n    render_dir: manifests/muc\n"
CASES = {
    "apply": ({}, {"deployment", "namespace", "scaledobject", "networkpolicy", "node", "httproute"}),
    "flux": ({"    location: de\n": RENDER_MODE + "    gitops: flux\n"}, {"helmrelease", "helmrepository"}),
    "argocd": ({"    location: de\n": RENDER_MODE + "    gitops: argocd\n"}, {"application"}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_rendered_manifests_of_the_example_match_golden(case, tmp_path):
    edits, kinds = CASES[case]
    text = (STACKS / "onprem.yaml").read_text()
    for old, new in edits.items():
        assert old in text
        text = text.replace(old, new)
    spec = tmp_path / "onprem.yaml"
    spec.write_text(text)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["render", str(spec), "--out", str(out)])
    assert result.exit_code == 0, result.output
    rendered = _files(out)
    golden = GOLDEN / case
    if os.environ.get("INFERSTACK_UPDATE_GOLDEN"):
        shutil.rmtree(golden, ignore_errors=True)
        for name, body in rendered.items():
            (golden / name).parent.mkdir(parents=True, exist_ok=True)
            (golden / name).write_text(body)
    assert rendered == _files(golden)
    assert kinds <= {name.split("/")[-1].split("-")[1] for name in rendered}


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_golden_object_is_valid_for_the_clusters_version(case):
    """What the GitOps tool would apply passes the cluster version's OpenAPI schemas and the CRDs'
    (the Argo CD Application's automated sync policy, the labels-only Node files included)."""
    from ruamel.yaml import YAML

    from k8s_schemas import validate

    files = sorted((GOLDEN / case).rglob("*.yaml"))
    assert files
    problems = {str(p.relative_to(GOLDEN)): validate(YAML(typ="safe").load(p.read_text()), "1.31") for p in files}
    assert {name: errors for name, errors in problems.items() if errors} == {}
