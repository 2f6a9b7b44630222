"""OnPremK8s through the mocks: every object of a hand-built plan registered with the right type,
inputs and order, the provider in each mode, node patches, the GPU operator's Helm release."""

from __future__ import annotations

import json
from dataclasses import replace

import pulumi
import pytest

from conftest import Resources
from inferstack.components.onprem_k8s import (
    GITOPS_KEEP_ANNOTATIONS,
    NO_CLUSTER_KUBECONFIG,
    PATCH_FORCE,
    ManifestError,
    resource_name,
)
from inferstack.planning.onprem import HelmChart, Manifest
from inferstack.planning.onprem.rollout import ROLLOUT_MARGIN_SECONDS
from onprem_fixture import (
    DEPLOYMENT,
    DEPLOYMENT_AWAIT_SECONDS,
    MANIFESTS,
    NS,
    ONPREM_SPEC,
    OP_NS,
    OPERATOR,
    meta,
    onprem_plan,
    record_plan,
)

COMPONENT = "urn:pulumi:dev::inferstack::inferstack:onprem:OnPremK8s::site"


def _token(body: dict) -> str:
    api_version = body["apiVersion"]
    group_version = f"core/{api_version}" if "/" not in api_version else api_version
    return f"kubernetes:{group_version}:{body['kind']}"


@pytest.fixture(scope="module")
def applied() -> Resources:
    return Resources(record_plan(onprem_plan("apply")))


@pytest.fixture(scope="module")
def rendered() -> Resources:
    return Resources(record_plan(onprem_plan("render")))


def _urn(r: Resources, token: str, name: str) -> str:
    return r.one(token, name)["urn"]


@pytest.mark.parametrize("body", MANIFESTS, ids=lambda b: f"{b['kind']}-{b['metadata']['name']}")
def test_every_object_is_registered_as_its_type_with_its_body_as_inputs(applied, body):
    r = applied.one(_token(body), resource_name("site", body))
    assert r["inputs"] == body
    assert r["parent"] == COMPONENT
    assert r["provider"] == _urn(applied, "pulumi:providers:kubernetes", "site-k8s")


def test_pulumi_names_are_target_kind_namespace_name_lower_case():
    assert resource_name("site", DEPLOYMENT) == "site-deployment-dev-site-engine-h100"
    assert resource_name("site", MANIFESTS[0]) == "site-namespace-dev-site"


def test_apply_mode_provider_reads_the_kubeconfig_secret_and_the_context(applied):
    provider = applied.one("pulumi:providers:kubernetes")["inputs"]
    assert provider == {
        "kubeconfig": "[secret]",  # the config secret, masked in the plan
        "context": "site-admin",
        "enableServerSideApply": "true",
        "clusterIdentifier": "site:site-admin",
    }


def test_apply_mode_without_the_kubeconfig_secret_fails_naming_the_key():
    with pytest.raises(pulumi.ConfigMissingError, match="inferstack:siteKubeconfig"):
        record_plan(onprem_plan("apply"), secrets={})


def test_render_mode_provider_renders_and_never_reads_a_kubeconfig(rendered):
    provider = rendered.one("pulumi:providers:kubernetes")["inputs"]
    assert provider == {
        "renderYamlToDirectory": "rendered/site",
        "kubeconfig": NO_CLUSTER_KUBECONFIG,
        "enableServerSideApply": "true",
    }
    assert json.loads(NO_CLUSTER_KUBECONFIG)["clusters"] == []
    # no secret needed in render mode
    assert Resources(record_plan(onprem_plan("render"), secrets={})).of_type("pulumi:providers:kubernetes")


def test_apply_mode_node_patches_force_labels_and_never_taints(applied):
    patches = {p["name"]: p for p in applied.of_type("kubernetes:core/v1:NodePatch")}
    assert sorted(patches) == ["site-node-gpu-1", "site-node-gpu-1-taints", "site-node-gpu-2"]
    labels = patches["site-node-gpu-1"]["inputs"]
    assert labels == {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": "gpu-1",
            "labels": {"nvidia.com/mig.config": "all-3g.40gb"},
            "annotations": {PATCH_FORCE: "true"},
        },
    }
    taints = patches["site-node-gpu-1-taints"]["inputs"]
    assert taints == {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "gpu-1"},
        "spec": {"taints": [{"key": "inferstack.io/pool", "value": "h100", "effect": "NoSchedule"}]},
    }
    for p in patches.values():
        # deleting a patch relinquishes its fields; the node is never deleted, so nothing to retain
        assert p["options"]["retainOnDelete"] is False and p["options"]["protect"] is False
        assert "pulumi.com/patchFieldManager" not in (p["inputs"]["metadata"].get("annotations") or {})


def test_render_mode_node_patch_is_one_node_object_gitops_never_prunes(rendered):
    patches = {p["name"]: p["inputs"] for p in rendered.of_type("kubernetes:core/v1:NodePatch")}
    assert sorted(patches) == ["site-node-gpu-1", "site-node-gpu-2"]
    assert patches["site-node-gpu-1"]["metadata"]["annotations"] == GITOPS_KEEP_ANNOTATIONS
    assert PATCH_FORCE not in patches["site-node-gpu-2"]["metadata"]["annotations"]
    # Labels only: a GitOps apply of a Node's taint list (atomic) would replace the site's taints.
    for patch in patches.values():
        assert "spec" not in patch and patch["metadata"]["labels"]


@pytest.mark.parametrize("mode", ["apply", "render"])
def test_a_node_is_only_ever_patched_never_owned(mode, applied, rendered):
    """A Node resource would make Pulumi the node's owner (a replace or a destroy deletes the
    machine's registration); patches are relinquished on delete and leave the node."""
    r = applied if mode == "apply" else rendered
    assert not r.of_type("kubernetes:core/v1:Node")
    assert r.of_type("kubernetes:core/v1:NodePatch")
    with pytest.raises(ManifestError, match="no resource type for this kind"):
        plan = onprem_plan(mode)
        node = Manifest({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "gpu-1"}})
        record_plan(replace(plan, manifests=(*plan.manifests, node)))


def test_render_mode_refuses_a_node_patch_with_taints():
    plan = onprem_plan("render")
    tainted = replace(plan.node_patches[0], taints=({"key": "k", "value": "v", "effect": "NoSchedule"},))
    with pytest.raises(ManifestError, match="render mode writes no taints"):
        record_plan(replace(plan, node_patches=(tainted, *plan.node_patches[1:])))


def test_helm_release_of_the_operator(applied):
    release = applied.one("kubernetes:helm.sh/v3:Release", "site-gpu-operator")
    inputs = release["inputs"]
    assert {k: inputs[k] for k in ("name", "chart", "version", "namespace", "repositoryOpts", "values")} == {
        "name": "gpu-operator",
        "chart": "gpu-operator",
        "version": "v25.10.0",
        "namespace": OP_NS,
        "repositoryOpts": {"repo": "https://helm.ngc.nvidia.com/nvidia"},
        "values": dict(OPERATOR.values),
    }
    assert inputs["createNamespace"] is False
    assert inputs["atomic"] is True and inputs["cleanupOnFail"] is True
    assert inputs["timeout"] == 600 and inputs["maxHistory"] == 10
    assert release["provider"] == _urn(applied, "pulumi:providers:kubernetes", "site-k8s")
    # its namespace, the config maps it reads and the node labels that select them come first
    assert set(release["options"]["dependsOn"]) == {
        _urn(applied, "kubernetes:core/v1:Namespace", "site-namespace-gpu-operator"),
        _urn(applied, "kubernetes:core/v1:ConfigMap", "site-configmap-gpu-operator-mig-parted-config"),
        *(p["urn"] for p in applied.of_type("kubernetes:core/v1:NodePatch")),
        # the Flux objects of the fixture live in the operator's namespace too
        _urn(
            applied, "kubernetes:source.toolkit.fluxcd.io/v1:HelmRepository", "site-helmrepository-gpu-operator-nvidia"
        ),
        _urn(applied, "kubernetes:helm.toolkit.fluxcd.io/v2:HelmRelease", "site-helmrelease-gpu-operator-gpu-operator"),
    }


def test_an_oci_chart_is_named_by_url_without_repository_options():
    oci = HelmChart(**{**OPERATOR.__dict__, "repository": "oci://mirror.site.example/charts/"})
    r = Resources(record_plan(onprem_plan("apply", gpu_operator=oci)))
    inputs = r.one("kubernetes:helm.sh/v3:Release")["inputs"]
    assert inputs["chart"] == "oci://mirror.site.example/charts/gpu-operator"
    assert "repositoryOpts" not in inputs


def test_render_mode_installs_no_release(rendered):
    assert rendered.of_type("kubernetes:helm.sh/v3:Release") == []
    with pytest.raises(ManifestError, match="render mode declares the GPU operator"):
        record_plan(onprem_plan("render", gpu_operator=OPERATOR))


def test_namespaced_objects_depend_on_their_namespace_and_the_engine_on_what_it_needs(applied):
    ns = _urn(applied, "kubernetes:core/v1:Namespace", "site-namespace-dev-site")
    for r in applied.all:
        if r["custom"] and (r["inputs"].get("metadata") or {}).get("namespace") == NS:
            assert ns in r["options"]["dependsOn"], r["name"]
    deployment = applied.one("kubernetes:apps/v1:Deployment")["options"]
    assert set(deployment["dependsOn"]) == {
        ns,
        _urn(applied, "kubernetes:node.k8s.io/v1:RuntimeClass", "site-runtimeclass-nvidia"),
        _urn(applied, "kubernetes:scheduling.k8s.io/v1:PriorityClass", "site-priorityclass-dev-site-serving"),
        _urn(applied, "kubernetes:helm.sh/v3:Release", "site-gpu-operator"),
        *(p["urn"] for p in applied.of_type("kubernetes:core/v1:NodePatch")),
    }


def test_the_engine_rollout_may_take_what_the_plan_decided(applied):
    deployment = applied.one("kubernetes:apps/v1:Deployment")["options"]
    assert DEPLOYMENT_AWAIT_SECONDS == 121 * 60 + 5
    assert deployment["customTimeouts"] == {"create": "122m", "update": "122m"}


def test_a_deployment_the_plan_gives_no_timeout_waits_for_its_own_replicas():
    """Without the planner's figure: the body's replicas (3) at the default 25% surge (1 pod a batch),
    each batch the default 30 s grace and the 10 s x 180 startup probe, plus the margin."""
    body = {**DEPLOYMENT, "metadata": meta("engine-other"), "spec": {**DEPLOYMENT["spec"], "replicas": 3}}
    plan = onprem_plan("apply", manifests=(*onprem_plan().manifests, Manifest(body)))
    recorded = Resources(record_plan(plan))
    (other,) = [r for r in recorded.of_type("kubernetes:apps/v1:Deployment") if r["name"].endswith("engine-other")]
    minutes = -(-(3 * (30 + 10 * 180) + ROLLOUT_MARGIN_SECONDS) // 60)
    assert other["options"]["customTimeouts"] == {"create": f"{minutes}m", "update": f"{minutes}m"}


def test_outputs_name_the_namespace_and_the_service():
    captured = {}

    def program():
        from inferstack.components.onprem_k8s import OnPremK8s

        c = OnPremK8s("site", onprem_plan("render"))
        pulumi.export("namespace", c.namespace)
        pulumi.export("dns", c.service_dns)
        pulumi.export("service", c.service_name)
        pulumi.export("dir", c.render_dir)
        captured["c"] = c

    from inferstack.offline.engine import record

    outputs = record(program, "dev").stack_outputs
    assert outputs == {
        "namespace": NS,
        "service": "engine",
        "dns": f"engine.{NS}.svc.cluster.local",
        "dir": "rendered/site",
    }


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"apiVersion": "v1", "kind": "Secret", "metadata": meta("creds")}, "no resource type for this kind"),
        ({"apiVersion": "apps/v1beta1", "kind": "Deployment", "metadata": meta("old")}, "no resource type"),
        ({"apiVersion": "v1", "kind": "Service", "metadata": meta("svc", None)}, "needs metadata.namespace"),
        ({"apiVersion": "v1", "kind": "Namespace", "metadata": meta("x", "y")}, "is cluster-scoped"),
        (
            {"apiVersion": "v1", "kind": "Service", "metadata": {"namespace": NS}},
            "without apiVersion, kind or metadata.name",
        ),
        (
            {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": meta("s"), "data": {}},
            "carries spec only",
        ),
        ({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("c"), "dta": {}}, "unexpected keyword"),
    ],
)
def test_an_object_the_component_cannot_register_is_a_clear_error(body, message):
    plan = onprem_plan("apply", manifests=(*onprem_plan().manifests, Manifest(body)))
    with pytest.raises(ManifestError, match=message):
        record_plan(plan)


def test_two_objects_with_one_name_are_an_error():
    plan = onprem_plan("apply", manifests=(*onprem_plan().manifests, Manifest(DEPLOYMENT)))
    with pytest.raises(ManifestError, match="two objects named 'site-deployment-dev-site-engine-h100'"):
        record_plan(plan)


def test_the_offline_engine_answers_the_kubeconfig_key_the_spec_names_with_a_placeholder_secret():
    from inferstack.offline.engine import OFFLINE_SECRET, offline_config
    from inferstack.spec.models import DeploymentSpec

    spec = dict(ONPREM_SPEC)
    target = {
        **spec["targets"]["site"],
        "mode": "apply",
        "cluster": {"version": "1.31", "kubeconfig_config_key": "siteKube"},
    }
    del target["render_dir"]
    spec["targets"] = {"site": target}
    assert offline_config(DeploymentSpec.model_validate(spec)) == {"inferstack:siteKube": OFFLINE_SECRET}
    assert offline_config(DeploymentSpec.model_validate(ONPREM_SPEC)) == {"inferstack:kubeconfig": OFFLINE_SECRET}


def test_the_placeholder_secret_is_set_for_one_run_only():
    record_plan(onprem_plan("apply"))  # sets inferstack:siteKubeconfig while it runs
    assert pulumi.runtime.get_config("inferstack:siteKubeconfig") is None


def test_render_mode_without_a_directory_is_an_error():
    with pytest.raises(ManifestError, match="render mode needs the directory"):
        record_plan(onprem_plan("render", render_dir=None))


def test_the_mocks_echo_kubernetes_objects_and_report_a_deployed_release():
    from pulumi.runtime.mocks import MockResourceArgs

    from inferstack.offline.mocks import CloudMocks

    mocks = CloudMocks()
    rid, state = mocks.new_resource(
        MockResourceArgs("kubernetes:apps/v1:Deployment", "d", {"metadata": {"name": "e", "namespace": NS}}, None, "")
    )
    assert rid == f"{NS}/e" and state["metadata"]["name"] == "e" and state["metadata"]["uid"]
    assert "arn" not in state
    rid, state = mocks.new_resource(
        MockResourceArgs(
            "kubernetes:helm.sh/v3:Release",
            "r",
            {"name": "gpu-operator", "namespace": OP_NS, "chart": "gpu-operator", "version": "v25.10.0"},
            None,
            "",
        )
    )
    assert rid == f"{OP_NS}/gpu-operator"
    assert state["status"]["status"] == "deployed" and state["status"]["version"] == "v25.10.0"
