"""What the GCP lookups find decides what the program may create: a weights bucket without
uniform bucket-level access, and a VPC's one active proxy-only subnet per region."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import EXAMPLE_STACKS, STACKS, Resources, plan_of_file, plan_of_text
from inferstack.cli import main
from inferstack.errors import CloudCheckError
from inferstack.offline import mocks

VALID = Path(__file__).parent / "spec_corpus" / "valid"
EXISTING = (VALID / "endpoint-gcp-existing-network.yaml").read_text()
SUBNET = "gcp:compute/subnetwork:Subnetwork"
FIREWALL = "gcp:compute/firewall:Firewall"
THEIRS = {
    "name": "shared-vpc-proxy",
    "network": "shared-vpc",
    "ipCidrRange": "10.95.0.0/23",
    "purpose": "REGIONAL_MANAGED_PROXY",
    "role": "ACTIVE",
}


@pytest.fixture
def world(monkeypatch):
    """A fresh offline GCP world for one test."""
    fresh = mocks.GcpWorld()
    monkeypatch.setattr(mocks, "GCP_WORLD", fresh)
    return fresh


def _proxy_subnets(res: Resources) -> list[dict]:
    return [r for r in res.of_type(SUBNET) if r["inputs"].get("purpose") == "REGIONAL_MANAGED_PROXY"]


# -- uniform bucket-level access ------------------------------------------------------------------


def test_a_weights_bucket_without_uniform_access_stops_the_plan_with_the_fix(world):
    world.buckets_without_uniform_access.add("acme-models-europe-west4")
    with pytest.raises(
        CloudCheckError,
        match=r"gs://acme-models-europe-west4 .*uniform bucket-level access off"
        r".*--uniform-bucket-level-access",
    ):
        plan_of_text(EXISTING)


def test_the_cli_says_so_and_exits_2(world, tmp_path):
    world.buckets_without_uniform_access.add("acme-models-europe-west4")
    spec = tmp_path / "test.yaml"
    spec.write_text(EXISTING)
    result = CliRunner().invoke(main, ["plan", str(spec), "--skip-policy"])
    assert result.exit_code == 2, result.output
    assert "acme-models-europe-west4" in result.output and "Traceback" not in result.output


def test_the_grant_waits_for_the_bucket_lookup(world):
    res = Resources(plan_of_text(EXISTING))
    (grant,) = res.of_type("gcp:storage/bucketIAMMember:BucketIAMMember")
    assert grant["inputs"]["condition"]["expression"].startswith('resource.name.startsWith("projects/_/buckets/')
    assert ("gcp:storage/getBucket:getBucket", {"name": "acme-models-europe-west4"}) in [
        (t, {k: v for k, v in a.items() if k == "name"}) for t, a in _calls()
    ]


def _calls():
    # The engine keeps the mocks it used on the monitor; plan_of_text does not return it, so
    # re-run the program through `record` to read the data sources it asked.
    from inferstack.offline.engine import record
    from inferstack.program import build
    from inferstack.spec.loader import parse_spec

    loaded = parse_spec(EXISTING, "test.yaml")
    monitor = record(lambda: build(loaded.spec, "test"), "test")
    return monitor.mocks.calls


# -- one active proxy-only subnet per network and region -------------------------------------------


def test_an_existing_network_without_proxy_cidr_reuses_its_own_proxy_only_subnet(world):
    world.subnetworks[("acme-ml-test", "europe-west4")] = [THEIRS]
    res = Resources(plan_of_text(EXISTING.replace("      proxy_cidr: 10.90.0.0/23\n", "")))
    assert _proxy_subnets(res) == []
    proxies = [r for r in res.of_type(FIREWALL) if r["name"].endswith("-allow-proxies")]
    assert [f["inputs"]["sourceRanges"] for f in proxies] == [["10.95.0.0/23"]]


def test_an_existing_network_that_has_one_refuses_a_second(world):
    world.subnetworks[("acme-ml-test", "europe-west4")] = [THEIRS]
    with pytest.raises(
        CloudCheckError,
        match=r"already has the active proxy-only subnet 'shared-vpc-proxy' "
        r"\(10.95.0.0/23\) in europe-west4.*remove proxy_cidr",
    ):
        plan_of_text(EXISTING)


def test_an_existing_network_without_one_needs_proxy_cidr(world):
    with pytest.raises(
        CloudCheckError, match=r"'shared-vpc' has no active proxy-only subnet in europe-west4.*set proxy_cidr"
    ):
        plan_of_text(EXISTING.replace("      proxy_cidr: 10.90.0.0/23\n", ""))


def test_the_stacks_own_proxy_only_subnet_found_on_the_next_run_is_not_a_second(world):
    first = Resources(plan_of_text(EXISTING))
    (ours,) = _proxy_subnets(first)
    world.subnetworks[("acme-ml-test", "europe-west4")] = [
        {**THEIRS, "name": ours["inputs"]["name"], "ipCidrRange": "10.90.0.0/23"},
        {**THEIRS, "name": "other-network-proxy", "network": "other-vpc"},  # another network: no matter
        {**THEIRS, "name": "draining", "role": "BACKUP"},  # not active: no matter
    ]
    again = Resources(plan_of_text(EXISTING))
    assert [s["inputs"]["name"] for s in _proxy_subnets(again)] == [ours["inputs"]["name"]]


@pytest.mark.parametrize("path", sorted([*EXAMPLE_STACKS, *VALID.glob("*.yaml")], key=str), ids=lambda p: p.stem)
def test_no_plan_creates_two_active_proxy_only_subnets_in_one_network_and_region(path, world):
    res = Resources(plan_of_file(str(path)))
    keys = Counter(
        (json.dumps(s["propertyDependencies"].get("network") or s["inputs"].get("network")), s["inputs"]["region"])
        for s in _proxy_subnets(res)
        if s["inputs"].get("role") == "ACTIVE"
    )
    assert all(n == 1 for n in keys.values()), keys


@pytest.mark.parametrize("stack", ["research", "batch"])
def test_every_subnet_logs_its_flows_except_proxy_only_ones_which_cannot(stack):
    res = Resources(plan_of_file(str(STACKS / f"{stack}.yaml")))
    for subnet in res.of_type(SUBNET):
        purpose = subnet["inputs"].get("purpose", "PRIVATE")
        if purpose in ("REGIONAL_MANAGED_PROXY", "GLOBAL_MANAGED_PROXY"):
            assert "logConfig" not in subnet["inputs"], subnet["name"]  # the API refuses it there
        else:
            assert subnet["inputs"]["logConfig"]["metadata"] == "INCLUDE_ALL_METADATA", subnet["name"]
    assert stack != "research" or any(
        s["inputs"].get("purpose") == "PRIVATE_SERVICE_CONNECT" for s in res.of_type(SUBNET)
    )


# -- weights access: what the condition grants, and its documented limit -------------------------


def _allows(expression: str, name: str, type_: str) -> bool:
    """The condition's two clauses, evaluated as IAM would for one request's resource."""
    import re

    (prefix,) = re.findall(r'resource\.name\.startsWith\("([^"]+)"\)', expression)
    (bucket_type,) = re.findall(r'resource\.type == "([^"]+)"', expression)
    return name.startswith(prefix) or type_ == bucket_type


def test_nodes_read_only_their_models_objects_and_may_list_the_bucket():
    from inferstack.components.gcp_identity import weights_condition
    from inferstack.planning.gcp import Weights

    expression = weights_condition(Weights("acme-models", "llama-3-8b"))
    obj, bucket = "storage.googleapis.com/Object", "storage.googleapis.com/Bucket"
    assert _allows(expression, "projects/_/buckets/acme-models/objects/llama-3-8b/model.safetensors", obj)
    # A sibling prefix is another model: the trailing slash keeps it out.
    assert not _allows(expression, "projects/_/buckets/acme-models/objects/llama-3-8b-private/x", obj)
    assert not _allows(expression, "projects/_/buckets/acme-models/objects/mistral/x", obj)
    # objects.list is checked on the bucket, so listing is bucket-wide (names, never contents):
    # the limit the README states, with managed folders or a bucket per model as the way out.
    assert _allows(expression, "projects/_/buckets/acme-models", bucket)
