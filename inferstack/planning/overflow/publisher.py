"""The overflow publisher: the sidecar beside Envoy that fires the trigger and wakes the clouds.

Pure planning. `plan_publisher` decides the publisher's static config from the spec and the burst
upstreams, renders templates/overflow_publisher.sh.j2 (the script, shipped in the gateway's
ConfigMap, so its digest is on the pod template and a change rolls the pod), and builds its
container, volumes and host aliases for gateway_manifests.

Each cycle (every CYCLE_SECONDS), in each gateway pod:

- it reads Envoy's admin on loopback: `/stats?format=json` for cluster.local.upstream_rq_pending_active
  (requests Envoy itself holds for the primary), cluster.<c>.membership_healthy of the local and
  burst clusters, and the cluster.local.upstream_rq_time histogram's p95 over the last stats
  interval (`computed_quantiles[].values[i].interval`, i the index of 95 in `supported_quantiles`);
  `/clusters?format=json` for the primary's engine addresses Envoy resolved (its headless Service);
- *waiting on the primary* is what the spec's trigger means by pending requests: the sum of the
  engines' own waiting-requests gauges (catalog engines.yaml `queue_metric`, read on each engine's
  metrics path, on the serving port the gateway may already reach) plus Envoy's pending requests
  for the primary. An engine without a queue gauge (TensorRT-LLM) leaves Envoy's alone;
- the trigger *holds* when any of its conditions is true (waiting above pending_requests, p95
  above p95_latency_ms, no healthy primary member) for ceil(for_seconds / cycle) cycles in a row,
  and *clears* after as many cycles with none true (the hysteresis: a trigger flapping at its
  threshold never moves the runtime key each cycle);
- `POST /runtime_modify?overflow.active=<share>` while the trigger holds and a burst cluster has a
  healthy member (Envoy never holds a request through a cold start), `=0` otherwise: the share of
  allowed requests sent to the clouds, up SHARE_STEP_PERCENT each cycle a condition still holds and
  down as much when none does (at least one step while firing), 100 at once for an unhealthy
  primary; posted only when the value changes (and once at start: the publisher does not know what
  a previous one set);
- the *wake demand* while the trigger holds is what the primary cannot absorb: waiting minus the
  pending_requests threshold (waiting itself without one), at least 1, divided among the gateway's
  replicas (each pod publishes its share; the engine queues are the same in every pod). It goes to
  one burst target, the first in order of preference that is healthy (it is taking the overflow:
  its autoscaler scales out on it) or that has a wake metric (a cold fleet to wake); every other
  target's metric gets 0. A target with no wake metric (a TPU slice) is never written;
- AWS: `aws cloudwatch put-metric-data` of InferStack/PendingRequests with the group's
  AutoScalingGroupName dimension, only when the demand is above 0 (the wake alarm reads the Sum
  over a minute, FILLed with 0; a zero would only dilute a queue_depth fleet's own average), as the
  Roles Anywhere role (aws_signing_helper as the profile's credential_process, the client
  certificate of the spec);
- GCP: the group's custom metric, as the node agents write it (templates/gcp_startup.sh.j2: metric
  type of the group's signal, labels group and instance, resource `global` with project_id, a
  GAUGE DOUBLE point), every cycle, 0 included (the autoscaler sums the series of a group; a
  series that stops keeps its last value for a while), with the access token traded at Google's
  STS for the pod's projected service-account token (Workload Identity Federation); `instance` is
  the pod's name, and a leaving pod writes 0 first.

Sources: Envoy admin docs (operations/admin: `/stats?format=json&filter=<regex>`, "POST
/runtime_modify?key1=value1 ... Adds or modifies runtime values", the admin layer it needs) and
the admin's JSON renderer (source/server/admin/stats_render.cc: `histograms.supported_quantiles`,
`computed_quantiles[].values[].interval|cumulative`; admin/v3/clusters.proto: cluster_statuses,
host_statuses[].address.socket_address); Envoy "Cluster statistics" (upstream_rq_pending_active,
upstream_rq_active gauges, membership_healthy, upstream_rq_time histogram); Google "Workload
Identity Federation" (STS token exchange: grant_type token-exchange, subject_token_type jwt,
requested_token_type access_token) and Cloud Monitoring v3 projects.timeSeries.create; IAM Roles
Anywhere "Obtaining temporary security credentials" and the helper's source
(aws/rolesanywhere-credential-helper cmd/credentials.go: --certificate, --private-key,
--trust-anchor-arn, --profile-arn, --role-arn, --region "Signing region"); Google STS v1 `token`
(grantType token-exchange, audience the WIF provider's full name, scope required for an external
credential, no Authorization header), sent form-encoded as the google-auth libraries do.

What the publisher cannot do from here, and the stack must: the AWS fleet VPC needs interface
endpoints for `monitoring` (present) and `rolesanywhere` (CreateSession), admitting the site's
ranges on 443, and the site's DNS must forward those regional names to the link's Route 53
Resolver inbound endpoint (README, "How the cloud is woken and used").
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from inferstack import catalog
from inferstack.planning.overflow import (
    GCP_TOKEN_DIR,
    GCP_TOKEN_EXPIRATION_SECONDS,
    GCP_TOKEN_PATH,
    PUBLISHER_CLIENT_TLS_DIR,
    PUBLISHER_IDENTITY_CONFIGMAP,
    PUBLISHER_IDENTITY_DIR,
    PUBLISHER_IDENTITY_FILE,
    BurstUpstream,
    gcp_token_audience,
)
from inferstack.planning.overflow.gateway import (
    ADMIN_PORT,
    GATEWAY_NAME,
    LOCAL_CLUSTER,
    OVERFLOW_RUNTIME_KEY,
    burst_cluster_name,
)
from inferstack.planning.overflow.gcp_link import RESTRICTED_GOOGLE_APIS
from inferstack.render import render
from inferstack.spec.models import DeploymentSpec

TEMPLATE = "overflow_publisher.sh.j2"
SCRIPT_KEY = "publish.sh"  # in the gateway's ConfigMap, beside envoy.yaml
SCRIPT_DIR = "/etc/inferstack/publisher"
WORK_DIR = "/tmp"  # the container's root is read-only: an emptyDir in memory for its config and tokens
CONTAINER_NAME = "publisher"
CYCLE_SECONDS = 10
# The share of allowed requests sent to the burst clusters (the runtime key's percentage) moves by
# this much per cycle: up while the primary is still pressed, down while it is not, never below a
# step while the trigger holds. All at once (100) would send every allowed request to the clouds
# the moment the trigger fires, while the site's replicas, which served nearly all of it, idle; the
# steps settle where the primary's queue sits near the threshold and the clouds take the excess.
# An unhealthy primary sends everything allowed at once.
SHARE_STEP_PERCENT = 10
# Each call is bounded so one cycle stays short: the admin is local, the clouds are over the link.
ADMIN_TIMEOUT_SECONDS = 2
CLOUD_TIMEOUT_SECONDS = 10
CPU = "100m"
MEMORY = "128Mi"
WORK_SIZE = "16Mi"
# Google's APIs the publisher calls, resolved by the pod itself to the restricted VIP (reached over
# the GCP link, which advertises it): sts for the token exchange, iamcredentials when the identity
# impersonates a service account, monitoring for the time series.
GOOGLE_APIS = ("iamcredentials.googleapis.com", "monitoring.googleapis.com", "sts.googleapis.com")
GCP_SCOPE = "https://www.googleapis.com/auth/cloud-platform"


@dataclass(frozen=True)
class PublisherTarget:
    """One burst target as the publisher sees it: its Envoy cluster and the metric it writes."""

    target: str
    cloud: str  # aws | gcp
    cluster: str  # Envoy's cluster.<this>.* stats
    region: str
    wakes: bool  # False: a target with no autoscaler (a TPU slice), never written
    project: str = ""  # GCP
    namespace: str = ""  # AWS
    metric: str = ""
    group: str = ""  # the ASG's name (AWS) or the MIG's (GCP)
    resource: str = ""  # GCP monitored-resource type


@dataclass(frozen=True)
class PublisherConfig:
    """The publisher's static config: the trigger and the burst targets in order of preference."""

    targets: tuple[PublisherTarget, ...]
    pending_requests: int | None
    for_seconds: int
    p95_latency_ms: int | None
    primary_unhealthy: bool
    cycle_seconds: int
    hold_cycles: int  # ceil(for_seconds / cycle_seconds), to fire and to clear
    replicas: int  # the gateway's: each pod publishes its share of the demand
    engine_queue_metric: str | None
    engine_metrics_path: str
    local_cluster: str
    admin_port: int
    runtime_key: str
    share_step: int = SHARE_STEP_PERCENT


@dataclass(frozen=True)
class PublisherPlan:
    config: PublisherConfig
    script: str
    container: Mapping[str, Any]
    volumes: tuple[Mapping[str, Any], ...]
    host_aliases: tuple[Mapping[str, Any], ...]


def publisher_config(spec: DeploymentSpec, burst: Sequence[BurstUpstream]) -> PublisherConfig:
    ov = spec.overflow
    assert ov is not None
    targets = []
    for u in sorted(burst, key=lambda u: (u.priority, u.target)):
        w = u.wake
        targets.append(
            PublisherTarget(
                target=u.target,
                cloud=u.cloud,
                cluster=burst_cluster_name(u),
                region=u.region,
                wakes=w is not None,
                project=(w.project or "") if w else "",
                namespace=w.namespace if w else "",
                metric=w.name if w else "",
                # AWS: AutoScalingGroupName; GCP: the autoscaler's metric.labels.group.
                group=next(iter(w.dimensions.values()), "") if w else "",
                resource=w.resource if w else "",
            )
        )
    engine = catalog.engines()[spec.serving.engine]
    trigger = ov.trigger
    return PublisherConfig(
        targets=tuple(targets),
        pending_requests=trigger.pending_requests,
        for_seconds=trigger.for_seconds,
        p95_latency_ms=trigger.p95_latency_ms,
        primary_unhealthy=trigger.primary_unhealthy,
        cycle_seconds=CYCLE_SECONDS,
        hold_cycles=max(1, math.ceil(trigger.for_seconds / CYCLE_SECONDS)),
        replicas=ov.gateway.replicas,
        engine_queue_metric=engine.queue_metric,
        engine_metrics_path=engine.metrics_path,
        local_cluster=LOCAL_CLUSTER,
        admin_port=ADMIN_PORT,
        runtime_key=OVERFLOW_RUNTIME_KEY,
    )


def render_script(config: PublisherConfig) -> str:
    for t in config.targets:
        if t.wakes and t.cloud == "aws" and set(t.metric + t.namespace + t.group) & set("'\"\\$` \n"):
            raise ValueError(f"burst target {t.target}: metric names must be plain words")  # never reached from a spec
    return render(
        TEMPLATE,
        c=config,
        identity_path=f"{PUBLISHER_IDENTITY_DIR}/{PUBLISHER_IDENTITY_FILE}",
        client_tls_dir=PUBLISHER_CLIENT_TLS_DIR,
        gcp_token_path=GCP_TOKEN_PATH,
        work_dir=WORK_DIR,
        admin_timeout=ADMIN_TIMEOUT_SECONDS,
        cloud_timeout=CLOUD_TIMEOUT_SECONDS,
        gcp_scope=GCP_SCOPE,
        aws_targets=[t for t in config.targets if t.cloud == "aws" and t.wakes],
        gcp_targets=[t for t in config.targets if t.cloud == "gcp" and t.wakes],
    )


def plan_publisher(spec: DeploymentSpec, stack: str, burst: Sequence[BurstUpstream]) -> PublisherPlan | None:
    """The publisher of the spec's gateway; None when the spec names no publisher image (the plan
    then warns that the burst fleets would never wake: spec.checks)."""
    ov = spec.overflow
    assert ov is not None
    gw = ov.gateway
    if gw.publisher_image is None:
        return None
    config = publisher_config(spec, burst)
    script = render_script(config)
    clouds = {t.cloud for t in config.targets if t.wakes}
    mounts: list[dict[str, Any]] = [
        {"name": "publisher-script", "mountPath": SCRIPT_DIR, "readOnly": True},
        {"name": "publisher-identity", "mountPath": PUBLISHER_IDENTITY_DIR, "readOnly": True},
        {"name": "publisher-work", "mountPath": WORK_DIR},
    ]
    volumes: list[dict[str, Any]] = [
        {
            "name": "publisher-script",
            "configMap": {"name": GATEWAY_NAME, "items": [{"key": SCRIPT_KEY, "path": SCRIPT_KEY}]},
        },
        {
            # Written by the stack once the identities exist (after the gateway on a first `up`):
            # optional, so the pod starts without it and the publisher keeps the overflow off.
            "name": "publisher-identity",
            "configMap": {
                "name": PUBLISHER_IDENTITY_CONFIGMAP,
                "optional": True,
                "items": [{"key": PUBLISHER_IDENTITY_FILE, "path": PUBLISHER_IDENTITY_FILE}],
            },
        },
        {"name": "publisher-work", "emptyDir": {"medium": "Memory", "sizeLimit": WORK_SIZE}},
    ]
    host_aliases: list[dict[str, Any]] = []
    if "aws" in clouds:
        mounts.append({"name": "publisher-client-tls", "mountPath": PUBLISHER_CLIENT_TLS_DIR, "readOnly": True})
        volumes.append(
            {
                "name": "publisher-client-tls",
                "secret": {
                    "secretName": gw.client_certificate_secret,
                    "defaultMode": 0o440,
                    "items": [{"key": "tls.crt", "path": "tls.crt"}, {"key": "tls.key", "path": "tls.key"}],
                },
            }
        )
    if "gcp" in clouds:
        mounts.append({"name": "publisher-gcp-token", "mountPath": GCP_TOKEN_DIR, "readOnly": True})
        # A projected token is mounted whatever automountServiceAccountToken says: that field
        # governs only the default API-access token ("Configure Service Accounts for Pods":
        # serviceAccountToken projection). Its audience is the WIF provider's, not the API server's.
        volumes.append(
            {
                "name": "publisher-gcp-token",
                "projected": {
                    "defaultMode": 0o440,
                    "sources": [
                        {
                            "serviceAccountToken": {
                                "audience": gcp_token_audience(stack),
                                "expirationSeconds": GCP_TOKEN_EXPIRATION_SECONDS,
                                "path": GCP_TOKEN_PATH.rsplit("/", 1)[1],
                            }
                        }
                    ],
                },
            }
        )
        # The pod resolves Google's APIs to the restricted VIP itself: the site's DNS need not
        # know Google's private zones, and the policies let it reach only that /30.
        vip = RESTRICTED_GOOGLE_APIS.split("/", 1)[0]
        host_aliases.append({"ip": vip, "hostnames": list(GOOGLE_APIS)})
    container = {
        "name": CONTAINER_NAME,
        "image": gw.publisher_image,
        "command": ["/bin/bash", f"{SCRIPT_DIR}/{SCRIPT_KEY}"],
        "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        "resources": {"requests": {"cpu": CPU, "memory": MEMORY}, "limits": {"cpu": CPU, "memory": MEMORY}},
        "volumeMounts": mounts,
    }
    return PublisherPlan(config, script, container, tuple(volumes), tuple(host_aliases))
