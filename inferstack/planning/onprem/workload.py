"""The serving workload of an `onprem-k8s` target, as the Kubernetes objects the API server receives.

Pure planning: the spec, the stack, the target's name and its pools (planning.onprem.pools decides
those) in, `Manifest`s out, in apply order. Every field is the API's JSON (camelCase), checked
against the API reference of the Kubernetes versions the spec accepts (1.26 and later) and, for the
custom resources, against the CRD versions named where they are built.

What runs, in one namespace per target:
- a Namespace enforcing the `restricted` Pod Security Standard, labelled with the site's location;
- a ResourceQuota bounding GPUs, memory and pods to what the pools may run, and a LimitRange;
- a PriorityClass: serving may preempt batch, batch preempts nothing;
- a Deployment per pool (one pod template per GPU shape), a Service over all of them, a
  PodDisruptionBudget per pool;
- NetworkPolicies: deny everything, then admit the named namespaces to the engine port, DNS, and
  the site's object store when the weights come from it;
- a ServiceMonitor so Prometheus scrapes the engine, and a KEDA ScaledObject or an HPA per pool;
- an HTTPRoute on the site's internal Gateway, or an Ingress, when the spec names a host.

Sources (read 2026-12): Kubernetes API reference and the OpenAPI schemas of 1.26, 1.31 and 1.37
(every core object here validates strictly against them with kubernetes-validate); "Pod Security
Standards" and "Enforce Pod Security Standards with Namespace Labels" (kubernetes.io); KEDA's
"Prometheus" scaler page and the ScaledObject CRD (kedacore/keda v2.20, keda.sh_scaledobjects.yaml);
Gateway API's HTTPRoute and ReferenceGrant CRDs (standard channel, gateway-api 2026.06: HTTPRoute
v1 with rules[].timeouts, ReferenceGrant v1beta1 as the storage version), the "HTTP timeouts"
guide and GEP-709 (cross-namespace references); the Prometheus Operator's ServiceMonitor CRD
(monitoring.coreos.com/v1); prometheus-adapter docs/config.md. The custom resources validate
against those CRDs' schemas.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from inferstack import catalog
from inferstack.catalog import GIB
from inferstack.planning import sizing
from inferstack.planning.aws_fleet import SCALE_IN_IDLE_IN_FLIGHT, drain_seconds
from inferstack.planning.naming import k8s_labels, k8s_name, standard_tags
from inferstack.planning.onprem import Manifest, PoolPlan
from inferstack.planning.onprem.rollout import deployment_rollout_seconds
from inferstack.planning.serving import (
    ENGINE_SHM_GIB,
    ENGINE_WRITABLE_DIRS,
    engine_args,
    engine_env,
    memory_fraction_args,
)
from inferstack.spec.models import DeploymentSpec, OnPremK8sTarget

# -- labels ------------------------------------------------------------------------------------
LOCATION_LABEL = "inferstack.io/location"  # the policy pack's residency rule reads it on the namespace
TARGET_LABEL = "inferstack.io/target"
POOL_LABEL = "inferstack.io/pool"
# Pod Security Admission reads these namespace labels ("Enforce Pod Security Standards with
# Namespace Labels", kubernetes.io/docs/tasks/configure-pod-container/enforce-standards-namespace-labels).
PSS_MODES = ("enforce", "audit", "warn")
PSS_LEVEL = "restricted"
# Set by the API server on every namespace since 1.22 (NamespaceDefaultLabelName, GA in 1.22).
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"

# -- the pod -------------------------------------------------------------------------------------
# A numeric, non-root user: `restricted` requires runAsNonRoot and rejects runAsUser 0, and the
# kubelet can only verify runAsNonRoot against a numeric UID (a named USER in the image fails the
# check). Engine images run as any UID: every place they write is a volume below.
RUN_AS_UID = 1000
RUNTIME_CLASS = "nvidia"  # the RuntimeClass the GPU operator (and planning.onprem.nodes) declares
ENGINE_PORT_NAME = "http"
MODELS_DIR = "/models"  # engine_args points the engine at /models/<model>
S3_CA_DIR = "/etc/inferstack/s3-ca"
# Host memory of one replica besides its shared memory: the API server, tokenizer and one worker
# process per device (CUDA context, pinned buffers); weights stream from the volume to the GPU.
ENGINE_BASE_MEMORY_GIB = 8
ENGINE_MEMORY_GIB_PER_DEVICE = 8
# A replica on a MIG slice or a time slice runs one process with no tensor parallelism: it needs a
# fraction of the shared memory NCCL uses across whole GPUs.
SHARED_DEVICE_SHM_GIB = 2
ENGINE_CPU_PER_DEVICE = 2
FETCH_MEMORY_GIB = 2
S3_CACHE_FACTOR = 1.2  # weights x 1.2: room for tokenizer files and the sync's partial downloads
# Probes. The startup probe gives the engine the whole start-up estimate the clouds use
# (planning.sizing.startup_seconds) before liveness applies, so a pod loading a large model is
# never killed; afterwards a minute without an answer restarts it.
PROBE_PERIOD_SECONDS = 10
PROBE_TIMEOUT_SECONDS = 5
READINESS_PERIOD_SECONDS = 5
READINESS_FAILURES = 3
LIVENESS_PERIOD_SECONDS = 15
LIVENESS_FAILURES = 4
MIN_PROGRESS_DEADLINE_SECONDS = 600  # the Deployment default
# -- priorities (scheduling.k8s.io/v1 PriorityClass; user classes must stay <= 1e9) --------------
SERVING_PRIORITY = 100_000
BATCH_PRIORITY = 1_000
# -- autoscaling ------------------------------------------------------------------------------------
# A leaving engine pod first waits in its preStop hook for the drain bound (a `sleep` action:
# PodLifecycleSleepAction, beta and on by default since Kubernetes 1.30, "Container Lifecycle
# Hooks"): the pod leaves the Service's endpoints at once, so no new request reaches it, and the
# streams in flight finish before the engine gets SIGTERM, on which vLLM aborts what is still
# running unless it runs with --shutdown-timeout (vllm-project/vllm#36666). Before 1.30 there is no
# sleep action and the engine images need not have a shell: the pod gets SIGTERM at once (README).
# The grace period covers the sleep and a margin for the engine's own exit.
SLEEP_ACTION_MINOR = 30
TERMINATION_MARGIN_SECONDS = 10
KEDA_POLLING_SECONDS = 15
# A query that returns nothing (the ServiceMonitor not selected, the relabelling broken, Prometheus
# down) is an error, not a silent "no load" (KEDA "Prometheus" scaler: ignoreNullValues, default
# true, "Set to false the scaler will return error when Prometheus target is lost"); after this many
# failed polls in a row the ScaledObject's fallback holds the replicas (ScaledObject spec,
# "fallback": AverageValue triggers only, which these are).
KEDA_FALLBACK_FAILURES = 3
HPA_MAX_POLICY_PERIOD_SECONDS = 1800  # HPAScalingPolicy.periodSeconds: 1..1800
# The custom metrics the Prometheus adapter serves for the HPA (rules: prometheus_adapter_rules).
ADAPTER_METRICS = {
    "in_flight": "inferstack_in_flight_requests",
    "queue_depth": "inferstack_waiting_requests",
    "busy": "inferstack_busy",
}
POOL_SERIES_LABEL = "inferstack_pool"  # the pod's pool label, copied onto its series by the ServiceMonitor
DNS_PORT = 53


def namespace_of(spec: DeploymentSpec, stack: str, target_name: str) -> str:
    """The target's namespace: the spec's, else <stack>-<target> as a DNS-1123 label."""
    target = spec.targets[target_name]
    assert isinstance(target, OnPremK8sTarget)
    return target.namespace or k8s_name(stack, target_name)


def deployment_name(target_name: str, pool: str) -> str:
    """47 characters at most: a pod's name adds '-<10-char hash>-<5 chars>' and stays a 63-character
    hostname."""
    return k8s_name(target_name, pool, limit=47)


def priority_class_name(namespace: str, workload: str) -> str:
    """PriorityClasses are cluster-scoped: one per namespace, so two stacks never claim one object
    (and never a name in the reserved `system-` prefix)."""
    return f"inferstack-{namespace}-{workload}"


def plan_workload(
    spec: DeploymentSpec, stack: str, target_name: str, pools: Sequence[PoolPlan]
) -> tuple[Manifest, ...]:
    """Every object of the target's serving workload, in apply order: namespace and classes, the
    namespace's limits and network policies before any pod, then the pods, then what points at
    them (budget, scrape, autoscaling, route)."""
    target = spec.targets[target_name]
    assert isinstance(target, OnPremK8sTarget)
    w = _Workload(spec, stack, target_name, target, tuple(pools))
    before = [
        w.namespace(),
        w.priority_class(),
        w.resource_quota(),
        w.limit_range(),
        *w.network_policies(),
        w.service(),
    ]
    # The pools' pods: `pulumi up` waits for each Deployment's rollout at its pool's max replicas
    # (the autoscaler may have scaled it there), one batch at a time (planning.onprem.rollout).
    deployments = []
    for pool in w.pools:
        body = w.deployment(pool)
        deployments.append(Manifest(body, await_seconds=deployment_rollout_seconds(body, pool.max_replicas)))
    after = [w.disruption_budget(pool) for pool in w.pools]
    after.append(w.service_monitor())
    after += [w.prometheus_rule(), w.grafana_dashboard()]
    after += [w.autoscaler(pool) for pool in w.pools]
    after += w.entry()
    return (*(Manifest(b) for b in before), *deployments, *(Manifest(b) for b in after))


def quantity_gib(gib: float) -> str:
    """A memory or storage quantity in whole GiB (rounded up)."""
    return f"{math.ceil(gib)}Gi"


def decimal_string(value: float) -> str:
    """A plain decimal (no exponent): what KEDA's threshold parses and a Quantity accepts."""
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return text or "0"


def prometheus_query(engine_name: str, signal: str, matchers: str) -> str:
    """PromQL for one pool's load: the sum over its pods (KEDA divides by the replica count,
    metricType AverageValue). in_flight = running + waiting; queue_depth = waiting; busy = pods
    with at least one request in flight."""
    engine = catalog.engines()[engine_name]
    running, waiting = engine.running_metric, engine.queue_metric
    if signal == "queue_depth":
        if waiting is None:
            raise ValueError(f"{engine_name} publishes no waiting-requests gauge to scale on")
        return f"sum({waiting}{{{matchers}}})"
    if running is None or waiting is None:
        raise ValueError(f"{engine_name} publishes no running/waiting-requests gauges to count in-flight load")
    if signal == "in_flight":
        return f"sum({running}{{{matchers}}}) + sum({waiting}{{{matchers}}})"
    if signal == "busy":
        per_pod = f"sum by (pod) ({running}{{{matchers}}}) + sum by (pod) ({waiting}{{{matchers}}})"
        return f"count(({per_pod}) > 0) or vector(0)"
    raise ValueError(f"no query for signal {signal!r}")


def prometheus_adapter_rules(engine_name: str) -> list[dict[str, Any]]:
    """The Prometheus adapter rules (config.yaml `rules:`) that serve ADAPTER_METRICS for one
    engine's gauges as Pods metrics of custom.metrics.k8s.io (kubernetes-sigs/prometheus-adapter,
    docs/config.md: seriesQuery, resources.overrides, name.matches/as, metricsQuery)."""
    engine = catalog.engines()[engine_name]
    running, waiting = engine.running_metric, engine.queue_metric
    if running is None or waiting is None:
        return []

    def rule(series: str, name: str, query: str) -> dict[str, Any]:
        return {
            "seriesQuery": f'{series}{{namespace!="",pod!=""}}',
            "resources": {"overrides": {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}},
            "name": {"matches": f"^{re.escape(series)}$", "as": name},
            "metricsQuery": query,
        }

    def by(metric: str) -> str:
        return f"sum by (<<.GroupBy>>) ({metric}{{<<.LabelMatchers>>}})"

    per_pod = (
        f"sum by (namespace, pod) ({running}{{<<.LabelMatchers>>}}) "
        f"+ sum by (namespace, pod) ({waiting}{{<<.LabelMatchers>>}})"
    )
    return [
        rule(running, ADAPTER_METRICS["in_flight"], f"{by(running)} + {by(waiting)}"),
        rule(waiting, ADAPTER_METRICS["queue_depth"], by(waiting)),
        rule(running, ADAPTER_METRICS["busy"], f"sum by (<<.GroupBy>>) (({per_pod}) > bool 0)"),
    ]


def restricted_container_security_context() -> dict[str, Any]:
    """What `restricted` asks of every container, stated on each (Pod Security Standards,
    kubernetes.io/docs/concepts/security/pod-security-standards, restricted: privilege escalation,
    non-root, seccomp, capabilities), plus a read-only root filesystem."""
    return {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_UID,
        "runAsGroup": RUN_AS_UID,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


class _Workload:
    """The decided values every object shares; one method per object."""

    def __init__(
        self,
        spec: DeploymentSpec,
        stack: str,
        target_name: str,
        target: OnPremK8sTarget,
        pools: tuple[PoolPlan, ...],
    ):
        if not pools:
            raise ValueError(f"target {target_name!r} has no pools")
        self.spec, self.stack, self.name, self.target, self.pools = spec, stack, target_name, target, pools
        self.namespace_name = namespace_of(spec, stack, target_name)
        self.model_name, self.model = spec.model_of(target_name)
        self.engine = catalog.engines()[spec.serving.engine]
        self.port = spec.serving.port
        self.labels = k8s_labels(standard_tags(spec, stack, self.model_name, target.workload))
        self.footprint = sizing.footprint(self.model_name, self.model)
        # The same start-up estimate the clouds use (boot, pull, fetch, load, warm-up): generous for
        # a pod whose image and weights are already in place, never short.
        self.startup_seconds = spec.serving.health_check_grace_seconds or sizing.startup_seconds(self.footprint)
        self.drain_seconds = drain_seconds(self.model.context_length)
        image = spec.image_of(target_name)
        if image is None:
            raise ValueError(f"target {target_name!r} has no engine image: set serving.image or its image")
        self.image = image

    # -- metadata ------------------------------------------------------------------------------
    def meta(self, name: str, extra: Mapping[str, str] | None = None, namespaced: bool = True) -> dict[str, Any]:
        labels = {**self.labels, TARGET_LABEL: self.name, **(extra or {})}
        out: dict[str, Any] = {"name": name, "labels": labels}
        if namespaced:
            out["namespace"] = self.namespace_name
        return out

    def target_selector(self) -> dict[str, str]:
        return {TARGET_LABEL: self.name}

    def pool_selector(self, pool: PoolPlan) -> dict[str, str]:
        """The Deployment's selector: immutable once created, so only the two names that never
        change for the Deployment (no model, version or image in it)."""
        return {TARGET_LABEL: self.name, POOL_LABEL: pool.name}

    # -- namespace and classes -------------------------------------------------------------------
    def namespace(self) -> dict[str, Any]:
        version = f"v{self.target.cluster.version}"
        pss = {}
        for mode in PSS_MODES:
            pss[f"pod-security.kubernetes.io/{mode}"] = PSS_LEVEL
            pss[f"pod-security.kubernetes.io/{mode}-version"] = version
        return {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": self.meta(self.namespace_name, {**pss, LOCATION_LABEL: self.target.location}, namespaced=False),
        }

    def priority_class(self) -> dict[str, Any]:
        batch = self.target.workload == "batch"
        body: dict[str, Any] = {
            "apiVersion": "scheduling.k8s.io/v1",
            "kind": "PriorityClass",
            "metadata": self.meta(priority_class_name(self.namespace_name, self.target.workload), namespaced=False),
            "value": BATCH_PRIORITY if batch else SERVING_PRIORITY,
            "globalDefault": False,
            # Batch waits for room and never evicts anything; serving may evict lower classes
            # (batch) to place a replica.
            "preemptionPolicy": "Never" if batch else "PreemptLowerPriority",
            "description": (
                f"inferstack {self.target.workload} engine of {self.namespace_name}: "
                + ("preemptible, never preempts" if batch else "may preempt batch engines")
            ),
        }
        return body

    # -- per-pool sizes --------------------------------------------------------------------------
    def surge(self, pool: PoolPlan) -> int:
        """One extra replica during a rollout only when the pool has a device to spare at max: a
        surge pod that cannot schedule would stall the rollout."""
        return 1 if pool.max_replicas < pool.max_replicas_on_pool else 0

    def shm_gib(self, pool: PoolPlan) -> int:
        return ENGINE_SHM_GIB if pool.sharing == "whole" else SHARED_DEVICE_SHM_GIB

    def memory_gib(self, pool: PoolPlan) -> int:
        """The engine container's memory (request = limit): a memory-backed emptyDir counts
        against it, so its shared memory is part of it."""
        return self.shm_gib(pool) + ENGINE_BASE_MEMORY_GIB + ENGINE_MEMORY_GIB_PER_DEVICE * pool.devices_per_replica

    def cache_gib(self) -> int:
        """The s3 weights' cache volume: the spec's size, else the weights x 1.2."""
        if self.target.weights.cache_gib is not None:
            return self.target.weights.cache_gib
        return math.ceil(self.footprint.weights_bytes * S3_CACHE_FACTOR / GIB)

    def ephemeral_gib(self) -> int:
        writable = sum(gib for _, gib in ENGINE_WRITABLE_DIRS)
        return writable + (self.cache_gib() if self.target.weights.s3 is not None else 0)

    def resource_quota(self) -> dict[str, Any]:
        """Bounds the namespace to what its pools may run at max, plus the rollout surge. Extended
        resources are quota'd by their request only ("Resource quota for extended resources":
        only `requests.<resource>` is allowed)."""
        hard: dict[str, int] = {}
        memory = 0
        pods = 0
        for pool in self.pools:
            replicas = pool.max_replicas + self.surge(pool)
            key = f"requests.{pool.resource}"
            hard[key] = hard.get(key, 0) + replicas * pool.devices_per_replica
            memory += replicas * self.memory_gib(pool)
            pods += replicas
        return {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": self.meta("inferstack-quota"),
            "spec": {
                "hard": {
                    **{k: str(v) for k, v in sorted(hard.items())},
                    "requests.memory": f"{memory}Gi",
                    "limits.memory": f"{memory}Gi",
                    "pods": str(pods),
                }
            },
        }

    def limit_range(self) -> dict[str, Any]:
        """Defaults for a container that states no resources (a debug pod): with a memory quota the
        API server rejects a pod without memory limits, so it gets small ones instead."""
        return {
            "apiVersion": "v1",
            "kind": "LimitRange",
            "metadata": self.meta("inferstack-limits"),
            "spec": {
                "limits": [
                    {
                        "type": "Container",
                        "default": {"memory": "512Mi"},
                        "defaultRequest": {"cpu": "100m", "memory": "256Mi"},
                    }
                ]
            },
        }

    # -- network ---------------------------------------------------------------------------------
    def admitted_namespaces(self) -> list[str]:
        """Namespaces whose pods may reach the engine: the spec's list, the Gateway's (or the
        ingress controller's) namespace, and Prometheus's when its URL names a cluster Service."""
        names = set(self.target.allowed_namespaces)
        ingress = self.target.ingress
        if ingress is not None and ingress.gateway is not None:
            names.add(ingress.gateway.split("/", 1)[0])
        if ingress is not None and ingress.controller_namespace is not None:
            names.add(ingress.controller_namespace)
        scraper = prometheus_namespace(self.target.autoscaling.prometheus_url)
        if scraper is not None:
            names.add(scraper)
        return sorted(names)

    def network_policies(self) -> list[dict[str, Any]]:
        def policy(name: str, spec: dict[str, Any]) -> dict[str, Any]:
            return {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": self.meta(name),
                "spec": spec,
            }

        out = [
            # Selects every pod and allows nothing: what the policies below do not allow is denied.
            policy("default-deny", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
            policy(
                "allow-dns",
                {
                    "podSelector": {},
                    "policyTypes": ["Egress"],
                    "egress": [
                        {
                            "to": [{"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: "kube-system"}}}],
                            "ports": [
                                {"protocol": "UDP", "port": DNS_PORT},
                                {"protocol": "TCP", "port": DNS_PORT},
                            ],
                        }
                    ],
                },
            ),
        ]
        admitted = self.admitted_namespaces()
        if admitted:
            out.append(
                policy(
                    "allow-engine-ingress",
                    {
                        "podSelector": {"matchLabels": self.target_selector()},
                        "policyTypes": ["Ingress"],
                        "ingress": [
                            {
                                "from": [
                                    {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: ns}}}
                                    for ns in admitted
                                ],
                                "ports": [{"protocol": "TCP", "port": self.port}],
                            }
                        ],
                    },
                )
            )
        s3 = self.target.weights.s3
        if s3 is not None:
            # A NetworkPolicy selects pods or IP blocks, not host names: the weights' fetch may
            # open the endpoint's port on the store's networks the spec names, nothing else.
            out.append(
                policy(
                    "allow-weights-store",
                    {
                        "podSelector": {"matchLabels": self.target_selector()},
                        "policyTypes": ["Egress"],
                        "egress": [
                            {
                                "to": [{"ipBlock": {"cidr": cidr}} for cidr in s3.endpoint_cidrs],
                                "ports": [{"protocol": "TCP", "port": url_port(s3.endpoint)}],
                            }
                        ],
                    },
                )
            )
        return out

    def service(self) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": self.meta(k8s_name(self.name)),
            "spec": {
                "type": "ClusterIP",
                "selector": self.target_selector(),
                "ports": [
                    {"name": ENGINE_PORT_NAME, "port": self.port, "targetPort": ENGINE_PORT_NAME, "protocol": "TCP"}
                ],
            },
        }

    # -- the pods --------------------------------------------------------------------------------
    def deployment(self, pool: PoolPlan) -> dict[str, Any]:
        name = deployment_name(self.name, pool.name)
        selector = self.pool_selector(pool)
        pod_labels = {**self.labels, **selector}
        surge = self.surge(pool)
        volumes, engine_mounts, init = self.volumes_and_init()
        pod: dict[str, Any] = {
            "priorityClassName": priority_class_name(self.namespace_name, self.target.workload),
            "runtimeClassName": RUNTIME_CLASS,
            "automountServiceAccountToken": False,
            # No Service environment variables: a Service named like the engine (e.g. `vllm`) would
            # set VLLM_PORT=tcp://..., which vLLM reads as its own setting.
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": self.drain_seconds + TERMINATION_MARGIN_SECONDS,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": RUN_AS_UID,
                "runAsGroup": RUN_AS_UID,
                "fsGroup": RUN_AS_UID,
                "fsGroupChangePolicy": "OnRootMismatch",
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "nodeSelector": dict(pool.node_selector),
            "topologySpreadConstraints": [
                {
                    # Spread replicas over the pool's nodes so one node's loss takes as few as
                    # possible; ScheduleAnyway because a pool may hold several replicas per node.
                    "maxSkew": 1,
                    "topologyKey": "kubernetes.io/hostname",
                    "whenUnsatisfiable": "ScheduleAnyway",
                    "labelSelector": {"matchLabels": selector},
                }
            ],
            "containers": [self.engine_container(pool, engine_mounts)],
            "volumes": volumes + [self.shm_volume(pool)],
        }
        if pool.pod_tolerations:
            pod["tolerations"] = list(pool.pod_tolerations)
        if init is not None:
            pod["initContainers"] = [init]
        # No `replicas`: the ScaledObject/HPA owns it (min replicas at once); a value here would be
        # reset to by every apply.
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": self.meta(name, {POOL_LABEL: pool.name}),
            "spec": {
                "selector": {"matchLabels": selector},
                # A rollout makes progress once per replica that loads its model: image pull,
                # weights' fetch and the start-up budget, with room.
                "progressDeadlineSeconds": max(MIN_PROGRESS_DEADLINE_SECONDS, 2 * self.startup_seconds),
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxSurge": surge, "maxUnavailable": 0 if surge else 1},
                },
                "template": {"metadata": {"labels": pod_labels}, "spec": pod},
            },
        }

    def engine_container(self, pool: PoolPlan, mounts: list[dict[str, Any]]) -> dict[str, Any]:
        tp = str(pool.devices_per_replica)
        shares = memory_fraction_args(self.engine, pool.time_slices or 1)
        args = [
            tp if a == "{tensor_parallel}" else a for a in engine_args(self.spec, self.model_name, self.model, shares)
        ]
        probe = {"httpGet": {"path": self.engine.health_path, "port": ENGINE_PORT_NAME}}
        memory = quantity_gib(self.memory_gib(pool))
        devices = str(pool.devices_per_replica)
        cpu = str(ENGINE_CPU_PER_DEVICE * pool.devices_per_replica)
        return {
            "name": "engine",
            "image": self.image,
            "args": args,
            "ports": [{"name": ENGINE_PORT_NAME, "containerPort": self.port, "protocol": "TCP"}],
            "env": [{"name": k, "value": v} for k, v in sorted(engine_env(self.spec.serving.engine).items())],
            "resources": {
                "requests": {
                    "cpu": cpu,
                    "memory": memory,
                    "ephemeral-storage": quantity_gib(self.ephemeral_gib()),
                    pool.resource: devices,
                },
                # Extended resources: request = limit, and the limit is what the device plugin allocates.
                # CPU and memory limits equal their requests, in whole CPUs: the pod is Guaranteed, the
                # last the kubelet evicts under node pressure, and a kubelet with the static CPU
                # manager gives it exclusive cores, so the limit never throttles the tokenizer.
                "limits": {"cpu": cpu, "memory": memory, pool.resource: devices},
            },
            "securityContext": restricted_container_security_context(),
            "startupProbe": {
                **probe,
                "periodSeconds": PROBE_PERIOD_SECONDS,
                "timeoutSeconds": PROBE_TIMEOUT_SECONDS,
                "failureThreshold": math.ceil(self.startup_seconds / PROBE_PERIOD_SECONDS),
            },
            "readinessProbe": {
                **probe,
                "periodSeconds": READINESS_PERIOD_SECONDS,
                "timeoutSeconds": PROBE_TIMEOUT_SECONDS,
                "failureThreshold": READINESS_FAILURES,
            },
            "livenessProbe": {
                **probe,
                "periodSeconds": LIVENESS_PERIOD_SECONDS,
                "timeoutSeconds": PROBE_TIMEOUT_SECONDS,
                "failureThreshold": LIVENESS_FAILURES,
            },
            "volumeMounts": mounts,
            **self.drain_hook(),
        }

    def drain_hook(self) -> dict[str, Any]:
        """The engine's preStop wait for the streams in flight (SLEEP_ACTION_MINOR)."""
        if int(self.target.cluster.version.split(".")[1]) < SLEEP_ACTION_MINOR:
            return {}
        return {"lifecycle": {"preStop": {"sleep": {"seconds": self.drain_seconds}}}}

    def shm_volume(self, pool: PoolPlan) -> dict[str, Any]:
        return {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": quantity_gib(self.shm_gib(pool))}}

    def volumes_and_init(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any] | None]:
        """The engine's volumes and mounts, and the weights' init container when they come from s3.

        The root filesystem is read-only: every place the engine writes (planning.serving: the
        compile caches, /tmp) is an emptyDir on the node's disk (exec allowed, unlike a tmpfs
        /tmp), and /dev/shm a memory-backed one. The weights are read-only to the engine.
        """
        volumes: list[dict[str, Any]] = []
        mounts: list[dict[str, Any]] = [{"name": "shm", "mountPath": "/dev/shm"}]
        for path, gib in ENGINE_WRITABLE_DIRS:
            vol = "scratch-" + path.strip("/").replace("/", "-")
            volumes.append({"name": vol, "emptyDir": {"sizeLimit": quantity_gib(gib)}})
            mounts.append({"name": vol, "mountPath": path})
        model_dir = f"{MODELS_DIR}/{self.model_name}"
        weights = self.target.weights
        if weights.pvc is not None:
            volumes.append({"name": "weights", "persistentVolumeClaim": {"claimName": weights.pvc, "readOnly": True}})
            mount: dict[str, Any] = {"name": "weights", "mountPath": model_dir, "readOnly": True}
            if weights.path.strip("/"):
                mount["subPath"] = weights.path.strip("/")
            mounts.append(mount)
            return volumes, mounts, None
        s3 = weights.s3
        assert s3 is not None  # the spec holds exactly one source
        volumes.append({"name": "weights", "emptyDir": {"sizeLimit": quantity_gib(self.cache_gib())}})
        mounts.append({"name": "weights", "mountPath": MODELS_DIR, "readOnly": True})
        prefix = s3.prefix.strip("/")
        source = f"s3://{s3.bucket}/{prefix}/" if prefix else f"s3://{s3.bucket}/"
        env: list[dict[str, Any]] = [
            {"name": key, "valueFrom": {"secretKeyRef": {"name": s3.credentials_secret, "key": key}}}
            for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
        ]
        env += [
            {"name": "AWS_REGION", "value": s3.region},
            # No instance metadata on a site's server: without this the CLI probes it first.
            {"name": "AWS_EC2_METADATA_DISABLED", "value": "true"},
            # AWS CLI v2 (2.23+) sends and checks CRC checksums S3-compatible stores may not
            # support; "when_required" restores the behaviour they do (AWS SDKs and Tools
            # reference, "Data integrity protections").
            {"name": "AWS_REQUEST_CHECKSUM_CALCULATION", "value": "when_required"},
            {"name": "AWS_RESPONSE_CHECKSUM_VALIDATION", "value": "when_required"},
            {"name": "HOME", "value": "/tmp"},
        ]
        init_mounts: list[dict[str, Any]] = [
            {"name": "weights", "mountPath": MODELS_DIR},
            {"name": "scratch-tmp", "mountPath": "/tmp"},
        ]
        if s3.ca_secret is not None:
            env.append({"name": "AWS_CA_BUNDLE", "value": f"{S3_CA_DIR}/ca.crt"})
            volumes.append(
                {
                    "name": "s3-ca",
                    "secret": {"secretName": s3.ca_secret, "items": [{"key": "ca.crt", "path": "ca.crt"}]},
                }
            )
            init_mounts.append({"name": "s3-ca", "mountPath": S3_CA_DIR, "readOnly": True})
        init = {
            "name": "fetch-weights",
            "image": s3.fetch_image,
            "command": [
                "aws",
                "s3",
                "sync",
                source,
                f"{model_dir}/",
                "--endpoint-url",
                s3.endpoint,
                "--no-progress",
                "--only-show-errors",
            ],
            "env": env,
            "resources": {
                "requests": {"cpu": "1", "memory": quantity_gib(FETCH_MEMORY_GIB)},
                "limits": {"cpu": "1", "memory": quantity_gib(FETCH_MEMORY_GIB)},
            },
            "securityContext": restricted_container_security_context(),
            "volumeMounts": init_mounts,
        }
        return volumes, mounts, init

    def disruption_budget(self, pool: PoolPlan) -> dict[str, Any]:
        return {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": self.meta(deployment_name(self.name, pool.name), {POOL_LABEL: pool.name}),
            "spec": {
                # One replica at a time leaves for a drain: with minAvailable a single-replica
                # pool could never be drained.
                "maxUnavailable": 1,
                "selector": {"matchLabels": self.pool_selector(pool)},
                # A replica still loading its model (not Ready) may be evicted without waiting for
                # the healthy ones (policy/v1, beta and on by default since 1.27).
                "unhealthyPodEvictionPolicy": "AlwaysAllow",
            },
        }

    # -- scraping and autoscaling ----------------------------------------------------------------
    def service_monitor(self) -> dict[str, Any]:
        """The Prometheus Operator scrapes the engine through its Service (monitoring.coreos.com/v1
        ServiceMonitor) and copies the pod's pool label onto every series, so one pool's load is
        one query (its series carry namespace and pod already)."""
        return {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "ServiceMonitor",
            # The labels the site's Prometheus selects ServiceMonitors by (its serviceMonitorSelector):
            # one it does not select is never scraped, and the autoscaler has no metric.
            "metadata": self.meta(k8s_name(self.name), self.target.monitoring.service_monitor_labels),
            "spec": {
                "selector": {"matchLabels": self.target_selector()},
                "endpoints": [
                    {
                        "port": ENGINE_PORT_NAME,
                        "path": self.engine.metrics_path,
                        "interval": "15s",
                        "relabelings": [
                            {
                                # kubernetes_sd: __meta_kubernetes_pod_label_<name>, the label's
                                # name with unsupported characters as underscores.
                                "sourceLabels": [
                                    "__meta_kubernetes_pod_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", POOL_LABEL)
                                ],
                                "targetLabel": POOL_SERIES_LABEL,
                                "action": "replace",
                            }
                        ],
                    }
                ],
            },
        }

    def prometheus_rule(self) -> dict[str, Any]:
        """Recording rules and SLO alerts (planning.onprem.observability), selected by the site's
        Prometheus by the ServiceMonitor labels (kube-prometheus-stack's ruleSelector)."""
        from inferstack.planning.onprem.observability import prometheus_rule_groups

        return {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "PrometheusRule",
            "metadata": self.meta(k8s_name(self.name, "slos"), self.target.monitoring.service_monitor_labels),
            "spec": {"groups": prometheus_rule_groups(self.spec, self.name, self.namespace_name)},
        }

    def grafana_dashboard(self) -> dict[str, Any]:
        """The target's board, as a ConfigMap the Grafana sidecar loads (its `grafana_dashboard` label)."""
        from inferstack.planning.onprem.observability import GRAFANA_DASHBOARD_LABEL, dashboard_json

        name = k8s_name(self.name, "dashboard")
        key, value = GRAFANA_DASHBOARD_LABEL
        uid = k8s_name(self.namespace_name, self.name, limit=40)
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": self.meta(name, {key: value}),
            "data": {f"{name}.json": dashboard_json(self.spec, self.name, self.namespace_name, uid)},
        }

    def scale_down_behavior(self) -> dict[str, Any]:
        """One replica per cooldown, after the load stayed low for a cooldown (HPA behavior:
        stabilizationWindowSeconds 0..3600, policy periodSeconds 1..1800)."""
        cooldown = self.target.autoscaling.scale_in_cooldown
        return {
            "scaleDown": {
                "stabilizationWindowSeconds": cooldown,
                "policies": [
                    {"type": "Pods", "value": 1, "periodSeconds": min(cooldown, HPA_MAX_POLICY_PERIOD_SECONDS)}
                ],
            }
        }

    def signals(self) -> list[tuple[str, float]]:
        """(signal, per-replica target) pairs: the spec's signal, and with queue_depth the busy pods
        as well. Waiting requests are 0 whenever the batch has room, normal load, so on their own
        they would give back busy replicas; the autoscaler follows the largest recommendation, and
        the busy-pods signal (1 per busy replica) never recommends fewer than are busy."""
        auto = self.target.autoscaling
        out: list[tuple[str, float]] = [(auto.signal, auto.target)]
        if auto.signal == "queue_depth":
            out.append(("busy", SCALE_IN_IDLE_IN_FLIGHT))
        return out

    def autoscaler(self, pool: PoolPlan) -> dict[str, Any]:
        auto = self.target.autoscaling
        name = deployment_name(self.name, pool.name)
        target_ref = {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        if auto.via == "keda":
            matchers = f'namespace="{self.namespace_name}",{POOL_SERIES_LABEL}="{pool.name}"'
            triggers = [
                {
                    "type": "prometheus",
                    "name": signal.replace("_", "-"),
                    # AverageValue: the query's sum is divided by the replica count (KEDA scalers,
                    # "Prometheus": serverAddress, query, threshold as a string).
                    "metricType": "AverageValue",
                    "metadata": {
                        "serverAddress": auto.prometheus_url,
                        "query": prometheus_query(self.spec.serving.engine, signal, matchers),
                        "threshold": decimal_string(value),
                        # Trigger metadata is a map of strings (ScaledObject CRD).
                        "ignoreNullValues": "false",
                    },
                }
                for signal, value in self.signals()
            ]
            return {
                "apiVersion": "keda.sh/v1alpha1",
                "kind": "ScaledObject",
                "metadata": self.meta(name, {POOL_LABEL: pool.name}),
                "spec": {
                    "scaleTargetRef": target_ref,
                    "pollingInterval": KEDA_POLLING_SECONDS,
                    "minReplicaCount": pool.min_replicas,
                    "maxReplicaCount": pool.max_replicas,
                    # Blind to the load, keep what runs (never below min): no scale-in of replicas
                    # that may be busy, no scale-out to every GPU. `behavior` is KEDA 2.17+.
                    "fallback": {
                        "failureThreshold": KEDA_FALLBACK_FAILURES,
                        "replicas": pool.min_replicas,
                        "behavior": "currentReplicasIfHigher",
                    },
                    "advanced": {"horizontalPodAutoscalerConfig": {"behavior": self.scale_down_behavior()}},
                    "triggers": triggers,
                },
            }
        metrics = [
            {
                "type": "Pods",
                "pods": {
                    "metric": {"name": ADAPTER_METRICS[signal]},
                    "target": {"type": "AverageValue", "averageValue": decimal_string(value)},
                },
            }
            for signal, value in self.signals()
        ]
        return {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": self.meta(name, {POOL_LABEL: pool.name}),
            "spec": {
                "scaleTargetRef": target_ref,
                "minReplicas": pool.min_replicas,
                "maxReplicas": pool.max_replicas,
                "metrics": metrics,
                "behavior": self.scale_down_behavior(),
            },
        }

    # -- the entry -------------------------------------------------------------------------------
    def entry(self) -> list[dict[str, Any]]:
        ingress = self.target.ingress
        if ingress is None:
            return []
        service = k8s_name(self.name)
        if ingress.via == "gateway-api":
            assert ingress.gateway is not None  # the spec requires it
            gw_namespace, gw_name = ingress.gateway.split("/", 1)
            parent: dict[str, Any] = {
                "group": "gateway.networking.k8s.io",
                "kind": "Gateway",
                "namespace": gw_namespace,
                "name": gw_name,
            }
            if ingress.listener is not None:
                parent["sectionName"] = ingress.listener
            # A streamed reply of a full context may take the drain bound: neither the whole
            # request nor the backend call may be cut before it (HTTPRouteTimeouts, Gateway API
            # v1.2+ standard; a duration like "900s").
            timeout = f"{self.drain_seconds}s"
            route = {
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "HTTPRoute",
                "metadata": self.meta(service),
                "spec": {
                    # Attaching to a Gateway in another namespace needs no ReferenceGrant: the
                    # Gateway's listeners decide (allowedRoutes.namespaces) which namespaces may.
                    "parentRefs": [parent],
                    "hostnames": [ingress.host],
                    "rules": [
                        {
                            "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                            "backendRefs": [{"group": "", "kind": "Service", "name": service, "port": self.port}],
                            "timeouts": {"request": timeout, "backendRequest": timeout},
                        }
                    ],
                },
            }
            # TLS ends on the Gateway's listener. Its certificateRefs may name this namespace's
            # Secret only with a ReferenceGrant here (the one cross-namespace reference that needs
            # one): it grants that Gateway's namespace this one Secret, nothing else.
            grant = {
                "apiVersion": "gateway.networking.k8s.io/v1beta1",
                "kind": "ReferenceGrant",
                "metadata": self.meta(k8s_name(self.name, "tls")),
                "spec": {
                    "from": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "namespace": gw_namespace}],
                    "to": [{"group": "", "kind": "Secret", "name": ingress.tls_secret}],
                },
            }
            return [route, grant]
        # networking.k8s.io/v1 Ingress has no timeout fields; they are the controller's annotations.
        return [
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "Ingress",
                "metadata": self.meta(service),
                "spec": {
                    "ingressClassName": ingress.ingress_class,
                    "tls": [{"hosts": [ingress.host], "secretName": ingress.tls_secret}],
                    "rules": [
                        {
                            "host": ingress.host,
                            "http": {
                                "paths": [
                                    {
                                        "path": "/",
                                        "pathType": "Prefix",
                                        "backend": {"service": {"name": service, "port": {"name": ENGINE_PORT_NAME}}},
                                    }
                                ]
                            },
                        }
                    ],
                },
            }
        ]


_SVC_HOST = re.compile(r"^[a-z0-9-]+\.(?P<namespace>[a-z0-9-]+)\.svc(\.[a-z0-9.-]+)?$")


def prometheus_namespace(url: str) -> str | None:
    """The namespace of a Prometheus reached as a cluster Service (<svc>.<namespace>.svc[...])."""
    host = urlsplit(url).hostname or ""
    m = _SVC_HOST.match(host)
    return m["namespace"] if m else None


def url_port(url: str) -> int:
    parts = urlsplit(url)
    return parts.port or (443 if parts.scheme == "https" else 80)
