"""The Kubernetes schema helper (tests/k8s_schemas.py), and every Kubernetes object of every
example plan through it.

The helper is only worth something if it refuses what the API server refuses: each built-in kind
the on-prem target creates and each CRD is shown a valid object (which must pass) and broken ones
(a misspelt field, a wrong type, a missing required field), which must each be reported.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pytest

import k8s_schemas
from conftest import EXAMPLE_STACKS, plan_of_file
from inferstack.offline.engine import record
from inferstack.spec.loader import load_spec
from inferstack.spec.models import OnPremK8sTarget
from k8s_schemas import ROOT, plan_errors, plan_objects, validate

VERSION = "1.31"
# The spec's range (1.26-1.37): every version kubernetes-validate ships schemas for.
SUPPORTED = [f"1.{minor}" for minor in range(26, 38)]
DELETE = object()
LABELS = {"app.kubernetes.io/name": "engine", "inferstack.dev/stack": "onprem"}


def changed(obj: dict, path: tuple, value: Any = DELETE, rename: str | None = None) -> dict:
    """A deep copy of obj with the value at path set, deleted, or its key renamed."""
    out = copy.deepcopy(obj)
    parent = out
    for key in path[:-1]:
        parent = parent[key]
    if rename is not None:
        parent[rename] = parent.pop(path[-1])
    elif value is DELETE:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return out


def meta(name: str, namespace: str | None = "site-serving", **extra: Any) -> dict:
    out: dict[str, Any] = {"name": name, "labels": dict(LABELS), **extra}
    if namespace:
        out["namespace"] = namespace
    return out


# -- built-in kinds: valid examples --------------------------------------------------------------

POD_SPEC = {
    "automountServiceAccountToken": False,
    "priorityClassName": "inferstack-serving",
    "runtimeClassName": "nvidia",
    "nodeSelector": {"inferstack.dev/pool": "h100"},
    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    "securityContext": {
        "runAsNonRoot": True,
        "runAsUser": 1000,
        "fsGroup": 1000,
        "seccompProfile": {"type": "RuntimeDefault"},
    },
    "topologySpreadConstraints": [
        {
            "maxSkew": 1,
            "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "engine"}},
        }
    ],
    "containers": [
        {
            "name": "engine",
            "image": "registry.site.example/vllm/vllm-openai@sha256:" + "a" * 64,
            "args": ["--model", "/models/llama", "--port", "8000"],
            "ports": [{"name": "http", "containerPort": 8000, "protocol": "TCP"}],
            "env": [{"name": "HF_HUB_OFFLINE", "value": "1"}],
            "resources": {
                "limits": {"nvidia.com/gpu": "1", "memory": "64Gi"},
                "requests": {"cpu": "4", "memory": "64Gi"},
            },
            "startupProbe": {
                "httpGet": {"path": "/health", "port": "http"},
                "periodSeconds": 10,
                "failureThreshold": 90,
            },
            "readinessProbe": {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 5},
            "livenessProbe": {"httpGet": {"path": "/health", "port": 8000}, "periodSeconds": 10, "failureThreshold": 3},
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]},
                "runAsNonRoot": True,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "volumeMounts": [
                {"name": "shm", "mountPath": "/dev/shm"},
                {"name": "models", "mountPath": "/models", "readOnly": True},
            ],
        }
    ],
    "volumes": [
        {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}},
        {"name": "models", "persistentVolumeClaim": {"claimName": "models", "readOnly": True}},
    ],
}

BUILTIN: dict[str, dict] = {
    "Namespace": {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": meta("site-serving", None, labels={"pod-security.kubernetes.io/enforce": "restricted"}),
    },
    "ResourceQuota": {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": meta("gpus"),
        "spec": {"hard": {"requests.nvidia.com/gpu": "8", "limits.memory": "512Gi", "pods": 20}},
    },
    "LimitRange": {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": meta("defaults"),
        "spec": {"limits": [{"type": "Container", "default": {"memory": "1Gi"}, "defaultRequest": {"cpu": "100m"}}]},
    },
    "PriorityClass": {
        "apiVersion": "scheduling.k8s.io/v1",
        "kind": "PriorityClass",
        "metadata": meta("inferstack-serving", None),
        "value": 100000,
        "globalDefault": False,
        "preemptionPolicy": "PreemptLowerPriority",
        "description": "Serving replicas; batch may be preempted by them.",
    },
    "RuntimeClass": {
        "apiVersion": "node.k8s.io/v1",
        "kind": "RuntimeClass",
        "metadata": meta("nvidia", None),
        "handler": "nvidia",
        "scheduling": {"nodeSelector": {"nvidia.com/gpu.present": "true"}},
    },
    "ConfigMap": {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta("time-slicing", "gpu-operator"),
        "data": {
            "h100": "version: v1\nsharing:\n  timeSlicing:\n    resources:\n    - name: nvidia.com/gpu\n      replicas: 4\n"
        },
    },
    "Deployment": {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta("engine-h100"),
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app.kubernetes.io/name": "engine"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}},
            "template": {"metadata": {"labels": dict(LABELS)}, "spec": POD_SPEC},
        },
    },
    "Service": {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta("engine"),
        "spec": {
            "type": "ClusterIP",
            "selector": {"app.kubernetes.io/name": "engine"},
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    },
    "PodDisruptionBudget": {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": meta("engine"),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app.kubernetes.io/name": "engine"}}},
    },
    "NetworkPolicy": {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta("engine"),
        "spec": {
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "engine"}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [
                {
                    "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "gateway"}}}],
                    "ports": [{"protocol": "TCP", "port": 8000}],
                }
            ],
            "egress": [{"to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}], "ports": [{"protocol": "TCP", "port": 9000}]}],
        },
    },
    "HorizontalPodAutoscaler": {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": meta("engine-h100"),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "engine-h100"},
            "minReplicas": 1,
            "maxReplicas": 4,
            "metrics": [
                {
                    "type": "Pods",
                    "pods": {
                        "metric": {"name": "vllm_num_requests_waiting"},
                        "target": {"type": "AverageValue", "averageValue": "8"},
                    },
                }
            ],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 600}},
        },
    },
    "Ingress": {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": meta("engine"),
        "spec": {
            "ingressClassName": "internal",
            "tls": [{"hosts": ["llm.site.example"], "secretName": "llm-tls"}],
            "rules": [
                {
                    "host": "llm.site.example",
                    "http": {
                        "paths": [
                            {
                                "path": "/",
                                "pathType": "Prefix",
                                "backend": {"service": {"name": "engine", "port": {"number": 80}}},
                            }
                        ]
                    },
                }
            ],
        },
    },
    # The body of a NodePatch (pulumi-kubernetes server-side apply): only what inferstack manages.
    "Node": {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": "gpu-node-01.site.example",
            "labels": {"inferstack.dev/pool": "h100", "nvidia.com/mig.config": "all-1g.10gb"},
        },
        "spec": {"taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]},
    },
}

# (kind, path, how to break it, what the error must say): a misspelt field, a wrong type, a
# missing required field, on every built-in kind that has each.
BUILTIN_BROKEN: list[tuple[str, tuple, dict, str]] = [
    ("Namespace", ("metadata", "labels"), {"rename": "label"}, "'label' was unexpected"),
    ("Namespace", ("spec",), {"value": {"finalizer": ["kubernetes"]}}, "'finalizer' was unexpected"),
    ("ResourceQuota", ("spec", "hard"), {"rename": "hardLimits"}, "'hardLimits' was unexpected"),
    ("ResourceQuota", ("spec", "hard"), {"value": ["requests.nvidia.com/gpu"]}, "is not of type 'object'"),
    ("LimitRange", ("spec", "limits", 0, "default"), {"rename": "defaults"}, "'defaults' was unexpected"),
    ("LimitRange", ("spec", "limits", 0, "type"), {}, "'type' is a required property"),
    ("PriorityClass", ("value",), {"value": "100000"}, "is not of type 'integer'"),
    ("PriorityClass", ("value",), {}, "'value' is a required property"),
    ("PriorityClass", ("globalDefault",), {"rename": "default"}, "'default' was unexpected"),
    ("RuntimeClass", ("handler",), {}, "'handler' is a required property"),
    ("RuntimeClass", ("scheduling", "nodeSelector"), {"rename": "nodeSelectors"}, "'nodeSelectors' was unexpected"),
    ("ConfigMap", ("data",), {"value": {"replicas": 4}}, "is not of type 'string'"),
    ("ConfigMap", ("data",), {"rename": "date"}, "'date' was unexpected"),
    (
        "Deployment",
        ("spec", "template", "spec", "containers", 0, "image"),
        {"rename": "imagee"},
        "'imagee' was unexpected",
    ),
    ("Deployment", ("spec", "replicas"), {"value": "2"}, "is not of type 'integer'"),
    ("Deployment", ("spec", "selector"), {}, "'selector' is a required property"),
    ("Deployment", ("spec", "template", "spec", "containers", 0, "name"), {}, "'name' is a required property"),
    (
        "Deployment",
        ("spec", "template", "spec", "securityContext", "readOnlyRootFilesystem"),
        {"value": True},
        "'readOnlyRootFilesystem' was unexpected",  # a container field, not a pod field
    ),
    ("Service", ("spec", "ports", 0, "port"), {"value": "80"}, "is not of type 'integer'"),
    ("Service", ("spec", "ports", 0, "port"), {}, "'port' is a required property"),
    ("Service", ("spec", "ports", 0, "targetPort"), {"value": 80.5}, "is not valid under any of the given schemas"),
    ("PodDisruptionBudget", ("spec", "maxUnavailable"), {"rename": "maxUnavailabe"}, "'maxUnavailabe' was unexpected"),
    ("PodDisruptionBudget", ("spec", "maxUnavailable"), {"value": True}, "is not valid under any of the given schemas"),
    ("NetworkPolicy", ("spec", "ingress", 0, "from"), {"rename": "source"}, "'source' was unexpected"),
    ("NetworkPolicy", ("spec", "policyTypes"), {"value": "Ingress"}, "is not of type 'array'"),
    ("HorizontalPodAutoscaler", ("spec", "maxReplicas"), {}, "'maxReplicas' is a required property"),
    ("HorizontalPodAutoscaler", ("spec", "minReplicas"), {"value": "1"}, "is not of type 'integer'"),
    ("HorizontalPodAutoscaler", ("spec", "behavior"), {"rename": "behaviour"}, "'behaviour' was unexpected"),
    ("Ingress", ("spec", "rules", 0, "http", "paths", 0, "pathType"), {}, "'pathType' is a required property"),
    ("Ingress", ("spec", "tls", 0, "hosts"), {"value": "llm.site.example"}, "is not of type 'array'"),
    ("Ingress", ("spec", "ingressClassName"), {"rename": "ingressClass"}, "'ingressClass' was unexpected"),
    ("Node", ("spec", "taints", 0, "effect"), {}, "'effect' is a required property"),
    ("Node", ("spec", "taints"), {"rename": "taint"}, "'taint' was unexpected"),
    ("Node", ("metadata", "labels"), {"value": ["inferstack.dev/pool=h100"]}, "is not of type 'object'"),
]


@pytest.mark.parametrize("kind", sorted(BUILTIN))
def test_a_valid_builtin_object_passes_on_every_supported_version(kind):
    for version in SUPPORTED:
        assert validate(BUILTIN[kind], version) == [], version


def test_every_builtin_kind_has_broken_examples():
    assert {case[0] for case in BUILTIN_BROKEN} == set(BUILTIN)


@pytest.mark.parametrize(("kind", "path", "how", "says"), BUILTIN_BROKEN, ids=lambda v: v if isinstance(v, str) else "")
def test_a_broken_builtin_object_is_reported(kind, path, how, says):
    errors = validate(changed(BUILTIN[kind], path, **how), VERSION)
    assert any(says in e for e in errors), errors


def test_the_error_names_the_object_and_the_field():
    broken = changed(BUILTIN["Deployment"], ("spec", "replicas"), value="2")
    assert validate(broken, VERSION) == [
        "apps/v1 Deployment engine-h100: spec.replicas: '2' is not of type 'integer', 'null'"
    ]


def test_a_field_newer_than_the_cluster_is_an_error_on_the_older_version():
    # Pod-level resources (a pod's own spec.resources, KEP 2837) are in the 1.32 schema, not in 1.31's.
    newer = changed(BUILTIN["Deployment"], ("spec", "template", "spec", "resources"), value={"limits": {"cpu": "8"}})
    assert any("'resources' was unexpected" in e for e in validate(newer, "1.31"))
    assert validate(newer, "1.32") == []


# -- metadata the schemas do not check ---------------------------------------------------------

METADATA_BROKEN: list[tuple[str, tuple, Any, str]] = [
    ("Namespace", ("metadata", "name"), "Site_Serving", "is not an RFC 1123 label"),
    ("Namespace", ("metadata", "name"), "a" * 64, "an RFC 1123 label has at most 63"),
    ("Service", ("metadata", "name"), "8000-engine", "is not an RFC 1035 label"),
    ("Service", ("metadata", "name"), "e" * 64, "RFC 1035 label of at most 63"),
    ("Deployment", ("metadata", "name"), "engine_h100", "is not an RFC 1123 subdomain"),
    ("Deployment", ("metadata", "name"), "e" * 254, "an RFC 1123 subdomain has at most 253"),
    ("Deployment", ("metadata", "name"), DELETE, "metadata.name is required"),
    ("Deployment", ("metadata", "namespace"), "Site", "metadata.namespace 'Site' is not an RFC 1123 label"),
    (
        "PriorityClass",
        ("metadata", "namespace"),
        "site-serving",
        "not allowed on the cluster-scoped kind PriorityClass",
    ),
    ("Node", ("metadata", "namespace"), "default", "not allowed on the cluster-scoped kind Node"),
    ("Deployment", ("metadata", "labels", "team"), "x" * 64, "a label value has at most 63"),
    ("Deployment", ("metadata", "labels", "team"), "ml platform", "must be empty or alphanumeric"),
    ("Deployment", ("metadata", "labels", "team"), 3, "must be a string"),
    (
        "Deployment",
        ("metadata", "labels", "Inferstack.dev/team"),
        "ml",
        "prefix 'Inferstack.dev' is not an RFC 1123 subdomain",
    ),
    ("Deployment", ("metadata", "labels", "inferstack.dev/" + "t" * 64), "ml", "name part is 64 characters"),
    ("Deployment", ("spec", "template", "metadata", "labels", "app"), "-engine", "spec.template.metadata.labels"),
    ("Deployment", ("spec", "selector", "matchLabels", "app"), "engine-", "spec.selector.matchLabels"),
    (
        "Deployment",
        ("spec", "template", "spec", "nodeSelector", "pool"),
        "h100 pool",
        "spec.template.spec.nodeSelector",
    ),
    ("Service", ("spec", "selector", "app"), "engine!", "spec.selector"),
    ("NetworkPolicy", ("spec", "podSelector", "matchLabels", "bad key"), "x", "spec.podSelector.matchLabels"),
    ("Deployment", ("metadata", "annotations"), {"inferstack.dev/note": "x" * (256 * 1024)}, "the limit is 262144"),
    ("Deployment", ("metadata", "annotations"), {"/note": "x"}, "has an empty prefix"),
]


@pytest.mark.parametrize(
    ("kind", "path", "value", "says"), METADATA_BROKEN, ids=lambda v: v if isinstance(v, str) and len(v) < 40 else ""
)
def test_metadata_the_schema_misses_is_reported(kind, path, value, says):
    errors = validate(changed(BUILTIN[kind], path, value), VERSION)
    assert any(says in e for e in errors), errors


def test_good_metadata_passes():
    ok = changed(BUILTIN["Deployment"], ("metadata", "labels"), {"a": "", "x.y/z_1.2-3": "A_b.c-9", "k": "v" * 63})
    ok = changed(ok, ("metadata", "annotations"), {"inferstack.dev/spec": "any text: at all, up to 256 KiB\n"})
    ok = changed(ok, ("metadata", "name"), "engine.h100-" + "a" * 200)
    assert validate(ok, VERSION) == []
    assert validate(changed(BUILTIN["Service"], ("metadata", "name"), "e" * 63), VERSION) == []


# -- what is not a known kind or version -------------------------------------------------------


@pytest.mark.parametrize(
    ("api_version", "kind"),
    [
        ("apps/v1", "Deploymnet"),
        ("apps/v1beta1", "Deployment"),  # removed in 1.16
        ("autoscaling/v2beta2", "HorizontalPodAutoscaler"),  # removed in 1.26
        ("policy/v1beta1", "PodDisruptionBudget"),  # removed in 1.25
        ("keda.sh/v1alpha2", "ScaledObject"),
        ("gateway.networking.k8s.io/v1beta1", "HTTPRoute"),  # served, but not the version kept here
        ("example.com/v1", "Widget"),
    ],
)
def test_an_unknown_api_version_or_kind_is_an_error(api_version, kind):
    obj = {"apiVersion": api_version, "kind": kind, "metadata": meta("x"), "spec": {}}
    errors = validate(obj, VERSION)
    assert any("unknown apiVersion/kind" in e for e in errors), errors


def test_a_missing_api_version_or_kind_is_an_error():
    assert "apiVersion and kind are required" in validate({"kind": "ConfigMap", "metadata": meta("x")}, VERSION)[0]
    assert "apiVersion and kind are required" in validate({"apiVersion": "v1", "metadata": meta("x")}, VERSION)[0]


@pytest.mark.parametrize("version", ["1.38", "1.39", "1.24"])
def test_a_version_without_schemas_is_an_error_not_an_older_schema(version):
    errors = validate(BUILTIN["ConfigMap"], version)
    assert len(errors) == 1 and f"has no schema for Kubernetes {version}" in errors[0]


# -- the published CRDs ---------------------------------------------------------------------------

CR_VALID: dict[tuple[str, str], dict] = {
    ("keda.sh/v1alpha1", "ScaledObject"): {
        "spec": {
            "scaleTargetRef": {"name": "engine-h100"},
            "minReplicaCount": 1,
            "maxReplicaCount": 4,
            "pollingInterval": 15,
            "cooldownPeriod": 600,
            "advanced": {
                "horizontalPodAutoscalerConfig": {"behavior": {"scaleDown": {"stabilizationWindowSeconds": 600}}}
            },
            "triggers": [
                {
                    "type": "prometheus",
                    "metricType": "AverageValue",
                    "metadata": {
                        "serverAddress": "http://prometheus.monitoring.svc:9090",
                        "query": 'sum(vllm:num_requests_waiting{namespace="site-serving"})',
                        "threshold": "8",
                    },
                }
            ],
        }
    },
    ("gateway.networking.k8s.io/v1", "Gateway"): {
        "spec": {
            "gatewayClassName": "internal",
            "listeners": [
                {
                    "name": "https",
                    "port": 443,
                    "protocol": "HTTPS",
                    "hostname": "llm.site.example",
                    "tls": {"mode": "Terminate", "certificateRefs": [{"kind": "Secret", "name": "llm-tls"}]},
                    "allowedRoutes": {"namespaces": {"from": "Same"}},
                }
            ],
        }
    },
    ("gateway.networking.k8s.io/v1beta1", "ReferenceGrant"): {
        "spec": {
            "from": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "namespace": "gateway"}],
            "to": [{"group": "", "kind": "Secret", "name": "llm-tls"}],
        }
    },
    ("gateway.networking.k8s.io/v1", "HTTPRoute"): {
        "spec": {
            "parentRefs": [{"name": "internal", "namespace": "gateway", "sectionName": "https"}],
            "hostnames": ["llm.site.example"],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                    "backendRefs": [{"name": "engine", "port": 80}],
                    "timeouts": {"request": "300s"},
                }
            ],
        }
    },
    ("source.toolkit.fluxcd.io/v1", "HelmRepository"): {
        "spec": {
            "type": "oci",
            "url": "oci://registry.site.example/charts/nvidia",
            "interval": "1h",
            "certSecretRef": {"name": "registry-ca"},
        }
    },
    ("helm.toolkit.fluxcd.io/v2", "HelmRelease"): {
        "spec": {
            "interval": "10m",
            "releaseName": "gpu-operator",
            "targetNamespace": "gpu-operator",
            "chart": {
                "spec": {
                    "chart": "gpu-operator",
                    "version": "v25.10.0",
                    "sourceRef": {"kind": "HelmRepository", "name": "nvidia"},
                }
            },
            "install": {"crds": "CreateReplace"},
            "upgrade": {"crds": "CreateReplace"},
            "maxHistory": 5,
            "values": {"driver": {"enabled": False}, "toolkit": {"enabled": True}, "mig": {"strategy": "mixed"}},
        }
    },
    ("argoproj.io/v1alpha1", "Application"): {
        "spec": {
            "project": "default",
            "source": {
                "repoURL": "https://registry.site.example/charts",
                "chart": "gpu-operator",
                "targetRevision": "v25.10.0",
                "helm": {"releaseName": "gpu-operator", "valuesObject": {"driver": {"enabled": False}}},
            },
            "destination": {"server": "https://kubernetes.default.svc", "namespace": "gpu-operator"},
            "syncPolicy": {
                "automated": {"prune": True, "selfHeal": True},
                "syncOptions": ["CreateNamespace=true", "ServerSideApply=true"],
            },
        }
    },
    ("monitoring.coreos.com/v1", "ServiceMonitor"): {
        "spec": {
            "selector": {"matchLabels": {"app.kubernetes.io/name": "engine"}},
            "namespaceSelector": {"matchNames": ["site-serving"]},
            "endpoints": [{"port": "http", "path": "/metrics", "interval": "15s", "honorLabels": False}],
        }
    },
    ("monitoring.coreos.com/v1", "PrometheusRule"): {
        "spec": {
            "groups": [
                {
                    "name": "inferstack.engine",
                    "rules": [
                        {
                            "alert": "EngineQueueBacklog",
                            "expr": "sum(vllm:num_requests_waiting) > 32",
                            "for": "5m",
                            "labels": {"severity": "warning"},
                            "annotations": {"summary": "Requests wait for a replica."},
                        }
                    ],
                }
            ]
        }
    },
}

# (apiVersion, kind) -> a misspelt field, a wrong type, a missing required field, as (path, how, says)
CR_BROKEN: dict[tuple[str, str], list[tuple[tuple, dict, str]]] = {
    ("keda.sh/v1alpha1", "ScaledObject"): [
        (("spec", "triggers", 0, "metadata"), {"rename": "metaData"}, "'metaData' was unexpected"),
        (("spec", "maxReplicaCount"), {"value": "4"}, "'4' is not of type 'integer'"),
        (("spec", "scaleTargetRef"), {}, "'scaleTargetRef' is a required property"),
    ],
    ("gateway.networking.k8s.io/v1", "Gateway"): [
        (("spec", "listeners", 0, "hostname"), {"rename": "hostName"}, "'hostName' was unexpected"),
        (("spec", "listeners", 0, "port"), {"value": "443"}, "'443' is not of type 'integer'"),
        (("spec", "listeners"), {}, "'listeners' is a required property"),
    ],
    ("gateway.networking.k8s.io/v1beta1", "ReferenceGrant"): [
        (("spec", "from"), {"rename": "froms"}, "'froms' was unexpected"),
        (("spec", "to", 0, "name"), {"value": 7}, "7 is not of type 'string'"),
        (("spec", "to", 0, "kind"), {}, "'kind' is a required property"),
    ],
    ("gateway.networking.k8s.io/v1", "HTTPRoute"): [
        (("spec", "rules", 0, "backendRefs"), {"rename": "backendRef"}, "'backendRef' was unexpected"),
        (("spec", "rules", 0, "backendRefs", 0, "port"), {"value": "80"}, "'80' is not of type 'integer'"),
        (("spec", "parentRefs", 0, "name"), {}, "'name' is a required property"),
    ],
    ("source.toolkit.fluxcd.io/v1", "HelmRepository"): [
        (("spec", "interval"), {"rename": "intervall"}, "'intervall' was unexpected"),
        (("spec", "insecure"), {"value": "no"}, "'no' is not of type 'boolean'"),
        (("spec", "url"), {}, "'url' is a required property"),
    ],
    ("helm.toolkit.fluxcd.io/v2", "HelmRelease"): [
        (("spec", "chart", "spec", "sourceRef"), {"rename": "sourceref"}, "'sourceref' was unexpected"),
        (("spec", "maxHistory"), {"value": "5"}, "'5' is not of type 'integer'"),
        (("spec", "interval"), {}, "'interval' is a required property"),
    ],
    ("argoproj.io/v1alpha1", "Application"): [
        (("spec", "syncPolicy", "syncOptions"), {"rename": "syncOption"}, "'syncOption' was unexpected"),
        (("spec", "syncPolicy", "automated", "prune"), {"value": "true"}, "'true' is not of type 'boolean'"),
        (("spec", "destination"), {}, "'destination' is a required property"),
    ],
    ("monitoring.coreos.com/v1", "ServiceMonitor"): [
        (("spec", "endpoints", 0, "interval"), {"rename": "scrapeInterval"}, "'scrapeInterval' was unexpected"),
        (("spec", "endpoints", 0, "honorLabels"), {"value": "yes"}, "'yes' is not of type 'boolean'"),
        (("spec", "selector"), {}, "'selector' is a required property"),
    ],
    ("monitoring.coreos.com/v1", "PrometheusRule"): [
        (("spec", "groups", 0, "rules", 0, "expr"), {"rename": "expression"}, "'expression' was unexpected"),
        (("spec", "groups", 0, "rules", 0, "labels", "severity"), {"value": 3}, "3 is not of type 'string'"),
        (("spec", "groups", 0, "name"), {}, "'name' is a required property"),
    ],
}


def custom_resource(api_version: str, kind: str) -> dict:
    body = copy.deepcopy(CR_VALID[(api_version, kind)])
    return {"apiVersion": api_version, "kind": kind, "metadata": meta(kind.lower()), **body}


def test_every_custom_resource_has_valid_and_broken_examples():
    assert set(CR_BROKEN) == set(CR_VALID) == set(k8s_schemas.CUSTOM_RESOURCES)


@pytest.mark.parametrize(("api_version", "kind"), sorted(CR_VALID), ids="/".join)
def test_a_valid_custom_resource_passes(api_version, kind):
    assert validate(custom_resource(api_version, kind), VERSION) == []


@pytest.mark.parametrize(
    ("api_version", "kind", "path", "how", "says"),
    [(*key, *case) for key, cases in sorted(CR_BROKEN.items()) for case in cases],
    ids=lambda v: v if isinstance(v, str) and "/" not in v else "",
)
def test_a_broken_custom_resource_is_reported(api_version, kind, path, how, says):
    errors = validate(changed(custom_resource(api_version, kind), path, **how), VERSION)
    assert any(says in e for e in errors), errors


def test_maps_and_free_form_fields_stay_open_and_nested_objects_close():
    """What the validator enumerates is a map, what it never looks into is free-form (a
    HelmRelease's values, apiextensions JSON): any key; an object it reads is closed, however deep."""
    release = custom_resource("helm.toolkit.fluxcd.io/v2", "HelmRelease")
    release["spec"]["values"] = {"anything": {"at": ["any", {"depth": 1}]}}
    assert validate(release, VERSION) == []
    monitor = custom_resource("monitoring.coreos.com/v1", "ServiceMonitor")
    monitor["spec"]["selector"]["matchLabels"]["team.example/any-key"] = "v"
    assert validate(monitor, VERSION) == []
    scaler = custom_resource("keda.sh/v1alpha1", "ScaledObject")
    behavior = scaler["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    behavior["scaleDown"]["stabilisationWindowSeconds"] = 600
    errors = validate(scaler, VERSION)
    assert len(errors) == 1, errors
    assert "spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleDown: Additional properties" in errors[0]
    assert "'stabilisationWindowSeconds' was unexpected" in errors[0]


def test_enums_and_a_custom_resources_metadata_are_checked():
    route = changed(
        custom_resource("gateway.networking.k8s.io/v1", "HTTPRoute"),
        ("spec", "rules", 0, "matches", 0, "path", "type"),
        "Prefix",
    )
    assert any("spec.rules[0].matches[0].path.type: 'Prefix' is not one of" in e for e in validate(route, VERSION))
    scaler = custom_resource("keda.sh/v1alpha1", "ScaledObject")
    scaler["metadata"] = {**scaler["metadata"], "labelz": {"a": "b"}, "labels": {"bad key": "v"}}
    errors = validate(scaler, VERSION)
    assert [e for e in errors if "'labelz' was unexpected" in e] == [
        "keda.sh/v1alpha1 ScaledObject scaledobject: metadata: Additional properties are not allowed ('labelz' was unexpected)"
    ], errors  # once, from the version's ObjectMeta
    assert any("metadata.labels: key 'bad key'" in e for e in errors), errors


@pytest.mark.parametrize(
    ("api_version", "kind"),
    [
        ("gateway.networking.k8s.io/v1beta1", "HTTPRoute"),
        ("helm.toolkit.fluxcd.io/v2beta2", "HelmRelease"),
        ("keda.sh/v1alpha1", "ScaledJob"),
    ],
)
def test_another_version_or_kind_of_a_custom_resource_is_unknown_not_passed(api_version, kind):
    errors = validate({"apiVersion": api_version, "kind": kind, "metadata": meta("x"), "spec": {}}, VERSION)
    assert len(errors) == 1 and "unknown apiVersion/kind" in errors[0] and "crd_validators.md" in errors[0], errors


def test_without_the_npm_packages_a_custom_resource_fails(monkeypatch, tmp_path):
    monkeypatch.setattr(k8s_schemas, "NODE_MODULES", tmp_path / "node_modules")
    k8s_schemas.custom_resource_problems.cache_clear()
    try:
        errors = validate(custom_resource("keda.sh/v1alpha1", "ScaledObject"), VERSION)
    finally:
        k8s_schemas.custom_resource_problems.cache_clear()
    assert len(errors) == 1 and "run `npm ci`" in errors[0], errors


def test_the_validator_packages_are_pinned_and_listed():
    """package.json pins each package exactly (package-lock.json holds the tree), and the README
    names each with the upstream version it carries."""
    pins = json.loads((ROOT / "package.json").read_text())["devDependencies"]
    lock = json.loads((ROOT / "package-lock.json").read_text())["packages"]
    readme = (ROOT / "tests" / "crd_validators.md").read_text()
    assert pins
    for name, version in pins.items():
        assert re.fullmatch(r"\d+\.\d+\.\d+", version), (name, version)
        assert lock[f"node_modules/{name}"]["version"] == version
        assert f"`{name}` {version}" in readme, name


# -- every Kubernetes object of every example plan ---------------------------------------------


def cluster_versions(spec) -> set[str]:
    """The Kubernetes versions of a stack's clusters: its onprem-k8s targets' `cluster.version`."""
    return {t.cluster.version for t in spec.targets.values() if isinstance(t, OnPremK8sTarget)}


def assert_valid_kubernetes_objects(resources: list[dict], versions: set[str]) -> None:
    errors = plan_errors(resources, versions)
    assert not errors, "Kubernetes objects the API server would refuse:\n" + "\n".join(errors)


@pytest.mark.parametrize("path", EXAMPLE_STACKS, ids=lambda p: p.name)
def test_every_kubernetes_object_of_every_example_is_valid(path):
    """Each object of the plan, on its stack's cluster versions. An object is checked on every
    cluster version of its stack, so a stack with two clusters of different versions must give
    objects that both accept."""
    plan = plan_of_file(str(path))
    assert_valid_kubernetes_objects(plan.resources, cluster_versions(load_spec(str(path)).spec))


def _program(broken: bool) -> Callable[[], None]:
    def program() -> None:
        provider = k8s.Provider("site", render_yaml_to_directory="/nonexistent")
        opts = pulumi.ResourceOptions(provider=provider)
        deployment = copy.deepcopy(BUILTIN["Deployment"])
        if broken:
            deployment["spec"]["template"]["spec"]["containers"][0]["imagee"] = "oops"
        k8s.apps.v1.Deployment("engine", metadata=deployment["metadata"], spec=deployment["spec"], opts=opts)
        k8s.core.v1.Service("engine", spec=BUILTIN["Service"]["spec"], opts=opts)  # auto-named
        k8s.core.v1.NodePatch(
            "gpu-node-01", metadata=BUILTIN["Node"]["metadata"], spec=BUILTIN["Node"]["spec"], opts=opts
        )
        scaler = CR_VALID[("keda.sh/v1alpha1", "ScaledObject")]
        k8s.apiextensions.CustomResource(
            "engine-scaler",
            api_version="keda.sh/v1alpha1",
            kind="ScaledObject",
            metadata=meta("engine"),
            **scaler,
            opts=opts,
        )
        k8s.helm.v3.Release(
            "gpu-operator", chart="gpu-operator", version="v25.10.0", values={"driver": {"enabled": False}}, opts=opts
        )

    return program


@pytest.fixture(scope="module")
def recorded() -> dict[bool, list[dict]]:
    return {
        broken: [r.to_json() for r in record(_program(broken), "k8s-schemas").registrations] for broken in (False, True)
    }


def test_plan_objects_rebuilds_each_object_from_its_type_token(recorded):
    objects = {
        (body["apiVersion"], body["kind"], logical): (expected, body)
        for logical, expected, body in plan_objects(recorded[False])
    }
    assert set(objects) == {
        ("apps/v1", "Deployment", "engine"),
        ("v1", "Service", "engine"),
        ("v1", "Node", "gpu-node-01"),
        ("keda.sh/v1alpha1", "ScaledObject", "engine-scaler"),
    }  # the Helm release is not an object; the provider is not either
    expected, service = objects[("v1", "Service", "engine")]
    assert expected == ("v1", "Service")
    assert service["metadata"]["name"] == "engine-0a1b2c3d"  # named as pulumi-kubernetes would
    assert objects[("v1", "Node", "gpu-node-01")][0] == ("v1", "Node")  # a NodePatch patches a Node


def test_the_example_check_fails_on_an_invalid_object(recorded):
    """The function the example test uses, fed a plan with one broken object, must fail; the same
    plan without the break passes (so the failure is the break, not the harness)."""
    builtin_only = {
        broken: [r for r in resources if r["type"] != "kubernetes:keda.sh/v1alpha1:ScaledObject"]
        for broken, resources in recorded.items()
    }
    assert_valid_kubernetes_objects(builtin_only[False], {"1.31"})
    with pytest.raises(
        AssertionError, match=r"\[1\.31\] engine: apps/v1 Deployment engine-h100: .*'imagee' was unexpected"
    ):
        assert_valid_kubernetes_objects(builtin_only[True], {"1.31"})


def test_a_recorded_custom_resource_is_validated_by_its_crd(recorded):
    assert_valid_kubernetes_objects(recorded[False], {"1.31"})


def test_an_object_in_a_stack_without_a_cluster_version_fails(recorded):
    errors = plan_errors(recorded[False], set())
    assert errors and all("no cluster version" in e for e in errors)


def test_a_token_that_disagrees_with_the_body_fails():
    resource = {
        "type": "kubernetes:apps/v1:Deployment",
        "name": "engine",
        "custom": True,
        "inputs": {**BUILTIN["Deployment"], "apiVersion": "apps/v1beta2"},
    }
    errors = plan_errors([resource], {"1.31"})
    assert any("registered as apps/v1 Deployment but its body says apps/v1beta2 Deployment" in e for e in errors), (
        errors
    )


def test_a_config_groups_objects_are_checked_and_opaque_components_are_errors():
    group = {
        "type": "kubernetes:yaml/v2:ConfigGroup",
        "name": "extras",
        "custom": False,
        "inputs": {"objs": [BUILTIN["ConfigMap"], changed(BUILTIN["Service"], ("spec", "ports", 0, "port"), "80")]},
    }
    errors = plan_errors([group], {"1.31"})
    assert len(errors) == 1 and errors[0].startswith("[1.31] extras.objs[1]: v1 Service engine: spec.ports[0].port"), (
        errors
    )
    chart = {"type": "kubernetes:helm.sh/v4:Chart", "name": "gpu-operator", "custom": False, "inputs": {"chart": "x"}}
    from_yaml = {
        "type": "kubernetes:yaml/v2:ConfigGroup",
        "name": "raw",
        "custom": False,
        "inputs": {"yaml": "kind: X"},
    }
    errors = plan_errors([chart, from_yaml], {"1.31"})
    assert [e.split(":")[0] for e in errors] == ["gpu-operator", "raw"], errors
    assert all("makes its objects at deploy time" in e for e in errors)
