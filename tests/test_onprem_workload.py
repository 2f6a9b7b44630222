"""The on-prem serving workload as the API server receives it: planning.onprem.workload.

Pools are built by hand here (planning.onprem.pools decides them from the spec); the spec is
validated by its models only, since the cross-section checks of on-prem targets live elsewhere.
"""

from __future__ import annotations

import math
import re
from typing import Any

import pytest
import yaml

from inferstack import catalog
from inferstack.catalog import GIB
from inferstack.planning import sizing
from inferstack.planning.aws_fleet import drain_seconds
from inferstack.planning.naming import k8s_labels, k8s_name
from inferstack.planning.onprem import PoolPlan
from inferstack.planning.onprem.rollout import ROLLOUT_MARGIN_SECONDS
from inferstack.planning.onprem.workload import (
    ADAPTER_METRICS,
    BATCH_PRIORITY,
    SERVING_PRIORITY,
    TARGET_LABEL,
    TERMINATION_MARGIN_SECONDS,
    decimal_string,
    plan_workload,
    prometheus_adapter_rules,
    prometheus_namespace,
)
from inferstack.planning.serving import ENGINE_WRITABLE_DIRS, engine_env
from inferstack.spec import checks
from inferstack.spec.models import DeploymentSpec

IMAGE = "registry.site.example/vllm/vllm-openai@sha256:" + "0d4c" * 16
FETCH = "registry.site.example/aws-cli@sha256:" + "1a2b" * 16

BASE = f"""
version: 1
metadata: {{name: assistant, team: ml-platform, environment: prod, data_classification: internal}}
residency: {{jurisdiction: eu}}
models:
  llama-3-70b: {{parameters: 70B, precision: bf16, context_length: 8192, source: "s3://models/llama/"}}
serving:
  engine: vllm
  image: {IMAGE}
targets:
  site:
    kind: onprem-k8s
    location: de
    cluster: {{version: "1.31"}}
    registry: registry.site.example
    pools:
      h100: {{nodes: [gpu-1, gpu-2], gpu: H100-80GB, gpus_per_node: 8, replicas: {{min: 1, max: 4}}}}
    weights: {{pvc: llama-weights, pvc_access_mode: ReadOnlyMany, path: /llama-3-70b}}
    autoscaling: {{target: 8}}
    monitoring: {{service_monitor_labels: {{release: kube-prometheus-stack}}}}
    allowed_namespaces: [apps]
"""

S3_WEIGHTS = {
    "s3": {
        "endpoint": "https://minio.site.example:9000",
        "endpoint_cidrs": ["10.20.30.0/24", "10.20.31.7/32"],
        "bucket": "models",
        "prefix": "/llama-70b/",
        "credentials_secret": "s3-creds",
        "ca_secret": "s3-ca",
        "fetch_image": FETCH,
    }
}


def make_spec(**target_overrides: Any) -> DeploymentSpec:
    tree = yaml.safe_load(BASE)
    tree["targets"]["site"].update(target_overrides)
    return DeploymentSpec.model_validate(tree)


def make_pool(**overrides: Any) -> PoolPlan:
    values: dict[str, Any] = {
        "name": "h100",
        "nodes": ("gpu-1", "gpu-2"),
        "node_selector": {"inferstack.io/pool": "h100"},
        "node_count": 2,
        "gpu": "H100-80GB",
        "gpus_per_node": 8,
        "sharing": "whole",
        "mig_profile": None,
        "time_slices": None,
        "resource": "nvidia.com/gpu",
        "devices_per_node": 8,
        "devices_per_replica": 2,
        "memory_bytes_per_device": 80 * GIB,
        "min_replicas": 1,
        "max_replicas": 4,
        "taint": {"key": "inferstack.io/gpu", "value": "h100", "effect": "NoSchedule"},
    }
    values.update(overrides)
    return PoolPlan(**values)


MIG_POOL = make_pool(
    name="a100-mig",
    nodes=(),
    node_selector={"site.example/gpu": "a100"},
    node_count=3,
    gpu="A100-80GB",
    sharing="mig",
    mig_profile="3g.40gb",
    resource="nvidia.com/mig-3g.40gb",
    devices_per_node=16,
    devices_per_replica=1,
    memory_bytes_per_device=40 * GIB,
    min_replicas=2,
    max_replicas=48,  # every slice the pool has: no room to surge
    taint=None,
)


def plan(spec: DeploymentSpec | None = None, pools: tuple[PoolPlan, ...] = (make_pool(),), stack: str = "prod"):
    return plan_workload(spec or make_spec(), stack, "site", pools)


def bodies(manifests, kind: str) -> list[dict[str, Any]]:
    return [m.body for m in manifests if m.kind == kind]


def one(manifests, kind: str) -> dict[str, Any]:
    (body,) = bodies(manifests, kind)
    return body


# -- the restricted Pod Security Standard, as a pure check ----------------------------------------
# kubernetes.io/docs/concepts/security/pod-security-standards (v1.31): every baseline and
# restricted control that a pod spec can break.
RESTRICTED_VOLUME_TYPES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}


def restricted_violations(pod: dict[str, Any]) -> list[str]:
    out = []
    psc = pod.get("securityContext", {})
    containers = pod.get("containers", []) + pod.get("initContainers", []) + pod.get("ephemeralContainers", [])
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key):
            out.append(f"baseline: {key}")
    if psc.get("windowsOptions", {}).get("hostProcess"):
        out.append("baseline: hostProcess")
    for s in psc.get("sysctls", []):
        if s["name"] not in SAFE_SYSCTLS:
            out.append(f"baseline: sysctl {s['name']}")
    for v in pod.get("volumes", []):
        kinds = set(v) - {"name"}
        if not kinds <= RESTRICTED_VOLUME_TYPES:
            out.append(f"restricted: volume {v['name']} of type {sorted(kinds)}")
    pod_non_root = psc.get("runAsNonRoot")
    pod_seccomp = psc.get("seccompProfile", {}).get("type")
    if psc.get("runAsUser") == 0:
        out.append("restricted: pod runAsUser 0")
    if pod_seccomp == "Unconfined":
        out.append("baseline: pod seccomp Unconfined")
    for c in containers:
        sc = c.get("securityContext", {})
        name = c["name"]
        if sc.get("privileged"):
            out.append(f"baseline: {name} privileged")
        if any(p.get("hostPort") for p in c.get("ports", [])):
            out.append(f"baseline: {name} hostPort")
        if sc.get("procMount", "Default") != "Default":
            out.append(f"baseline: {name} procMount")
        if sc.get("windowsOptions", {}).get("hostProcess"):
            out.append(f"baseline: {name} hostProcess")
        if sc.get("allowPrivilegeEscalation") is not False:
            out.append(f"restricted: {name} allowPrivilegeEscalation not false")
        non_root = sc.get("runAsNonRoot", pod_non_root)
        if non_root is not True:
            out.append(f"restricted: {name} runAsNonRoot not true")
        if sc.get("runAsUser") == 0:
            out.append(f"restricted: {name} runAsUser 0")
        seccomp = sc.get("seccompProfile", {}).get("type", pod_seccomp)
        if seccomp not in ("RuntimeDefault", "Localhost"):
            out.append(f"restricted: {name} seccomp {seccomp}")
        caps = sc.get("capabilities", {})
        if "ALL" not in caps.get("drop", []):
            out.append(f"restricted: {name} does not drop ALL capabilities")
        if set(caps.get("add", [])) - {"NET_BIND_SERVICE"}:
            out.append(f"restricted: {name} adds capabilities")
    return out


def pods_of(manifests) -> list[dict[str, Any]]:
    return [d["spec"]["template"]["spec"] for d in bodies(manifests, "Deployment")]


def test_the_restricted_check_catches_each_violation():
    pod = pods_of(plan())[0]
    assert restricted_violations(pod) == []
    bad = [
        lambda p: p.update(hostNetwork=True),
        lambda p: p["volumes"].append({"name": "h", "hostPath": {"path": "/"}}),
        lambda p: p["containers"][0]["securityContext"].update(allowPrivilegeEscalation=True),
        lambda p: p["containers"][0]["securityContext"].update(runAsNonRoot=False),
        lambda p: p["containers"][0]["securityContext"].update(runAsUser=0),
        lambda p: p["containers"][0]["securityContext"].update(seccompProfile={"type": "Unconfined"}),
        lambda p: p["containers"][0]["securityContext"].update(capabilities={"drop": []}),
        lambda p: p["containers"][0]["securityContext"].update(capabilities={"drop": ["ALL"], "add": ["SYS_ADMIN"]}),
        lambda p: p["containers"][0]["securityContext"].update(privileged=True),
    ]
    for mutate in bad:
        broken = yaml.safe_load(yaml.safe_dump(pod))
        mutate(broken)
        assert restricted_violations(broken), mutate


@pytest.mark.parametrize(
    ("weights", "pools", "workload"),
    [
        ({"pvc": "llama-weights", "pvc_access_mode": "ReadOnlyMany"}, (make_pool(),), "serving"),
        (S3_WEIGHTS, (make_pool(), MIG_POOL), "serving"),
        (S3_WEIGHTS, (MIG_POOL,), "batch"),
    ],
)
def test_every_pod_passes_restricted(weights, pools, workload):
    manifests = plan(make_spec(weights=weights, workload=workload), pools)
    for pod in pods_of(manifests):
        assert restricted_violations(pod) == []
        assert pod["automountServiceAccountToken"] is False
        assert pod["runtimeClassName"] == "nvidia"
        assert pod["enableServiceLinks"] is False
        for c in pod["containers"] + pod.get("initContainers", []):
            assert c["securityContext"]["readOnlyRootFilesystem"] is True
            assert isinstance(c["securityContext"]["runAsUser"], int) and c["securityContext"]["runAsUser"] > 0


def test_the_namespace_enforces_restricted_at_the_cluster_version_and_carries_the_location():
    ns = one(plan(), "Namespace")
    labels = ns["metadata"]["labels"]
    for mode in ("enforce", "audit", "warn"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"
        assert labels[f"pod-security.kubernetes.io/{mode}-version"] == "v1.31"
    assert labels["inferstack.io/location"] == "de"
    for key in ("stack", "environment", "team", "model", "data-classification", "workload", "managed-by"):
        assert key in labels
    assert ns["metadata"]["name"] == "prod-site"
    assert "namespace" not in ns["metadata"]
    assert one(plan(make_spec(namespace="llm")), "Namespace")["metadata"]["name"] == "llm"


LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def test_names_and_label_values_follow_the_api_rules_even_from_an_odd_stack_name():
    stack = "Org.Team_Stack-with-a-really-long-name-that-goes-on-and-on-and-on-forever"
    spec = make_spec(
        weights=S3_WEIGHTS,
        ingress={"host": "llm.site.example", "tls_secret": "t", "via": "ingress", "ingress_class": "internal"},
    )
    long_pool = make_pool(name="a" * 32)
    manifests = plan(spec, (long_pool, MIG_POOL), stack=stack)
    for m in manifests:
        meta = m.body["metadata"]
        assert DNS_SUBDOMAIN.match(meta["name"]) and len(meta["name"]) <= 253, meta["name"]
        if m.kind in ("Namespace", "Service", "Deployment"):
            assert DNS_LABEL.match(meta["name"]) and len(meta["name"]) <= 63, meta["name"]
        for value in meta["labels"].values():
            assert LABEL_VALUE.match(value) and len(value) <= 63, value
    # A pod's name adds '-<hash>-<5>' (17 characters) and must stay a 63-character hostname.
    for d in bodies(manifests, "Deployment"):
        assert len(d["metadata"]["name"]) + 17 <= 63
    assert one(manifests, "Namespace")["metadata"]["name"] == k8s_name(stack, "site")


def test_k8s_label_values_are_cut_with_a_hash():
    long = {"stack": "x" * 70, "other": "y" * 70}
    labels = k8s_labels(long)
    assert all(len(v) == 63 for v in labels.values())
    assert labels["stack"] != k8s_labels({"stack": "x" * 71})["stack"]
    assert k8s_labels({"stack": "-a/b_"}) == {"stack": "a-b"}


def test_quota_bounds_gpus_per_resource_memory_and_pods_with_the_rollout_surge():
    manifests = plan(pools=(make_pool(), MIG_POOL))
    hard = one(manifests, "ResourceQuota")["spec"]["hard"]
    # h100: max 4 + surge 1 (16 GPUs, 8 replicas fit), 2 GPUs each; the MIG pool is full at max: no surge.
    assert hard["requests.nvidia.com/gpu"] == str((4 + 1) * 2)
    assert hard["requests.nvidia.com/mig-3g.40gb"] == "48"
    assert hard["pods"] == str(5 + 48)
    deployments = {d["metadata"]["name"]: d for d in bodies(manifests, "Deployment")}
    mem = {
        name: int(d["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"].removesuffix("Gi"))
        for name, d in deployments.items()
    }
    assert hard["limits.memory"] == hard["requests.memory"] == f"{5 * mem['site-h100'] + 48 * mem['site-a100-mig']}Gi"
    limits = one(manifests, "LimitRange")["spec"]["limits"][0]
    assert limits["type"] == "Container" and "memory" in limits["default"] and "memory" in limits["defaultRequest"]


def test_rollouts_surge_only_when_the_pool_has_room():
    manifests = plan(pools=(make_pool(), MIG_POOL))
    d = {d["metadata"]["name"]: d["spec"]["strategy"]["rollingUpdate"] for d in bodies(manifests, "Deployment")}
    assert d["site-h100"] == {"maxSurge": 1, "maxUnavailable": 0}
    assert d["site-a100-mig"] == {"maxSurge": 0, "maxUnavailable": 1}


def test_priority_serving_preempts_batch_never_the_reverse():
    serving = one(plan(), "PriorityClass")
    batch = one(plan(make_spec(workload="batch")), "PriorityClass")
    assert serving["preemptionPolicy"] == "PreemptLowerPriority" and serving["value"] == SERVING_PRIORITY
    assert batch["preemptionPolicy"] == "Never" and batch["value"] == BATCH_PRIORITY
    assert batch["value"] < serving["value"] <= 1_000_000_000
    assert not serving["globalDefault"] and not batch["globalDefault"]
    assert "namespace" not in serving["metadata"]
    assert not serving["metadata"]["name"].startswith("system-")
    for manifests, cls in ((plan(), serving), (plan(make_spec(workload="batch")), batch)):
        for pod in pods_of(manifests):
            assert pod["priorityClassName"] == cls["metadata"]["name"]


def test_the_deployment_asks_for_the_pools_devices_and_runs_tensor_parallel_over_them():
    manifests = plan(pools=(make_pool(), MIG_POOL))
    by_pool = {d["metadata"]["labels"]["inferstack.io/pool"]: d for d in bodies(manifests, "Deployment")}
    for pool in (make_pool(), MIG_POOL):
        d = by_pool[pool.name]
        pod = d["spec"]["template"]["spec"]
        engine = pod["containers"][0]
        res = engine["resources"]
        assert res["limits"][pool.resource] == res["requests"][pool.resource] == str(pool.devices_per_replica)
        args = engine["args"]
        assert args[args.index("--tensor-parallel-size") + 1] == str(pool.devices_per_replica)
        assert args[args.index("--model") + 1] == "/models/llama-3-70b"
        assert args[args.index("--port") + 1] == "8000"
        assert "{tensor_parallel}" not in " ".join(args)
        assert pod["nodeSelector"] == dict(pool.node_selector)
        if pool.taint:
            assert pod["tolerations"] == [
                {"key": "inferstack.io/gpu", "operator": "Equal", "value": "h100", "effect": "NoSchedule"}
            ]
        else:
            assert "tolerations" not in pod
        spread = pod["topologySpreadConstraints"][0]
        assert spread["topologyKey"] == "kubernetes.io/hostname"
        assert spread["labelSelector"]["matchLabels"] == d["spec"]["selector"]["matchLabels"]
        assert engine["image"] == IMAGE
        assert {e["name"]: e["value"] for e in engine["env"]} == engine_env("vllm")
        assert "replicas" not in d["spec"]  # the autoscaler owns it


def test_the_selector_is_minimal_and_stable():
    d = one(plan(), "Deployment")
    selector = d["spec"]["selector"]["matchLabels"]
    assert selector == {"inferstack.io/target": "site", "inferstack.io/pool": "h100"}
    template = d["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= template.items()
    # A new model changes the pod template, never the (immutable) selector.
    other = make_spec()
    tree = other.model_dump(mode="json", exclude_none=True)
    tree["models"] = {"qwen-72b": {**tree["models"]["llama-3-70b"]}}
    d2 = one(plan(DeploymentSpec.model_validate(tree)), "Deployment")
    assert d2["spec"]["selector"] == d["spec"]["selector"]
    assert d2["spec"]["template"]["metadata"]["labels"] != template


def test_probes_give_the_model_load_its_startup_budget():
    spec = make_spec()
    engine = one(plan(spec), "Deployment")["spec"]["template"]["spec"]["containers"][0]
    health = catalog.engines()["vllm"].health_path
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert engine[kind]["httpGet"] == {"path": health, "port": "http"}
    startup = engine["startupProbe"]
    budget = sizing.startup_seconds(sizing.footprint(*spec.model_of("site")))
    assert startup["periodSeconds"] * startup["failureThreshold"] >= budget
    # The liveness probe only starts once the startup probe succeeded; it tolerates a minute.
    live = engine["livenessProbe"]
    assert 30 <= live["periodSeconds"] * live["failureThreshold"] <= 120
    # The rollout waits at least that long before it calls a replica stuck.
    assert one(plan(spec), "Deployment")["spec"]["progressDeadlineSeconds"] >= budget
    overridden = make_spec()
    tree = overridden.model_dump(mode="json", exclude_none=True)
    tree["serving"]["health_check_grace_seconds"] = 3000
    engine = one(plan(DeploymentSpec.model_validate(tree)), "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert engine["startupProbe"]["failureThreshold"] == 300


def test_the_engine_writes_only_to_volumes_and_shm_is_memory():
    d = one(plan(), "Deployment")
    pod = d["spec"]["template"]["spec"]
    engine = pod["containers"][0]
    volumes = {v["name"]: v for v in pod["volumes"]}
    writable = {m["mountPath"] for m in engine["volumeMounts"] if not m.get("readOnly")}
    for path, _ in ENGINE_WRITABLE_DIRS:
        assert path in writable
    for value in engine_env("vllm").values():
        if value.startswith("/"):
            assert any(value == w or value.startswith(w + "/") for w in writable), value
    shm = next(m for m in engine["volumeMounts"] if m["mountPath"] == "/dev/shm")
    assert volumes[shm["name"]]["emptyDir"]["medium"] == "Memory"
    # The memory-backed emptyDir counts against the container's memory limit.
    shm_gib = int(volumes[shm["name"]]["emptyDir"]["sizeLimit"].removesuffix("Gi"))
    assert int(engine["resources"]["limits"]["memory"].removesuffix("Gi")) > shm_gib
    assert pod["terminationGracePeriodSeconds"] == drain_seconds(8192) + TERMINATION_MARGIN_SECONDS


def test_a_leaving_engine_waits_out_its_streams_before_sigterm():
    # 1.30+: the preStop sleep covers the drain bound (the pod is out of the endpoints at once),
    # and the grace period covers the sleep and the engine's exit.
    pod = one(plan(make_spec(cluster={"version": "1.31"})), "Deployment")["spec"]["template"]["spec"]
    (engine,) = pod["containers"]
    assert engine["lifecycle"] == {"preStop": {"sleep": {"seconds": drain_seconds(8192)}}}
    assert pod["terminationGracePeriodSeconds"] > engine["lifecycle"]["preStop"]["sleep"]["seconds"]
    # Before 1.30 there is no sleep action (and no shell to count on in the image): no hook at all.
    old = one(plan(make_spec(cluster={"version": "1.29"})), "Deployment")["spec"]["template"]["spec"]
    assert "lifecycle" not in old["containers"][0]


def test_pvc_weights_are_mounted_read_only_at_the_model_path():
    manifests = plan()
    pod = pods_of(manifests)[0]
    assert "initContainers" not in pod
    (vol,) = [v for v in pod["volumes"] if "persistentVolumeClaim" in v]
    assert vol["persistentVolumeClaim"] == {"claimName": "llama-weights", "readOnly": True}
    (mount,) = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == vol["name"]]
    assert mount == {
        "name": vol["name"],
        "mountPath": "/models/llama-3-70b",
        "readOnly": True,
        "subPath": "llama-3-70b",
    }
    assert "allow-weights-store" not in {p["metadata"]["name"] for p in bodies(manifests, "NetworkPolicy")}


def test_s3_weights_are_fetched_by_a_restricted_init_container_into_a_sized_cache():
    manifests = plan(make_spec(weights=S3_WEIGHTS))
    pod = pods_of(manifests)[0]
    (init,) = pod["initContainers"]
    assert init["image"] == FETCH
    assert init["command"][:5] == ["aws", "s3", "sync", "s3://models/llama-70b/", "/models/llama-3-70b/"]
    assert init["command"][init["command"].index("--endpoint-url") + 1] == "https://minio.site.example:9000"
    env = {e["name"]: e for e in init["env"]}
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert env[key]["valueFrom"]["secretKeyRef"] == {"name": "s3-creds", "key": key}
    assert env["AWS_CA_BUNDLE"]["value"] == "/etc/inferstack/s3-ca/ca.crt"
    assert env["AWS_REGION"]["value"] == "us-east-1"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["s3-ca"]["secret"]["secretName"] == "s3-ca"
    init_mounts = {m["mountPath"]: m for m in init["volumeMounts"]}
    assert init_mounts["/etc/inferstack/s3-ca"]["readOnly"] is True
    assert not init_mounts["/models"].get("readOnly")  # it writes the cache
    assert env["HOME"]["value"] in init_mounts  # the CLI's home is writable
    cache = volumes[init_mounts["/models"]["name"]]["emptyDir"]
    weights = sizing.footprint(*make_spec().model_of("site")).weights_bytes
    assert cache["sizeLimit"] == f"{math.ceil(weights * 1.2 / GIB)}Gi"
    engine_mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == init_mounts["/models"]["name"])
    assert engine_mount["readOnly"] is True
    # The node must have the disk: the pod asks for its scratch space and the cache.
    requested = int(pod["containers"][0]["resources"]["requests"]["ephemeral-storage"].removesuffix("Gi"))
    assert requested >= math.ceil(weights * 1.2 / GIB) + sum(g for _, g in ENGINE_WRITABLE_DIRS)
    sized = plan(make_spec(weights={**S3_WEIGHTS, "cache_gib": 500}))
    assert {v["name"]: v for v in pods_of(sized)[0]["volumes"]}["weights"]["emptyDir"]["sizeLimit"] == "500Gi"
    egress = next(p for p in bodies(manifests, "NetworkPolicy") if p["metadata"]["name"] == "allow-weights-store")
    # Only the store's networks, on the endpoint URL's port: never every address on it.
    assert egress["spec"]["egress"] == [
        {
            "to": [{"ipBlock": {"cidr": "10.20.30.0/24"}}, {"ipBlock": {"cidr": "10.20.31.7/32"}}],
            "ports": [{"protocol": "TCP", "port": 9000}],
        }
    ]


def test_network_policies_deny_by_default_and_admit_only_named_namespaces():
    spec = make_spec(
        ingress={
            "host": "llm.site.example",
            "tls_secret": "llm-tls",
            "gateway": "gateway-system/internal",
            "listener": "https",
        }
    )
    policies = {p["metadata"]["name"]: p["spec"] for p in bodies(plan(spec), "NetworkPolicy")}
    assert policies["default-deny"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    dns = policies["allow-dns"]["egress"][0]
    assert dns["to"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}]
    assert {(p["protocol"], p["port"]) for p in dns["ports"]} == {("UDP", 53), ("TCP", 53)}
    ingress = policies["allow-engine-ingress"]
    (rule,) = ingress["ingress"]
    admitted = {peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for peer in rule["from"]}
    # The spec's list, the Gateway's namespace, and Prometheus's (from its URL).
    assert admitted == {"apps", "gateway-system", "monitoring"}
    assert all(set(peer) == {"namespaceSelector"} for peer in rule["from"])
    assert rule["ports"] == [{"protocol": "TCP", "port": 8000}]
    assert ingress["podSelector"] == {"matchLabels": {"inferstack.io/target": "site"}}
    service = one(plan(spec), "Service")
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [{"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP"}]
    assert service["spec"]["selector"] == {"inferstack.io/target": "site"}


def test_with_no_one_admitted_the_engine_takes_no_traffic():
    auto = {"target": 8, "prometheus_url": "http://10.0.0.5:9090"}
    names = {
        p["metadata"]["name"] for p in bodies(plan(make_spec(allowed_namespaces=[], autoscaling=auto)), "NetworkPolicy")
    }
    assert names == {"default-deny", "allow-dns"}
    assert prometheus_namespace("http://prometheus-operated.monitoring.svc:9090") == "monitoring"
    assert prometheus_namespace("https://prom.obs.svc.cluster.local") == "obs"
    assert prometheus_namespace("http://prometheus.example.com:9090") is None


def test_one_disruption_budget_per_pool():
    manifests = plan(pools=(make_pool(), MIG_POOL))
    pdbs = bodies(manifests, "PodDisruptionBudget")
    deployments = bodies(manifests, "Deployment")
    assert [p["spec"]["selector"] for p in pdbs] == [d["spec"]["selector"] for d in deployments]
    for p in pdbs:
        assert p["apiVersion"] == "policy/v1"
        assert p["spec"]["maxUnavailable"] == 1 and "minAvailable" not in p["spec"]


def test_keda_scales_each_pool_on_in_flight_requests_from_prometheus():
    manifests = plan(pools=(make_pool(), MIG_POOL))
    objects = bodies(manifests, "ScaledObject")
    assert [o["spec"]["scaleTargetRef"]["name"] for o in objects] == [
        d["metadata"]["name"] for d in bodies(manifests, "Deployment")
    ]
    so = objects[0]
    assert so["apiVersion"] == "keda.sh/v1alpha1"
    assert (so["spec"]["minReplicaCount"], so["spec"]["maxReplicaCount"]) == (1, 4)
    (trigger,) = so["spec"]["triggers"]
    assert trigger["type"] == "prometheus" and trigger["metricType"] == "AverageValue"
    meta = trigger["metadata"]
    assert meta["serverAddress"] == "http://prometheus-operated.monitoring.svc:9090"
    assert meta["threshold"] == "8"
    vllm = catalog.engines()["vllm"]
    assert vllm.running_metric in meta["query"] and vllm.queue_metric in meta["query"]
    assert 'namespace="prod-site"' in meta["query"] and 'inferstack_pool="h100"' in meta["query"]
    behavior = so["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]
    assert behavior["stabilizationWindowSeconds"] == 300
    assert behavior["policies"] == [{"type": "Pods", "value": 1, "periodSeconds": 300}]
    # The ServiceMonitor puts the pool's label on the series the query selects.
    monitor = one(manifests, "ServiceMonitor")
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "http" and endpoint["path"] == vllm.metrics_path
    assert endpoint["relabelings"][0]["sourceLabels"] == ["__meta_kubernetes_pod_label_inferstack_io_pool"]
    assert endpoint["relabelings"][0]["targetLabel"] == "inferstack_pool"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= one(manifests, "Service")["metadata"]["labels"].items()


def test_the_service_monitor_carries_the_labels_the_sites_prometheus_selects():
    spec = make_spec(monitoring={"service_monitor_labels": {"release": "kps", "prometheus.example.com/scrape": "yes"}})
    labels = one(plan(spec), "ServiceMonitor")["metadata"]["labels"]
    assert labels["release"] == "kps" and labels["prometheus.example.com/scrape"] == "yes"
    assert labels[TARGET_LABEL] == "site"  # and still the target's own


def test_a_missing_metric_is_an_error_that_holds_the_replicas_not_silence():
    """KEDA's Prometheus scaler treats an empty answer as 0 unless ignoreNullValues is "false"; the
    fallback then holds what runs (never below min) after three failed polls."""
    manifests = plan(make_spec(autoscaling={"signal": "queue_depth", "target": 2}), pools=(make_pool(), MIG_POOL))
    for so, pool in zip(bodies(manifests, "ScaledObject"), (make_pool(), MIG_POOL), strict=True):
        for trigger in so["spec"]["triggers"]:
            assert trigger["metadata"]["ignoreNullValues"] == "false"
            assert trigger["metricType"] == "AverageValue"  # the only type fallback supports
        assert so["spec"]["fallback"] == {
            "failureThreshold": 3,
            "replicas": pool.min_replicas,
            "behavior": "currentReplicasIfHigher",
        }


def test_the_rollout_waits_for_every_replica_of_the_pool_one_batch_at_a_time():
    full = make_pool(max_replicas=8)  # 2 nodes x 8 GPUs / 2 per replica: no device to surge on
    roomy = make_pool(name="roomy", max_replicas=2)
    manifests = plan(pools=(full, roomy))
    deployments = {m.name: m for m in manifests if m.kind == "Deployment"}
    assert deployments["site-h100"].body["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}
    assert deployments["site-roomy"].body["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    for m in deployments.values():
        pod = m.body["spec"]["template"]["spec"]
        startup = pod["containers"][0]["startupProbe"]
        per_pod = pod["terminationGracePeriodSeconds"] + startup["periodSeconds"] * startup["failureThreshold"]
        rolling = m.body["spec"]["strategy"]["rollingUpdate"]
        batch = rolling["maxSurge"] + rolling["maxUnavailable"]
        assert batch == 1
        replicas = 8 if m.name.endswith("h100") else 2
        assert m.await_seconds == replicas * per_pod + ROLLOUT_MARGIN_SECONDS


def test_queue_depth_scales_out_on_waiting_requests_and_keeps_busy_replicas():
    spec = make_spec(autoscaling={"signal": "queue_depth", "target": 2.5, "scale_in_cooldown": 600})
    so = one(plan(spec), "ScaledObject")
    waiting, busy = so["spec"]["triggers"]
    vllm = catalog.engines()["vllm"]
    assert waiting["metadata"]["query"].startswith(f"sum({vllm.queue_metric}")
    assert vllm.running_metric not in waiting["metadata"]["query"]
    assert waiting["metadata"]["threshold"] == "2.5"
    assert busy["metadata"]["threshold"] == "1" and "> 0" in busy["metadata"]["query"]


def test_hpa_scales_on_the_adapters_pods_metric():
    spec = make_spec(autoscaling={"via": "hpa", "target": 6, "scale_in_cooldown": 3600})
    manifests = plan(spec)
    assert bodies(manifests, "ScaledObject") == []
    hpa = one(manifests, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "site-h100"}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 4)
    assert hpa["spec"]["metrics"] == [
        {
            "type": "Pods",
            "pods": {
                "metric": {"name": ADAPTER_METRICS["in_flight"]},
                "target": {"type": "AverageValue", "averageValue": "6"},
            },
        }
    ]
    down = hpa["spec"]["behavior"]["scaleDown"]
    assert down["stabilizationWindowSeconds"] == 3600
    assert down["policies"][0]["periodSeconds"] == 1800  # the API's maximum


def test_adapter_rules_serve_every_metric_the_hpa_names():
    rules = prometheus_adapter_rules("vllm")
    assert {r["name"]["as"] for r in rules} == set(ADAPTER_METRICS.values())
    for r in rules:
        assert r["resources"]["overrides"] == {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}
        assert "<<.LabelMatchers>>" in r["metricsQuery"] and "<<.GroupBy>>" in r["metricsQuery"]
        assert re.fullmatch(r["name"]["matches"], r["seriesQuery"].split("{")[0])
    assert prometheus_adapter_rules("tensorrt-llm") == []


def test_an_engine_without_request_gauges_cannot_scale_on_them():
    tree = make_spec().model_dump(mode="json", exclude_none=True)
    tree["serving"]["engine"] = "tensorrt-llm"
    with pytest.raises(ValueError, match="gauges"):
        plan(DeploymentSpec.model_validate(tree))


def test_decimal_strings_never_use_exponents():
    assert decimal_string(100000) == "100000"
    assert decimal_string(0.5) == "0.5"
    assert decimal_string(7.25) == "7.25"


def test_the_route_attaches_to_the_internal_gateway_with_streaming_timeouts():
    ingress = {
        "host": "llm.site.example",
        "tls_secret": "llm-tls",
        "gateway": "gateway-system/internal",
        "listener": "https",
    }
    manifests = plan(make_spec(ingress=ingress))
    route = one(manifests, "HTTPRoute")
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert route["spec"]["parentRefs"] == [
        {
            "group": "gateway.networking.k8s.io",
            "kind": "Gateway",
            "namespace": "gateway-system",
            "name": "internal",
            "sectionName": "https",
        }
    ]
    assert route["spec"]["hostnames"] == ["llm.site.example"]
    (rule,) = route["spec"]["rules"]
    assert rule["backendRefs"] == [{"group": "", "kind": "Service", "name": "site", "port": 8000}]
    assert rule["timeouts"] == {"request": f"{drain_seconds(8192)}s", "backendRequest": f"{drain_seconds(8192)}s"}
    assert re.fullmatch(r"([0-9]{1,5}(h|m|s|ms)){1,4}", rule["timeouts"]["request"])  # Gateway API Duration
    grant = one(manifests, "ReferenceGrant")
    assert grant["spec"]["from"] == [
        {"group": "gateway.networking.k8s.io", "kind": "Gateway", "namespace": "gateway-system"}
    ]
    assert grant["spec"]["to"] == [{"group": "", "kind": "Secret", "name": "llm-tls"}]
    assert bodies(manifests, "Ingress") == []


def test_or_an_ingress_with_tls_whose_controller_is_admitted():
    ingress = {
        "host": "llm.site.example",
        "tls_secret": "llm-tls",
        "via": "ingress",
        "ingress_class": "internal-nginx",
        "controller_namespace": "ingress-nginx",
    }
    manifests = plan(make_spec(ingress=ingress))
    ing = one(manifests, "Ingress")
    assert ing["apiVersion"] == "networking.k8s.io/v1"
    assert ing["spec"]["ingressClassName"] == "internal-nginx"
    assert ing["spec"]["tls"] == [{"hosts": ["llm.site.example"], "secretName": "llm-tls"}]
    (path,) = ing["spec"]["rules"][0]["http"]["paths"]
    assert path["backend"] == {"service": {"name": "site", "port": {"name": "http"}}}
    assert path["pathType"] == "Prefix"
    policy = next(p for p in bodies(manifests, "NetworkPolicy") if p["metadata"]["name"] == "allow-engine-ingress")
    admitted = {
        p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for p in policy["spec"]["ingress"][0]["from"]
    }
    assert "ingress-nginx" in admitted
    assert bodies(manifests, "HTTPRoute") == []
    assert bodies(plan(), "HTTPRoute") == bodies(plan(), "Ingress") == []


def test_apply_order_puts_what_pods_need_first():
    spec = make_spec(
        ingress={"host": "llm.site.example", "tls_secret": "t", "gateway": "gw/internal", "listener": "https"}
    )
    kinds = [m.kind for m in plan(spec, (make_pool(), MIG_POOL))]
    assert kinds[0] == "Namespace"
    first_pod = kinds.index("Deployment")
    for kind in ("PriorityClass", "ResourceQuota", "LimitRange", "NetworkPolicy", "Service"):
        assert kinds.index(kind) < first_pod
    last_pod = len(kinds) - 1 - kinds[::-1].index("Deployment")
    for kind in ("PodDisruptionBudget", "ServiceMonitor", "ScaledObject", "HTTPRoute"):
        assert kinds.index(kind) > last_pod
    assert all(m.namespace == "prod-site" for m in plan(spec) if m.kind not in ("Namespace", "PriorityClass"))


def test_plans_are_deterministic():
    assert plan(make_spec(weights=S3_WEIGHTS)) == plan(make_spec(weights=S3_WEIGHTS))


# -- spec rules added for the workload -------------------------------------------------------------


def test_images_must_come_from_the_sites_registry():
    tree = make_spec(weights=S3_WEIGHTS).model_dump(mode="json", exclude_none=True)
    tree["serving"]["image"] = "docker.io/vllm/vllm-openai@sha256:" + "0d4c" * 16
    tree["targets"]["site"]["weights"]["s3"]["fetch_image"] = "amazon/aws-cli:2.17.0"
    findings = checks._check_image(DeploymentSpec.model_validate(tree), "site")
    locs = {f.loc for f in findings if f.severity == "error"}
    assert ("serving", "image") in locs
    assert ("targets", "site", "weights", "s3", "fetch_image") in locs
    assert "registry.site.example" in findings[0].message
    assert [f for f in checks._check_image(make_spec(weights=S3_WEIGHTS), "site") if f.severity == "error"] == []


def test_two_targets_cannot_share_a_namespace():
    tree = make_spec(namespace="llm").model_dump(mode="json", exclude_none=True)
    tree["targets"]["other"] = {**tree["targets"]["site"]}
    findings = list(checks._check_onprem_workload(DeploymentSpec.model_validate(tree)))
    assert [f.loc for f in findings] == [("targets", "other", "namespace")]


def test_a_weights_path_stays_inside_its_claim():
    with pytest.raises(Exception, match="inside the claim"):
        make_spec(weights={"pvc": "w", "pvc_access_mode": "ReadOnlyMany", "path": "models/../../etc"})


def test_listener_and_controller_namespace_belong_to_their_entry():
    with pytest.raises(Exception, match="listener"):
        make_spec(
            ingress={
                "host": "a.example.com",
                "tls_secret": "t",
                "via": "ingress",
                "ingress_class": "c",
                "listener": "x",
            }
        )
    with pytest.raises(Exception, match="admits the Gateway's namespace"):
        make_spec(
            ingress={
                "host": "a.example.com",
                "tls_secret": "t",
                "gateway": "g/w",
                "listener": "https",
                "controller_namespace": "x",
            }
        )


def test_a_gateway_route_must_name_its_https_listener():
    """Without sectionName a route attaches to every listener of the Gateway, plain HTTP ones too."""
    with pytest.raises(Exception, match="HTTPS listener"):
        make_spec(ingress={"host": "a.example.com", "tls_secret": "t", "gateway": "g/w"})


def test_on_prem_scaling_needs_the_engines_request_gauges():
    tree = make_spec().model_dump(mode="json", exclude_none=True)
    tree["serving"]["engine"] = "tensorrt-llm"
    findings = list(checks._check_onprem_workload(DeploymentSpec.model_validate(tree)))
    assert [(f.loc, f.severity) for f in findings] == [(("targets", "site", "autoscaling", "signal"), "error")]
    assert "vllm" in findings[0].message
    assert list(checks._check_onprem_workload(make_spec())) == []


def test_an_ingress_whose_controller_is_not_admitted_is_flagged():
    ingress = {"host": "llm.site.example", "tls_secret": "t", "via": "ingress", "ingress_class": "nginx"}
    findings = list(checks._check_onprem_workload(make_spec(ingress=ingress, allowed_namespaces=[])))
    assert [(f.loc, f.severity) for f in findings] == [
        (("targets", "site", "ingress", "controller_namespace"), "warning")
    ]
    assert list(checks._check_onprem_workload(make_spec(ingress=ingress))) == []  # allowed_namespaces may hold it


def test_time_sliced_replicas_each_take_their_share_of_the_gpu_memory():
    """Replicas on one time-sliced GPU start together; an engine that takes 90% of the memory would
    leave the others nothing to allocate. The spec's own arguments still come last (they win)."""
    shared = make_pool(
        name="l40s",
        gpu="L40S",
        sharing="time-slicing",
        time_slices=4,
        resource="nvidia.com/gpu.shared",
        devices_per_node=32,
        devices_per_replica=1,
    )
    spec = make_spec()
    tree = spec.model_dump(mode="json", exclude_none=True)
    tree["serving"]["args"] = ["--enable-prefix-caching"]
    (deployment,) = bodies(plan(DeploymentSpec.model_validate(tree), (shared,)), "Deployment")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--gpu-memory-utilization") + 1] == "0.225"  # 0.9 / 4
    assert args[-1] == "--enable-prefix-caching"
    (whole,) = bodies(plan(make_spec(), (make_pool(),)), "Deployment")
    assert "--gpu-memory-utilization" not in whole["spec"]["template"]["spec"]["containers"][0]["args"]


def test_an_engine_with_no_memory_bound_may_not_time_slice():
    tree = make_spec().model_dump(mode="json", exclude_none=True)
    tree["serving"]["engine"] = "tensorrt-llm"
    tree["targets"]["site"]["pools"]["h100"]["sharing"] = {"mode": "time-slicing", "replicas": 2}
    spec = DeploymentSpec.model_validate(tree)
    problems = checks.check_onprem(spec, "site", spec.targets["site"])
    assert any("bound their share" in f.message for f in problems), problems


def test_a_tagged_fetch_image_is_an_error_in_production():
    tagged = {**S3_WEIGHTS["s3"], "fetch_image": "registry.site.example/aws-cli:2.17"}
    spec = make_spec(weights={"s3": tagged})
    assert spec.metadata.is_production
    problems = [f for f in checks.check_spec(spec) if f.loc[-1] == "fetch_image"]
    assert any("pin the image by digest" in f.message and f.severity == "error" for f in problems), problems
