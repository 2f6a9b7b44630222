"""The Kubernetes rules end to end: objects registered through pulumi-kubernetes' own classes under
the offline engine's mocks (so the type tokens and property keys are the SDK's, custom resources
included), then analyzed by the pack over Analyzer gRPC with the config `policy-config` derives.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable
from pathlib import Path

import pulumi_kubernetes as k8s
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from test_kubernetes_rules import (
    ENFORCE,
    ENGINE_NS,
    FROM_GATEWAY,
    INGRESS_PROPS,
    LABELS,
    OPERATOR,
    REASON,
    SYSTEM_NS,
    workload,
)

from conftest import STACKS, stack_text
from inferstack import catalog
from inferstack.offline.engine import record
from inferstack.offline.policy import analyze
from inferstack.planning import policy_config
from inferstack.spec.loader import load_spec, parse_spec

DEPLOYMENT = "kubernetes:apps/v1:Deployment"


def _meta(name: str, namespace: str | None = "llm", labels: dict | None = None, annotations: dict | None = None):
    meta = {"name": name, "labels": dict(LABELS if labels is None else labels), "annotations": annotations or {}}
    return meta | ({"namespace": namespace} if namespace else {})


def on_prem_objects(change: Callable[[dict], None] = lambda objects: None) -> Callable[[], None]:
    """A program that registers what the on-prem target creates, after `change` edits the bodies."""
    engine = workload(DEPLOYMENT)
    objects = {
        "ns": {"metadata": _meta("llm", None, ENGINE_NS)},
        "system-ns": {"metadata": _meta("gpu-operator", None, {**SYSTEM_NS, ENFORCE: "privileged"}, REASON)},
        "engine": engine,
        "deny": {
            "metadata": _meta("engine-ingress"),
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [FROM_GATEWAY]},
        },
        "svc": {
            "metadata": _meta("engine"),
            "spec": {"type": "ClusterIP", "ports": [{"port": 80, "targetPort": 8000}]},
        },
        "ingress": {"metadata": _meta("engine"), **copy.deepcopy(INGRESS_PROPS)},
        "operator": copy.deepcopy(OPERATOR),
    }
    change(objects)

    def program() -> None:
        o = objects
        k8s.core.v1.Namespace("llm", metadata=o["ns"]["metadata"])
        k8s.core.v1.Namespace("gpu-operator", metadata=o["system-ns"]["metadata"])
        k8s.apps.v1.Deployment("engine", metadata=o["engine"]["metadata"], spec=o["engine"]["spec"])
        k8s.networking.v1.NetworkPolicy("deny", metadata=o["deny"]["metadata"], spec=o["deny"]["spec"])
        k8s.core.v1.ResourceQuota("gpus", metadata=_meta("gpus"), spec={"hard": {"requests.nvidia.com/gpu": "2"}})
        k8s.core.v1.Service("svc", metadata=o["svc"]["metadata"], spec=o["svc"]["spec"])
        k8s.networking.v1.Ingress("ingress", metadata=o["ingress"]["metadata"], spec=o["ingress"]["spec"])
        op = o["operator"]
        k8s.helm.v3.Release(
            "gpu-operator",
            chart=op["chart"],
            version=op.get("version"),
            namespace=op["namespace"],
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=op["repositoryOpts"]["repo"]),
        )
        k8s.core.v1.NodePatch(
            "gpu-node-1", metadata={"name": "gpu-node-1", "labels": {"nvidia.com/mig.config": "all-3g.40gb"}}
        )
        k8s.apiextensions.CustomResource(
            "scaler",
            api_version="keda.sh/v1alpha1",
            kind="ScaledObject",
            metadata=_meta("engine"),
            spec={"scaleTargetRef": {"name": "engine"}, "minReplicaCount": 1, "maxReplicaCount": 2},
        )
        k8s.apiextensions.CustomResource(
            "slos",
            api_version="monitoring.coreos.com/v1",
            kind="PrometheusRule",
            metadata=_meta("engine-slos"),
            spec={"groups": [{"name": "slos", "rules": [LATENCY_ALERT]}]},
        )

    return program


# What the latency advisory looks for next to a serving Deployment (planning.onprem.observability).
LATENCY_ALERT = {
    "alert": "InferstackLatencyP95",
    "expr": 'histogram_quantile(0.95, sum by (le) (rate(vllm:e2e_request_latency_seconds_bucket{namespace="llm"}[1h]))) > 30',
}


def _plan(program: Callable[[], None]) -> dict:
    monitor = record(program, "onprem")
    return {"stack": "onprem", "resources": [r.to_json() for r in monitor.registrations]}


@pytest.fixture
def config() -> dict:
    """The config `inferstack policy-config` derives for an EU spec."""
    return policy_config.derive(load_spec(STACKS / "prod.yaml").spec)


def test_the_derived_config_allows_the_residencys_site_locations_only(config):
    allowed = config[policy_config.K8S_LOCATION]["allowedLocations"]
    assert allowed == sorted(catalog.jurisdictions()["eu"].sites)
    assert "de" in allowed and "us" not in allowed and "gb" not in allowed


def test_a_residency_of_regions_allows_the_sites_it_lists():
    text = stack_text("dev.yaml")
    only_regions = text.replace("  jurisdiction: eu\n", "  regions: [eu-central-1]\n")
    with_site = text.replace("  jurisdiction: eu\n", "  regions: [eu-central-1, de]\n")
    assert only_regions != text
    assert policy_config.derive(parse_spec(only_regions, "dev.yaml").spec)[policy_config.K8S_LOCATION] == {
        "allowedLocations": []
    }
    assert policy_config.derive(parse_spec(with_site, "dev.yaml").spec)[policy_config.K8S_LOCATION] == {
        "allowedLocations": ["de"]
    }


def test_the_sdk_registers_the_tokens_the_rules_match():
    types = {r["type"] for r in _plan(on_prem_objects())["resources"]}
    assert {
        "kubernetes:core/v1:Namespace",
        "kubernetes:apps/v1:Deployment",
        "kubernetes:networking.k8s.io/v1:NetworkPolicy",
        "kubernetes:core/v1:Service",
        "kubernetes:networking.k8s.io/v1:Ingress",
        "kubernetes:helm.sh/v3:Release",
        "kubernetes:core/v1:NodePatch",
        "kubernetes:keda.sh/v1alpha1:ScaledObject",  # CustomResource: kubernetes:<apiVersion>:<kind>
    } <= types


def test_the_on_prem_objects_pass_over_grpc(config):
    report = analyze(_plan(on_prem_objects()), config)
    assert report.violations == []


def _break(objects: dict) -> None:
    objects["ns"]["metadata"]["labels"]["inferstack.io/location"] = "us"
    objects["deny"]["metadata"]["namespace"] = "elsewhere"
    objects["engine"]["spec"]["template"]["spec"]["volumes"].append({"name": "m", "hostPath": {"path": "/models"}})
    objects["svc"]["spec"]["type"] = "LoadBalancer"
    objects["operator"]["version"] = None
    objects["system-ns"]["metadata"]["annotations"] = {}


def test_each_broken_object_is_reported_mandatory_over_grpc(config):
    report = analyze(_plan(on_prem_objects(_break)), config)
    found = {(v.policy, v.enforcement, v.urn.rsplit("::", 1)[1]) for v in report.violations}
    assert found == {
        ("residency-kubernetes-namespace-require-allowed-location", "mandatory", "llm"),
        ("security-kubernetes-namespace-require-default-deny-networkpolicy", "mandatory", "llm"),
        ("security-kubernetes-workload-disallow-hostpath-volumes", "mandatory", "engine"),
        ("security-kubernetes-service-disallow-external-exposure", "mandatory", "svc"),
        ("security-kubernetes-helm-release-require-pinned-chart", "mandatory", "gpu-operator"),
        ("security-kubernetes-namespace-require-pod-security-label", "mandatory", "gpu-operator"),
    }
