"""The pack's Kubernetes rules: a passing and a violating object (or stack) for each.

The passing objects are the shapes the on-prem target creates (a serving Deployment that passes
`restricted`, its namespace, Service, NetworkPolicy, Ingress, the GPU operator's chart in apply and
render mode); each case changes one thing and expects the rule's words.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from inferstack.policy_pack.inferstack_policies.kubernetes import WORKLOADS
from policy_harness import resource, run_resource, run_stack

DIGEST = "sha256:" + "a" * 64
# The standard labels (planning/naming.py standard_tags) the on-prem planner puts on every object.
LABELS = {
    "stack": "prod",
    "environment": "prod",
    "team": "ml",
    "model": "llama-3-8b",
    "data-classification": "internal",
    "workload": "serving",
    "managed-by": "inferstack",
}
GPU = "nvidia.com/gpu"

# A pod of the engine as the on-prem target runs it: restricted, on the NVIDIA runtime class, with
# a weights-fetch init container that needs no GPU and hides the node's GPUs.
POD: dict[str, Any] = {
    "runtimeClassName": "nvidia",
    "automountServiceAccountToken": False,
    "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
    "initContainers": [
        {
            "name": "fetch-weights",
            "image": f"registry.site/aws-cli@{DIGEST}",
            "env": [{"name": "NVIDIA_VISIBLE_DEVICES", "value": "void"}],
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]},
            },
            "resources": {"limits": {"cpu": "2", "memory": "2Gi"}},
        }
    ],
    "containers": [
        {
            "name": "engine",
            "image": f"registry.site/vllm-openai@{DIGEST}",
            "ports": [{"name": "http", "containerPort": 8000}],
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]},
            },
            "resources": {
                "limits": {"cpu": "8", "memory": "64Gi", GPU: 1},
                "requests": {"cpu": "4", "memory": "64Gi", GPU: 1},
            },
        }
    ],
    "volumes": [{"name": "cache", "emptyDir": {}}, {"name": "shm", "emptyDir": {"medium": "Memory"}}],
}


def workload(kind: str, change: Callable[[dict], Any] | None = None, labels: dict | None = None) -> dict:
    """The pod above inside a workload of `kind`, after `change` mutates the pod spec."""
    pod = copy.deepcopy(POD)
    if change is not None:
        change(pod)
    body: dict[str, Any] = pod
    path = WORKLOADS[kind]
    for i in range(len(path) - 1, -1, -1):
        body = {path[i]: body}
        if path[i] == "template":
            body["template"]["metadata"] = {"labels": dict(LABELS if labels is None else labels)}
    return {
        "metadata": {"name": "engine", "namespace": "llm", "labels": dict(LABELS if labels is None else labels)},
        **body,
    }


def engine(pod: dict) -> dict:
    return pod["containers"][0]


def init(pod: dict) -> dict:
    return pod["initContainers"][0]


def _set(target: Callable[[dict], dict], **fields: Any) -> Callable[[dict], None]:
    return lambda pod: target(pod).update(fields)


def _ctx(target: Callable[[dict], dict], **fields: Any) -> Callable[[dict], None]:
    return lambda pod: target(pod)["securityContext"].update(fields)


def _pod(pod: dict) -> dict:
    return pod


# (policy, change to the pod, expected words; None: the change passes)
WORKLOAD_CASES: list[tuple[str, Callable[[dict], Any], str | None]] = [
    (
        "security-kubernetes-workload-require-non-root",
        lambda p: p["securityContext"].pop("runAsNonRoot"),
        "may run as root",
    ),
    ("security-kubernetes-workload-require-non-root", _ctx(engine, runAsUser=0), "runs as UID 0"),
    ("security-kubernetes-workload-disallow-privileged", _ctx(engine, privileged=True), "is privileged"),
    (
        "security-kubernetes-workload-disallow-privileged",
        lambda p: init(p)["securityContext"].pop("allowPrivilegeEscalation"),
        "fetch-weights allows privilege escalation",
    ),
    (
        "security-kubernetes-workload-require-drop-all-capabilities",
        _ctx(init, capabilities={"drop": ["NET_RAW"]}),
        "fetch-weights does not drop ALL capabilities",
    ),
    (
        "security-kubernetes-workload-require-drop-all-capabilities",
        _ctx(engine, capabilities={"drop": ["ALL"], "add": ["SYS_ADMIN", "NET_BIND_SERVICE"]}),
        "adds capabilities ['SYS_ADMIN']",
    ),
    (
        "security-kubernetes-workload-require-drop-all-capabilities",
        _ctx(engine, capabilities={"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}),
        None,
    ),
    (
        "security-kubernetes-workload-require-seccomp-profile",
        lambda p: p["securityContext"].pop("seccompProfile"),
        "unset",
    ),
    (
        "security-kubernetes-workload-require-seccomp-profile",
        _ctx(engine, seccompProfile={"type": "Unconfined"}),
        "engine runs with seccomp profile Unconfined",
    ),
    (
        "security-kubernetes-workload-require-seccomp-profile",
        _ctx(engine, seccompProfile={"type": "Localhost", "localhostProfile": "profiles/engine.json"}),
        None,
    ),
    (
        "security-kubernetes-workload-require-seccomp-profile",
        lambda p: [
            p["securityContext"].update(seccompProfile={"type": "Unconfined"}),
            [c["securityContext"].update(seccompProfile={"type": "RuntimeDefault"}) for c in (engine(p), init(p))],
        ],
        "The pod's seccomp profile is Unconfined",
    ),
    ("security-kubernetes-workload-disallow-host-namespaces", _set(_pod, hostNetwork=True), "sets hostNetwork"),
    ("security-kubernetes-workload-disallow-host-namespaces", _set(_pod, hostPID=True), "sets hostPID"),
    (
        "security-kubernetes-workload-disallow-host-ports",
        _set(engine, ports=[{"containerPort": 8000, "hostPort": 8000}]),
        "binds host port 8000",
    ),
    (
        "security-kubernetes-workload-disallow-hostpath-volumes",
        lambda p: p["volumes"].append({"name": "models", "hostPath": {"path": "/models"}}),
        "Volume models mounts the node's '/models'",
    ),
    (
        "security-kubernetes-workload-require-restricted-volume-types",
        lambda p: p["volumes"].append({"name": "models", "nfs": {"server": "nas.site", "path": "/models"}}),
        "Volume models is of type nfs",
    ),
    (
        "security-kubernetes-workload-require-restricted-volume-types",
        lambda p: p["volumes"].append({"name": "weights", "persistentVolumeClaim": {"claimName": "weights"}}),
        None,
    ),
    (
        "security-kubernetes-workload-disallow-unsafe-options",
        lambda p: p["securityContext"].update(sysctls=[{"name": "kernel.msgmax", "value": "65536"}]),
        "unsafe sysctl kernel.msgmax",
    ),
    (
        "security-kubernetes-workload-disallow-unsafe-options",
        lambda p: p["securityContext"].update(sysctls=[{"name": "net.ipv4.tcp_keepalive_time", "value": "60"}]),
        None,
    ),
    (
        "security-kubernetes-workload-disallow-unsafe-options",
        _ctx(engine, procMount="Unmasked"),
        "engine unmasks /proc",
    ),
    (
        "security-kubernetes-workload-disallow-unsafe-options",
        _ctx(init, seLinuxOptions={"type": "spc_t"}),
        "fetch-weights sets custom SELinux options",
    ),
    (
        "security-kubernetes-workload-disallow-unsafe-options",
        _ctx(engine, seLinuxOptions={"level": "s0:c123,c456"}),
        None,
    ),
    (
        "security-kubernetes-workload-disallow-unsafe-options",
        lambda p: p["securityContext"].update(appArmorProfile={"type": "Unconfined"}),
        "The pod sets AppArmor profile Unconfined",
    ),
    (
        "security-kubernetes-workload-disallow-unsafe-options",
        _ctx(engine, windowsOptions={"hostProcess": True}),
        "Windows HostProcess",
    ),
    (
        "security-kubernetes-workload-disallow-unsafe-options",
        _set(engine, startupProbe={"httpGet": {"path": "/health", "port": 8000, "host": "10.0.0.1"}}),
        "probes or hooks another host (10.0.0.1)",
    ),
    (
        "security-kubernetes-workload-disallow-unsafe-options",
        _set(engine, startupProbe={"httpGet": {"path": "/health", "port": 8000}, "failureThreshold": 120}),
        None,
    ),
    (
        "security-kubernetes-workload-require-readonly-rootfs",
        _ctx(engine, readOnlyRootFilesystem=False),
        "writable root filesystem",
    ),
    (
        "security-kubernetes-workload-disallow-serviceaccount-token",
        lambda p: p.pop("automountServiceAccountToken"),
        "mounts a service account token",
    ),
    (
        "security-kubernetes-workload-disallow-serviceaccount-token",
        _set(_pod, automountServiceAccountToken=True),
        "mounts a service account token",
    ),
    (
        "security-kubernetes-workload-require-resource-limits",
        _set(init, resources={}),
        "fetch-weights has no limit for cpu, memory",
    ),
    (
        "security-kubernetes-workload-require-gpu-limits",
        lambda p: engine(p)["resources"]["limits"].pop(GPU),
        "requests nvidia.com/gpu without a limit",
    ),
    (
        "security-kubernetes-workload-require-gpu-limits",
        lambda p: engine(p)["resources"]["limits"].update({GPU: 2}),
        "requests 1 nvidia.com/gpu but limits 2",
    ),
    (
        "security-kubernetes-workload-require-gpu-limits",
        _set(engine, resources={"requests": {"nvidia.com/mig-3g.40gb": 1}, "limits": {"cpu": "8", "memory": "8Gi"}}),
        "requests nvidia.com/mig-3g.40gb without a limit",
    ),
    (
        "security-kubernetes-workload-require-gpu-limits",
        _set(engine, resources={"limits": {"cpu": "8", "memory": "8Gi", "nvidia.com/mig-3g.40gb": 1}}),
        None,
    ),
    ("security-kubernetes-workload-require-gpu-limits", _set(init, env=[]), "fetch-weights runs on the GPU runtime"),
    (
        "security-kubernetes-workload-require-gpu-limits",
        lambda p: [p.pop("runtimeClassName"), init(p).pop("env")],
        None,
    ),
    (
        "security-kubernetes-workload-require-image-digest",
        _set(engine, image="registry.site/vllm-openai:v0.11.0"),
        "mutable image reference 'registry.site/vllm-openai:v0.11.0' in production",
    ),
]


@pytest.mark.parametrize("kind", sorted(WORKLOADS))
def test_the_engine_pod_passes_every_workload_rule(kind):
    for policy in {c[0] for c in WORKLOAD_CASES}:
        assert run_resource(policy, kind, workload(kind)) == [], policy


@pytest.mark.parametrize(
    ("policy", "change", "words"), WORKLOAD_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(WORKLOAD_CASES)]
)
def test_workload_rule(policy, change, words):
    for kind in ("kubernetes:apps/v1:Deployment", "kubernetes:batch/v1:CronJob", "kubernetes:core/v1:Pod"):
        found = run_resource(policy, kind, workload(kind, change))
        if words is None:
            assert found == [], found
        else:
            assert any(words in m for m in found), found
            assert all(" Fix: " in m for m in found)


def test_apparmor_annotations_must_keep_a_profile():
    policy, kind = "security-kubernetes-workload-disallow-unsafe-options", "kubernetes:apps/v1:Deployment"
    for value, ok in (("runtime/default", True), ("localhost/engine", True), ("unconfined", False)):
        props = workload(kind)
        annotations = {"container.apparmor.security.beta.kubernetes.io/engine": value}
        props["spec"]["template"]["metadata"]["annotations"] = annotations
        found = run_resource(policy, kind, props)
        assert (found == []) is ok and (ok or "sets AppArmor profile unconfined" in found[0]), found


def test_image_digests_are_required_in_production_and_where_the_environment_is_unknown():
    policy, kind = "security-kubernetes-workload-require-image-digest", "kubernetes:apps/v1:Deployment"
    tagged = _set(engine, image="registry.site/vllm-openai:v0.11.0")
    assert run_resource(policy, kind, workload(kind, tagged, labels={**LABELS, "environment": "dev"})) == []
    assert run_resource(policy, kind, workload(kind, tagged, labels={"workload": "serving"}))  # no label: production
    staging = {"productionEnvironments": ["prod", "staging"]}
    found = run_resource(
        policy, kind, workload(kind, tagged, labels={**LABELS, "environment": "staging"}), config=staging
    )
    assert found and "in production" in found[0]


# -- namespaces ---------------------------------------------------------------------------------

NS = "kubernetes:core/v1:Namespace"
PSS = "security-kubernetes-namespace-require-pod-security-label"
LOCATION = "residency-kubernetes-namespace-require-allowed-location"
ENFORCE = "pod-security.kubernetes.io/enforce"


def namespace(labels: dict, annotations: dict | None = None) -> dict:
    return {"metadata": {"name": "llm", "labels": labels, "annotations": annotations or {}}}


ENGINE_NS = {**LABELS, ENFORCE: "restricted", "inferstack.io/location": "de"}
SYSTEM_NS = {**LABELS, "workload": "system", "inferstack.io/location": "de"}
REASON = {"inferstack.io/privileged-reason": "the GPU operator installs the driver and toolkit on the nodes"}

NAMESPACE_CASES = [
    (PSS, namespace(ENGINE_NS), namespace({**ENGINE_NS, ENFORCE: "baseline"}), "enforces 'baseline', not 'restricted'"),
    # The reason annotation opens system namespaces only: the engine's stays restricted.
    (PSS, namespace(ENGINE_NS), namespace({**ENGINE_NS, ENFORCE: "privileged"}, REASON), "not 'restricted'"),
    (PSS, namespace({**SYSTEM_NS, ENFORCE: "baseline"}), namespace(SYSTEM_NS), "enforces no Pod Security Standard"),
    (PSS, namespace({**SYSTEM_NS, ENFORCE: "baseline"}), namespace({**SYSTEM_NS, ENFORCE: "open"}), "enforce='open'"),
    (
        PSS,
        namespace({**SYSTEM_NS, ENFORCE: "privileged"}, REASON),
        namespace({**SYSTEM_NS, ENFORCE: "privileged"}, {"inferstack.io/privileged-reason": " "}),
        "no inferstack.io/privileged-reason annotation",
    ),
    (LOCATION, namespace(ENGINE_NS), namespace({**ENGINE_NS, "inferstack.io/location": "us"}), "'us' is outside"),
    (LOCATION, namespace(SYSTEM_NS), namespace(LABELS), "no inferstack.io/location label"),
]


@pytest.mark.parametrize(("policy", "good", "bad", "words"), NAMESPACE_CASES, ids=[c[0] for c in NAMESPACE_CASES])
def test_namespace_rule(policy, good, bad, words):
    config = {"allowedLocations": ["de", "fr"]}
    assert run_resource(policy, NS, good, config=config) == []
    found = run_resource(policy, NS, bad, config=config)
    assert any(words in m for m in found), found


def test_namespace_location_fails_closed_without_config_and_on_unknown_values():
    from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, unknown_checking_proxy

    assert "outside the allowed locations []" in run_resource(LOCATION, NS, namespace(ENGINE_NS))[0]
    unknown = unknown_checking_proxy(namespace({**ENGINE_NS, "inferstack.io/location": UNKNOWN_STRING_VALUE}))
    found = run_resource(LOCATION, NS, unknown, config={"allowedLocations": ["de"]})
    assert found and "unknown at preview" in found[0]


# -- exposure and charts ------------------------------------------------------------------------

SERVICE = "kubernetes:core/v1:Service"
INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
GATEWAY = "kubernetes:gateway.networking.k8s.io/v1:Gateway"
HTTPROUTE = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"
RELEASE = "kubernetes:helm.sh/v3:Release"
CHART_V4 = "kubernetes:helm.sh/v4:Chart"
FLUX_RELEASE = "kubernetes:helm.toolkit.fluxcd.io/v2:HelmRelease"
FLUX_REPO = "kubernetes:source.toolkit.fluxcd.io/v1:HelmRepository"
FLUX_OCI = "kubernetes:source.toolkit.fluxcd.io/v1:OCIRepository"
ARGO_APP = "kubernetes:argoproj.io/v1alpha1:Application"
EXPOSE = "security-kubernetes-service-disallow-external-exposure"
TLS = "security-kubernetes-ingress-require-tls"
PINNED = "security-kubernetes-helm-release-require-pinned-chart"

SERVICE_PROPS = {
    "metadata": {"name": "engine"},
    "spec": {"type": "ClusterIP", "ports": [{"port": 80, "targetPort": 8000}]},
}
INGRESS_PROPS = {
    "spec": {
        "ingressClassName": "internal",
        "tls": [{"hosts": ["llm.site.example"], "secretName": "llm-tls"}],
        "rules": [{"host": "llm.site.example", "http": {"paths": []}}],
    }
}
OPERATOR = {
    "chart": "gpu-operator",
    "version": "v25.10.0",
    "namespace": "gpu-operator",
    "repositoryOpts": {"repo": "https://helm.ngc.nvidia.com/nvidia"},
}
ARGO = {
    "spec": {
        "source": {"repoURL": "registry.site/nvidia", "chart": "gpu-operator", "targetRevision": "v25.10.0"},
        "destination": {"namespace": "gpu-operator"},
    }
}


def _with(props: dict, *path_and_value: Any) -> dict:
    """A deep copy of props with one value set (the last argument) at a path; None removes it."""
    out = copy.deepcopy(props)
    *path, value = path_and_value
    node = out
    for step in path[:-1]:
        node = node.setdefault(step, {}) if isinstance(step, str) else node[step]
    if value is None:
        node.pop(path[-1], None)
    else:
        node[path[-1]] = value
    return out


OBJECT_CASES = [
    (EXPOSE, SERVICE, SERVICE_PROPS, _with(SERVICE_PROPS, "spec", "type", "LoadBalancer"), "of type LoadBalancer"),
    (
        EXPOSE,
        SERVICE,
        _with(SERVICE_PROPS, "spec", "type", None),
        _with(SERVICE_PROPS, "spec", "type", "NodePort"),
        "NodePort",
    ),
    (EXPOSE, SERVICE, SERVICE_PROPS, _with(SERVICE_PROPS, "spec", "externalIPs", ["10.0.0.9"]), "has externalIPs"),
    (
        EXPOSE,
        SERVICE,
        _with(
            _with(SERVICE_PROPS, "spec", "type", "LoadBalancer"),
            "metadata",
            "annotations",
            {"inferstack.io/exposure-reason": "the site's L4 balancer fronts the pool"},
        ),
        _with(SERVICE_PROPS, "metadata", "annotations", {"inferstack.io/exposure-reason": ""})
        | {"spec": {"type": "NodePort"}},
        "of type NodePort",
    ),
    (TLS, INGRESS, INGRESS_PROPS, _with(INGRESS_PROPS, "spec", "tls", None), "no TLS section"),
    (
        TLS,
        INGRESS,
        INGRESS_PROPS,
        _with(INGRESS_PROPS, "spec", "rules", [{"host": "other.site.example"}]),
        "Host other.site.example is not covered",
    ),
    (
        TLS,
        INGRESS,
        INGRESS_PROPS,
        _with(INGRESS_PROPS, "spec", "tls", [{"hosts": ["llm.site.example"]}]),
        "names no certificate",
    ),
    (
        TLS,
        GATEWAY,
        {"spec": {"listeners": [{"name": "https", "protocol": "HTTPS", "port": 443}]}},
        {"spec": {"listeners": [{"name": "http", "protocol": "HTTP", "port": 80}]}},
        "Listener http speaks 'HTTP'",
    ),
    (
        TLS,
        HTTPROUTE,
        {"spec": {"parentRefs": [{"name": "internal", "namespace": "gateway", "sectionName": "https"}]}},
        {"spec": {"parentRefs": [{"name": "internal", "namespace": "gateway"}]}},
        "attaches to every listener of Gateway 'internal'",
    ),
    (PINNED, RELEASE, OPERATOR, _with(OPERATOR, "version", None), "pins no chart version"),
    (PINNED, RELEASE, OPERATOR, _with(OPERATOR, "version", "^25.0.0"), "'^25.0.0', not one exact version"),
    (PINNED, RELEASE, OPERATOR, _with(OPERATOR, "repositoryOpts", "repo", "http://charts.site"), "over http://"),
    (PINNED, RELEASE, OPERATOR, _with(OPERATOR, "repositoryOpts", None), "names no chart repository"),
    (
        PINNED,
        RELEASE,
        _with(_with(OPERATOR, "repositoryOpts", None), "chart", "oci://registry.site/nvidia/gpu-operator"),
        _with(_with(OPERATOR, "repositoryOpts", None), "chart", "http://charts.site/gpu-operator-v25.10.0.tgz"),
        "over http://",
    ),
    (PINNED, CHART_V4, OPERATOR, _with(OPERATOR, "plainHttp", True), "plain HTTP"),
    (
        PINNED,
        FLUX_RELEASE,
        {"spec": {"chart": {"spec": {"chart": "gpu-operator", "version": "v25.10.0"}}}},
        {"spec": {"chart": {"spec": {"chart": "gpu-operator", "version": "25.x"}}}},
        "'25.x', not one exact version",
    ),
    (
        PINNED,
        FLUX_RELEASE,
        {"spec": {"chartRef": {"kind": "OCIRepository", "name": "gpu-operator"}}},
        {"spec": {"chart": {"spec": {"chart": "gpu-operator"}}}},
        "pins no chart version",
    ),
    (
        PINNED,
        FLUX_REPO,
        {"spec": {"url": "https://charts.site/nvidia"}},
        {"spec": {"url": "http://charts.site"}},
        "over http://",
    ),
    (
        PINNED,
        FLUX_OCI,
        {"spec": {"url": "oci://registry.site/nvidia/gpu-operator", "ref": {"tag": "v25.10.0"}}},
        {"spec": {"url": "oci://registry.site/nvidia/gpu-operator", "ref": {"semver": ">=25.0.0"}}},
        "not one exact version or digest",
    ),
    (
        PINNED,
        FLUX_OCI,
        {"spec": {"url": "oci://registry.site/nvidia/gpu-operator", "ref": {"digest": DIGEST}}},
        {"spec": {"url": "oci://registry.site/nvidia/gpu-operator"}},
        "the latest tag",
    ),
    (PINNED, ARGO_APP, ARGO, _with(ARGO, "spec", "source", "targetRevision", "*"), "'*', not one exact version"),
    (PINNED, ARGO_APP, ARGO, _with(ARGO, "spec", "source", "repoURL", "http://charts.site"), "over http://"),
]


@pytest.mark.parametrize(
    ("policy", "token", "good", "bad", "words"), OBJECT_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(OBJECT_CASES)]
)
def test_object_rule(policy, token, good, bad, words):
    assert run_resource(policy, token, good) == []
    found = run_resource(policy, token, bad)
    assert any(words in m for m in found), found
    assert all(" Fix: " in m for m in found)


def test_kubernetes_objects_carry_the_standard_labels_except_releases_and_node_patches():
    policy = "tags-resource-require-standard-tags"
    assert run_resource(policy, SERVICE, SERVICE_PROPS | {"metadata": {"labels": LABELS}}) == []
    found = run_resource(policy, "kubernetes:keda.sh/v1alpha1:ScaledObject", {"metadata": {"labels": {"stack": "p"}}})
    assert found and "Missing tags: environment, team, model, data-classification" in found[0]
    assert run_resource(policy, RELEASE, OPERATOR) == []
    assert run_resource(policy, "kubernetes:core/v1:NodePatch", {"metadata": {"name": "gpu-node-1"}}) == []


def test_argo_git_sources_are_not_charts():
    git = {"spec": {"source": {"repoURL": "git@git.site:ops/cluster.git", "path": "apps", "targetRevision": "HEAD"}}}
    assert run_resource(PINNED, ARGO_APP, git) == []


# -- the stack rule: a default-deny NetworkPolicy where the engine runs --------------------------

DENY = "security-kubernetes-namespace-require-default-deny-networkpolicy"
NETPOL = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
FROM_GATEWAY = {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "gateway"}}}]}


def netpol(name: str, namespace_: str = "llm", **spec: Any) -> Any:
    body = {"podSelector": {}, "policyTypes": ["Ingress"], **spec}
    return resource(NETPOL, {"metadata": {"name": name, "namespace": namespace_}, "spec": body}, name)


def test_engine_namespaces_deny_ingress_by_default():
    ns = resource(NS, namespace(ENGINE_NS), "ns")
    deployment = resource("kubernetes:apps/v1:Deployment", workload("kubernetes:apps/v1:Deployment"), "engine")
    deny = netpol("deny", ingress=[FROM_GATEWAY])
    assert run_stack(DENY, [ns, deployment, deny]) == []
    # policyTypes may be left out: Ingress is implied.
    implied = resource(NETPOL, {"metadata": {"name": "d", "namespace": "llm"}, "spec": {"podSelector": {}}}, "d")
    assert run_stack(DENY, [ns, implied]) == []

    missing = run_stack(DENY, [ns, deployment])
    assert len(missing) == 1 and "Namespace llm runs the engine with no default-deny" in missing[0][0]
    assert missing[0][1].endswith("::ns")
    narrow = netpol("narrow", podSelector={"matchLabels": {"app": "engine"}})
    egress_only = netpol("egress", policyTypes=["Egress"])
    elsewhere = netpol("deny", namespace_="other")
    for policies in ([narrow], [egress_only], [elsewhere]):
        assert "no default-deny" in run_stack(DENY, [ns, *policies])[0][0]


def test_a_workload_outside_a_declared_namespace_needs_a_policy_too():
    deployment = workload("kubernetes:apps/v1:Deployment")
    deployment["metadata"]["namespace"] = "team-a"
    found = run_stack(DENY, [resource("kubernetes:apps/v1:Deployment", deployment, "engine")])
    assert "Namespace team-a runs the engine" in found[0][0]
    system = resource(NS, namespace({**SYSTEM_NS, ENFORCE: "baseline"}), "sys")
    assert run_stack(DENY, [system]) == []  # a system namespace without pods of the stack


@pytest.mark.parametrize(
    ("rule", "words"),
    [
        ({"ports": [{"port": 8000}]}, "without `from` admits every source"),
        ({"from": [{"namespaceSelector": {}}]}, "every pod of every namespace"),
        ({"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}, "admits 0.0.0.0/0"),
    ],
)
def test_no_policy_in_an_engine_namespace_admits_everyone(rule, words):
    ns = resource(NS, namespace(ENGINE_NS), "ns")
    found = run_stack(
        DENY, [ns, netpol("deny"), netpol("open", podSelector={"matchLabels": {"a": "b"}}, ingress=[rule])]
    )
    assert len(found) == 1 and words in found[0][0] and found[0][1].endswith("::open")


def test_unknown_namespaces_fail_closed():
    from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, unknown_checking_proxy

    props = unknown_checking_proxy({"metadata": {"namespace": UNKNOWN_STRING_VALUE}, "spec": {}})
    found = run_stack(DENY, [resource("kubernetes:apps/v1:Deployment", props, "engine")])
    assert found and "unknown at preview" in found[0][0]


QUOTA = "cost-kubernetes-namespace-require-gpu-quota"


def quota(*hard: str, namespace_: str = "llm") -> Any:
    props = {"metadata": {"name": "gpus", "namespace": namespace_}, "spec": {"hard": dict.fromkeys(hard, "8")}}
    return resource("kubernetes:core/v1:ResourceQuota", props, "gpus")


def test_gpus_the_pods_ask_for_are_capped_by_a_quota_in_their_namespace():
    deployment = resource("kubernetes:apps/v1:Deployment", workload("kubernetes:apps/v1:Deployment"), "engine")
    assert run_stack(QUOTA, [deployment, quota("requests.nvidia.com/gpu", "requests.memory")]) == []
    for quotas in ([], [quota("requests.nvidia.com/gpu", namespace_="other")], [quota("requests.memory")]):
        found = run_stack(QUOTA, [deployment, *quotas])
        assert (
            len(found) == 1 and "engine asks for nvidia.com/gpu in llm, where no ResourceQuota caps it" in found[0][0]
        )
    mig = workload(
        "kubernetes:apps/v1:Deployment",
        _set(engine, resources={"limits": {"cpu": "8", "memory": "8Gi", "nvidia.com/mig-3g.40gb": 1}}),
    )
    found = run_stack(
        QUOTA, [resource("kubernetes:apps/v1:Deployment", mig, "engine"), quota("requests.nvidia.com/gpu")]
    )
    assert "asks for nvidia.com/mig-3g.40gb" in found[0][0]
    found = run_stack(QUOTA, [deployment, quota("requests.nvidia.com/gpu", "limits.nvidia.com/gpu")])
    assert len(found) == 1 and "only accepts requests.* for GPUs" in found[0][0]


K8S_TESTED = (
    {c[0] for c in WORKLOAD_CASES} | {c[0] for c in NAMESPACE_CASES} | {c[0] for c in OBJECT_CASES} | {DENY, QUOTA}
)
