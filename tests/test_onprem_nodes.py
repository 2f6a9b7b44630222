"""On-prem pools and node configuration: the GPU catalog, what a pool offers a replica, the node
patches, the GPU operator's values and config maps, the GitOps objects, and the spec checks."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
from ruamel.yaml import YAML

from inferstack import catalog
from inferstack.catalog import GIB
from inferstack.planning import policy_config
from inferstack.planning.onprem import nodes as nodes_mod
from inferstack.planning.onprem.nodes import (
    DEVICE_PLUGIN_CONFIG_LABEL,
    DEVICE_PLUGIN_CONFIG_MAP,
    MIG_CONFIG_LABEL,
    MIG_CONFIG_MAP,
    config_text,
    plan_node_config,
)
from inferstack.planning.onprem.pools import (
    DEDICATED_TAINT,
    POOL_LABEL,
    plan_pools,
    pool_label_value,
)
from inferstack.spec import checks
from inferstack.spec.models import DeploymentSpec

DIGEST = "sha256:0d4c8d8bd1b4dbbd4ec0a02c4ec7c2fa4f2e3db0e8ee7c1d9b3a1f0e5d6c7b8a"
# A minimal valid spec with one onprem-k8s target; tests replace its pools and models.
ONPREM_TEXT = f"""
version: 1
metadata: {{name: assistant, team: ml-platform, environment: dev, data_classification: internal}}
residency: {{jurisdiction: eu}}
models:
  llama-3-70b: {{parameters: 70.553706496B, precision: bf16, context_length: 8192, source: "s3://models-eu/llama/"}}
serving:
  engine: vllm
  image: registry.site.example/vllm/vllm-openai@{DIGEST}
targets:
  site:
    kind: onprem-k8s
    location: de
    cluster: {{version: "1.31"}}
    registry: registry.site.example/mirror
    pools:
      h100:
        nodes: [gpu-node-1, gpu-node-2]
        gpu: H100-80GB
        gpus_per_node: 8
        replicas: {{min: 1, max: 4}}
    weights: {{pvc: llama-weights, pvc_access_mode: ReadWriteMany}}
    autoscaling: {{target: 8}}
    gpu_operator: {{driver_repo_config: nvidia-driver-repos}}
    monitoring: {{service_monitor_labels: {{release: kube-prometheus-stack}}}}
"""
LABELS = {"managed-by": "inferstack"}
# A Kubernetes label value (apimachinery validation.IsValidLabelValue): 63 characters at most.
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def base() -> dict[str, Any]:
    return YAML(typ="safe").load(ONPREM_TEXT)


def spec_of(data: dict[str, Any]) -> DeploymentSpec:
    return DeploymentSpec.model_validate(data)


def with_pools(pools: dict[str, Any], target: dict[str, Any] | None = None, **models: Any) -> DeploymentSpec:
    data = base()
    data["targets"]["site"]["pools"] = pools
    data["targets"]["site"].update(target or {})
    if models:
        data["models"] = models
    return spec_of(data)


def pool(gpu: str, gpus: int = 8, sharing: dict | None = None, mx: int = 1, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"gpu": gpu, "gpus_per_node": gpus, "replicas": {"min": 1, "max": mx}}
    if "node_selector" not in extra:
        out["nodes"] = extra.pop("nodes", ["n-1"])
    out.update(extra)
    if sharing:
        out["sharing"] = sharing
    return out


def findings(spec: DeploymentSpec) -> list:
    target = spec.targets["site"]
    return checks.check_onprem(spec, "site", target) + checks._check_region(
        spec, ("targets", "site", "location"), target.region, target.cloud
    )


def errors(spec: DeploymentSpec) -> list[str]:
    return [f"{'.'.join(map(str, f.loc))}: {f.message}" for f in findings(spec) if f.severity == "error"]


# -- catalog -----------------------------------------------------------------------------------


def test_catalog_knows_the_datacenter_gpus_a_site_owns():
    gpus = catalog.gpu_models()
    for name in ("H100-80GB", "H100-PCIE-80GB", "H100-NVL-94GB", "H200-141GB", "A100-80GB", "A100-40GB"):
        assert gpus[name].supports_mig, name
    for name in ("L40S", "L4", "A10"):
        assert not gpus[name].supports_mig, name
    assert gpus["H100-80GB"].memory_mib == 80 * 1024 and gpus["H200-141GB"].memory_mib == 141 * 1024
    assert gpus["H100-80GB"].watts == 700 and gpus["L4"].watts == 72


def test_mig_profiles_are_the_guides_with_instances_and_memory():
    a100 = catalog.gpu_models()["A100-80GB"].mig_profiles
    assert list(a100) == ["1g.10gb", "1g.20gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"]
    assert (a100["3g.40gb"].instances, a100["3g.40gb"].memory_mib) == (2, 40 * 1024)
    assert (a100["1g.10gb"].instances, a100["7g.80gb"].instances) == (7, 1)
    assert next(iter(catalog.gpu_models()["A100-40GB"].mig_profiles)) == "1g.5gb"
    assert "3g.71gb" in catalog.gpu_models()["H200-141GB"].mig_profiles
    assert "3g.47gb" in catalog.gpu_models()["H100-NVL-94GB"].mig_profiles


@pytest.mark.parametrize("gpu", sorted(g for g, m in catalog.gpu_models().items() if m.supports_mig))
def test_every_profile_fits_its_gpu_and_names_a_valid_label(gpu):
    model = catalog.gpu_models()[gpu]
    for profile in model.mig_profiles.values():
        # The instances of one profile never take more than the GPU's memory.
        assert profile.instances * profile.memory_mib <= model.memory_mib
        # The memory in the name is the profile's share of the GPU, rounded (3g.40gb: 40 GB).
        assert abs(int(profile.name.split(".")[1].removesuffix("gb")) - profile.memory_mib / 1024) <= 1.5
        assert LABEL_VALUE.match(nodes_mod.mig_config_name(profile.name))


def test_catalog_knows_attention_heads():
    assert catalog.model_architectures()["llama-3-70b"].attention_heads == 64


def test_site_countries_are_residency_places_but_not_cloud_regions():
    known = catalog.known_regions()
    assert known["de"] == known["fr"] == known["gb"] == known["us"] == "onprem"
    eu = catalog.jurisdictions()["eu"]
    assert len(eu.sites) == 27 and "gb" not in eu.sites and "ch" not in eu.sites
    assert not eu.regions & eu.sites
    # The pack's cloud region lists are unchanged by the site countries.
    config = policy_config.derive(spec_of(base()))
    assert "de" not in config[policy_config.AWS_REGION]["allowedRegions"]
    assert "de" not in config[policy_config.REPLICAS]["allowedRegions"]


# -- pools -------------------------------------------------------------------------------------


def test_whole_gpus_take_the_smallest_tensor_parallel_degree_that_divides_the_heads():
    # Llama-3-70B in bf16 at 8k context needs ~147 GiB: three H100s hold it (216 GiB usable), but
    # 3 does not divide its 64 attention heads, so a replica takes 4 GPUs, two replicas a node.
    (h100,) = plan_pools(spec_of(base()), "site")
    assert (h100.resource, h100.devices_per_node, h100.devices_per_replica) == ("nvidia.com/gpu", 8, 4)
    assert h100.max_replicas_on_pool == 4
    assert h100.memory_bytes_per_device == 80 * GIB
    # The same weights under a name the catalog does not know: heads unknown, three GPUs do.
    custom = {"parameters": "70.553706496B", "precision": "bf16", "context_length": 8192, "source": "s3://models-eu/x/"}
    (p,) = plan_pools(with_pools({"h100": pool("H100-80GB")}, **{"custom-70b": custom}), "site")
    assert p.devices_per_replica == 3


def test_a_small_model_takes_one_gpu():
    small = {"parameters": "8B", "precision": "bf16", "context_length": 8192, "source": "s3://models-eu/8b/"}
    (p,) = plan_pools(with_pools({"l40s": pool("L40S", gpus=4)}, **{"llama-3-8b": small}), "site")
    assert (p.devices_per_replica, p.max_replicas_on_pool) == (1, 4)


def test_a_mig_pool_asks_for_the_slice_under_the_mixed_strategy():
    spec = with_pools({"a100": pool("A100-80GB", sharing={"mode": "mig", "profile": "3g.40gb"}, nodes=["a", "b"])})
    (p,) = plan_pools(spec, "site")
    assert p.resource == "nvidia.com/mig-3g.40gb"
    assert (p.devices_per_node, p.devices_per_replica, p.node_count) == (16, 1, 2)
    assert p.memory_bytes_per_device == 40 * GIB
    assert (p.sharing, p.mig_profile, p.time_slices) == ("mig", "3g.40gb", None)


def test_a_time_sliced_pool_asks_for_a_shared_gpu_and_counts_its_share_of_memory():
    small = {"parameters": "1B", "precision": "bf16", "context_length": 4096, "source": "s3://models-eu/1b/"}
    spec = with_pools({"l4": pool("L4", gpus=2, sharing={"mode": "time-slicing", "replicas": 4})}, **{"tiny": small})
    (p,) = plan_pools(spec, "site")
    assert (p.resource, p.devices_per_node, p.time_slices) == ("nvidia.com/gpu.shared", 8, 4)
    assert p.memory_bytes_per_device == 6 * GIB


def test_named_nodes_get_the_pool_label_selected_nodes_keep_the_clusters():
    spec = with_pools(
        {
            "b-named": pool("H100-80GB", nodes=["n-2", "n-1"]),
            "a-selected": pool("H100-80GB", node_selector={"gpu": "h100"}, node_count=3),
            "c-dedicated": pool("H100-80GB", nodes=["n-3"], dedicated_taint=True),
        }
    )
    selected, named, dedicated = plan_pools(spec, "site")  # in name order
    assert selected.name == "a-selected" and selected.nodes == () and selected.taint is None
    assert selected.node_selector == {"gpu": "h100"} and selected.node_count == 3
    value = pool_label_value(spec, "site", "b-named")
    assert named.node_selector == {POOL_LABEL: value} and named.nodes == ("n-2", "n-1")
    # Taints are the site's unless the pool opts in: a node's taint list is owned whole.
    assert named.taint is None and named.pod_tolerations == ()
    value = pool_label_value(spec, "site", "c-dedicated")
    assert dedicated.taint == {"key": DEDICATED_TAINT, "value": value, "effect": "NoSchedule"}
    assert dedicated.pod_tolerations == (
        {"key": DEDICATED_TAINT, "operator": "Equal", "value": value, "effect": "NoSchedule"},
    )


def test_a_pool_tolerates_the_sites_own_taints_before_inferstacks():
    site_taints = [
        {"key": "site.example/gpu", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "team", "value": "ml"},
    ]
    spec = with_pools({"p": pool("H100-80GB", nodes=["n-1"], tolerations=site_taints, dedicated_taint=True)})
    (p,) = plan_pools(spec, "site")
    assert p.pod_tolerations == (
        {"key": "site.example/gpu", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "team", "operator": "Equal", "value": "ml"},  # no effect: every effect of the key
        {"key": DEDICATED_TAINT, "operator": "Equal", "value": p.taint["value"], "effect": "NoSchedule"},
    )
    # The operator's node agents run where the engine does: they tolerate the site's taints too.
    v = config_of(spec).gpu_operator.values
    for toleration in p.tolerations:
        assert toleration in v["daemonsets"]["tolerations"]
        assert toleration in v["node-feature-discovery"]["worker"]["tolerations"]


@pytest.mark.parametrize(
    "change, loc, message",
    [
        ({"tolerations": [{"key": "k", "operator": "Exists", "value": "v"}]}, "value", "operator: Exists"),
        ({"tolerations": [{"key": "a b"}]}, "tolerations.0.key", "should match pattern"),
        ({"tolerations": [{"key": "k", "effect": "NoRun"}]}, "effect", "NoSchedule"),
        ({"dedicated_taint": True, "node_selector": {"g": "h"}, "node_count": 1}, "pools.p", "only named nodes"),
    ],
)
def test_bad_tolerations_and_taints_name_the_field(change, loc, message):
    from pydantic import ValidationError

    p = pool("H100-80GB", **change)
    if "node_selector" in change:
        p.pop("nodes", None)
    with pytest.raises(ValidationError) as error:
        with_pools({"p": p})
    assert loc in str(error.value) and message in str(error.value)


def test_render_mode_refuses_the_dedicated_taint():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="render mode writes no taints"):
        with_pools({"p": pool("H100-80GB", dedicated_taint=True)}, {"mode": "render", "render_dir": "out"})


def test_the_pool_label_value_is_a_label_value_even_for_long_names():
    data = base()
    data["metadata"]["name"] = "a-long-deployment-name-" + "d" * 9  # 32 characters, the most
    long_pool = "p" * 32
    data["targets"]["t" * 32] = data["targets"].pop("site")
    data["targets"]["t" * 32]["pools"] = {long_pool: pool("L4")}
    value = pool_label_value(spec_of(data), "t" * 32, long_pool)
    assert len(value) <= 63 and LABEL_VALUE.match(value)


# -- node configuration ------------------------------------------------------------------------


def mixed_site(**target: Any) -> DeploymentSpec:
    small = {"parameters": "8B", "precision": "bf16", "context_length": 8192, "source": "s3://models-eu/8b/"}
    return with_pools(
        {
            "h100": pool("H100-80GB", nodes=["h-1", "h-2"]),
            "a100": pool("A100-80GB", sharing={"mode": "mig", "profile": "3g.40gb"}, nodes=["a-1"]),
            "ts": pool("L40S", gpus=1, sharing={"mode": "time-slicing", "replicas": 2}, nodes=["t-1"]),
            "l4": pool("L4", nodes=["l-1"]),
            "cluster": pool("H100-80GB", node_selector={"gpu": "h100"}, node_count=2),
        },
        target,
        **{"llama-3-8b": small},
    )


def config_of(spec: DeploymentSpec, name: str = "site"):
    return plan_node_config(spec, name, LABELS)


def manifest(config, kind: str, name: str | None = None) -> dict:
    found = [m.body for m in config.manifests if m.kind == kind and (name is None or m.name == name)]
    assert len(found) == 1, [m.name for m in config.manifests]
    return found[0]


def test_node_patches_label_and_taint_named_nodes_only():
    spec = mixed_site()
    patches = {p.node: p for p in config_of(spec).node_patches}
    assert list(patches) == ["a-1", "h-1", "h-2", "l-1", "t-1"]  # the selected pool is not patched
    value = pool_label_value(spec, "site", "a100")
    assert patches["a-1"].labels == {POOL_LABEL: value, MIG_CONFIG_LABEL: "all-3g.40gb"}
    assert all(patch.taints == () for patch in patches.values())  # no dedicated_taint: the site's taints
    # A MIG-capable GPU serving whole GPUs is returned to whole GPUs; L4 has no MIG label at all.
    assert patches["h-1"].labels[MIG_CONFIG_LABEL] == "all-disabled"
    assert MIG_CONFIG_LABEL not in patches["l-1"].labels
    assert patches["t-1"].labels[DEVICE_PLUGIN_CONFIG_LABEL] == "time-slicing-2"
    assert DEVICE_PLUGIN_CONFIG_LABEL not in patches["h-1"].labels  # the default config
    for patch in patches.values():
        assert all(LABEL_VALUE.match(v) and len(v) <= 63 for v in patch.labels.values())


def test_the_mig_config_map_is_mig_parted_format():
    config = config_of(mixed_site())
    body = manifest(config, "ConfigMap", MIG_CONFIG_MAP)
    assert body["metadata"]["namespace"] == "gpu-operator"
    assert list(body["data"]) == ["config.yaml"]  # the key MIG manager reads
    parsed = YAML(typ="safe").load(body["data"]["config.yaml"])
    assert parsed == {
        "version": "v1",
        "mig-configs": {
            "all-3g.40gb": [{"devices": "all", "mig-enabled": True, "mig-devices": {"3g.40gb": 2}}],
            "all-disabled": [{"devices": "all", "mig-enabled": False}],
        },
    }


def test_the_device_plugin_config_map_is_the_plugins_format():
    body = manifest(config_of(mixed_site()), "ConfigMap", DEVICE_PLUGIN_CONFIG_MAP)
    data = {k: YAML(typ="safe").load(v) for k, v in body["data"].items()}
    assert data["default"] == {"version": "v1", "flags": {"migStrategy": "mixed"}}
    assert data["time-slicing-2"] == {
        "version": "v1",
        "flags": {"migStrategy": "mixed"},
        "sharing": {
            "timeSlicing": {
                "renameByDefault": True,
                "failRequestsGreaterThanOne": True,
                "resources": [{"name": "nvidia.com/gpu", "replicas": 2}],
            }
        },
    }
    assert all(re.match(r"^[-._a-zA-Z0-9]+$", key) for key in body["data"])  # ConfigMap key syntax


def test_config_text_keeps_the_order_of_keys():
    assert config_text({"version": "v1", "flags": {"b": 1, "a": 2}}) == "version: v1\nflags:\n  b: 1\n  a: 2\n"


def test_the_operator_namespace_is_privileged_and_declared_first():
    config = config_of(mixed_site())
    ns = config.manifests[0].body
    assert ns["kind"] == "Namespace" and ns["metadata"]["name"] == "gpu-operator"
    for mode in ("enforce", "audit", "warn"):
        assert ns["metadata"]["labels"][f"pod-security.kubernetes.io/{mode}"] == "privileged"
    assert ns["metadata"]["labels"]["managed-by"] == "inferstack"


def test_the_operator_is_a_pinned_release_with_values_from_the_spec():
    config = config_of(mixed_site(gpu_operator={"chart_version": "v25.10.0", "driver_version": "570.172.08"}))
    chart = config.gpu_operator
    assert (chart.chart, chart.version, chart.namespace) == ("gpu-operator", "v25.10.0", "gpu-operator")
    assert chart.repository == "https://helm.ngc.nvidia.com/nvidia"
    v = chart.values
    assert v["driver"]["enabled"] is True and v["driver"]["version"] == "570.172.08"
    assert v["mig"] == {"strategy": "mixed"}
    assert v["migManager"]["config"] == {"create": False, "name": MIG_CONFIG_MAP, "default": "all-disabled"}
    assert v["devicePlugin"]["config"] == {"create": False, "name": DEVICE_PLUGIN_CONFIG_MAP, "default": "default"}
    for key in ("toolkit", "devicePlugin", "dcgmExporter", "migManager", "gfd", "nfd"):
        assert v[key]["enabled"] is True, key
    assert v["cdi"] == {"enabled": True} and v["psa"] == {"enabled": False}
    # The DCGM exporter's ServiceMonitor, labelled for the site's Prometheus to select it.
    assert v["dcgmExporter"]["serviceMonitor"] == {
        "enabled": True,
        "additionalLabels": {"release": "kube-prometheus-stack"},
    }
    assert v["operator"]["runtimeClass"] == nodes_mod.RUNTIME_CLASS == "nvidia"
    # Every image comes from the site's mirror, at the public path below it.
    assert v["toolkit"]["repository"] == "registry.site.example/mirror/nvidia/k8s"
    assert v["operator"]["initContainer"]["repository"] == "registry.site.example/mirror/nvidia"
    assert v["migManager"]["repository"] == "registry.site.example/mirror/nvidia/cloud-native"
    assert (
        v["node-feature-discovery"]["image"]["repository"] == "registry.site.example/mirror/nfd/node-feature-discovery"
    )
    images = [x for x in _walk(v) if isinstance(x, tuple) and x[0] == "repository"]
    assert images and all(value.startswith("registry.site.example/mirror/") for _, value in images)
    # The operator's daemonsets and NFD workers run on the dedicated nodes.
    toleration = {"key": DEDICATED_TAINT, "operator": "Exists", "effect": "NoSchedule"}
    assert toleration in v["daemonsets"]["tolerations"]
    assert toleration in v["node-feature-discovery"]["worker"]["tolerations"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in v["daemonsets"]["tolerations"]


def _walk(node: Any):
    if isinstance(node, dict):
        for k, val in node.items():
            if isinstance(val, str):
                yield (k, val)
            yield from _walk(val)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


def test_a_preinstalled_driver_is_not_installed():
    v = config_of(mixed_site(gpu_operator={"driver": "preinstalled"})).gpu_operator.values
    assert v["driver"]["enabled"] is False and "version" not in v["driver"]


def test_an_operator_built_driver_gets_its_packages_from_the_sites_mirror():
    """driver.repoConfig.configMapName: the repo files the driver container's package manager reads
    (gpu-operator values.yaml, "Private mirror repository configuration"); nothing precompiled."""
    v = config_of(mixed_site(gpu_operator={"driver_repo_config": "site-repos"})).gpu_operator.values
    assert v["driver"]["repoConfig"] == {"configMapName": "site-repos"}
    assert "usePrecompiled" not in v["driver"] and v["driver"]["enabled"] is True


def test_a_precompiled_driver_is_its_branchs_image_with_no_package_mirror():
    op = {"driver_precompiled": True, "driver_version": "580"}
    v = config_of(mixed_site(gpu_operator=op)).gpu_operator.values
    assert v["driver"]["usePrecompiled"] is True and v["driver"]["version"] == "580"
    assert "repoConfig" not in v["driver"]
    assert v["driver"]["repository"] == "registry.site.example/mirror/nvidia"


@pytest.mark.parametrize(
    "operator, error",
    [
        ({}, True),  # the default: the operator builds the driver, from nowhere said
        ({"driver_version": "570.172.08"}, True),
        ({"driver_repo_config": "site-repos"}, False),
        ({"driver_precompiled": True, "driver_version": "580"}, False),
        ({"driver": "preinstalled"}, False),
        ({"manage": False}, False),  # the cluster's operator: its driver is the cluster's business
    ],
)
def test_an_operator_built_driver_must_name_its_source_inside_the_site(operator, error):
    found = [f for f in findings(mixed_site(gpu_operator=operator)) if f.severity == "error"]
    assert [f.loc for f in found] == ([("targets", "site", "gpu_operator", "driver")] if error else [])
    if error:
        message = found[0].message
        assert "driver_repo_config" in message and "driver_precompiled: true" in message
        assert "driver: preinstalled" in message


def test_no_runtime_class_is_declared_the_operator_owns_it():
    assert not [m for m in config_of(mixed_site()).manifests if m.kind == "RuntimeClass"]


def test_a_cluster_operator_is_configured_not_installed():
    config = config_of(mixed_site(gpu_operator={"manage": False, "namespace": "nvidia-gpu-operator"}))
    assert config.gpu_operator is None
    assert [m.kind for m in config.manifests] == ["ConfigMap", "ConfigMap"]
    assert {m.namespace for m in config.manifests} == {"nvidia-gpu-operator"}


def test_render_mode_declares_a_flux_release_instead():
    config = config_of(
        mixed_site(
            mode="render",
            render_dir="out",
            gpu_operator={"chart_version": "v25.10.0", "driver_repo_config": "nvidia-driver-repos"},
        )
    )
    assert config.gpu_operator is None
    repo = manifest(config, "HelmRepository")
    release = manifest(config, "HelmRelease")
    assert repo["apiVersion"] == "source.toolkit.fluxcd.io/v1" and release["apiVersion"] == "helm.toolkit.fluxcd.io/v2"
    assert repo["spec"]["url"] == "https://helm.ngc.nvidia.com/nvidia" and "type" not in repo["spec"]
    assert repo["metadata"]["namespace"] == release["metadata"]["namespace"] == "gpu-operator"
    chart = release["spec"]["chart"]["spec"]
    assert chart == {
        "chart": "gpu-operator",
        "version": "v25.10.0",
        "sourceRef": {"kind": "HelmRepository", "name": repo["metadata"]["name"]},
    }
    assert release["spec"]["install"] == release["spec"]["upgrade"] == {"crds": "CreateReplace"}
    spec = mixed_site()
    assert release["spec"]["values"] == nodes_mod.operator_values(spec.targets["site"], plan_pools(spec, "site"))
    assert next(m.kind for m in config.manifests) == "Namespace"


def test_render_mode_with_an_oci_mirror_and_flux():
    mirror = "oci://registry.site.example/charts/nvidia"
    config = config_of(mixed_site(mode="render", render_dir="out", gpu_operator={"chart_repository": mirror}))
    assert manifest(config, "HelmRepository")["spec"] == {"interval": "1h", "url": mirror, "type": "oci"}


@pytest.mark.parametrize(
    ("repository", "repo_url"),
    [
        ("oci://registry.site.example/charts/nvidia", "registry.site.example/charts/nvidia"),
        ("https://charts.site.example/nvidia", "https://charts.site.example/nvidia"),
    ],
)
def test_render_mode_declares_an_argocd_application(repository, repo_url):
    spec = mixed_site(mode="render", render_dir="out", gitops="argocd", gpu_operator={"chart_repository": repository})
    app = manifest(config_of(spec), "Application")
    assert app["apiVersion"] == "argoproj.io/v1alpha1" and app["metadata"]["namespace"] == "argocd"
    source = app["spec"]["source"]
    assert (source["repoURL"], source["chart"], source["targetRevision"]) == (repo_url, "gpu-operator", "v25.10.0")
    assert source["helm"]["valuesObject"]["mig"] == {"strategy": "mixed"}
    assert app["spec"]["destination"] == {"server": "https://kubernetes.default.svc", "namespace": "gpu-operator"}
    # Synced by itself (prune what the chart drops, revert drift), server-side (the ClusterPolicy CRD
    # is too large for client-side apply).
    assert app["spec"]["syncPolicy"] == {
        "automated": {"prune": True, "selfHeal": True},
        "syncOptions": ["ServerSideApply=true"],
    }


# -- checks ------------------------------------------------------------------------------------


def test_the_example_site_passes():
    assert findings(spec_of(base())) == []
    assert findings(mixed_site()) == []


def test_an_unknown_gpu_model_says_what_was_meant():
    (err,) = errors(with_pools({"h100": pool("H100-80G")}))
    assert err.startswith("targets.site.pools.h100.gpu: unknown GPU model 'H100-80G'")
    assert "did you mean 'H100-80GB'" in err and "L40S" in err


def test_a_mig_profile_of_another_gpu_lists_the_ones_that_exist():
    (err,) = errors(with_pools({"a": pool("A100-80GB", sharing={"mode": "mig", "profile": "3g.20gb"})}))
    assert err.startswith("targets.site.pools.a.sharing.profile: A100-80GB has no MIG profile '3g.20gb'")
    assert "3g.40gb (2 per GPU, 40 GiB)" in err and "1g.10gb (7 per GPU, 10 GiB)" in err


def test_mig_on_a_gpu_without_mig_is_refused():
    (err,) = errors(with_pools({"s": pool("L40S", sharing={"mode": "mig", "profile": "1g.12gb"})}))
    assert err.startswith("targets.site.pools.s.sharing.mode: L40S does not support MIG")
    assert "A100-80GB" in err and "time-slicing" in err


def test_time_slicing_on_a_gpu_that_cannot_be_sliced_is_refused(monkeypatch):
    gpus = dict(catalog.gpu_models())
    gpus["L4"] = catalog.GpuModel("L4", 24576, 72, False)
    monkeypatch.setattr(catalog, "gpu_models", lambda: gpus)
    small = {"parameters": "1B", "precision": "bf16", "context_length": 4096, "source": "s3://models-eu/1b/"}
    spec = with_pools({"l4": pool("L4", gpus=1, sharing={"mode": "time-slicing", "replicas": 2})}, **{"tiny": small})
    (err,) = errors(spec)
    assert err.startswith("targets.site.pools.l4.sharing.mode: L4 cannot be time-sliced")


def test_a_model_larger_than_a_node_is_refused_with_the_numbers():
    (err,) = errors(with_pools({"l4": pool("L4", gpus=4)}))
    assert err.startswith("targets.site.pools.l4.gpus_per_node: llama-3-70b in bf16 needs ~147.1 GiB")
    assert "one node of 4x L4 (24 GiB) offers 86.4 GiB usable" in err


def test_a_node_whose_gpu_count_divides_no_heads_says_so():
    # Three H100s hold Llama-3-70B's memory, but no degree up to 3 divides its 64 heads but 1 and 2.
    (err,) = errors(with_pools({"h": pool("H100-80GB", gpus=3)}))
    assert "tensor parallelism must also divide its 64 attention heads" in err


def test_a_model_larger_than_a_mig_slice_is_refused():
    (err,) = errors(with_pools({"a": pool("A100-80GB", sharing={"mode": "mig", "profile": "3g.40gb"})}))
    assert err.startswith("targets.site.pools.a.sharing: llama-3-70b in bf16 needs")
    assert "a 3g.40gb MIG slice of A100-80GB offers 36.0 GiB usable" in err


def test_a_model_larger_than_a_time_slice_is_refused():
    small = {"parameters": "8B", "precision": "bf16", "context_length": 8192, "source": "s3://models-eu/8b/"}
    spec = with_pools({"l4": pool("L4", gpus=1, sharing={"mode": "time-slicing", "replicas": 4})}, **{"m": small})
    (err,) = errors(spec)
    assert "one of 4 time slices of L4 (24 GiB) (they share its memory) offers 5.4 GiB usable" in err


def test_replica_bounds_beyond_the_pools_devices_say_how_many_fit():
    data = base()
    data["targets"]["site"]["pools"]["h100"]["replicas"]["max"] = 5
    (err,) = errors(spec_of(data))
    assert err.startswith("targets.site.pools.h100.replicas.max: the pool holds at most 4 replicas")
    assert "2 nodes x 2 per node" in err and "got max 5" in err


def test_mig_replica_bounds_count_slices():
    spec = with_pools(
        {"a": pool("A100-80GB", gpus=2, sharing={"mode": "mig", "profile": "7g.80gb"}, mx=3)},
        **{"m": {"parameters": "8B", "precision": "bf16", "context_length": 8192, "source": "s3://models-eu/8b/"}},
    )
    (err,) = errors(spec)
    assert "holds at most 2 replicas" in err and "nvidia.com/mig-7g.80gb" in err


def test_a_node_in_two_pools_is_refused():
    spec = with_pools({"a": pool("H100-80GB", nodes=["n-1", "n-2"]), "b": pool("H100-80GB", nodes=["n-3", "n-2"])})
    (err,) = errors(spec)
    assert (
        err == "targets.site.pools.b.nodes.1: node 'n-2' is already in targets.site.pools.a; a node belongs to one pool"
    )


def test_a_node_in_pools_of_two_targets_is_refused():
    data = base()
    data["targets"]["zone-b"] = copy.deepcopy(data["targets"]["site"])
    spec = spec_of(data)
    assert checks.check_onprem(spec, "site", spec.targets["site"]) == []
    problems = checks.check_onprem(spec, "zone-b", spec.targets["zone-b"])
    assert [f.message for f in problems] == [
        "node 'gpu-node-1' is already in targets.site.pools.h100; a node belongs to one pool",
        "node 'gpu-node-2' is already in targets.site.pools.h100; a node belongs to one pool",
    ]


def test_a_selected_mig_pool_must_select_the_mig_label():
    sharing = {"mode": "mig", "profile": "1g.10gb"}
    small = {"m": {"parameters": "1B", "precision": "bf16", "context_length": 4096, "source": "s3://models-eu/1b/"}}
    bad = with_pools({"a": pool("A100-80GB", sharing=sharing, node_selector={"gpu": "a100"}, node_count=1)}, **small)
    (err,) = errors(bad)
    assert err.startswith("targets.site.pools.a.node_selector: a mig pool selected by labels is not patched")
    assert "nvidia.com/mig.config=all-1g.10gb" in err
    good_selector = {"gpu": "a100", MIG_CONFIG_LABEL: "all-1g.10gb"}
    good = with_pools({"a": pool("A100-80GB", sharing=sharing, node_selector=good_selector, node_count=1)}, **small)
    assert errors(good) == []


def test_a_selected_time_sliced_pool_must_select_the_device_plugin_label():
    sharing = {"mode": "time-slicing", "replicas": 2}
    small = {"m": {"parameters": "1B", "precision": "bf16", "context_length": 4096, "source": "s3://models-eu/1b/"}}
    (err,) = errors(with_pools({"l": pool("L4", 1, sharing, node_selector={"g": "l4"}, node_count=1)}, **small))
    assert "nvidia.com/device-plugin.config=time-slicing-2" in err
    selector = {"g": "l4", DEVICE_PLUGIN_CONFIG_LABEL: "time-slicing-2"}
    assert errors(with_pools({"l": pool("L4", 1, sharing, node_selector=selector, node_count=1)}, **small)) == []


def test_a_cluster_operator_gets_warnings_about_what_it_must_read_and_tolerate():
    kept = findings(mixed_site(gpu_operator={"manage": False}))
    assert [f.severity for f in kept] == ["warning", "warning"]
    assert {f.loc for f in kept} == {("targets", "site", "gpu_operator", "manage")}
    assert MIG_CONFIG_MAP in kept[0].message and "mig.strategy=mixed" in kept[0].message
    assert "runtimeClassName 'nvidia'" in kept[1].message
    # A taint inferstack adds, or the site's that the pools tolerate: the cluster's operator must tolerate it.
    tainted = with_pools(
        {"p": pool("H100-80GB", dedicated_taint=True, tolerations=[{"key": "site/gpu", "operator": "Exists"}])},
        {"gpu_operator": {"manage": False}},
    )
    extra = [f.message for f in findings(tainted)]
    assert len(extra) == 3 and DEDICATED_TAINT in extra[1] and "the site's taints" in extra[2]
    # A whole-GPU pool selected by the cluster's labels needs only the runtime class.
    whole = with_pools(
        {"c": pool("H100-80GB", node_selector={"g": "h100"}, node_count=2)}, {"gpu_operator": {"manage": False}}
    )
    assert [f.message for f in findings(whole)] == [kept[1].message]


@pytest.mark.parametrize(
    ("residency", "location", "problem"),
    [
        ({"jurisdiction": "eu"}, "de", None),
        (
            {"jurisdiction": "eu"},
            "us",
            "site country 'us' is outside residency jurisdiction 'eu'; allowed site countries: at, be",
        ),
        ({"regions": ["de"]}, "de", None),
        (
            {"regions": ["de"]},
            "fr",
            "site country 'fr' is outside residency regions ['de']; allowed site countries: de",
        ),
        ({"jurisdiction": "uk"}, "gb", None),
        ({"jurisdiction": "eu"}, "xx", "unknown site country 'xx'"),
    ],
)
def test_the_site_location_is_checked_against_residency(residency, location, problem):
    data = base()
    data["residency"] = residency
    data["targets"]["site"]["location"] = location
    found = [f.message for f in findings(spec_of(data))]
    assert found == [] if problem is None else found[0].startswith(problem), found


@pytest.mark.parametrize(
    ("selector", "problem"),
    [
        ({"gpu": "h100", "example.com/rack": "r-1"}, None),
        ({"gpu": "h100 sxm"}, "targets.site.pools.c.node_selector.gpu: 'h100 sxm' is not a label value"),
        ({"-gpu": "h100"}, "targets.site.pools.c.node_selector.-gpu: is not a label key"),
        ({"gpu": "x" * 64}, "targets.site.pools.c.node_selector.gpu:"),
    ],
)
def test_a_selector_must_be_labels_the_api_server_accepts(selector, problem):
    found = errors(with_pools({"c": pool("H100-80GB", node_selector=selector, node_count=1)}))
    assert found == [] if problem is None else found[0].startswith(problem), found


# -- the mig-parted format, as the GPU Operator docs ("GPU Operator with MIG", custom MIG
# configuration) and its default config (v25.10.0 assets/state-mig-manager) write it ---------------


def test_the_mig_config_map_has_mig_parteds_format():
    ours = YAML(typ="safe").load(manifest(config_of(mixed_site()), "ConfigMap", MIG_CONFIG_MAP)["data"]["config.yaml"])
    assert ours["version"] == "v1"
    assert ours["mig-configs"]["all-disabled"] == [{"devices": "all", "mig-enabled": False}]
    assert ours["mig-configs"]["all-3g.40gb"] == [
        {"devices": "all", "mig-enabled": True, "mig-devices": {"3g.40gb": 2}}
    ]


def two_targets_on_one_cluster(**other: Any) -> DeploymentSpec:
    data = base()
    small = {"parameters": "8B", "precision": "bf16", "context_length": 8192, "source": "s3://models-eu/8b/"}
    data["models"]["llama-3-8b"] = small
    data["targets"]["site"]["model"] = "llama-3-70b"
    data["targets"]["zone-b"] = {
        **copy.deepcopy(data["targets"]["site"]),
        "model": "llama-3-8b",
        "pools": {"a100": pool("A100-80GB", sharing={"mode": "mig", "profile": "2g.20gb"}, nodes=["a-1"])},
        **other,
    }
    return spec_of(data)


def test_targets_on_one_cluster_share_one_operator_declared_by_the_first():
    spec = two_targets_on_one_cluster()
    first, second = config_of(spec, "site"), config_of(spec, "zone-b")
    assert first.gpu_operator is not None and second.gpu_operator is None and second.manifests == ()
    assert [p.node for p in second.node_patches] == ["a-1"]
    assert [p.node for p in first.node_patches] == ["gpu-node-1", "gpu-node-2"]
    mig = YAML(typ="safe").load(manifest(first, "ConfigMap", MIG_CONFIG_MAP)["data"]["config.yaml"])
    assert "all-2g.20gb" in mig["mig-configs"]  # the second target's profile, in the first's map
    assert findings(spec) == [] and checks.check_onprem(spec, "zone-b", spec.targets["zone-b"]) == []


def test_targets_on_one_cluster_must_agree_on_the_operator():
    spec = two_targets_on_one_cluster(gpu_operator={"driver": "preinstalled"})
    (problem,) = checks.check_onprem(spec, "zone-b", spec.targets["zone-b"])
    assert problem.loc == ("targets", "zone-b", "gpu_operator")
    assert "one GPU operator, declared by 'site'" in problem.message
    # Another cluster (another context) has its own operator.
    other = two_targets_on_one_cluster(
        gpu_operator={"driver": "preinstalled"}, cluster={"version": "1.31", "context": "b"}
    )
    assert checks.check_onprem(other, "zone-b", other.targets["zone-b"]) == []
    assert config_of(other, "zone-b").gpu_operator is not None


def test_every_image_the_values_name_comes_from_the_mirror():
    """The images of every component the chart deploys (v25.10.0 values.yaml: operator, driver and its
    manager, toolkit, device plugin, DCGM exporter, GFD, MIG manager, NFD) are overridden to the mirror."""
    ours = nodes_mod.operator_values(mixed_site().targets["site"])
    repos = [v for k, v in _walk(ours) if k == "repository"]
    assert len(repos) >= 9 and all(v.startswith("registry.site.example/mirror/") for v in repos), repos


def test_the_dcgm_exporter_maps_time_sliced_gpus_to_their_pods_only_when_a_pool_shares_them():
    """Time-sliced GPUs are nvidia.com/gpu.shared: the exporter needs the name, and its virtual-GPU
    mode, to label their series with the pods (dcgm-exporter --nvidia-resource-names,
    --kubernetes-virtual-gpus); whole and MIG GPUs need neither."""
    spec = mixed_site()
    shared = nodes_mod.operator_values(spec.targets["site"], plan_pools(spec, "site"))
    assert shared["dcgmExporter"]["env"] == [
        {"name": "NVIDIA_RESOURCE_NAMES", "value": "nvidia.com/gpu.shared"},
        {"name": "KUBERNETES_VIRTUAL_GPUS", "value": "true"},
    ]
    whole = with_pools({"h100": pool("H100-80GB", nodes=["h-1"])})
    assert "env" not in nodes_mod.operator_values(whole.targets["site"], plan_pools(whole, "site"))["dcgmExporter"]
