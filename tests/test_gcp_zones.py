"""A regional GPU group spreads only over the zones that offer its machine type (catalog data
from Google's GPU regions and zones page), in a distribution shape that suits GPUs."""

from __future__ import annotations

import re

import pytest

from conftest import STACKS, Resources, plan_of_text
from inferstack import catalog
from inferstack.errors import SpecError
from inferstack.planning import gcp
from inferstack.spec.loader import parse_spec

RESEARCH = (STACKS / "research.yaml").read_text()
MIG = "gcp:compute/regionInstanceGroupManager:RegionInstanceGroupManager"
ON_DEMAND = RESEARCH.replace("    spot: {enabled: true}\n", "", 1)


def _chat(text: str):
    return gcp.plan_gcp_fleet(parse_spec(text, "research.yaml").spec, "research", "chat")


def test_every_gpu_machine_type_and_guest_accelerator_has_zone_data_in_known_regions():
    regions = {r for r, cloud in catalog.known_regions().items() if cloud == "gcp"}
    keys = [
        *((m, None) for m in catalog.gcp_machine_types()),
        *(("n1-standard-8", a) for a in catalog.gcp_guest_accelerators()),
    ]
    for machine, accelerator in keys:
        zones = catalog.gcp_zones(machine, accelerator)
        assert zones, (machine, accelerator)
        for region, names in zones.items():
            assert region in regions, (machine, region)
            assert all(re.fullmatch(rf"{region}-[a-z]", z) for z in names), names


def test_the_group_gets_the_zones_that_have_the_gpu_not_every_zone_of_the_region():
    # a3-highgpu-8g is in europe-west4-b and -c only; an N1 T4 in europe-west1 b, c and d.
    a3 = ON_DEMAND.replace("machine_type: g2-standard-8", "machine_type: a3-highgpu-8g")
    assert _chat(a3).zones == ("europe-west4-b", "europe-west4-c")
    # N1 machine types are everywhere; the guest accelerator decides.
    assert catalog.gcp_zones("n1-standard-8", "nvidia-tesla-t4")["europe-west1"] == (
        "europe-west1-b",
        "europe-west1-c",
        "europe-west1-d",
    )
    assert "europe-west1" not in catalog.gcp_zones("n1-standard-8", "nvidia-tesla-v100")


def test_balanced_for_on_demand_and_for_spot_because_the_group_autoscales():
    # ANY would suit Spot, but an autoscaled regional MIG must be EVEN or BALANCED.
    assert _chat(ON_DEMAND).distribution_shape == "BALANCED"
    assert _chat(RESEARCH).distribution_shape == "BALANCED"


def test_the_mig_spreads_over_those_zones_with_redistribution_off():
    res = Resources(
        plan_of_text(ON_DEMAND.replace("machine_type: g2-standard-8", "machine_type: a3-highgpu-8g"), stack="research")
    )
    mig = res.one(MIG)["inputs"]
    assert mig["distributionPolicyZones"] == ["europe-west4-b", "europe-west4-c"]
    assert mig["distributionPolicyTargetShape"] == "BALANCED"
    # BALANCED needs proactive redistribution off; the surge covers every zone of the group.
    assert mig["updatePolicy"]["instanceRedistributionType"] == "NONE"
    assert mig["updatePolicy"]["maxSurgeFixed"] == 2


def test_a_region_without_the_machine_type_is_a_spec_error_naming_the_field():
    text = RESEARCH.replace(
        "region: europe-west4\n    machine_type: g2-standard-8", "region: europe-west8\n    machine_type: g2-standard-8"
    )
    text = text.replace("europe-west4-docker.pkg.dev", "europe-west8-docker.pkg.dev")
    with pytest.raises(SpecError) as err:
        parse_spec(text, "research.yaml")
    assert re.search(
        r"targets\.chat\.region: g2-standard-8 is not offered in europe-west8 .*regions that have it: "
        r".*europe-west4",
        err.value.render(),
    )


def test_a_zone_without_the_machine_type_is_a_spec_error_naming_the_zone():
    text = ON_DEMAND.replace(
        "machine_type: g2-standard-8", "machine_type: a3-ultragpu-8g\n    zones: [europe-west4-a, europe-west4-b]"
    )
    with pytest.raises(SpecError) as err:
        parse_spec(text, "research.yaml")
    assert (
        "targets.chat.zones[1]: a3-ultragpu-8g is not offered in zone europe-west4-b; europe-west4 has it in europe-west4-a"
        in err.value.render()
    )


def test_a_zone_change_renames_the_group_so_its_replacement_is_create_before_delete(monkeypatch):
    # A change of zones replaces a regional MIG (zones are set only at creation). Delete-before-
    # replace would fail: Compute refuses to delete a group a backend service uses. So the name
    # follows the zones, and the replacement is an ordinary create-before-delete.
    from inferstack.planning.gcp import group_name

    assert group_name("p", ["europe-west4-a", "europe-west4-b"]) == group_name(
        "p", ["europe-west4-b", "europe-west4-a"]
    )
    assert group_name("p", ["europe-west4-a"]) != group_name("p", ["europe-west4-a", "europe-west4-b"])
    import pulumi_gcp

    seen = []
    real = pulumi_gcp.compute.RegionInstanceGroupManager

    def spy(resource_name, *args, opts=None, **kwargs):
        seen.append(opts)
        return real(resource_name, *args, opts=opts, **kwargs)

    monkeypatch.setattr(pulumi_gcp.compute, "RegionInstanceGroupManager", spy)
    Resources(plan_of_text(ON_DEMAND, stack="research"))
    assert seen and not any(o.delete_before_replace for o in seen)
    assert all("targetSize" in o.ignore_changes for o in seen)
