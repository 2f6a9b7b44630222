"""OnPremK8s: an `OnPremPlan` applied to an existing Kubernetes cluster, or rendered to a directory.

The plan decides every object; this component only turns it into pulumi-kubernetes resources,
through a provider of its own (nothing uses the ambient kubeconfig or a default provider):

- apply mode: the kubeconfig is the stack config secret the spec names
  (`inferstack:<kubeconfig_config_key>`), the context the spec names, Server-Side Apply on;
- render mode: `render_yaml_to_directory` writes every object as YAML instead of applying it
  (`0-crd/` and `1-manifest/`, one file per object; `inferstack render` writes the same files).

Nodes are never owned: their labels and taints are `NodePatch`es (Server-Side Apply patches; see
`_node_patches`). The GPU operator's chart is a Helm release in apply mode only (in render mode
the plan declares it as a GitOps object, which is a manifest like any other). Every other object
is the typed pulumi-kubernetes resource of its apiVersion/kind (`KINDS`), or a `CustomResource`
for the CRDs the target uses (`CUSTOM_KINDS`); an object of any other kind is an error.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from inferstack.planning.onprem import HelmChart, Manifest, OnPremPlan
from inferstack.planning.onprem.rollout import deployment_rollout_seconds

# apiVersion/kind -> the typed pulumi-kubernetes class (type token kubernetes:<group>/<version>:<Kind>).
KINDS: dict[tuple[str, str], Callable[..., pulumi.CustomResource]] = {
    ("v1", "Namespace"): k8s.core.v1.Namespace,
    ("v1", "ConfigMap"): k8s.core.v1.ConfigMap,
    ("v1", "ServiceAccount"): k8s.core.v1.ServiceAccount,
    ("v1", "Service"): k8s.core.v1.Service,
    ("v1", "ResourceQuota"): k8s.core.v1.ResourceQuota,
    ("v1", "LimitRange"): k8s.core.v1.LimitRange,
    ("apps/v1", "Deployment"): k8s.apps.v1.Deployment,
    ("policy/v1", "PodDisruptionBudget"): k8s.policy.v1.PodDisruptionBudget,
    ("networking.k8s.io/v1", "NetworkPolicy"): k8s.networking.v1.NetworkPolicy,
    ("networking.k8s.io/v1", "Ingress"): k8s.networking.v1.Ingress,
    ("scheduling.k8s.io/v1", "PriorityClass"): k8s.scheduling.v1.PriorityClass,
    ("node.k8s.io/v1", "RuntimeClass"): k8s.node.v1.RuntimeClass,
    ("autoscaling/v2", "HorizontalPodAutoscaler"): k8s.autoscaling.v2.HorizontalPodAutoscaler,
}

# Custom resources the target declares, registered as apiextensions.CustomResource (type token
# kubernetes:<apiVersion>:<Kind>). Their CRDs come with KEDA, the Gateway API, Flux, Argo CD and the
# Prometheus operator, which the cluster runs; the plan never installs a CRD.
CUSTOM_KINDS: frozenset[tuple[str, str]] = frozenset(
    {
        ("keda.sh/v1alpha1", "ScaledObject"),
        ("gateway.networking.k8s.io/v1", "HTTPRoute"),
        ("gateway.networking.k8s.io/v1beta1", "ReferenceGrant"),
        ("source.toolkit.fluxcd.io/v1", "HelmRepository"),
        ("helm.toolkit.fluxcd.io/v2", "HelmRelease"),
        ("argoproj.io/v1alpha1", "Application"),
        ("monitoring.coreos.com/v1", "ServiceMonitor"),
        ("monitoring.coreos.com/v1", "PrometheusRule"),
    }
)

# Kinds that exist once per cluster: no namespace, and a Pulumi name without one.
CLUSTER_SCOPED: frozenset[str] = frozenset({"Namespace", "PriorityClass", "RuntimeClass", "Node"})

# The kubeconfig of render mode: valid, with no cluster in it. The provider then treats the cluster
# as unreachable and renders anyway (pulumi-kubernetes provider.go, Configure: a kubeconfig that
# yields no client config marks the cluster unreachable; Create in yamlRenderMode writes the file
# without a cluster). Without it the provider falls back to $KUBECONFIG or ~/.kube/config, and the
# files would depend on whichever cluster the operator's shell points at (its default namespace is
# put on namespaced objects that carry none).
NO_CLUSTER_KUBECONFIG = json.dumps(
    {"apiVersion": "v1", "kind": "Config", "clusters": [], "contexts": [], "users": [], "current-context": ""},
    sort_keys=True,
)

# Helm: the operator's chart rolls back on a failed install or upgrade (`atomic`, which also waits),
# removes what a failed upgrade created, and keeps ten revisions (each one is a Secret in the
# release's namespace). Helm's wait covers the chart's own objects (the operator and node feature
# discovery), not the driver DaemonSets the operator creates afterwards: ten minutes is ample.
HELM_TIMEOUT_SECONDS = 600
HELM_MAX_HISTORY = 10

# GitOps tools must never prune or delete a Node they applied from a rendered file: the Node is
# the machine's registration, not ours. Flux: `kustomize.toolkit.fluxcd.io/prune: disabled`
# (Flux Kustomization docs, "Prune"); Argo CD: `Prune=false,Delete=false` (Argo CD "Sync Options",
# "No Prune Resources" and "No Resource Deletion").
GITOPS_KEEP_ANNOTATIONS = {
    "kustomize.toolkit.fluxcd.io/prune": "disabled",
    "argocd.argoproj.io/sync-options": "Prune=false,Delete=false",
}

# Pulumi's annotation that makes a patch take over fields another manager owns (pulumi-kubernetes
# "Patch resources": "Conflicts will result in an error by default, but can be forced using the
# pulumi.com/patchForce annotation").
PATCH_FORCE = "pulumi.com/patchForce"


class ManifestError(ValueError):
    """A plan object this component cannot register: a planner bug, named with the object."""


def object_id(body: Mapping[str, Any]) -> str:
    meta = body.get("metadata") or {}
    where = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{body.get('apiVersion')} {body.get('kind')} {where}{meta.get('name')}"


def resource_name(target: str, body: Mapping[str, Any]) -> str:
    """`<target>-<kind>-<namespace>-<name>` (cluster-scoped: no namespace), lower case.

    Stable (the object's identity, never its position in the plan) so reordering renames nothing.
    """
    meta = body["metadata"]
    parts = [target, body["kind"], *([meta["namespace"]] if meta.get("namespace") else []), meta["name"]]
    return "-".join(parts).lower()


def _snake(key: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", key).lower()


def resource_args(body: Mapping[str, Any]) -> dict[str, Any]:
    """The body's top-level fields as keyword arguments of the typed class (`binaryData` ->
    `binary_data`, `globalDefault` -> `global_default`), their values passed through as the API's
    JSON (camelCase keys), as `pulumi_kubernetes.yaml` v1 (`_parse_yaml_object`) does."""
    return {_snake(k): v for k, v in body.items() if k not in ("apiVersion", "kind", "status")}


def rollout_timeout(manifest: Manifest) -> int:
    """Seconds `pulumi up` waits for a Deployment's rollout (pulumi-kubernetes waits 10 minutes by
    default; the resource's custom timeouts replace that): what its planner decided, else the
    rollout of the body's own replica count (planning.onprem.rollout)."""
    if manifest.await_seconds is not None:
        return manifest.await_seconds
    return deployment_rollout_seconds(manifest.body, (manifest.body.get("spec") or {}).get("replicas", 1))


class OnPremK8s(pulumi.ComponentResource):
    namespace: pulumi.Output[str]
    service_name: pulumi.Output[str] | None
    service_dns: pulumi.Output[str] | None
    render_dir: str | None

    def __init__(self, name: str, plan: OnPremPlan, opts: pulumi.ResourceOptions | None = None):
        super().__init__("inferstack:onprem:OnPremK8s", name, None, opts)
        if plan.mode not in ("apply", "render"):
            raise ManifestError(f"target {plan.target}: mode {plan.mode!r} is neither apply nor render")
        if plan.mode == "render" and not plan.render_dir:
            raise ManifestError(f"target {plan.target}: render mode needs the directory to render to")
        if plan.mode == "render" and plan.gpu_operator is not None:
            # A Helm release installs into a cluster even under a rendering provider.
            raise ManifestError(
                f"target {plan.target}: render mode declares the GPU operator as a GitOps manifest, not a Helm release"
            )
        self.k8s_provider = self._make_provider(name, plan)
        self._objects: dict[tuple[str, str, str | None, str], pulumi.CustomResource] = {}
        names: set[str] = set()
        for manifest in plan.manifests:
            self._check(plan, manifest, names)

        # Namespaces first: every namespaced object of the plan depends on its namespace (so Pulumi also
        # deletes the objects before the namespace that holds them).
        namespaces: dict[str, pulumi.CustomResource] = {}
        for manifest in plan.manifests:
            if manifest.kind == "Namespace":
                namespaces[manifest.name] = self._register(plan, manifest, [])
        patches = self._node_patches(plan)
        release = None
        if plan.gpu_operator is not None:
            # The operator reads its namespace's config maps (MIG layouts, time-slicing) when it starts,
            # and the node labels that select them: all exist before the release.
            before = [
                self._register(plan, m, _namespace_of(namespaces, m))
                for m in plan.manifests
                if m.namespace == plan.gpu_operator.namespace and m.kind != "Namespace"
            ]
            release = self._release(
                name, plan.gpu_operator, [*_namespace_of(namespaces, plan.gpu_operator), *before, *patches]
            )
        for manifest in plan.manifests:
            if manifest.kind == "Namespace" or self._key(manifest.body) in self._objects:
                continue
            deps = _namespace_of(namespaces, manifest)
            if manifest.kind == "Deployment":
                # The engine's pods need the classes they name, the pool labels they select nodes by,
                # and the GPUs the operator advertises.
                deps += self._classes_of(manifest) + patches + ([release] if release is not None else [])
            self._register(plan, manifest, deps)

        self.namespace = pulumi.Output.from_input(plan.namespace)
        services = sorted(m.name for m in plan.manifests if m.kind == "Service" and m.namespace == plan.namespace)
        # The target's entry: its one Service (the planner gives each target exactly one).
        self.service_name = pulumi.Output.from_input(services[0]) if len(services) == 1 else None
        # cluster.local is Kubernetes' default cluster domain (kubelet --cluster-domain); a cluster
        # that changed it answers to <svc>.<ns>.svc, which this name ends with too.
        self.service_dns = (
            pulumi.Output.from_input(f"{services[0]}.{plan.namespace}.svc.cluster.local")
            if len(services) == 1
            else None
        )
        self.render_dir = plan.render_dir if plan.mode == "render" else None
        self.register_outputs(
            {
                "namespace": self.namespace,
                "service_name": self.service_name,
                "service_dns": self.service_dns,
                "render_dir": self.render_dir,
            }
        )

    # -- the provider -------------------------------------------------------------------------

    def _make_provider(self, name: str, plan: OnPremPlan) -> k8s.Provider:
        child = pulumi.ResourceOptions(parent=self)
        if plan.mode == "render":
            return k8s.Provider(
                f"{name}-k8s",
                render_yaml_to_directory=plan.render_dir,
                kubeconfig=NO_CLUSTER_KUBECONFIG,
                # Patch resources require Server-Side Apply, even when rendered (provider Check).
                enable_server_side_apply=True,
                opts=child,
            )
        kubeconfig = pulumi.Config("inferstack").require_secret(plan.kubeconfig_config_key)
        return k8s.Provider(
            f"{name}-k8s",
            kubeconfig=kubeconfig,
            context=plan.context,
            enable_server_side_apply=True,
            # A new kubeconfig (a rotated token) updates the provider instead of replacing it, which
            # would replace every object of the target; only another context (another cluster) does.
            cluster_identifier=f"{plan.target}:{plan.context or 'current-context'}",
            opts=child,
        )

    def _opts(self, depends_on: list[pulumi.Resource], **extra: Any) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self, provider=self.k8s_provider, depends_on=depends_on, **extra)

    # -- manifests ----------------------------------------------------------------------------

    @staticmethod
    def _key(body: Mapping[str, Any]) -> tuple[str, str, str | None, str]:
        meta = body["metadata"]
        return (body["apiVersion"], body["kind"], meta.get("namespace"), meta["name"])

    def _check(self, plan: OnPremPlan, manifest: Manifest, names: set[str]) -> None:
        body = manifest.body
        meta = body.get("metadata") or {}
        if not body.get("apiVersion") or not body.get("kind") or not meta.get("name"):
            raise ManifestError(
                f"target {plan.target}: an object without apiVersion, kind or metadata.name: {dict(body)!r:.200}"
            )
        gvk = (body["apiVersion"], body["kind"])
        if gvk not in KINDS and gvk not in CUSTOM_KINDS:
            known = ", ".join(f"{v} {k}" for v, k in sorted([*KINDS, *CUSTOM_KINDS]))
            raise ManifestError(
                f"target {plan.target}: {object_id(body)}: no resource type for this kind (known: {known})"
            )
        namespaced = body["kind"] not in CLUSTER_SCOPED
        if namespaced != bool(meta.get("namespace")):
            need = "needs metadata.namespace" if namespaced else "is cluster-scoped: remove metadata.namespace"
            raise ManifestError(f"target {plan.target}: {object_id(body)} {need}")
        if gvk in CUSTOM_KINDS and set(body) - {"apiVersion", "kind", "metadata", "spec"}:
            extra = sorted(set(body) - {"apiVersion", "kind", "metadata", "spec"})
            raise ManifestError(
                f"target {plan.target}: {object_id(body)}: a custom resource carries spec only, not {extra}"
            )
        pulumi_name = resource_name(plan.target, body)
        if pulumi_name in names:
            raise ManifestError(
                f"target {plan.target}: two objects named {pulumi_name!r} (the second: {object_id(body)})"
            )
        names.add(pulumi_name)

    def _register(self, plan: OnPremPlan, manifest: Manifest, deps: list[pulumi.Resource]) -> pulumi.CustomResource:
        body = manifest.body
        key = self._key(body)
        if key in self._objects:
            return self._objects[key]
        name = resource_name(plan.target, body)
        gvk = (manifest.api_version, manifest.kind)
        extra: dict[str, Any] = {}
        if manifest.kind == "Deployment":
            minutes = f"{-(-rollout_timeout(manifest) // 60)}m"
            extra["custom_timeouts"] = pulumi.CustomTimeouts(create=minutes, update=minutes)
        opts = self._opts(deps, **extra)
        made: pulumi.CustomResource
        if gvk in CUSTOM_KINDS:
            made = k8s.apiextensions.CustomResource(
                name,
                api_version=manifest.api_version,
                kind=manifest.kind,
                metadata=body["metadata"],
                spec=body.get("spec"),
                opts=opts,
            )
        else:
            try:
                made = KINDS[gvk](name, opts=opts, **resource_args(body))
            except TypeError as error:  # a top-level field the API version does not have
                raise ManifestError(f"target {plan.target}: {object_id(body)}: {error}") from error
        self._objects[key] = made
        return made

    def _classes_of(self, manifest: Manifest) -> list[pulumi.Resource]:
        pod = ((manifest.body.get("spec") or {}).get("template") or {}).get("spec") or {}
        wanted = [
            ("node.k8s.io/v1", "RuntimeClass", None, pod.get("runtimeClassName")),
            ("scheduling.k8s.io/v1", "PriorityClass", None, pod.get("priorityClassName")),
        ]
        return [self._objects[k] for k in wanted if k in self._objects]

    # -- nodes and the operator ---------------------------------------------------------------

    def _node_patches(self, plan: OnPremPlan) -> list[pulumi.Resource]:
        """Labels and taints on nodes inferstack does not own, as Server-Side Apply patches.

        Deleting a patch relinquishes its fields (pulumi-kubernetes await.go, Deletion: patch
        resources call ssa.Relinquish instead of deleting the object): the labels and taints go, the
        node stays. So no `retain_on_delete` (which would leave a removed pool's taint behind), and
        each patch keeps the random field manager the provider gives it (a fixed
        `pulumi.com/patchFieldManager` shared by an old and a renamed patch would make the old one's
        delete remove the new one's fields).

        In apply mode a node gets two patches. Labels are a map whose keys are owned one by one, so
        the labels patch forces (`pulumi.com/patchForce`): inferstack owns its pool labels, and a
        label someone set before (the GPU operator's default MIG config) is taken over instead of
        failing the update. `spec.taints` is an atomic list (Kubernetes 1.31 OpenAPI, NodeSpec.taints:
        x-kubernetes-list-type atomic), owned whole: a forced apply would replace the node's other
        taints (the node lifecycle controller's, the administrator's), so the taints patch never
        forces, and a conflict is an error that names the other manager.

        In render mode the provider writes one file per object (`v1-node-default-<node>.yaml`) and the
        site's GitOps tool applies it, with server-side apply and forced ownership (Flux) or a
        client-side merge (Argo CD): either way whatever the file says of an atomic field replaces the
        live one. A Node file therefore carries labels only, never `spec.taints` (the site's taints
        would be wiped by the first sync); the spec refuses dedicated_taint in render mode and the
        site taints its nodes itself. Labels stay: they are a map merged key by key, and the MIG and
        time-slicing layouts and the pool's node selector depend on them. The file is annotated so
        that Flux and Argo CD never prune or delete the Node.
        """
        made: list[pulumi.Resource] = []
        for patch in sorted(plan.node_patches, key=lambda p: p.node):
            base = f"{plan.target}-node-{patch.node}".lower()
            if plan.mode == "render":
                if patch.taints:
                    raise ManifestError(
                        f"target {plan.target}: node {patch.node}: render mode writes no taints (a GitOps apply of "
                        "spec.taints replaces the node's whole list)"
                    )
                made.append(self._node_patch(base, patch.node, patch.labels, (), GITOPS_KEEP_ANNOTATIONS))
                continue
            if patch.labels:
                made.append(self._node_patch(base, patch.node, patch.labels, (), {PATCH_FORCE: "true"}))
            if patch.taints:
                made.append(self._node_patch(f"{base}-taints", patch.node, {}, patch.taints, {}))
        return made

    def _node_patch(
        self,
        name: str,
        node: str,
        labels: Mapping[str, str],
        taints: tuple[Mapping[str, str], ...],
        annotations: Mapping[str, str],
    ) -> k8s.core.v1.NodePatch:
        return k8s.core.v1.NodePatch(
            name,
            metadata=k8s.meta.v1.ObjectMetaPatchArgs(
                name=node, labels=dict(labels) or None, annotations=dict(annotations) or None
            ),
            spec=k8s.core.v1.NodeSpecPatchArgs(taints=[k8s.core.v1.TaintPatchArgs(**t) for t in taints])
            if taints
            else None,
            opts=self._opts([]),
        )

    def _release(self, name: str, chart: HelmChart, deps: list[pulumi.Resource]) -> k8s.helm.v3.Release:
        # An OCI repository names the chart by URL; an HTTP repository by name within the repository.
        oci = chart.repository.startswith("oci://")
        return k8s.helm.v3.Release(
            f"{name}-{chart.release}",
            name=chart.release,
            chart=f"{chart.repository.rstrip('/')}/{chart.chart}" if oci else chart.chart,
            version=chart.version,
            repository_opts=None if oci else k8s.helm.v3.RepositoryOptsArgs(repo=chart.repository),
            namespace=chart.namespace,
            create_namespace=False,  # the plan's Namespace object, labelled like every other
            values=dict(chart.values),
            atomic=True,
            cleanup_on_fail=True,
            timeout=HELM_TIMEOUT_SECONDS,
            max_history=HELM_MAX_HISTORY,
            opts=self._opts(deps),
        )


def _namespace_of(namespaces: Mapping[str, pulumi.CustomResource], obj: Manifest | HelmChart) -> list[pulumi.Resource]:
    ns = obj.namespace
    return [namespaces[ns]] if ns is not None and ns in namespaces else []


def deploy(name: str, plan: OnPremPlan, ctx) -> dict[str, pulumi.Input]:
    """The target kind's entry point (inferstack.kinds): the target's objects, its stack outputs.
    The component makes its own Kubernetes provider (one per cluster), so `ctx` gives it nothing."""
    site = OnPremK8s(name, plan)
    ctx.deployed[name] = site
    outputs: dict[str, pulumi.Input] = {"namespace": site.namespace}
    if site.service_name is not None:
        outputs |= {"service_name": site.service_name, "service_dns": site.service_dns}
    if site.render_dir is not None:
        outputs["render_dir"] = site.render_dir
    return outputs
