"""The overflow gateway's Envoy config: parsed by Envoy's own API types, walked route by route to
prove where each classification can go, and kept as a golden file.

Validation: the rendered YAML is parsed into envoy.config.bootstrap.v3.Bootstrap by
google.protobuf.json_format.ParseDict with unknown fields rejected (xds-protos, pinned in the dev
dependencies). Every typed_config `Any` must resolve, so the module of each extension the config
names is imported below: an extension type the descriptor pool does not know fails the parse.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from typing import Any

# Extensions the config uses: importing them registers their types for the `Any`s.
import envoy.extensions.clusters.aggregate.v3.cluster_pb2
import envoy.extensions.filters.http.health_check.v3.health_check_pb2
import envoy.extensions.filters.http.router.v3.router_pb2
import envoy.extensions.filters.network.http_connection_manager.v3.http_connection_manager_pb2
import envoy.extensions.retry.host.previous_hosts.v3.previous_hosts_pb2
import envoy.extensions.retry.priority.previous_priorities.v3.previous_priorities_config_pb2
import envoy.extensions.transport_sockets.tls.v3.tls_pb2  # noqa: F401
import pytest
import yaml
from envoy.config.bootstrap.v3.bootstrap_pb2 import Bootstrap
from google.protobuf import json_format
from overflow_gateway_fixture import BURST, CLOUD_CIDRS, hybrid_spec

from conftest import ROOT
from inferstack.planning.overflow.gateway import (
    BURST_CLUSTER,
    LOCAL_CLUSTER,
    OVERFLOW_HEADER,
    OVERFLOW_RUNTIME_KEY,
    SPILL_CLUSTER,
    envoy_config,
    plan_gateway,
)
from inferstack.spec.models import OverflowTrigger

GOLDEN = ROOT / "tests" / "golden" / "overflow"
HEADER = "x-data-classification"
AGGREGATE = "type.googleapis.com/envoy.extensions.clusters.aggregate.v3.ClusterConfig"
CLASSIFICATIONS = ("public", "internal", "confidential", "restricted")
NEVER = {"confidential", "restricted"}

# (what the client sends as the header's values, the classification it counts as). None: absent.
REQUESTS: list[tuple[tuple[str, ...] | None, str | None]] = [
    (None, None),  # the stack's own
    (("public",), "public"),
    (("internal",), "internal"),
    (("confidential",), "confidential"),
    (("restricted",), "restricted"),
    (("Public",), "unknown"),
    (("CONFIDENTIAL",), "unknown"),
    (("secret",), "unknown"),
    (("",), "unknown"),
    (("public", "public"), "unknown"),
    (("public", "confidential"), "unknown"),
    (("confidential", "public"), "unknown"),
    (("public,internal",), "unknown"),
]


def config(classification: str = "confidential") -> dict[str, Any]:
    text = plan_gateway(hybrid_spec(classification), "hybrid", BURST, CLOUD_CIDRS).envoy_yaml
    return yaml.safe_load(text)


def parse(cfg: dict[str, Any]) -> Bootstrap:
    return json_format.ParseDict(cfg, Bootstrap(), ignore_unknown_fields=False)


# -- Envoy's API -----------------------------------------------------------------------------------


@pytest.mark.parametrize("classification", CLASSIFICATIONS)
def test_rendered_config_is_a_valid_envoy_bootstrap(classification):
    boot = parse(config(classification))
    assert boot.admin.address.socket_address.address == "127.0.0.1"
    assert [c.name for c in boot.static_resources.clusters][:1] == [LOCAL_CLUSTER]
    assert [layer.WhichOneof("layer_specifier") for layer in boot.layered_runtime.layers] == [
        "static_layer",
        "admin_layer",
    ]


def test_a_misspelt_field_fails_the_parse():
    cfg = config()
    cfg["static_resources"]["clusters"][0]["conect_timeout"] = cfg["static_resources"]["clusters"][0].pop(
        "connect_timeout"
    )
    with pytest.raises(json_format.ParseError, match="conect_timeout"):
        parse(cfg)


def test_a_misspelt_field_inside_a_typed_config_fails_the_parse():
    cfg = config()
    hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    hcm["stream_idle_timout"] = hcm.pop("stream_idle_timeout")
    with pytest.raises(json_format.ParseError, match="stream_idle_timout"):
        parse(cfg)


def test_an_unknown_extension_type_fails_the_parse():
    cfg = config()
    cluster = next(c for c in cfg["static_resources"]["clusters"] if c["name"] == BURST_CLUSTER)
    cluster["cluster_type"]["typed_config"]["@type"] = AGGREGATE.replace("v3", "v9")
    with pytest.raises(json_format.ParseError):
        parse(cfg)


def test_a_wrong_enum_value_fails_the_parse():
    cfg = config()
    cfg["static_resources"]["clusters"][0]["lb_policy"] = "LEAST_REQUESTS"
    with pytest.raises(json_format.ParseError):
        parse(cfg)


# -- the route walk --------------------------------------------------------------------------------


def header_value(values: tuple[str, ...] | None) -> str | None:
    """What Envoy's header matchers see: the values of a repeated header joined by ','."""
    return None if values is None else ",".join(values)


def header_matches(matcher: dict[str, Any], headers: dict[str, str]) -> bool:
    """One route HeaderMatcher (the forms the walk knows; any other fails the walk)."""
    name = matcher["name"].lower()  # Envoy's header map keys are lower case
    value = headers.get(name)
    known = {"name", "string_match", "present_match", "invert_match"}
    assert set(matcher) <= known, f"the walk does not know {set(matcher) - known}"
    if "present_match" in matcher:
        result = (value is not None) == matcher["present_match"]
    else:
        sm = matcher["string_match"]
        assert set(sm) <= {"exact", "ignore_case"}, f"the walk does not know {sm}"
        if value is None:
            result = False
        elif sm.get("ignore_case"):
            result = value.lower() == sm["exact"].lower()
        else:
            result = value == sm["exact"]
    return result != matcher.get("invert_match", False)


def reachable_routes(routes: Sequence[dict[str, Any]], headers: dict[str, str]) -> list[dict[str, Any]]:
    """Every route a request may take: the first whose match holds, and before it each matching
    route taken only for a runtime fraction of requests (the request may fall past it)."""
    out = []
    for route in routes:
        match = route["match"]
        known = {"prefix", "headers", "runtime_fraction"}
        assert set(match) <= known, f"the walk does not know {set(match) - known}"
        assert match["prefix"] == "/"
        if all(header_matches(m, headers) for m in match.get("headers", [])):
            out.append(route)
            if "runtime_fraction" not in match:
                return out
    return out


def cluster_targets(action: dict[str, Any]) -> set[str]:
    """The clusters a route action names; a cluster chosen from a request header could be any."""
    assert "cluster_header" not in action and "cluster_specifier_plugin" not in action
    if "weighted_clusters" in action:
        return {c["name"] for c in action["weighted_clusters"]["clusters"]}
    return {action["cluster"]}


def expand(name: str, clusters: dict[str, dict[str, Any]]) -> set[str]:
    """A cluster and, for an aggregate, every member reachable through it (a retry to another
    priority stays within the aggregate's linearized members)."""
    cluster = clusters[name]
    kind = cluster.get("cluster_type")
    if kind is None:
        return {name}
    assert kind["typed_config"]["@type"] == AGGREGATE
    out = {name}
    for member in kind["typed_config"]["clusters"]:
        out |= expand(member, clusters)
    return out


def endpoints_of(cluster: dict[str, Any]) -> set[str]:
    return {
        lb["endpoint"]["address"]["socket_address"]["address"]
        for group in cluster["load_assignment"]["endpoints"]
        for lb in group["lb_endpoints"]
    }


def walk(cfg: dict[str, Any], values: tuple[str, ...] | None) -> dict[str, set[str]]:
    """For one request, per virtual host: the leaf clusters (real endpoints) it can reach."""
    clusters = {c["name"]: c for c in cfg["static_resources"]["clusters"]}
    out: dict[str, set[str]] = {}
    headers = {} if values is None else {HEADER: header_value(values)}
    for listener in cfg["static_resources"]["listeners"]:
        for chain in listener["filter_chains"]:
            for f in chain["filters"]:
                hcm = f["typed_config"]
                for vhost in hcm["route_config"]["virtual_hosts"]:
                    leaves: set[str] = set()
                    for route in reachable_routes(vhost["routes"], headers):
                        action = route["route"]
                        for target in cluster_targets(action):
                            for name in expand(target, clusters):
                                if "cluster_type" not in clusters[name]:
                                    leaves.add(name)
                        if LOCAL_CLUSTER not in cluster_targets(action):
                            continue
                        # A local-only route may not move a retry to another priority.
                        assert "retry_priority" not in action.get("retry_policy", {}), route["name"]
                    out[vhost["name"]] = leaves
    return out


def cloud_clusters(cfg: dict[str, Any]) -> set[str]:
    """Every cluster with an endpoint that is not the primary's."""
    clusters = cfg["static_resources"]["clusters"]
    local = endpoints_of(next(c for c in clusters if c["name"] == LOCAL_CLUSTER))
    return {c["name"] for c in clusters if "cluster_type" not in c and endpoints_of(c) - local}


def effective(classification: str | None, stack: str) -> str:
    return stack if classification is None else classification


@pytest.mark.parametrize("stack", CLASSIFICATIONS)
@pytest.mark.parametrize(("values", "counts_as"), REQUESTS)
def test_no_path_to_the_cloud_for_data_that_may_not_leave(stack, values, counts_as):
    cfg = config(stack)
    clouds = cloud_clusters(cfg)
    assert clouds == {"burst-aws-burst", "burst-gcp-burst"}
    cls = effective(counts_as, stack)
    for vhost, leaves in walk(cfg, values).items():
        if cls in {"public", "internal"}:
            # An allowed request reaches each burst target (and the primary).
            assert leaves == {LOCAL_CLUSTER, *clouds}, (vhost, values)
        else:
            assert leaves == {LOCAL_CLUSTER}, (vhost, values, cls)


def verdicts(cfg: dict[str, Any], values: tuple[str, ...] | None) -> list[str]:
    vhost = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]["route_config"][
        "virtual_hosts"
    ][0]
    headers = {} if values is None else {HEADER: header_value(values)}
    out = []
    for route in reachable_routes(vhost["routes"], headers):
        (added,) = [h["header"] for h in route["response_headers_to_add"] if h["header"]["key"] == OVERFLOW_HEADER]
        out.append(added["value"])
    return out


def test_the_reason_header_names_the_classification_that_kept_a_request_home():
    cfg = config("confidential")
    assert verdicts(cfg, None) == ["denied-confidential"]
    assert verdicts(cfg, ("restricted",)) == ["denied-restricted"]
    assert verdicts(cfg, ("Public",)) == ["denied-unknown"]
    assert verdicts(cfg, ("public", "public")) == ["denied-unknown"]
    assert verdicts(cfg, ("public",)) == ["burst", "spill"]
    assert verdicts(config("internal"), None) == ["burst", "spill"]


def test_only_the_runtime_key_sends_allowed_traffic_to_the_burst_cluster():
    cfg = config()
    vhost = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]["route_config"][
        "virtual_hosts"
    ][0]
    for route in vhost["routes"]:
        if route["route"]["cluster"] == BURST_CLUSTER:
            fraction = route["match"]["runtime_fraction"]
            assert fraction == {
                "default_value": {"numerator": 0, "denominator": "HUNDRED"},
                "runtime_key": OVERFLOW_RUNTIME_KEY,
            }
            assert route["route"]["timeout"] == "900s"
        else:
            assert "runtime_fraction" not in route["match"]
            # No route timeout on a path that stays home: a long stream is never cut.
            assert route["route"]["timeout"] == "0s"
    assert cfg["layered_runtime"]["layers"][0]["static_layer"] == {"overflow": {"active": 0}}


def test_the_walk_catches_a_denied_route_that_can_spill():
    """The walk is only worth something if it fails on a leak: point the confidential route at
    `spill` and it must report a cloud cluster."""
    cfg = copy.deepcopy(config())
    vhost = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]["route_config"][
        "virtual_hosts"
    ][0]
    route = next(r for r in vhost["routes"] if r["name"] == "denied-confidential")
    route["route"]["cluster"] = SPILL_CLUSTER
    assert walk(cfg, ("confidential",))["gateway"] >= cloud_clusters(cfg)


def test_spill_fails_over_in_the_order_of_preference_and_burst_skips_the_primary():
    cfg = config()
    clusters = {c["name"]: c for c in cfg["static_resources"]["clusters"]}
    members = {
        name: clusters[name]["cluster_type"]["typed_config"]["clusters"] for name in (SPILL_CLUSTER, BURST_CLUSTER)
    }
    assert members == {
        SPILL_CLUSTER: [LOCAL_CLUSTER, "burst-aws-burst", "burst-gcp-burst"],
        BURST_CLUSTER: ["burst-aws-burst", "burst-gcp-burst"],
    }


def test_without_primary_unhealthy_allowed_traffic_stays_local_until_the_runtime_key_says_otherwise():
    text = envoy_config(
        primary_host="engine.site.svc.cluster.local",
        primary_port=8000,
        health_path="/health",
        burst=BURST,
        trigger=OverflowTrigger(pending_requests=10, primary_unhealthy=False),
        allowed=["public"],
        stack_classification="public",
        header=HEADER,
        overflow_timeout_seconds=600,
        tls_cert_path="/tls/tls.crt",
        tls_key_path="/tls/tls.key",
        cloud_ca_path="/ca/ca.crt",
    )
    cfg = yaml.safe_load(text)
    parse(cfg)
    assert SPILL_CLUSTER not in {c["name"] for c in cfg["static_resources"]["clusters"]}
    assert verdicts(cfg, ("public",)) == ["burst", "local"]
    # internal is not allowed here: it stays home like confidential.
    assert walk(cfg, ("internal",))["gateway"] == {LOCAL_CLUSTER}


def test_burst_upstreams_are_verified_by_name_against_the_cloud_ca():
    cfg = config()
    for cluster in cfg["static_resources"]["clusters"]:
        if not cluster["name"].startswith("burst-"):
            continue
        host = next(iter(endpoints_of(cluster)))
        tls = cluster["transport_socket"]["typed_config"]
        assert tls["sni"] == host
        validation = tls["common_tls_context"]["validation_context"]
        assert validation["trusted_ca"] == {"filename": "/etc/envoy/cloud-ca/ca.crt"}
        assert validation["match_typed_subject_alt_names"] == [{"san_type": "DNS", "matcher": {"exact": host}}]
        assert cluster["health_checks"] and cluster["outlier_detection"] and cluster["circuit_breakers"]
    local = next(c for c in cfg["static_resources"]["clusters"] if c["name"] == LOCAL_CLUSTER)
    assert local["health_checks"][0]["http_health_check"]["path"] == "/health"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"allowed": ["public", "confidential"]}, "never leaves"),
        ({"header": "X-Data-Classification"}, "lower case"),
        ({"burst": ()}, "at least one burst"),
    ],
)
def test_envoy_config_refuses_what_would_leak_or_never_match(change, message):
    args: dict[str, Any] = {
        "primary_host": "engine.site.svc.cluster.local",
        "primary_port": 8000,
        "health_path": "/health",
        "burst": BURST,
        "trigger": OverflowTrigger(),
        "allowed": ["public"],
        "stack_classification": "public",
        "header": HEADER,
        "overflow_timeout_seconds": 600,
        "tls_cert_path": "/tls/tls.crt",
        "tls_key_path": "/tls/tls.key",
        "cloud_ca_path": "/ca/ca.crt",
    }
    with pytest.raises(ValueError, match=message):
        envoy_config(**{**args, **change})


# -- golden ----------------------------------------------------------------------------------------


def test_rendered_config_matches_golden():
    text = plan_gateway(hybrid_spec(), "hybrid", BURST, CLOUD_CIDRS).envoy_yaml
    golden = GOLDEN / "hybrid-gateway.envoy.yaml"
    if os.environ.get("INFERSTACK_UPDATE_GOLDEN"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text)
    assert text == golden.read_text()
