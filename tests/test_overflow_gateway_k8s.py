"""The overflow gateway's Kubernetes objects: valid for the cluster's version (tests/k8s_schemas.py,
strict), hardened like the engine, rolled by a config change, and fenced by NetworkPolicies."""

from __future__ import annotations

import hashlib
import json

import pytest
import yaml
from overflow_gateway_fixture import BURST, CLOUD_CIDRS, hybrid_spec

from inferstack.planning.onprem.workload import restricted_container_security_context
from inferstack.planning.overflow.gateway import (
    CONFIG_HASH_ANNOTATION,
    GATEWAY_HEALTH_PATH,
    LISTEN_PORT,
    gateway_manifests,
    plan_gateway,
)
from k8s_schemas import validate


def plan(version: str = "1.31", **kw):
    """The fixture's gateway, on a cluster of `version`."""
    spec = hybrid_spec()
    primary = spec.targets["muc"]
    cluster = primary.cluster.model_copy(update={"version": version})
    spec = spec.model_copy(update={"targets": {**spec.targets, "muc": primary.model_copy(update={"cluster": cluster})}})
    return plan_gateway(spec, "hybrid", BURST, CLOUD_CIDRS, **kw)


def objects(version: str = "1.31") -> list[dict]:
    return [dict(m.body) for m in plan(version).manifests]


def one(objs: list[dict], kind: str, name: str | None = None) -> dict:
    found = [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, [o["metadata"]["name"] for o in found]
    return found[0]


@pytest.mark.parametrize("version", ["1.26", "1.31"])
def test_every_object_validates_against_the_cluster_version(version):
    # The validator is strict: a misspelt field of the gateway's Deployment is reported.
    broken = one(objects(version), "Deployment")
    broken["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    assert validate(broken, version) != []
    objs = objects(version)
    assert {o["kind"] for o in objs} == {
        "Namespace",
        "Service",
        "NetworkPolicy",
        "ServiceAccount",
        "ConfigMap",
        "Deployment",
        "PodDisruptionBudget",
    }
    for obj in objs:
        assert validate(obj, version) == [], (obj["kind"], obj["metadata"]["name"])


def test_the_pre_stop_sleep_only_where_the_cluster_has_it():
    envoy_126 = one(objects("1.26"), "Deployment")["spec"]["template"]["spec"]["containers"][0]
    envoy_131 = one(objects("1.31"), "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert "lifecycle" not in envoy_126
    sleep = envoy_131["lifecycle"]["preStop"]["sleep"]["seconds"]
    grace = one(objects("1.31"), "Deployment")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert 0 < sleep < grace


def test_the_config_map_holds_the_config_and_its_digest_rolls_the_pods():
    p = plan()
    objs = [dict(m.body) for m in p.manifests]
    cm = one(objs, "ConfigMap")
    assert cm["data"]["envoy.yaml"] == p.envoy_yaml
    # The publisher's script is in the same ConfigMap, and under the same digest.
    assert cm["data"]["publish.sh"] == p.publisher_script
    template = one(objs, "Deployment")["spec"]["template"]
    files = json.dumps({"envoy.yaml": p.envoy_yaml, "publish.sh": p.publisher_script}, sort_keys=True)
    assert template["metadata"]["annotations"][CONFIG_HASH_ANNOTATION] == hashlib.sha256(files.encode()).hexdigest()
    assert p.config_sha256 == template["metadata"]["annotations"][CONFIG_HASH_ANNOTATION]
    # Another config (a smaller breaker) is another digest: the Deployment rolls.
    other = plan(local_max_requests=64)
    other_template = one([dict(m.body) for m in other.manifests], "Deployment")["spec"]["template"]
    assert (
        other_template["metadata"]["annotations"][CONFIG_HASH_ANNOTATION]
        != template["metadata"]["annotations"][CONFIG_HASH_ANNOTATION]
    )
    assert yaml.safe_load(cm["data"]["envoy.yaml"])["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"


def test_pod_is_hardened_like_the_engine_and_the_publisher_cannot_escape_it():
    pod = one(objects(), "Deployment")["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    envoy, publisher = pod["containers"]
    assert envoy["name"] == "envoy" and publisher["name"] == "publisher"
    for c in (envoy, publisher):
        assert c["securityContext"] == restricted_container_security_context()
    assert publisher["command"] == ["/bin/bash", "/etc/inferstack/publisher/publish.sh"]
    # Envoy's config, its TLS key pair and the cloud CA are read-only mounts.
    assert all(m["readOnly"] for m in envoy["volumeMounts"])
    assert envoy["resources"]["requests"] == envoy["resources"]["limits"]


def test_probes_reach_the_listener_the_admin_never_leaves_loopback():
    envoy = one(objects(), "Deployment")["spec"]["template"]["spec"]["containers"][0]
    for probe in ("readinessProbe", "livenessProbe"):
        assert envoy[probe]["httpGet"] == {"path": GATEWAY_HEALTH_PATH, "port": "https", "scheme": "HTTPS"}
    assert [p["containerPort"] for p in envoy["ports"]] == [LISTEN_PORT]


def test_network_policies_admit_the_site_and_reach_only_engines_dns_and_the_burst_ranges():
    objs = objects()
    ns = one(objs, "Namespace")["metadata"]["name"]
    policies = {
        o["metadata"]["name"]: o for o in objs if o["kind"] == "NetworkPolicy" and o["metadata"]["namespace"] == ns
    }
    assert set(policies) == {
        "default-deny",
        "allow-dns",
        "allow-engines",
        "allow-burst-endpoints",
        "allow-gateway-ingress",
    }
    assert policies["default-deny"]["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    burst = policies["allow-burst-endpoints"]["spec"]["egress"]
    assert burst == [
        {
            "to": [{"ipBlock": {"cidr": c}} for c in sorted(CLOUD_CIDRS)],
            "ports": [{"protocol": "TCP", "port": 443}],
        }
    ]
    ingress = policies["allow-gateway-ingress"]["spec"]["ingress"][0]
    assert {p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for p in ingress["from"]} == {
        "inference-gateway",
        "monitoring",
    }
    assert ingress["ports"] == [{"protocol": "TCP", "port": LISTEN_PORT}]
    # In the primary's namespace: the gateway's pods are admitted to the engine port, nothing else.
    engine_in = one(objs, "NetworkPolicy", "allow-overflow-gateway")
    assert engine_in["metadata"]["namespace"] == "hybrid-muc"
    (rule,) = engine_in["spec"]["ingress"]
    assert rule["from"][0]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": ns}
    assert rule["ports"] == [{"protocol": "TCP", "port": 8000}]


def test_the_primary_is_resolved_pod_by_pod_through_a_headless_service():
    objs = objects()
    headless = one(objs, "Service", "muc-endpoints")
    assert headless["metadata"]["namespace"] == "hybrid-muc"
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is False
    cfg = yaml.safe_load(plan().envoy_yaml)
    local = next(c for c in cfg["static_resources"]["clusters"] if c["name"] == "local")
    address = local["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
    assert address == {"address": "muc-endpoints.hybrid-muc.svc.cluster.local", "port_value": 8000}


def test_replicas_and_budget_keep_the_front_door_open():
    objs = objects()
    assert one(objs, "Deployment")["spec"]["replicas"] == 2
    assert one(objs, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1


@pytest.mark.parametrize(
    ("publisher", "volumes", "message"),
    [
        ({"image": "x"}, (), "name and an image"),
        ({"name": "envoy", "image": "x"}, (), "may not be named"),
        ({"name": "publisher", "image": "x"}, ({"name": "tls", "emptyDir": {}},), "collide"),
    ],
)
def test_a_publisher_that_would_break_the_pod_is_refused(publisher, volumes, message):
    spec = hybrid_spec()
    with pytest.raises(ValueError, match=message):
        gateway_manifests(spec, "hybrid", "x: 1\n", CLOUD_CIDRS, BURST, publisher, volumes)


@pytest.mark.parametrize(("cidrs", "message"), [((), "pass the cloud CIDRs"), (("10.64.0.1/16",), "not a network")])
def test_the_burst_ranges_must_be_given_and_valid(cidrs, message):
    with pytest.raises(ValueError, match=message):
        gateway_manifests(hybrid_spec(), "hybrid", "x: 1\n", cidrs, BURST)
