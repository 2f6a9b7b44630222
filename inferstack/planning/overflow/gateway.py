"""The overflow gateway: Envoy in front of the primary's engines, and its Kubernetes objects.

Pure planning. `envoy_config` renders templates/envoy_overflow.yaml.j2 from typed inputs into an
Envoy v3 bootstrap (envoy.config.bootstrap.v3.Bootstrap); `gateway_manifests` builds the objects
that run it on the primary's cluster; `plan_gateway` joins both from the spec.

What a request meets (every route of the rendered config is walked in tests/test_overflow_gateway.py):

- its classification is the value of the spec's header, exactly and in lower case as the spec
  writes it; a missing header counts as the stack's own classification. A header sent twice is
  one comma-joined value to Envoy's header matchers (CVE-2020-25017's fix, Envoy 1.12.7 and
  later: "multiple individual headers will be logically concatenated with ','"), so `public`
  twice is `public,public`: no allowed value, hence local. Any value that is not an allowed one
  (confidential, restricted, `Public`, `public ` never reaches us: HTTP strips the spaces) is
  treated as the most restrictive: local only;
- a request that may not leave goes to the `local` cluster and nowhere else: no aggregate, no
  retry to another priority. When the primary is saturated (its circuit breaker) or has no healthy
  replica, it gets Envoy's 503 with `x-inferstack-reason` (primary-saturated, no-healthy-upstream)
  and, like every response of its route, `x-inferstack-overflow: denied-<classification>`;
- an allowed request goes to the `burst` aggregate (burst targets in order of preference) for the
  share of requests the publisher sets in the runtime key OVERFLOW_RUNTIME_KEY (a percentage,
  0 at start and after a restart), else to `spill` (local first, the burst targets when no local
  replica is healthy: the trigger's primary_unhealthy), or to `local` when the spec turns
  primary_unhealthy off.

Sources (Envoy v3 API, read 2026-12 on envoyproxy.io, and the descriptors of the xds-protos
package the tests parse the config with): bootstrap.v3.Bootstrap/LayeredRuntime (an admin layer is
what /runtime_modify writes), config.route.v3 RouteMatch.runtime_fraction, HeaderMatcher
(string_match, present_match + invert_match), RouteAction (timeout 0 disables the route timeout,
idle_timeout, priority), RetryPolicy (retry_on reset,connect-failure,refused-stream;
retry_priority envoy.retry_priorities.previous_priorities; retry_host_predicate previous_hosts),
config.cluster.v3 CircuitBreakers.Thresholds (per RoutingPriority; retry_budget), OutlierDetection,
core.v3.HealthCheck; "Aggregate Cluster" (architecture overview: members' priorities are linearized
in the order of the clusters list); transport_sockets.tls.v3 Upstream/DownstreamTlsContext,
CertificateValidationContext.match_typed_subject_alt_names; HttpConnectionManager
(stream_idle_timeout, request_headers_timeout, use_remote_address, local_reply_config,
headers_with_underscores_action); filters.http.health_check.v3 and the "Health checking"
overview (non-pass-through: Envoy answers 200 or 503 from its own draining state). From Envoy's
source (envoyproxy/envoy, source/common/router): RetryPolicyImpl::wouldRetryFromReset "never
retr[ies] if the reset reason is overflow", so a saturated primary never spills a request through
a retry (the publisher's runtime key does that); the router's modify_headers_ runs the route's
finalizeResponseHeaders on "all upstream responses or local responses", so the route's
x-inferstack-overflow is on Envoy's own 503s too (OVERWRITE_IF_EXISTS_OR_ADD: once, even where the
local-reply path applies it twice).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from inferstack import catalog
from inferstack.planning.aws_fleet import drain_seconds
from inferstack.planning.naming import k8s_labels, k8s_name, standard_tags
from inferstack.planning.onprem import Manifest
from inferstack.planning.onprem.workload import (
    DNS_PORT,
    ENGINE_PORT_NAME,
    LOCATION_LABEL,
    NAMESPACE_NAME_LABEL,
    PSS_LEVEL,
    PSS_MODES,
    RUN_AS_UID,
    SLEEP_ACTION_MINOR,
    TARGET_LABEL,
    TERMINATION_MARGIN_SECONDS,
    namespace_of,
    restricted_container_security_context,
)
from inferstack.planning.overflow import BurstUpstream
from inferstack.render import render
from inferstack.spec.models import NEVER_OVERFLOW, DeploymentSpec, OnPremK8sTarget, OverflowTrigger

TEMPLATE = "envoy_overflow.yaml.j2"

# -- the config's names, shared with the publisher -------------------------------------------------
LOCAL_CLUSTER = "local"
SPILL_CLUSTER = "spill"
BURST_CLUSTER = "burst"
# The percentage (0-100) of allowed requests sent to the burst targets. The publisher raises it
# (POST /runtime_modify?overflow.active=<n> on the admin port) only while a burst cluster has
# healthy members (stats cluster.<name>.membership_healthy): Envoy never holds a request through a
# cold start, a cold burst cluster answers 503 at once.
OVERFLOW_RUNTIME_KEY = "overflow.active"
OVERFLOW_HEADER = "x-inferstack-overflow"  # on every response: denied-<classification>, burst, spill, local
REASON_HEADER = "x-inferstack-reason"  # on Envoy's own 503s: why
UNKNOWN = "unknown"
# The spec's classifications (spec.models.Classification), least restrictive first: the order of
# the routes.
CLASSIFICATIONS: tuple[str, ...] = ("public", "internal", "confidential", "restricted")

# -- ports and paths ---------------------------------------------------------------------------------
LISTEN_PORT = 8443  # unprivileged: the container runs as a non-root UID
SERVICE_PORT = 443
ADMIN_PORT = 9901
GATEWAY_HEALTH_PATH = "/healthz"  # answered by Envoy's health_check filter, never forwarded
CONFIG_DIR = "/etc/envoy"
CONFIG_FILE = "envoy.yaml"
TLS_DIR = "/etc/envoy/tls"
CLOUD_CA_DIR = "/etc/envoy/cloud-ca"
PORT_NAME = "https"

# -- timeouts ----------------------------------------------------------------------------------------
# Headers must arrive within 10 s (a slow-loris client holds nothing for long); the body and the
# reply are bounded by idleness, never by a total that would cut a long stream.
REQUEST_HEADERS_TIMEOUT_SECONDS = 10
# A streamed reply is silent while the request waits in the engine's queue and until its first
# token: five minutes of silence (Envoy's default, stated) before a stream counts as stuck.
STREAM_IDLE_SECONDS = 300
CONNECT_TIMEOUT_LOCAL_SECONDS = 2
CONNECT_TIMEOUT_BURST_SECONDS = 10  # TCP and TLS over the VPN, to another continent at worst
DNS_REFRESH_SECONDS = 5
# -- retries: only what is safe for a non-idempotent POST that produced nothing yet ------------------
RETRY_ON = "reset,connect-failure,refused-stream"
NUM_RETRIES = 2
RETRY_BASE_INTERVAL = "0.25s"
RETRY_MAX_INTERVAL = "2s"
HOST_SELECTION_ATTEMPTS = 3
RETRY_BUDGET_PERCENT = 20.0  # retries may add at most a fifth to the requests in flight...
MIN_RETRY_CONCURRENCY = 3  # ...and 3 at any time (Envoy's default max_retries)
# -- health and ejection -----------------------------------------------------------------------------
LOCAL_HEALTH_INTERVAL_SECONDS = 5
BURST_HEALTH_INTERVAL_SECONDS = 10  # also while idle (no_traffic_interval): a woken fleet is seen in 10 s
HEALTH_TIMEOUT_SECONDS = 3
UNHEALTHY_THRESHOLD = 3
HEALTHY_THRESHOLD = 2
CONSECUTIVE_5XX = 5
OUTLIER_INTERVAL_SECONDS = 10
BASE_EJECTION_SECONDS = 30
# Local: never eject more than half the replicas on errors alone (a bad prompt can fail on every
# replica); a burst endpoint is a load balancer, one host per cluster, and may be ejected.
LOCAL_MAX_EJECTION_PERCENT = 50
BURST_MAX_EJECTION_PERCENT = 100
# Envoy's default circuit-breaker limits, stated: the engines queue internally, the breaker is the
# backstop beyond which the gateway answers 503 instead of piling requests on a primary.
DEFAULT_MAX_REQUESTS = 1024

# -- the pod -----------------------------------------------------------------------------------------
GATEWAY_NAME = "overflow-gateway"
APP_LABEL = "app.kubernetes.io/name"
CONFIG_HASH_ANNOTATION = "inferstack.io/config-sha256"
ENVOY_CPU = "1"
ENVOY_MEMORY = "512Mi"
READINESS_PERIOD_SECONDS = 5
LIVENESS_PERIOD_SECONDS = 10
PROBE_TIMEOUT_SECONDS = 3
READINESS_FAILURES = 2
LIVENESS_FAILURES = 6
# Envoy exits on SIGTERM without draining. A leaving pod first waits in its preStop hook for the
# primary's drain bound, as the engines do (planning.onprem.workload, SLEEP_ACTION_MINOR): the
# Service stops sending it new connections at once, and the streams in flight finish. The
# publisher, which has an HTTP client, may shorten it by POSTing DRAIN_PATH to the admin port in
# its own preStop hook.
DRAIN_PATH = "/drain_listeners?graceful"
HEADLESS_SUFFIX = "endpoints"


@dataclass(frozen=True)
class _Route:
    name: str
    header: Mapping[str, Any] | None  # {"absent": True} | {"absent": False, "value": ...} | None (any)
    runtime_key: str | None
    cluster: str
    priority: str
    timeout: str
    idle_timeout: str
    other_priorities: bool  # retries may move to the aggregate's next priority (another cluster)
    verdict: str


@dataclass(frozen=True)
class GatewayPlan:
    """The rendered Envoy config, its digest (on the pod template) and the objects that run it."""

    envoy_yaml: str
    config_sha256: str
    manifests: tuple[Manifest, ...]
    namespace: str
    publisher_script: str | None  # None: the spec names no publisher
    service_account: str  # the publisher's identity: system:serviceaccount:<namespace>:<this>
    admin_port: int = ADMIN_PORT
    runtime_key: str = OVERFLOW_RUNTIME_KEY
    burst_clusters: tuple[str, ...] = field(default_factory=tuple)


def seconds(value: int) -> str:
    return f"{value}s"


def burst_cluster_name(upstream: BurstUpstream) -> str:
    """`burst-<target>`: the stats the publisher reads are cluster.<this name>.*."""
    return f"burst-{upstream.target}"


def envoy_config(
    *,
    primary_host: str,
    primary_port: int,
    health_path: str,
    burst: Sequence[BurstUpstream],
    trigger: OverflowTrigger,
    allowed: Sequence[str],
    stack_classification: str,
    header: str,
    overflow_timeout_seconds: int,
    tls_cert_path: str,
    tls_key_path: str,
    cloud_ca_path: str,
    local_max_requests: int = DEFAULT_MAX_REQUESTS,
) -> str:
    """The gateway's Envoy bootstrap YAML.

    primary_host:port is the primary's engines (a headless Service name: Envoy resolves every
    ready pod and balances, health-checks and ejects each), health_path the engine's; `burst` the
    burst upstreams (sorted here by priority, the order of preference); `allowed` the
    classifications that may leave; `header` the request header that carries a request's.
    """
    if not burst:
        raise ValueError("an overflow gateway needs at least one burst upstream")
    leaking = sorted(set(allowed) & NEVER_OVERFLOW)
    if leaking:
        raise ValueError(f"{', '.join(leaking)} data never leaves the primary site")
    if header != header.lower():
        # Envoy's header map keys are lower case; an upper-case name would never match.
        raise ValueError(f"classification header {header!r} must be lower case")
    ordered = sorted(burst, key=lambda u: (u.priority, u.target))
    burst_names = [burst_cluster_name(u) for u in ordered]
    if len(set(burst_names)) != len(burst_names):
        raise ValueError("two burst upstreams share a target name")
    allowed_set = set(allowed)
    strange = sorted(allowed_set - set(CLASSIFICATIONS))
    if strange:
        raise ValueError(f"unknown classifications {strange}: the spec's are {list(CLASSIFICATIONS)}")
    allowed_values = [c for c in CLASSIFICATIONS if c in allowed_set]
    denied_values = [c for c in CLASSIFICATIONS if c not in allowed_set]

    # The route timeout spans the whole reply: 0 turns it off on the local paths, so no stream is
    # cut; idleness bounds them instead. An overflowed request gets the spec's overflow timeout in
    # all (connection over the link, the burst engine's queue, the reply).
    local_timeout = "0s"
    burst_timeout = seconds(overflow_timeout_seconds)
    idle = seconds(STREAM_IDLE_SECONDS)
    spill_target = SPILL_CLUSTER if trigger.primary_unhealthy else LOCAL_CLUSTER
    spill_verdict = "spill" if trigger.primary_unhealthy else "local"

    def allowed_routes(name: str, match: Mapping[str, Any]) -> list[_Route]:
        return [
            _Route(
                f"{name}-burst",
                match,
                OVERFLOW_RUNTIME_KEY,
                BURST_CLUSTER,
                "DEFAULT",
                burst_timeout,
                burst_timeout,
                True,
                "burst",
            ),
            _Route(
                f"{name}-spill",
                match,
                None,
                spill_target,
                "DEFAULT",
                local_timeout,
                idle,
                spill_target == SPILL_CLUSTER,
                spill_verdict,
            ),
        ]

    def denied_route(name: str, match: Mapping[str, Any] | None, classification: str) -> _Route:
        # HIGH routing priority: its own circuit-breaker budget on `local`, so a surge of traffic
        # that could leave never pushes data that cannot into a 503.
        return _Route(name, match, None, LOCAL_CLUSTER, "HIGH", local_timeout, idle, False, f"denied-{classification}")

    routes: list[_Route] = []
    for value in allowed_values:
        routes += allowed_routes(f"allowed-{value}", {"absent": False, "value": value})
    missing = {"absent": True}
    if stack_classification in allowed_values:
        routes += allowed_routes("missing", missing)
    else:
        routes.append(denied_route("missing", missing, stack_classification))
    for value in denied_values:
        routes.append(denied_route(f"denied-{value}", {"absent": False, "value": value}, value))
    # Everything else (an unknown value, another case, a header sent twice) stays on the site.
    routes.append(denied_route("denied-unknown", None, UNKNOWN))

    local = {
        "name": LOCAL_CLUSTER,
        "host": primary_host,
        "port": primary_port,
        "health_path": health_path,
        "tls": False,
        "connect_timeout": seconds(CONNECT_TIMEOUT_LOCAL_SECONDS),
        "dns_refresh_rate": seconds(DNS_REFRESH_SECONDS),
        "max_requests": local_max_requests,
        "max_pending_requests": local_max_requests,
        "health_timeout": seconds(HEALTH_TIMEOUT_SECONDS),
        "health_interval": seconds(LOCAL_HEALTH_INTERVAL_SECONDS),
        "unhealthy_threshold": UNHEALTHY_THRESHOLD,
        "healthy_threshold": HEALTHY_THRESHOLD,
        "consecutive_5xx": CONSECUTIVE_5XX,
        "outlier_interval": seconds(OUTLIER_INTERVAL_SECONDS),
        "base_ejection_time": seconds(BASE_EJECTION_SECONDS),
        "max_ejection_percent": LOCAL_MAX_EJECTION_PERCENT,
    }
    clusters = [local]
    for upstream, name in zip(ordered, burst_names, strict=True):
        clusters.append(
            {
                **local,
                "name": name,
                "host": upstream.host,
                "port": upstream.port,
                "tls": True,
                "connect_timeout": seconds(CONNECT_TIMEOUT_BURST_SECONDS),
                "health_interval": seconds(BURST_HEALTH_INTERVAL_SECONDS),
                "max_ejection_percent": BURST_MAX_EJECTION_PERCENT,
            }
        )
    aggregates = [{"name": BURST_CLUSTER, "members": burst_names, "connect_timeout": seconds(1)}]
    if trigger.primary_unhealthy:
        aggregates.insert(
            0, {"name": SPILL_CLUSTER, "members": [LOCAL_CLUSTER, *burst_names], "connect_timeout": seconds(1)}
        )
    return render(
        TEMPLATE,
        admin_port=ADMIN_PORT,
        listen_port=LISTEN_PORT,
        runtime_defaults=_nested(OVERFLOW_RUNTIME_KEY, 0),
        tls_cert_path=tls_cert_path,
        tls_key_path=tls_key_path,
        cloud_ca_path=cloud_ca_path,
        request_headers_timeout=seconds(REQUEST_HEADERS_TIMEOUT_SECONDS),
        stream_idle_timeout=idle,
        reason_header=REASON_HEADER,
        overflow_header=OVERFLOW_HEADER,
        # Envoy's response flags (access-log format): UO upstream overflow (circuit breaker), UH no
        # healthy upstream, URX retries exhausted.
        local_reply_mappers=[
            {"flags": ["UO"], "reason": "primary-saturated"},
            {"flags": ["UH"], "reason": "no-healthy-upstream"},
            {"flags": ["URX"], "reason": "upstream-retries-exhausted"},
        ],
        gateway_health_path=GATEWAY_HEALTH_PATH,
        header=header,
        routes=routes,
        retry_on=RETRY_ON,
        num_retries=NUM_RETRIES,
        retry_base_interval=RETRY_BASE_INTERVAL,
        retry_max_interval=RETRY_MAX_INTERVAL,
        host_selection_attempts=HOST_SELECTION_ATTEMPTS,
        retry_budget_percent=RETRY_BUDGET_PERCENT,
        min_retry_concurrency=MIN_RETRY_CONCURRENCY,
        clusters=clusters,
        aggregates=aggregates,
    )


def _nested(key: str, value: int) -> dict[str, Any]:
    """A runtime key as the static layer's nested Struct (`a.b: 0` is `{a: {b: 0}}`)."""
    out: dict[str, Any] = {}
    node = out
    *parents, leaf = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    return out


# -- Kubernetes ----------------------------------------------------------------------------------


def gateway_namespace(spec: DeploymentSpec, stack: str) -> str:
    """The gateway's own namespace, beside the primary's: the primary's ResourceQuota counts its
    engines' pods and memory only, and the gateway's policies stay apart from the engine's."""
    assert spec.overflow is not None
    return k8s_name(namespace_of(spec, stack, spec.overflow.primary), "gw")


def headless_service_name(primary: str) -> str:
    return k8s_name(primary, HEADLESS_SUFFIX)


def primary_upstream(spec: DeploymentSpec, stack: str, cluster_domain: str = "cluster.local") -> tuple[str, int]:
    """(host, port) Envoy's `local` cluster resolves: the primary's headless Service (built by
    gateway_manifests beside the engine's ClusterIP Service of planning.onprem.workload), whose
    DNS name answers with every ready engine pod, so Envoy balances, health-checks and ejects
    replicas one by one instead of seeing one virtual IP."""
    assert spec.overflow is not None
    primary = spec.overflow.primary
    namespace = namespace_of(spec, stack, primary)
    return f"{headless_service_name(primary)}.{namespace}.svc.{cluster_domain}", spec.serving.port


def _publisher_container(container: Mapping[str, Any]) -> dict[str, Any]:
    """The caller's publisher container, held to the engine's hardening: its security context is
    the restricted one whatever it says."""
    if "name" not in container or "image" not in container:
        raise ValueError("the publisher container needs a name and an image")
    if container["name"] == "envoy":
        raise ValueError("the publisher container may not be named 'envoy'")
    return {**container, "securityContext": restricted_container_security_context()}


def gateway_manifests(
    spec: DeploymentSpec,
    stack: str,
    envoy_yaml: str,
    cloud_cidrs: Sequence[str],
    burst: Sequence[BurstUpstream],
    publisher: Mapping[str, Any] | None = None,
    publisher_volumes: Sequence[Mapping[str, Any]] = (),
    publisher_ports: Sequence[int] = (443,),
    publisher_files: Mapping[str, str] | None = None,
    host_aliases: Sequence[Mapping[str, Any]] = (),
) -> tuple[Manifest, ...]:
    """The gateway's objects, in apply order: its namespace, the primary's headless Service and
    the policy admitting the gateway to the engines, the gateway's policies, ServiceAccount,
    ConfigMap, Deployment (Envoy and the caller's publisher container), Service and budget.

    cloud_cidrs: the burst endpoints' ranges reached over the link (the gateway may open the burst
    ports and `publisher_ports`, the clouds' private API endpoints, there and nowhere else outside
    the cluster). publisher_files: the publisher's files in the gateway's ConfigMap, hashed with
    Envoy's config; host_aliases: the pod's /etc/hosts entries (Google's APIs at the restricted VIP)."""
    overflow = spec.overflow
    assert overflow is not None
    if not cloud_cidrs:
        raise ValueError("the gateway reaches the burst endpoints only in their ranges: pass the cloud CIDRs")
    for cidr in cloud_cidrs:
        try:
            ipaddress.ip_network(cidr)
        except ValueError:
            raise ValueError(f"{cidr!r} is not a network (a CIDR with no host bits set)") from None
    primary_name = overflow.primary
    primary = spec.targets[primary_name]
    assert isinstance(primary, OnPremK8sTarget)
    gw = overflow.gateway
    namespace = gateway_namespace(spec, stack)
    primary_namespace = namespace_of(spec, stack, primary_name)
    model_name, _ = spec.model_of(primary_name)
    labels = k8s_labels(standard_tags(spec, stack, model_name, "gateway"))
    selector = {APP_LABEL: GATEWAY_NAME, TARGET_LABEL: primary_name}
    engine_selector = {TARGET_LABEL: primary_name}
    files = {**(publisher_files or {}), CONFIG_FILE: envoy_yaml}
    if len(files) != len(publisher_files or {}) + 1:
        raise ValueError(f"a publisher file may not be named {CONFIG_FILE}")
    digest = config_digest(files)

    def meta(name: str, ns: str | None = namespace, extra: Mapping[str, str] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"name": name, "labels": {**labels, **selector, **(extra or {})}}
        if ns is not None:
            out["namespace"] = ns
        return out

    def policy(name: str, ns: str, body: dict[str, Any]) -> dict[str, Any]:
        return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta(name, ns), "spec": body}

    version = f"v{primary.cluster.version}"
    pss: dict[str, str] = {}
    for mode in PSS_MODES:
        pss[f"pod-security.kubernetes.io/{mode}"] = PSS_LEVEL
        pss[f"pod-security.kubernetes.io/{mode}-version"] = version
    namespace_obj = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": meta(namespace, None, {**pss, LOCATION_LABEL: primary.location}),
    }
    headless = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(headless_service_name(primary_name), primary_namespace),
        "spec": {
            "clusterIP": "None",
            "selector": engine_selector,
            # Only Ready engines are resolved: a pod loading its model is never sent traffic.
            "publishNotReadyAddresses": False,
            "ports": [
                {"name": ENGINE_PORT_NAME, "port": spec.serving.port, "targetPort": ENGINE_PORT_NAME, "protocol": "TCP"}
            ],
        },
    }
    gateway_peer = {
        "namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: namespace}},
        "podSelector": {"matchLabels": selector},
    }
    # The primary's namespace denies all ingress but its admitted namespaces': the gateway's pods
    # (and only they) are admitted to the engine port too. Policies are additive.
    engine_ingress = policy(
        "allow-overflow-gateway",
        primary_namespace,
        {
            "podSelector": {"matchLabels": engine_selector},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [gateway_peer], "ports": [{"protocol": "TCP", "port": spec.serving.port}]}],
        },
    )
    admitted = sorted(set(primary.allowed_namespaces) | _ingress_namespaces(primary))
    policies = [
        policy("default-deny", namespace, {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
        policy(
            "allow-dns",
            namespace,
            {
                "podSelector": {},
                "policyTypes": ["Egress"],
                "egress": [
                    {
                        "to": [{"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: "kube-system"}}}],
                        "ports": [{"protocol": "UDP", "port": DNS_PORT}, {"protocol": "TCP", "port": DNS_PORT}],
                    }
                ],
            },
        ),
        policy(
            "allow-engines",
            namespace,
            {
                "podSelector": {"matchLabels": selector},
                "policyTypes": ["Egress"],
                "egress": [
                    {
                        "to": [
                            {
                                "namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: primary_namespace}},
                                "podSelector": {"matchLabels": engine_selector},
                            }
                        ],
                        "ports": [{"protocol": "TCP", "port": spec.serving.port}],
                    }
                ],
            },
        ),
    ]
    cloud_ports = sorted({u.port for u in burst} | set(publisher_ports))
    policies.append(
        policy(
            "allow-burst-endpoints",
            namespace,
            {
                "podSelector": {"matchLabels": selector},
                "policyTypes": ["Egress"],
                "egress": [
                    {
                        "to": [{"ipBlock": {"cidr": cidr}} for cidr in sorted(cloud_cidrs)],
                        "ports": [{"protocol": "TCP", "port": p} for p in cloud_ports],
                    }
                ],
            },
        )
    )
    if admitted:
        policies.append(
            policy(
                "allow-gateway-ingress",
                namespace,
                {
                    "podSelector": {"matchLabels": selector},
                    "policyTypes": ["Ingress"],
                    "ingress": [
                        {
                            "from": [
                                {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: ns}}} for ns in admitted
                            ],
                            "ports": [{"protocol": "TCP", "port": LISTEN_PORT}],
                        }
                    ],
                },
            )
        )
    service_account = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": meta(GATEWAY_NAME),
        # The publisher mounts a projected token with its own audience when it needs one.
        "automountServiceAccountToken": False,
    }
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta(GATEWAY_NAME),
        "data": dict(sorted(files.items())),
    }
    probe = {"httpGet": {"path": GATEWAY_HEALTH_PATH, "port": PORT_NAME, "scheme": "HTTPS"}}
    drain = drain_seconds(spec.models[model_name].context_length)
    envoy: dict[str, Any] = {
        "name": "envoy",
        "image": gw.image,
        "command": ["envoy"],
        "args": [
            # A ConfigMap volume may not share its directory with the secrets' mount points.
            "--config-path",
            f"{CONFIG_DIR}/config/{CONFIG_FILE}",
            # One process per pod; hot restart's shared memory is never used.
            "--disable-hot-restart",
            "--log-level",
            "info",
        ],
        "ports": [{"name": PORT_NAME, "containerPort": LISTEN_PORT, "protocol": "TCP"}],
        "resources": {
            "requests": {"cpu": ENVOY_CPU, "memory": ENVOY_MEMORY},
            "limits": {"cpu": ENVOY_CPU, "memory": ENVOY_MEMORY},
        },
        "securityContext": restricted_container_security_context(),
        # The kubelet's probe reaches the TLS listener (the admin is loopback-only); with scheme
        # HTTPS it skips certificate verification ("Configure Liveness, Readiness and Startup
        # Probes", kubernetes.io). /healthz is answered by Envoy itself, 503 while it drains.
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
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_DIR + "/config", "readOnly": True},
            {"name": "tls", "mountPath": TLS_DIR, "readOnly": True},
            {"name": "cloud-ca", "mountPath": CLOUD_CA_DIR, "readOnly": True},
        ],
    }
    minor = int(primary.cluster.version.split(".")[1])
    if minor >= SLEEP_ACTION_MINOR:
        envoy["lifecycle"] = {"preStop": {"sleep": {"seconds": drain}}}
    containers = [envoy]
    if publisher is not None:
        containers.append(_publisher_container(publisher))
    volumes: list[dict[str, Any]] = [
        {"name": "config", "configMap": {"name": GATEWAY_NAME, "items": [{"key": CONFIG_FILE, "path": CONFIG_FILE}]}},
        {
            "name": "tls",
            "secret": {
                "secretName": gw.tls_secret,
                "defaultMode": 0o440,
                "items": [{"key": "tls.crt", "path": "tls.crt"}, {"key": "tls.key", "path": "tls.key"}],
            },
        },
        {
            "name": "cloud-ca",
            "secret": {
                "secretName": gw.cloud_ca_secret,
                "defaultMode": 0o440,
                "items": [{"key": "ca.crt", "path": "ca.crt"}],
            },
        },
        *[dict(v) for v in publisher_volumes],
    ]
    names = [v["name"] for v in volumes]
    if len(set(names)) != len(names):
        raise ValueError(f"publisher volumes collide with the gateway's: {sorted(names)}")
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(GATEWAY_NAME),
        "spec": {
            "replicas": gw.replicas,
            "selector": {"matchLabels": selector},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                # A changed config changes the template, so the Deployment rolls.
                "metadata": {"labels": {**labels, **selector}, "annotations": {CONFIG_HASH_ANNOTATION: digest}},
                "spec": {
                    "serviceAccountName": GATEWAY_NAME,
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": drain + TERMINATION_MARGIN_SECONDS,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": RUN_AS_UID,
                        "runAsGroup": RUN_AS_UID,
                        "fsGroup": RUN_AS_UID,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "topologySpreadConstraints": [
                        {
                            # The front door survives a node: replicas on distinct nodes when possible.
                            "maxSkew": 1,
                            "topologyKey": "kubernetes.io/hostname",
                            "whenUnsatisfiable": "ScheduleAnyway",
                            "labelSelector": {"matchLabels": selector},
                        }
                    ],
                    **({"hostAliases": [dict(a) for a in host_aliases]} if host_aliases else {}),
                    "containers": containers,
                    "volumes": volumes,
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(GATEWAY_NAME),
        "spec": {
            "type": "ClusterIP",
            "selector": selector,
            "ports": [{"name": PORT_NAME, "port": SERVICE_PORT, "targetPort": PORT_NAME, "protocol": "TCP"}],
        },
    }
    budget = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": meta(GATEWAY_NAME),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": selector},
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }
    bodies = [
        namespace_obj,
        headless,
        engine_ingress,
        *policies,
        service_account,
        config_map,
        deployment,
        service,
        budget,
    ]
    return tuple(Manifest(b) for b in bodies)


def _ingress_namespaces(target: OnPremK8sTarget) -> set[str]:
    """The site's Gateway's (or ingress controller's) namespace: it fronts the stack."""
    out: set[str] = set()
    ingress = target.ingress
    if ingress is not None and ingress.gateway is not None:
        out.add(ingress.gateway.split("/", 1)[0])
    if ingress is not None and ingress.controller_namespace is not None:
        out.add(ingress.controller_namespace)
    return out


def config_digest(files: Mapping[str, str]) -> str:
    """The digest of the gateway's ConfigMap (Envoy's config and the publisher's script): on the
    pod template, so a change to either rolls the pods."""
    return hashlib.sha256(json.dumps(dict(sorted(files.items())), sort_keys=True).encode()).hexdigest()


def plan_gateway(
    spec: DeploymentSpec,
    stack: str,
    burst: Sequence[BurstUpstream],
    cloud_cidrs: Sequence[str],
    local_max_requests: int = DEFAULT_MAX_REQUESTS,
    cluster_domain: str = "cluster.local",
) -> GatewayPlan:
    """The gateway of the spec's overflow: its Envoy config, its publisher (planning.overflow.publisher,
    when the spec names its image) and their Kubernetes objects."""
    from inferstack.planning.overflow.publisher import SCRIPT_KEY, plan_publisher

    overflow = spec.overflow
    if overflow is None:
        raise ValueError("the spec has no overflow section")
    host, port = primary_upstream(spec, stack, cluster_domain)
    engine = catalog.engines()[spec.serving.engine]
    text = envoy_config(
        primary_host=host,
        primary_port=port,
        health_path=engine.health_path,
        burst=burst,
        trigger=overflow.trigger,
        allowed=overflow.classifications,
        stack_classification=spec.metadata.data_classification,
        header=overflow.classification_header,
        overflow_timeout_seconds=overflow.gateway.overflow_timeout_seconds,
        tls_cert_path=f"{TLS_DIR}/tls.crt",
        tls_key_path=f"{TLS_DIR}/tls.key",
        cloud_ca_path=f"{CLOUD_CA_DIR}/ca.crt",
        local_max_requests=local_max_requests,
    )
    publisher = plan_publisher(spec, stack, burst)
    files = {} if publisher is None else {SCRIPT_KEY: publisher.script}
    manifests = gateway_manifests(
        spec,
        stack,
        text,
        cloud_cidrs,
        burst,
        None if publisher is None else publisher.container,
        () if publisher is None else publisher.volumes,
        publisher_files=files,
        host_aliases=() if publisher is None else publisher.host_aliases,
    )
    ordered = sorted(burst, key=lambda u: (u.priority, u.target))
    return GatewayPlan(
        envoy_yaml=text,
        config_sha256=config_digest({**files, CONFIG_FILE: text}),
        manifests=manifests,
        namespace=gateway_namespace(spec, stack),
        publisher_script=None if publisher is None else publisher.script,
        service_account=GATEWAY_NAME,
        burst_clusters=tuple(burst_cluster_name(u) for u in ordered),
    )


__all__ = [
    "BURST_CLUSTER",
    "LOCAL_CLUSTER",
    "OVERFLOW_RUNTIME_KEY",
    "SPILL_CLUSTER",
    "GatewayPlan",
    "envoy_config",
    "gateway_manifests",
    "plan_gateway",
    "primary_upstream",
]
