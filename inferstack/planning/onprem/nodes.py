"""Node configuration of an on-prem target: labels and taints on the pools' nodes, the NVIDIA GPU
Operator, and the MIG and time-slicing config maps the operator reads.

Facts used here, checked against NVIDIA/gpu-operator v25.10.0 (deployments/gpu-operator/values.yaml,
templates/clusterpolicy.yaml, controllers/object_controls.go, controllers/state_manager.go) and the
GPU Operator docs ("GPU Operator with MIG", "Time-Slicing GPUs in Kubernetes"):

- MIG manager reads a mig-parted config (`version: v1`, `mig-configs: {<name>: [{devices: all,
  mig-enabled: true, mig-devices: {<profile>: <count>}}]}`) from the ConfigMap named by
  `migManager.config.name` (key `config.yaml`), and applies to each node the entry its label
  `nvidia.com/mig.config` names; `migManager.config.default` applies to unlabelled nodes.
- The device plugin reads its config (`version: v1`, `flags`, `sharing.timeSlicing`) from the
  ConfigMap named by `devicePlugin.config.name`, one key per config; a node's label
  `nvidia.com/device-plugin.config` names its key, `devicePlugin.config.default` the others'.
- The operator creates and keeps the RuntimeClass `operator.runtimeClass` (handler of the same
  name) itself, owned by its ClusterPolicy (object_controls.go, transformRuntimeClass: it updates
  an existing one). inferstack therefore pins the name in the values and does not declare a second
  owner of the same object; the serving pods use RUNTIME_CLASS.
- The operator's pods (driver, toolkit, device plugin, MIG manager) are privileged with host
  paths; its namespace must allow them (the operator itself labels it `privileged` for enforce,
  audit and warn when `psa.enabled`, state_manager.go setPodSecurityLabelsForNamespace). inferstack
  owns that namespace and its labels instead, so the operator is left `psa.enabled: false` and
  does not patch an object Pulumi owns.
"""

from __future__ import annotations

import copy
import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML

from inferstack import catalog
from inferstack.planning.onprem import HelmChart, Manifest, NodePatch, PoolPlan
from inferstack.planning.onprem.pools import DEDICATED_TAINT, GPU_RESOURCE, MIG_STRATEGY, plan_pools
from inferstack.spec.models import DeploymentSpec, OnPremK8sTarget

CHART = "gpu-operator"
RELEASE = "gpu-operator"
RUNTIME_CLASS = "nvidia"
MIG_CONFIG_LABEL = "nvidia.com/mig.config"
DEVICE_PLUGIN_CONFIG_LABEL = "nvidia.com/device-plugin.config"
MIG_CONFIG_MAP = "inferstack-mig-parted-config"
DEVICE_PLUGIN_CONFIG_MAP = "inferstack-device-plugin-config"
MIG_DISABLED = "all-disabled"  # the chart's default MIG config name, kept in ours
DEVICE_PLUGIN_DEFAULT = "default"
PRIVILEGED_REASON = "inferstack.io/privileged-reason"  # the policy pack's annotation for the opt-out
PRIVILEGED_WHY = (
    "NVIDIA GPU Operator operands (driver, container toolkit, device plugin, MIG manager, DCGM "
    "exporter) run privileged with host paths to install and manage the GPU stack on the nodes"
)
PRIVILEGED_PSS = {f"pod-security.kubernetes.io/{mode}": "privileged" for mode in ("enforce", "audit", "warn")}
# Flux's GA APIs (Flux 2.3+, "Helm Releases" and "Helm Repositories" docs); Argo CD's Application.
FLUX_SOURCE_API = "source.toolkit.fluxcd.io/v1"
FLUX_HELM_API = "helm.toolkit.fluxcd.io/v2"
ARGOCD_API = "argoproj.io/v1alpha1"
ARGOCD_NAMESPACE = "argocd"
# Images the chart pulls, by values key, and their public repositories (values.yaml v25.10.0).
_IMAGES = {
    "operator": "nvcr.io/nvidia",
    "validator": "nvcr.io/nvidia",
    "driver": "nvcr.io/nvidia",
    "toolkit": "nvcr.io/nvidia/k8s",
    "devicePlugin": "nvcr.io/nvidia",
    "dcgmExporter": "nvcr.io/nvidia/k8s",
    "gfd": "nvcr.io/nvidia",
    "migManager": "nvcr.io/nvidia/cloud-native",
}
_DRIVER_MANAGER_IMAGE = "nvcr.io/nvidia/cloud-native"
_NFD_IMAGE = "registry.k8s.io/nfd/node-feature-discovery"
# The chart's default daemonset toleration, kept when the list is replaced.
_GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
_DEDICATED_TOLERATION = {"key": DEDICATED_TAINT, "operator": "Exists", "effect": "NoSchedule"}
_CONTROL_PLANE_TOLERATION = {
    "key": "node-role.kubernetes.io/control-plane",
    "operator": "Equal",
    "value": "",
    "effect": "NoSchedule",
}


@dataclass(frozen=True)
class NodeConfig:
    """What configures the pools' nodes: patches, the operator release (apply mode), and objects."""

    node_patches: tuple[NodePatch, ...]
    gpu_operator: HelmChart | None
    manifests: tuple[Manifest, ...]  # namespace first, then config maps, then GitOps objects


def mig_config_name(profile: str) -> str:
    """The mig-parted config that splits every GPU of a node into one profile (the operator's own
    default config uses the same all-<profile> names)."""
    return f"all-{profile}"


def time_slicing_config_name(replicas: int) -> str:
    return f"time-slicing-{replicas}"


def config_text(data: Any) -> str:
    """A config file as the operator's components read it (YAML, keys in the order given)."""
    out = io.StringIO()
    yaml = YAML(typ="safe")
    yaml.default_flow_style = False
    yaml.sort_base_mapping_type_on_output = False
    yaml.dump(data, out)
    return out.getvalue()


def mig_parted_config(pools: tuple[PoolPlan, ...]) -> dict[str, Any]:
    """mig-parted's config: all-disabled (for whole-GPU pools and unlabelled nodes) and one
    all-<profile> entry per profile a pool uses, every GPU split into the most instances of it."""
    configs: dict[str, Any] = {MIG_DISABLED: [{"devices": "all", "mig-enabled": False}]}
    for pool in pools:
        if pool.mig_profile is None:
            continue
        per_gpu = pool.devices_per_node // pool.gpus_per_node
        configs[mig_config_name(pool.mig_profile)] = [
            {"devices": "all", "mig-enabled": True, "mig-devices": {pool.mig_profile: per_gpu}}
        ]
    return {"version": "v1", "mig-configs": dict(sorted(configs.items()))}


def device_plugin_configs(pools: tuple[PoolPlan, ...]) -> dict[str, dict[str, Any]]:
    """The device plugin's configs by key: the default (no sharing) and one per time-slicing
    replica count. renameByDefault advertises slices as nvidia.com/gpu.shared, and
    failRequestsGreaterThanOne refuses a pod asking for more than one (pools.py says why)."""
    flags = {"migStrategy": MIG_STRATEGY}
    configs: dict[str, dict[str, Any]] = {DEVICE_PLUGIN_DEFAULT: {"version": "v1", "flags": flags}}
    for pool in pools:
        if pool.time_slices is None:
            continue
        configs[time_slicing_config_name(pool.time_slices)] = {
            "version": "v1",
            "flags": flags,
            "sharing": {
                "timeSlicing": {
                    "renameByDefault": True,
                    "failRequestsGreaterThanOne": True,
                    "resources": [{"name": GPU_RESOURCE, "replicas": pool.time_slices}],
                }
            },
        }
    return dict(sorted(configs.items()))


def node_patches(pools: tuple[PoolPlan, ...]) -> tuple[NodePatch, ...]:
    """Labels (and, for a pool with dedicated_taint, its taint) for every named node, sorted by
    node name. A MIG-capable GPU in a whole-GPU or time-slicing pool gets all-disabled, so a node
    that was split before is returned to whole GPUs; a pool selected by the cluster's labels is not
    patched.

    Labels merge key by key under server-side apply, but a Node's `spec.taints` is an atomic list
    (k8s.io/api core/v1 types.go, `+listType=atomic`): whoever applies it owns all of it. So taints
    are the site's unless the spec opts in (pools.py), and the opt-in is applied without forcing
    conflicts: a node whose taints another manager owns fails the apply loudly instead of losing
    that manager's taints."""
    patches = []
    for pool in pools:
        gpu = catalog.gpu_models()[pool.gpu]
        labels = dict(pool.node_selector)
        if pool.mig_profile is not None:
            labels[MIG_CONFIG_LABEL] = mig_config_name(pool.mig_profile)
        elif gpu.supports_mig:
            labels[MIG_CONFIG_LABEL] = MIG_DISABLED
        if pool.time_slices is not None:
            labels[DEVICE_PLUGIN_CONFIG_LABEL] = time_slicing_config_name(pool.time_slices)
        taints = (dict(pool.taint),) if pool.taint else ()
        patches += [NodePatch(node, dict(sorted(labels.items())), taints) for node in pool.nodes]
    return tuple(sorted(patches, key=lambda p: p.node))


def mirrored(repository: str, registry: str) -> str:
    """A public image repository under the site's mirror, same path below its root
    (nvcr.io/nvidia/k8s -> <mirror>/nvidia/k8s)."""
    return f"{registry}/{repository.split('/', 1)[1]}"


def site_tolerations(pools: tuple[PoolPlan, ...]) -> list[dict[str, str]]:
    """The site's taints that the cluster's pools tolerate, once each, in a stable order."""
    seen = {tuple(sorted(t.items())): dict(t) for pool in pools for t in pool.tolerations}
    return [seen[k] for k in sorted(seen)]


def operator_values(target: OnPremK8sTarget, pools: tuple[PoolPlan, ...] = ()) -> dict[str, Any]:
    """The chart's values (NVIDIA/gpu-operator v25.10.0 values.yaml keys): every component the
    pools need, its image from the site's mirror, tolerations for the dedicated taint and for the
    site's taints on the cluster's `pools` (the operator's agents must run where the engine does)."""
    op = target.gpu_operator
    values: dict[str, Any] = {key: {"repository": mirrored(repo, target.registry)} for key, repo in _IMAGES.items()}
    values["operator"]["runtimeClass"] = RUNTIME_CLASS
    values["operator"]["initContainer"] = {"repository": mirrored(_IMAGES["operator"], target.registry)}  # cuda
    values["driver"]["enabled"] = op.driver == "operator"
    values["driver"]["manager"] = {"repository": mirrored(_DRIVER_MANAGER_IMAGE, target.registry)}
    if op.driver_version is not None:
        values["driver"]["version"] = op.driver_version  # with usePrecompiled: the branch
    # Where the driver's packages come from, inside the site (the spec checks say one is named):
    # repo files pointing at the site's mirror, or a precompiled image that needs none.
    if op.driver_repo_config is not None:
        values["driver"]["repoConfig"] = {"configMapName": op.driver_repo_config}
    if op.driver_precompiled:
        values["driver"]["usePrecompiled"] = True
    values["toolkit"]["enabled"] = True
    values["devicePlugin"].update(
        enabled=True, config={"create": False, "name": DEVICE_PLUGIN_CONFIG_MAP, "default": DEVICE_PLUGIN_DEFAULT}
    )
    values["dcgmExporter"]["enabled"] = True  # GPU metrics for the scraper the spec allows in
    # The chart's own ServiceMonitor for the exporter (values.yaml dcgmExporter.serviceMonitor), with
    # the labels the site's Prometheus selects ServiceMonitors by: off, or unlabelled, nothing scrapes it.
    values["dcgmExporter"]["serviceMonitor"] = {
        "enabled": True,
        "additionalLabels": dict(target.monitoring.service_monitor_labels),
    }
    if any(pool.time_slices is not None for pool in pools):
        # Time-sliced GPUs are advertised as nvidia.com/gpu.shared (renameByDefault): without these
        # the exporter maps no pod to them, and their series carry no namespace to select by
        # (dcgm-exporter flags --nvidia-resource-names, --kubernetes-virtual-gpus).
        values["dcgmExporter"]["env"] = [
            {"name": "NVIDIA_RESOURCE_NAMES", "value": f"{GPU_RESOURCE}.shared"},
            {"name": "KUBERNETES_VIRTUAL_GPUS", "value": "true"},
        ]
    values["gfd"]["enabled"] = True  # GPU feature discovery: nvidia.com/gpu.product and MIG labels
    values["migManager"].update(enabled=True, config={"create": False, "name": MIG_CONFIG_MAP, "default": MIG_DISABLED})
    values["mig"] = {"strategy": MIG_STRATEGY}
    values["nfd"] = {"enabled": True}
    # CDI: the device plugin injects only the devices a pod was allocated (cdi-annotations,cdi-cri,
    # object_controls.go transformDevicePluginCtrForCDI), not whatever NVIDIA_VISIBLE_DEVICES says.
    values["cdi"] = {"enabled": True}
    values["psa"] = {"enabled": False}  # inferstack labels the namespace (module docstring)
    # No VM passthrough or vGPU stack on serving nodes: fewer privileged operands, and no image
    # the mirror would have to carry.
    for key in ("sandboxWorkloads", "vgpuManager", "vgpuDeviceManager", "vfioManager", "sandboxDevicePlugin"):
        values[key] = {"enabled": False}
    fixed = [_GPU_TOLERATION, _DEDICATED_TOLERATION]
    tolerations = [*fixed, *(t for t in site_tolerations(pools) if t not in fixed)]
    values["daemonsets"] = {"tolerations": tolerations}
    values["node-feature-discovery"] = {
        "image": {"repository": mirrored(_NFD_IMAGE, target.registry)},
        "worker": {"tolerations": [_CONTROL_PLANE_TOLERATION, *tolerations]},
    }
    # A fresh tree per call: the module's toleration dicts are never shared with a caller.
    return copy.deepcopy(dict(sorted(values.items())))


def _metadata(name: str, namespace: str | None, labels: Mapping[str, str]) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": dict(labels)}
    if namespace is not None:
        meta["namespace"] = namespace
    return meta


def _oci(url: str) -> bool:
    return url.startswith("oci://")


def gitops_manifests(
    target: OnPremK8sTarget, labels: Mapping[str, str], pools: tuple[PoolPlan, ...] = ()
) -> tuple[Manifest, ...]:
    """The operator chart as a GitOps object, pointing at the site's chart repository.

    Flux: a HelmRepository and a HelmRelease in the operator's namespace (no cross-namespace
    source reference, which hardened Flux installs refuse), with the chart's CRDs created and
    replaced on upgrade (`crds: CreateReplace`; Helm itself never upgrades CRDs). fluxcd.io,
    "Helm Releases" and "Helm Repositories" (an OCI registry is `type: oci`).
    Argo CD: an Application in the argocd namespace; values as `valuesObject`, an OCI chart
    repository named without its `oci://` scheme (argo-cd.readthedocs.io, user guide "Helm"); synced
    automatically with pruning and self-heal (what Flux's HelmRelease does by itself); and
    server-side apply, because the ClusterPolicy CRD is too large for client-side apply's
    last-applied annotation (NVIDIA/gpu-operator issue #194).
    """
    op = target.gpu_operator
    ns = op.namespace
    values = operator_values(target, pools)
    if target.gitops == "flux":
        repo_name = f"{CHART}-charts"
        repository: dict[str, Any] = {"interval": "1h", "url": op.chart_repository}
        if _oci(op.chart_repository):
            repository["type"] = "oci"
        return (
            Manifest(
                {
                    "apiVersion": FLUX_SOURCE_API,
                    "kind": "HelmRepository",
                    "metadata": _metadata(repo_name, ns, labels),
                    "spec": repository,
                }
            ),
            Manifest(
                {
                    "apiVersion": FLUX_HELM_API,
                    "kind": "HelmRelease",
                    "metadata": _metadata(RELEASE, ns, labels),
                    "spec": {
                        "interval": "10m",
                        "releaseName": RELEASE,
                        "chart": {
                            "spec": {
                                "chart": CHART,
                                "version": op.chart_version,
                                "sourceRef": {"kind": "HelmRepository", "name": repo_name},
                            }
                        },
                        "install": {"crds": "CreateReplace"},
                        "upgrade": {"crds": "CreateReplace"},
                        "values": values,
                    },
                }
            ),
        )
    return (
        Manifest(
            {
                "apiVersion": ARGOCD_API,
                "kind": "Application",
                "metadata": _metadata(RELEASE, ARGOCD_NAMESPACE, labels),
                "spec": {
                    "project": "default",
                    "source": {
                        "repoURL": op.chart_repository.removeprefix("oci://"),
                        "chart": CHART,
                        "targetRevision": op.chart_version,
                        "helm": {"releaseName": RELEASE, "valuesObject": values},
                    },
                    "destination": {"server": "https://kubernetes.default.svc", "namespace": ns},
                    # Synced by itself, like Flux's HelmRelease: a new chart version or values in
                    # Git roll out, objects the chart drops are pruned, and drift on the cluster is
                    # reverted (argo-cd.readthedocs.io, "Automated Sync Policy": automated.prune,
                    # automated.selfHeal; "Sync Options": ServerSideApply=true).
                    "syncPolicy": {
                        "automated": {"prune": True, "selfHeal": True},
                        "syncOptions": ["ServerSideApply=true"],
                    },
                },
            }
        ),
    )


def cluster_peers(spec: DeploymentSpec, name: str) -> tuple[str, ...]:
    """The on-prem targets on the same cluster as `name` (same kubeconfig key and context), in name
    order. A cluster has one GPU operator and one MIG and one device-plugin config map: the first
    of its targets declares them, for the pools of all of them (the spec checks that their
    gpu_operator sections agree)."""
    here = spec.targets[name]
    assert isinstance(here, OnPremK8sTarget)
    key = (here.cluster.kubeconfig_config_key, here.cluster.context)
    return tuple(
        n
        for n in sorted(spec.targets)
        if isinstance(t := spec.targets[n], OnPremK8sTarget)
        and (t.cluster.kubeconfig_config_key, t.cluster.context) == key
    )


def plan_node_config(spec: DeploymentSpec, name: str, labels: Mapping[str, str]) -> NodeConfig:
    """Patches for the target's named nodes; and, from the first target on its cluster, the
    operator (a Helm release in apply mode, a GitOps object in render mode) and its config maps,
    covering every pool on the cluster. With gpu_operator.manage false the cluster's operator and
    its namespace are kept; the config maps are still written there for it to read (the spec
    checks warn)."""
    target = spec.targets[name]
    assert isinstance(target, OnPremK8sTarget)
    patches = node_patches(plan_pools(spec, name))
    peers = cluster_peers(spec, name)
    if peers[0] != name:
        return NodeConfig(patches, None, ())
    pools = tuple(pool for peer in peers for pool in plan_pools(spec, peer))
    op = target.gpu_operator
    ns = op.namespace
    manifests: list[Manifest] = []
    if op.manage:
        manifests.append(
            Manifest(
                {
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {
                        **_metadata(ns, None, {**labels, **PRIVILEGED_PSS}),
                        # Said out loud, where the policy pack reads it: a privileged namespace
                        # is an opt-out, allowed only with its reason.
                        "annotations": {PRIVILEGED_REASON: PRIVILEGED_WHY},
                    },
                }
            )
        )
    manifests.append(
        Manifest(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": _metadata(MIG_CONFIG_MAP, ns, labels),
                "data": {"config.yaml": config_text(mig_parted_config(pools))},
            }
        )
    )
    manifests.append(
        Manifest(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": _metadata(DEVICE_PLUGIN_CONFIG_MAP, ns, labels),
                "data": {key: config_text(cfg) for key, cfg in device_plugin_configs(pools).items()},
            }
        )
    )
    chart = None
    if op.manage and target.mode == "render":
        manifests += gitops_manifests(target, labels, pools)
    elif op.manage:
        chart = HelmChart(
            release=RELEASE,
            namespace=ns,
            chart=CHART,
            version=op.chart_version,
            repository=op.chart_repository,
            values=operator_values(target, pools),
        )
    return NodeConfig(patches, chart, tuple(manifests))
