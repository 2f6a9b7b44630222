"""`inferstack render`: the plan's Kubernetes objects in pulumi-kubernetes' render layout, and the
command's errors."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from conftest import STACKS
from inferstack import cli
from inferstack.offline import engine
from inferstack.offline.k8s_render import RenderError, kubernetes_objects, render_path, to_yaml, write
from inferstack.spec.loader import LoadedSpec
from inferstack.spec.models import DeploymentSpec
from onprem_fixture import DEPLOYMENT, MANIFESTS, NS, ONPREM_SPEC, onprem_plan, record_plan


@pytest.fixture(scope="module")
def rendered_objects():
    return kubernetes_objects(record_plan(onprem_plan("render")).resources)


def test_paths_are_the_providers_render_paths():
    # pulumi-kubernetes renderPathForResource: <apiVersion with / and : as _>-<kind lower>-<ns or default>-<name>
    assert render_path(DEPLOYMENT) == "1-manifest/apps_v1-deployment-dev-site-engine-h100.yaml"
    assert render_path(MANIFESTS[0]) == "1-manifest/v1-namespace-default-dev-site.yaml"
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "a.b"}}
    assert render_path(crd) == "0-crd/apiextensions.k8s.io_v1-customresourcedefinition-default-a.b.yaml"


def test_every_object_of_the_plan_is_one_file_with_its_body(rendered_objects):
    objects, notes = rendered_objects
    assert notes == []
    by_path = {o.path: o for o in objects}
    assert {o.directory for o in objects} == {"site"}
    for body in MANIFESTS:
        assert by_path[render_path(body)].body == body
    node = by_path["1-manifest/v1-node-default-gpu-1.yaml"].body
    assert node["kind"] == "Node" and node["apiVersion"] == "v1"
    assert node["metadata"]["labels"] == {"nvidia.com/mig.config": "all-3g.40gb"}
    assert "spec" not in node  # render mode: labels only, the node's taints stay the site's
    assert len(objects) == len(MANIFESTS) + 2  # + the two nodes


def test_apply_mode_patches_of_one_node_are_a_file_each_and_the_release_is_a_note():
    objects, notes = kubernetes_objects(record_plan(onprem_plan("apply")).resources)
    nodes = {o.path: o.body for o in objects if o.body["kind"] == "Node"}
    assert sorted(nodes) == [
        "1-manifest/v1-node-default-gpu-1+site-node-gpu-1-taints.yaml",
        "1-manifest/v1-node-default-gpu-1.yaml",
        "1-manifest/v1-node-default-gpu-2.yaml",
    ]
    # Each file is exactly its patch: the labels, forced; the taints, not (never merged into one
    # object that would read as a forced taint list).
    labels = nodes["1-manifest/v1-node-default-gpu-1.yaml"]
    assert labels["metadata"]["labels"] == {"nvidia.com/mig.config": "all-3g.40gb"}
    assert labels["metadata"]["annotations"] == {"pulumi.com/patchForce": "true"} and "spec" not in labels
    taints = nodes["1-manifest/v1-node-default-gpu-1+site-node-gpu-1-taints.yaml"]
    assert taints == {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "gpu-1"},
        "spec": {"taints": [{"key": "inferstack.io/pool", "value": "h100", "effect": "NoSchedule"}]},
    }
    assert len(notes) == 1 and "site-gpu-operator" in notes[0] and "Helm release" in notes[0]


def test_two_targets_get_two_directories():
    other = onprem_plan("render", target="lab", namespace="dev-lab", node_patches=())
    objects, _ = kubernetes_objects(record_plan(onprem_plan("render"), other).resources)
    assert {o.directory for o in objects} == {"site", "lab"}


def test_files_are_sorted_yaml_private_and_deterministic(tmp_path, rendered_objects):
    objects, _ = rendered_objects
    write(objects, tmp_path / "a", replace=False)
    write(kubernetes_objects(record_plan(onprem_plan("render")).resources)[0], tmp_path / "b", replace=False)
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.yaml"))
    assert files_a == sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*.yaml"))
    for rel in files_a:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()
    assert (tmp_path / "a" / "site" / "0-crd").is_dir()  # the provider makes both, even empty
    path = tmp_path / "a" / "site" / "1-manifest" / "apps_v1-deployment-dev-site-engine-h100.yaml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    text = path.read_text()
    assert yaml.safe_load(text) == DEPLOYMENT
    assert text.index("apiVersion:") < text.index("kind:") < text.index("metadata:") < text.index("spec:")


def test_a_config_file_in_a_config_map_stays_readable():
    body = next(m for m in MANIFESTS if m["kind"] == "ConfigMap")
    text = to_yaml(body)
    assert "config.yaml: |\n    version: v1\n" in text
    assert yaml.safe_load(text) == body


def test_replace_removes_stale_rendered_files_and_keeps_the_rest(tmp_path, rendered_objects):
    objects, _ = rendered_objects
    stale = tmp_path / "site" / "1-manifest" / "v1-service-dev-site-gone.yaml"
    stale.parent.mkdir(parents=True)
    stale.write_text("x")
    (tmp_path / "kustomization.yaml").write_text("keep")
    write(objects, tmp_path, replace=True)
    assert not stale.exists() and (tmp_path / "kustomization.yaml").read_text() == "keep"


def test_a_secret_value_is_never_rendered():
    plan = record_plan(onprem_plan("render"))
    cm = next(r for r in plan.resources if r["type"] == "kubernetes:core/v1:ConfigMap")
    cm["inputs"]["data"]["token"] = "[secret]"
    with pytest.raises(RenderError, match=r"holds a secret at data.token"):
        kubernetes_objects(plan.resources)


# -- the command ---------------------------------------------------------------------------------


def _loaded(spec: dict, path: str) -> LoadedSpec:
    return LoadedSpec(DeploymentSpec.model_validate(spec), path, "0" * 64, ())


@pytest.fixture
def onprem_cli(monkeypatch):
    """The command over the on-prem spec, its plan built by the component from the hand-made plan
    (the program's table of kinds does not build on-prem targets yet)."""
    monkeypatch.setattr(cli, "load_spec", lambda path: _loaded(ONPREM_SPEC, path))
    monkeypatch.setattr(engine, "run_program", lambda loaded, stack=None: record_plan(onprem_plan("render")))


def _render(*args: str):
    return CliRunner().invoke(cli.main, ["render", *args])


def test_render_writes_the_stack_and_refuses_a_non_empty_directory(tmp_path, onprem_cli):
    out = tmp_path / "out"
    result = _render("onprem.yaml", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert f"{len(MANIFESTS) + 2} object(s) written" in result.output
    assert (out / "site" / "1-manifest" / f"v1-service-{NS}-engine.yaml").is_file()
    again = _render("onprem.yaml", "--out", str(out))
    assert again.exit_code == 2 and "is not empty: pass --force" in again.output
    assert _render("onprem.yaml", "--out", str(out), "--force").exit_code == 0


def test_render_of_a_spec_without_an_onprem_target_exits_2(tmp_path):
    result = _render(str(STACKS / "dev.yaml"), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert "has no onprem-k8s target" in result.output
    assert not (tmp_path / "out").exists()


def test_render_of_a_plan_without_kubernetes_objects_exits_2(tmp_path, monkeypatch, onprem_cli):
    monkeypatch.setattr(engine, "run_program", lambda loaded, stack=None: record_plan())
    result = _render("onprem.yaml", "--out", str(tmp_path / "out"))
    assert result.exit_code == 2 and "registers no Kubernetes object" in result.output


def test_render_into_a_file_or_a_missing_parent_exits_2(tmp_path, onprem_cli):
    (tmp_path / "f").write_text("x")
    assert _render("onprem.yaml", "--out", str(tmp_path / "f")).exit_code == 2
    result = _render("onprem.yaml", "--out", str(tmp_path / "no" / "such" / "dir"))
    assert result.exit_code == 2 and "does not exist" in result.output


def test_render_of_a_secret_exits_2_and_writes_nothing(tmp_path, monkeypatch, onprem_cli):
    def with_secret(loaded, stack=None):
        plan = record_plan(onprem_plan("render"))
        next(r for r in plan.resources if r["type"] == "kubernetes:core/v1:ConfigMap")["inputs"]["data"]["k"] = (
            "[secret]"
        )
        return plan

    monkeypatch.setattr(engine, "run_program", with_secret)
    result = _render("onprem.yaml", "--out", str(tmp_path / "out"))
    assert result.exit_code == 2 and "never hold secrets" in result.output
    assert not Path(tmp_path / "out").exists()


def test_the_plan_report_shows_kubernetes_objects_as_kind_namespace_name():
    import io

    from inferstack.offline.report import console_for, print_plan

    buffer = io.StringIO()
    print_plan(record_plan(onprem_plan("apply")), console_for(buffer))
    text = buffer.getvalue()
    assert f"Deployment {NS}/engine-h100  kubernetes:apps/v1:Deployment site-deployment-dev-site-engine-h100" in text
    assert "Namespace dev-site  kubernetes:core/v1:Namespace" in text
    assert "ScaledObject dev-site/engine-h100  kubernetes:keda.sh/v1alpha1:ScaledObject" in text
    assert "Node gpu-1 (patch)  kubernetes:core/v1:NodePatch site-node-gpu-1-taints" in text
    assert "kubernetes:helm.sh/v3:Release  site-gpu-operator" in text  # not an object: as any resource


def test_strings_are_styled_as_the_provider_styles_them():
    body = {"a": "true", "b": "", "c": "8000", "d": "*x", "e": "a: b", "f": "plain text", "g": "x\ny\n", "h": "1.5"}
    assert to_yaml(body) == (
        'a: "true"\nb: ""\nc: "8000"\nd: \'*x\'\ne: \'a: b\'\nf: plain text\ng: |\n  x\n  y\nh: "1.5"\n'
    )
    long = {"description": "word " * 40}
    assert to_yaml(long).count("\n") == 1  # never folded
