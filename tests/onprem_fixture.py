"""A hand-built OnPremPlan with one object of every kind the OnPremK8s component knows, recorded
through the mocks: the planner that fills plans is another module, tested on its own."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from inferstack.components.onprem_k8s import OnPremK8s
from inferstack.offline.engine import Plan, record
from inferstack.planning.onprem import HelmChart, Manifest, NodePatch, OnPremPlan

NS = "dev-site"
OP_NS = "gpu-operator"
LABELS = {"managed-by": "inferstack", "stack": "dev"}


def meta(name: str, namespace: str | None = NS) -> dict[str, Any]:
    return {"name": name, **({"namespace": namespace} if namespace else {}), "labels": dict(LABELS)}


DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": meta("engine-h100"),
    "spec": {
        "replicas": 1,
        "selector": {"matchLabels": {"app.kubernetes.io/name": "engine"}},
        "template": {
            "metadata": {"labels": {"app.kubernetes.io/name": "engine"}},
            "spec": {
                "runtimeClassName": "nvidia",
                "priorityClassName": "dev-site-serving",
                "automountServiceAccountToken": False,
                "containers": [
                    {
                        "name": "engine",
                        "image": "registry.site.example/vllm@sha256:" + "a" * 64,
                        "resources": {"limits": {"nvidia.com/gpu": 1}},
                        "startupProbe": {
                            "httpGet": {"path": "/health", "port": 8000},
                            "periodSeconds": 10,
                            "failureThreshold": 180,
                        },
                    }
                ],
            },
        },
    },
}

DEPLOYMENT_AWAIT_SECONDS = 7265  # 121.08 minutes: the component rounds up to 122m

MANIFESTS: tuple[dict[str, Any], ...] = (
    {"apiVersion": "v1", "kind": "Namespace", "metadata": meta(NS, None)},
    {"apiVersion": "v1", "kind": "Namespace", "metadata": meta(OP_NS, None)},
    {
        "apiVersion": "scheduling.k8s.io/v1",
        "kind": "PriorityClass",
        "metadata": meta("dev-site-serving", None),
        "value": 1000,
        "globalDefault": False,
        "preemptionPolicy": "PreemptLowerPriority",
        "description": "serving",
    },
    {"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass", "metadata": meta("nvidia", None), "handler": "nvidia"},
    {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta("mig-parted-config", OP_NS),
        "data": {"config.yaml": "version: v1\nmig-configs:\n  all-3g.40gb:\n    - devices: all\n"},
    },
    {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": meta("gpus"),
        "spec": {"hard": {"requests.nvidia.com/gpu": "2"}},
    },
    {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": meta("defaults"),
        "spec": {"limits": [{"type": "Container", "default": {"memory": "1Gi"}}]},
    },
    DEPLOYMENT,
    {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta("engine"),
        "spec": {"selector": {"app.kubernetes.io/name": "engine"}, "ports": [{"port": 8000, "targetPort": 8000}]},
    },
    {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": meta("engine"),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app.kubernetes.io/name": "engine"}}},
    },
    {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta("default-deny"),
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
    },
    {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": meta("engine"),
        "spec": {"ingressClassName": "internal", "tls": [{"hosts": ["llm.site.example"], "secretName": "tls"}]},
    },
    {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": meta("engine-batch"),
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "x"}, "maxReplicas": 2},
    },
    {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": meta("engine-h100"),
        "spec": {"scaleTargetRef": {"name": "engine-h100"}, "minReplicaCount": 1, "maxReplicaCount": 2},
    },
    {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": meta("engine"),
        "spec": {"parentRefs": [{"name": "internal", "namespace": "gateways"}]},
    },
    {
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "HelmRepository",
        "metadata": meta("nvidia", OP_NS),
        "spec": {"url": "https://mirror.site.example/nvidia", "interval": "1h"},
    },
    {
        "apiVersion": "helm.toolkit.fluxcd.io/v2",
        "kind": "HelmRelease",
        "metadata": meta("gpu-operator", OP_NS),
        "spec": {"chart": {"spec": {"chart": "gpu-operator", "version": "v25.10.0"}}, "interval": "1h"},
    },
    {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": meta("gpu-operator", "argocd"),
        "spec": {"project": "default"},
    },
    {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": meta("engine"),
        "spec": {"endpoints": [{"port": "http"}]},
    },
    {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": meta("engine"),
        "spec": {"groups": []},
    },
)

PATCHES = (
    NodePatch(
        "gpu-1",
        {"nvidia.com/mig.config": "all-3g.40gb"},
        ({"key": "inferstack.io/pool", "value": "h100", "effect": "NoSchedule"},),
    ),
    NodePatch("gpu-2", {"nvidia.com/mig.config": "all-3g.40gb"}),
)

OPERATOR = HelmChart(
    release="gpu-operator",
    namespace=OP_NS,
    chart="gpu-operator",
    version="v25.10.0",
    repository="https://helm.ngc.nvidia.com/nvidia",
    values={"driver": {"enabled": True}, "migManager": {"config": {"name": "mig-parted-config"}}},
)


# An on-prem spec. The spec checks of on-prem targets are another change of issue 10; the CLI
# tests below load it through pydantic alone.
ONPREM_SPEC = {
    "version": 1,
    "metadata": {"name": "assistant", "team": "ml", "environment": "dev", "data_classification": "internal"},
    "residency": {"jurisdiction": "eu"},
    "models": {
        "llama-3-8b": {
            "parameters": "8B",
            "precision": "bf16",
            "context_length": 8192,
            "source": "s3://acme-models/meta-llama/Llama-3.1-8B-Instruct/",
        }
    },
    "serving": {"engine": "vllm", "image": "registry.site.example/vllm@sha256:" + "a" * 64, "port": 8000},
    "targets": {
        "site": {
            "kind": "onprem-k8s",
            "location": "de",
            "cluster": {"version": "1.31"},
            "mode": "render",
            "render_dir": "rendered/site",
            "registry": "registry.site.example",
            "pools": {
                "h100": {"nodes": ["gpu-1"], "gpu": "H100-80GB", "gpus_per_node": 1, "replicas": {"min": 1, "max": 1}}
            },
            "weights": {"pvc": "weights", "pvc_access_mode": "ReadOnlyMany"},
            "autoscaling": {"target": 4},
            "monitoring": {"service_monitor_labels": {"release": "kube-prometheus-stack"}},
        }
    },
}


def onprem_plan(mode: str = "apply", **changes: Any) -> OnPremPlan:
    plan = OnPremPlan(
        target="site",
        location="de",
        namespace=NS,
        mode=mode,
        render_dir="rendered/site" if mode == "render" else None,
        kubeconfig_config_key="siteKubeconfig",
        context="site-admin" if mode == "apply" else None,
        kubernetes_version="1.31",
        labels=LABELS,
        pools=(),
        # Render mode writes labels only (the planner never gives it a taint: components/onprem_k8s.py).
        node_patches=PATCHES if mode == "apply" else tuple(replace(p, taints=()) for p in PATCHES),
        gpu_operator=OPERATOR if mode == "apply" else None,
        # The planner decides how long the engine's rollout may take (planning.onprem.rollout).
        manifests=tuple(
            Manifest(m, await_seconds=DEPLOYMENT_AWAIT_SECONDS if m is DEPLOYMENT else None) for m in MANIFESTS
        ),
    )
    return replace(plan, **changes)


def record_plan(*plans: OnPremPlan, secrets: dict[str, str] | None = None) -> Plan:
    """Run the component for each plan under the mocks, as the program would, and return the plan."""

    def program() -> None:
        for p in plans:
            OnPremK8s(p.target, p)

    secrets = {"inferstack:siteKubeconfig": "apiVersion: v1\nkind: Config\n"} if secrets is None else secrets
    monitor = record(program, "dev", secrets)
    resources = sorted((r.to_json() for r in monitor.registrations), key=lambda r: r["urn"])
    return Plan(stack="dev", spec_path="test", spec_sha256="0" * 64, resources=resources, outputs=monitor.stack_outputs)
