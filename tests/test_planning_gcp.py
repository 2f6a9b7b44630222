"""Pure GCP planning, no Pulumi: labels, names, signals, fleet and TPU plans, catalog facts, cost."""

from __future__ import annotations

import hashlib
import re
from functools import cache
from pathlib import Path

import pytest

from inferstack import catalog
from inferstack.catalog import GIB, MIB
from inferstack.errors import SpecError
from inferstack.planning import gcp, sizing
from inferstack.planning.cost import estimate
from inferstack.planning.naming import standard_tags
from inferstack.spec.loader import load_spec, parse_spec
from inferstack.spec.models import DEFAULT_GCP_SUBNET_CIDR, DeploymentSpec

ROOT = Path(__file__).resolve().parent.parent
RESEARCH = ROOT / "stacks" / "research.yaml"
VALID = Path(__file__).resolve().parent / "spec_corpus" / "valid"
STACKS = ROOT / "stacks"
AR_IMAGE = (
    "europe-west4-docker.pkg.dev/acme-ml-staging/serving/vllm-openai@"
    "sha256:0d4c8d8bd1b4dbbd4ec0a02c4ec7c2fa4f2e3db0e8ee7c1d9b3a1f0e5d6c7b8a"
)
GCP_RESOURCE_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")  # RFC 1035, as Compute Engine wants


@cache
def spec_of(path: Path) -> DeploymentSpec:
    return load_spec(path).spec


def research() -> DeploymentSpec:
    return spec_of(RESEARCH)


# -- labels ------------------------------------------------------------------------------------


def test_gcp_labels_lower_case_keys_and_values():
    assert gcp.gcp_labels({"Team": "Research", "Environment": "STAGING"}) == {
        "team": "research",
        "environment": "staging",
    }


def test_gcp_labels_replace_characters_labels_cannot_hold():
    labels = gcp.gcp_labels({"cost.center": "R&D / Berlin", "owner": "ana@acme.com", "ok_key": "a_b-1"})
    assert labels == {"cost-center": "r-d---berlin", "owner": "ana-acme-com", "ok_key": "a_b-1"}
    for key, value in labels.items():
        assert re.fullmatch(r"[a-z0-9_-]*", key) and re.fullmatch(r"[a-z0-9_-]*", value)


def test_gcp_labels_cut_keys_and_values_at_63_characters():
    labels = gcp.gcp_labels({"k" * 70: "V" * 100, "short": "x" * 63})
    assert labels == {"k" * 63: "v" * 63, "short": "x" * 63}


def test_standard_tags_are_already_valid_labels():
    tags = standard_tags(research(), "research", "llama-3-8b")
    assert gcp.gcp_labels(tags) == tags


# -- names -------------------------------------------------------------------------------------


def test_gcp_name_joins_and_lower_cases_short_names_unchanged():
    assert gcp.gcp_name("assistant-research-chat") == "assistant-research-chat"
    assert gcp.gcp_name("Assistant", "Research_Chat", "0") == "assistant-research-chat-0"


def test_gcp_name_strips_a_trailing_dash():
    assert gcp.gcp_name("assistant-research-") == "assistant-research"
    assert gcp.gcp_name("chat", "") == "chat"


def test_gcp_name_cuts_to_the_limit_with_a_hash_of_the_whole_name():
    long = "a" * 80
    name = gcp.gcp_name(long)
    assert len(name) == 63
    assert name == "a" * 57 + "-" + hashlib.sha256(long.encode()).hexdigest()[:5]
    assert gcp.gcp_name(long) == name  # deterministic: reruns rename nothing


def test_gcp_name_keeps_distinct_long_names_distinct():
    stem = "inference-" * 6  # 60 characters in common, more than the 57 kept
    first, second = gcp.gcp_name(stem + "alpha"), gcp.gcp_name(stem + "beta")
    assert first != second
    assert first[:57] == second[:57]
    assert len(first) == len(second) == 63


def test_gcp_name_never_ends_or_doubles_a_dash_where_it_cuts():
    # character 57 of the joined name is a dash: the cut strips it before adding the hash
    name = gcp.gcp_name("a" * 56, "b" * 20)
    assert name.startswith("a" * 56 + "-")
    assert "--" not in name
    assert len(name) == 62
    assert GCP_RESOURCE_NAME.match(name)


def test_gcp_name_honours_a_smaller_limit():
    # service account ids: 6-30 characters
    name = gcp.gcp_name("is", "assistant-research-reasoning", limit=30)
    assert len(name) == 30
    assert name.startswith("is-assistant-research-r")
    assert GCP_RESOURCE_NAME.match(name)
    assert gcp.gcp_name("is", "short", limit=30) == "is-short"


# -- Artifact Registry ---------------------------------------------------------------------------


def test_parse_artifact_registry_regional_repository():
    repo = gcp.parse_artifact_registry(AR_IMAGE)
    assert repo == gcp.ArtifactRepository(location="europe-west4", project="acme-ml-staging", repository="serving")


def test_parse_artifact_registry_multi_region_and_nested_image():
    repo = gcp.parse_artifact_registry("europe-docker.pkg.dev/acme-ml/mirror/vllm/vllm-tpu:v0.9")
    assert repo == gcp.ArtifactRepository("europe", "acme-ml", "mirror")


@pytest.mark.parametrize(
    "image",
    [
        "vllm/vllm-openai@sha256:0d4c8d8bd1b4dbbd4ec0a02c4ec7c2fa4f2e3db0e8ee7c1d9b3a1f0e5d6c7b8a",
        "gcr.io/acme-ml/vllm:v1",
        "123456789012.dkr.ecr.eu-central-1.amazonaws.com/vllm:v1",
        "europe-west4-docker.pkg.dev/acme-ml/serving",  # no image below the repository
    ],
)
def test_parse_artifact_registry_rejects_other_registries(image):
    assert gcp.parse_artifact_registry(image) is None


# -- autoscaling signal ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("signal", "metric", "per_group"),
    [
        ("in_flight", "custom.googleapis.com/inferstack/in_flight_requests", True),
        ("queue_depth", "custom.googleapis.com/inferstack/pending_requests", True),
        ("requests_per_target", "custom.googleapis.com/inferstack/running_requests", True),
        ("gpu_utilization", "custom.googleapis.com/inferstack/gpu_utilization", False),
    ],
)
def test_plan_signal(signal, metric, per_group):
    planned = gcp.plan_signal(signal, 7.5)
    assert planned == gcp.GcpSignal(signal=signal, metric=metric, per_group=per_group, target=7.5)


def test_plan_signal_knows_only_the_spec_signals():
    with pytest.raises(KeyError):
        gcp.plan_signal("cpu_utilization", 60)


# -- GPU fleet plans -----------------------------------------------------------------------------


def test_plan_gcp_fleet_research_chat():
    spec = research()
    plan = gcp.plan_gcp_fleet(spec, "research", "chat")
    assert plan.target == "chat"
    assert plan.project == "acme-ml-staging"
    assert plan.region == "europe-west4"
    assert plan.zones == ("europe-west4-a", "europe-west4-b", "europe-west4-c")  # the catalog's L4 zones
    assert plan.distribution_shape == "BALANCED"  # Spot too: an autoscaled group cannot be ANY
    assert plan.prefix == "assistant-research-chat"
    assert plan.group_name == "assistant-research-chat-zcb22"  # the zones hash: planning.gcp.group_name
    assert plan.machine_type == "g2-standard-8"
    assert plan.guest_accelerator is None
    assert plan.gpu_count == 1
    assert plan.boot_disk_type == "pd-balanced"
    assert plan.boot_disk_gib == 200
    assert plan.boot_image == "projects/cos-cloud/global/images/family/cos-stable"
    assert plan.spot is True
    assert plan.termination_action == "DELETE"
    assert (plan.min_size, plan.max_size, plan.initial_size) == (2, 6, 2)
    assert plan.scale_in_cooldown == 600
    assert plan.port == 8000
    assert plan.health_path == "/health"
    assert plan.public_ip is False


def test_plan_gcp_fleet_research_chat_labels_are_the_standard_tags_and_the_target():
    spec = research()
    plan = gcp.plan_gcp_fleet(spec, "research", "chat")
    # The standard tags, and the target's label the policy pack joins its alert policies on.
    assert plan.labels == {
        **gcp.gcp_labels(standard_tags(spec, "research", "llama-3-8b")),
        "inferstack-target": "assistant-research-chat",
    }
    assert plan.labels == {
        "inferstack-target": "assistant-research-chat",
        "stack": "research",
        "environment": "staging",
        "team": "research",
        "model": "llama-3-8b",
        "workload": "serving",
        "data-classification": "confidential",
        "managed-by": "inferstack",
    }


def test_plan_gcp_fleet_research_chat_weights_image_signal_and_grace():
    spec = research()
    plan = gcp.plan_gcp_fleet(spec, "research", "chat")
    assert plan.weights == gcp.Weights("acme-models-europe-west4", "meta-llama/Llama-3.1-8B-Instruct")
    assert plan.weights.uri == "gs://acme-models-europe-west4/meta-llama/Llama-3.1-8B-Instruct/"
    assert plan.image == AR_IMAGE
    assert plan.artifact_repository == gcp.ArtifactRepository("europe-west4", "acme-ml-staging", "serving")
    assert plan.signal == gcp.GcpSignal(
        "queue_depth",
        "custom.googleapis.com/inferstack/pending_requests",
        True,
        4.0,
        "custom.googleapis.com/inferstack/busy_instances",
    )
    _, model = spec.model_of("chat")
    # G2 figures (catalog data/gcp_node.yaml): boot 60 + driver 240 + both pulls 240 + warm-up 150
    # + ~15 GiB at 150 MiB/s from GCS + at 800 MiB/s into the GPU = ~811 s, whole minutes: 840.
    # The old estimate (420) left out the driver install and the second pull.
    timings = catalog.gcp_node_timings_of("g2-standard-8")
    weights = sizing.footprint("llama-3-8b", model).weights_bytes
    assert plan.initial_delay_seconds == gcp.initial_delay(timings, weights, None) == 840
    assert plan.weights.uri in plan.startup_script
    assert AR_IMAGE in plan.startup_script


def test_plan_gcp_fleet_research_chat_network():
    plan = gcp.plan_gcp_fleet(research(), "research", "chat")
    assert plan.network == gcp.GcpNetworkPlan(
        project="acme-ml-staging",
        region="europe-west4",
        name="assistant-research-chat",
        subnet_cidr="10.80.0.0/20",
        network=None,
        subnetwork=None,
        cloud_nat=False,
        serving_port=8000,
    )
    assert plan.network.creates_network


def test_plan_gcp_fleet_n1_with_a_guest_accelerator_in_an_existing_network():
    spec = spec_of(VALID / "gcp-n1-t4-existing-network.yaml")
    plan = gcp.plan_gcp_fleet(spec, "dev", "small")
    assert plan.machine_type == "n1-standard-8"
    assert plan.guest_accelerator == ("nvidia-tesla-t4", 1)
    assert plan.gpu_count == 1
    assert plan.boot_disk_type == "pd-balanced"
    assert plan.zones == ("europe-west1-b", "europe-west1-c")
    assert plan.spot is False
    assert plan.signal.per_group is False
    assert plan.signal.metric == "custom.googleapis.com/inferstack/gpu_utilization"
    assert plan.network.subnet_cidr is None
    assert (plan.network.network, plan.network.subnetwork) == ("shared-vpc", "inference-europe-west1")
    assert not plan.network.creates_network
    assert plan.artifact_repository == gcp.ArtifactRepository("europe-west1", "acme-ml-dev", "serving")


def test_plan_gcp_fleet_two_v100_on_spot_with_a_whole_bucket_of_weights():
    plan = gcp.plan_gcp_fleet(spec_of(VALID / "gcp-n1-v100-fp8.yaml"), "lab", "lab")
    assert plan.guest_accelerator == ("nvidia-tesla-v100", 2)
    assert plan.gpu_count == 2
    assert plan.spot is True
    assert plan.termination_action == "STOP"
    assert plan.weights.uri == "gs://acme-models-us-central1/"
    assert plan.signal.per_group is True
    assert plan.network.subnet_cidr == DEFAULT_GCP_SUBNET_CIDR == "10.80.0.0/20"


def test_plan_gcp_fleet_a3_ultra_boots_from_hyperdisk_and_pulls_over_cloud_nat():
    plan = gcp.plan_gcp_fleet(spec_of(VALID / "gcp-cloud-nat-public-image.yaml"), "prod", "big")
    assert plan.machine_type == "a3-ultragpu-8g"
    assert plan.gpu_count == 8
    assert plan.boot_disk_type == "hyperdisk-balanced"
    assert plan.boot_disk_gib == 1000
    assert plan.artifact_repository is None
    assert plan.network.cloud_nat is True


# -- TPU plans -----------------------------------------------------------------------------------


def test_plan_tpu_research_reasoning_single_host_v6e():
    spec = research()
    plan = gcp.plan_tpu(spec, "research", "reasoning")
    assert plan.zone == "europe-west4-a"
    assert plan.region == "europe-west4"
    assert plan.generation == "v6e"
    assert plan.topology == "2x4"
    assert plan.accelerator_type == "v6e-8"
    assert plan.runtime_version == "v2-alpha-tpuv6e"
    assert plan.hosts == 1
    assert plan.slices == ("assistant-research-reasoning-0",)
    assert plan.provisioning == "on-demand"
    assert plan.labels == {
        **gcp.gcp_labels(standard_tags(spec, "research", "llama-3-70b")),
        "inferstack-target": "assistant-research-reasoning",
    }
    assert plan.weights.uri == "gs://acme-models-europe-west4/meta-llama/Llama-3.3-70B-Instruct/"
    assert plan.network.subnet_cidr == "10.81.0.0/20"
    assert plan.network.name == "assistant-research-reasoning"


def test_plan_tpu_research_batch_two_multi_host_v5e_slices():
    plan = gcp.plan_tpu(load_spec(STACKS / "batch.yaml").spec, "batch", "batch")
    assert plan.zone == "europe-west4-b"
    assert plan.accelerator_type == "v5litepod-16"
    assert plan.runtime_version == "v2-alpha-tpuv5-lite"
    assert plan.hosts == 4  # 16 chips on 4-chip hosts
    assert plan.slices == ("assistant-batch-batch-0", "assistant-batch-batch-1")
    assert len(set(plan.slices)) == 2
    assert all(GCP_RESOURCE_NAME.match(s) for s in plan.slices)
    assert plan.provisioning == "spot"
    assert plan.labels["model"] == "llama-3-8b"
    assert plan.network.subnet_cidr == "10.82.0.0/20"


def test_plan_tpu_research_targets_get_distinct_names():
    spec = research()
    names = [
        *gcp.plan_tpu(spec, "research", "reasoning").slices,
        gcp.plan_gcp_fleet(spec, "research", "chat").group_name,
    ]
    assert len(names) == len(set(names)) == 2


def test_plan_tpu_v5p_reserved_counts_tensor_cores():
    plan = gcp.plan_tpu(spec_of(VALID / "tpu-v5p-reserved.yaml"), "prod", "reasoning")
    assert plan.accelerator_type == "v5p-8"
    assert plan.hosts == 1
    assert plan.runtime_version == "v2-alpha-tpuv5"
    assert plan.provisioning == "reserved"
    assert plan.port == 8080
    assert plan.region == "us-east5"
    assert plan.network.subnet_cidr == "10.90.0.0/24"
    assert "--max-num-seqs" in plan.startup_script


def test_plan_tpu_keeps_an_explicit_runtime_version():
    plan = gcp.plan_tpu(spec_of(VALID / "tpu-v5e-runtime-version.yaml"), "staging", "eval")
    assert plan.runtime_version == "v2-alpha-tpuv5-lite"
    assert plan.accelerator_type == "v5litepod-8"
    assert plan.hosts == 1
    assert plan.slices == ("batch-staging-eval-0", "batch-staging-eval-1")


# -- catalog facts -------------------------------------------------------------------------------


def tpu(generation: str) -> catalog.TpuGeneration:
    return catalog.tpu_generations()[generation]


@pytest.mark.parametrize(
    ("topology", "accelerator_type", "hosts"),
    [("2x2x1", "v5p-8", 1), ("2x2x2", "v5p-16", 2), ("2x4x4", "v5p-64", 8), ("4x4x4", "v5p-128", 16)],
)
def test_v5p_accelerator_types_count_tensor_cores(topology, accelerator_type, hosts):
    assert tpu("v5p").accelerator_type(topology) == accelerator_type
    assert tpu("v5p").hosts(topology) == hosts


@pytest.mark.parametrize(
    ("generation", "topology", "accelerator_type", "hosts"),
    [
        ("v5e", "1x1", "v5litepod-1", 1),
        ("v5e", "2x4", "v5litepod-8", 1),
        ("v5e", "4x4", "v5litepod-16", 4),
        ("v5e", "8x16", "v5litepod-128", 32),
        ("v6e", "2x4", "v6e-8", 1),
        ("v6e", "4x8", "v6e-32", 8),
        ("v6e", "16x16", "v6e-256", 64),
    ],
)
def test_v5e_and_v6e_accelerator_types_count_chips_and_multi_host_uses_4_chip_hosts(
    generation, topology, accelerator_type, hosts
):
    assert tpu(generation).accelerator_type(topology) == accelerator_type
    assert tpu(generation).hosts(topology) == hosts


def test_tpu_hbm_bytes():
    assert tpu("v5e").hbm_bytes("2x4") == 8 * 16 * GIB
    assert tpu("v5p").hbm_bytes("2x2x1") == 4 * 95 * GIB
    assert tpu("v6e").hbm_bytes("2x4") == 8 * 32 * GIB
    assert catalog.TpuGeneration.chips_of("8x8x12") == 768


def test_tpu_default_runtime_versions():
    assert {name: g.runtime_versions[0] for name, g in catalog.tpu_generations().items()} == {
        "v5e": "v2-alpha-tpuv5-lite",
        "v5p": "v2-alpha-tpuv5",
        "v6e": "v2-alpha-tpuv6e",
    }


@pytest.mark.parametrize(
    ("machine_type", "disk"),
    [
        ("a3-ultragpu-8g", "hyperdisk-balanced"),
        ("a3-megagpu-8g", "hyperdisk-balanced"),
        ("a4-highgpu-8g", "hyperdisk-balanced"),
        ("a3-highgpu-8g", "pd-balanced"),
        ("a2-ultragpu-1g", "pd-balanced"),
        ("g2-standard-8", "pd-balanced"),
    ],
)
def test_gcp_machine_type_boot_disk_type(machine_type, disk):
    assert catalog.gcp_machine_types()[machine_type].boot_disk_type == disk


def test_gcp_machine_type_facts():
    types = catalog.gcp_machine_types()
    a3u = types["a3-ultragpu-8g"]
    assert (a3u.accelerator, a3u.gpu_count) == ("H200", 8)
    assert a3u.total_accelerator_memory_bytes == 8 * 144384 * MIB
    assert types["g2-standard-8"].total_accelerator_memory_bytes == 24 * GIB
    assert types["g2-standard-24"].gpu_count == 2
    assert types["g2-standard-8"].describe() == "g2-standard-8 (1x L4, 24.0 GiB each)"


def test_gcp_guest_accelerators():
    t4 = catalog.gcp_guest_accelerators()["nvidia-tesla-t4"]
    assert (t4.gpu, t4.counts, t4.memory_mib) == ("T4", (1, 2, 4), 15360)
    assert catalog.gcp_guest_accelerators()["nvidia-tesla-v100"].counts == (1, 2, 4, 8)
    # 15 GiB x 0.9 usable: the N1 corpus spec's Llama-3-8B in int4 fits, in bf16 it does not
    usable = 15360 * MIB * sizing.USABLE_FRACTION
    model = spec_of(VALID / "gcp-n1-t4-existing-network.yaml").models["llama-3-8b"]
    assert sizing.footprint("llama-3-8b", model).total_bytes < usable
    assert sizing.footprint("llama-3-8b", model.model_copy(update={"precision": "bf16"})).total_bytes > usable


# -- cost ----------------------------------------------------------------------------------------


def test_cost_of_research():
    costs = {c.target: c for c in [*estimate(research()), *estimate(load_spec(STACKS / "batch.yaml").spec)]}
    assert list(costs) == ["chat", "reasoning", "batch"]

    reasoning = costs["reasoning"]
    assert (reasoning.instance_type, reasoning.region) == ("v6e-8", "europe-west4")
    assert reasoning.hourly_min == reasoning.hourly_max == 23.76  # the v6e-8 europe-west4 row, on demand
    assert reasoning.note == ""

    batch = costs["batch"]
    assert batch.instance_type == "v5litepod-16"
    assert "prorated" in batch.note and "v5litepod-128" in batch.note
    # the v5litepod-128 spot row, per chip, for 16 chips, for two slices
    assert batch.hourly_min == batch.hourly_max == round(56.95782 / 128 * 16 * 2, 2) == 14.24

    chat = costs["chat"]
    assert chat.instance_type == "g2-standard-8"
    assert chat.hourly_min is None and chat.hourly_max is None
    assert "host row of g2-standard-8 in europe-west4" in chat.note


def test_cost_of_a_tpu_region_without_prices_is_unknown():
    (cost,) = estimate(spec_of(VALID / "tpu-v5p-reserved.yaml"))
    assert (cost.instance_type, cost.region) == ("v5p-8", "us-east5")
    assert cost.hourly_min is None and cost.hourly_max is None
    assert cost.note == "no catalog price for v5p in us-east5"


def test_cost_of_two_v5e_spot_slices_prorated():
    (cost,) = estimate(spec_of(VALID / "tpu-v5e-runtime-version.yaml"))
    assert cost.instance_type == "v5litepod-8"
    assert cost.hourly_min == cost.hourly_max == round(56.95782 / 128 * 8 * 2, 2) == 7.12
    assert cost.note == "prorated per chip from v5litepod-128"


def test_the_cloud_cli_image_is_a_pinned_version_from_the_catalog_and_a_target_may_override_it():
    pinned = catalog.gcp_cloud_cli_image()
    assert re.fullmatch(r"gcr\.io/google\.com/cloudsdktool/google-cloud-cli:\d+\.\d+\.\d+-stable", pinned)
    plan = gcp.plan_gcp_fleet(research(), "research", "chat")
    assert f'--volume "$MODEL_DIR":/models {pinned} ' in plan.startup_script and ":stable " not in plan.startup_script
    text = (
        (STACKS / "research.yaml")
        .read_text()
        .replace(
            "    machine_type: g2-standard-8\n",
            "    machine_type: g2-standard-8\n"
            "    cloud_cli_image: europe-west4-docker.pkg.dev/acme-ml-staging/serving/google-cloud-cli:576.0.0-stable\n",
        )
    )
    spec = parse_spec(text, "research.yaml").spec
    mirrored = gcp.plan_gcp_fleet(spec, "research", "chat").startup_script
    assert "europe-west4-docker.pkg.dev/acme-ml-staging/serving/google-cloud-cli:576.0.0-stable" in mirrored
    assert pinned not in mirrored
    elsewhere = text.replace("acme-ml-staging/serving/google-cloud-cli", "acme-ml-staging/mirror/google-cloud-cli")
    with pytest.raises(SpecError, match="may read only the engine image's Artifact Registry repository") as info:
        parse_spec(elsewhere, "research.yaml")
    assert "targets.chat.cloud_cli_image" in str(info.value)


def test_the_initial_delay_covers_every_boot_step_and_stays_within_what_compute_engine_accepts():
    a3 = catalog.gcp_node_timings_of("a3-highgpu-8g")
    assert catalog.gcp_node_timings_of("n1-standard-8") != catalog.gcp_node_timings_of("g2-standard-8")
    assert catalog.gcp_node_timings_of("x9-unknown-1") == catalog.GcpNodeTimings(
        **{
            "boot_seconds": 60,
            "driver_seconds": 240,
            "image_pull_seconds": 240,
            "gcs_mib_per_second": 150,
            "load_mib_per_second": 800,
            "warmup_seconds": 150,
        }
    )
    small = gcp.initial_delay(a3, GIB, None)
    assert small >= a3.boot_seconds + a3.driver_seconds + a3.image_pull_seconds + a3.warmup_seconds
    assert small % 60 == 0
    assert gcp.initial_delay(a3, 2000 * GIB, None) == gcp.MAX_INITIAL_DELAY_SECONDS == 3600
    assert gcp.initial_delay(a3, GIB, 7200) == 3600  # the spec allows 7200 (AWS); autoHealingPolicies 0..3600
    assert gcp.initial_delay(a3, GIB, 900) == 900


@pytest.mark.parametrize(
    ("signal", "engine", "busy"),
    [
        ("queue_depth", "vllm", True),
        ("gpu_utilization", "vllm", True),
        ("in_flight", "vllm", False),
        ("requests_per_target", "vllm", False),
        ("lb_utilization", "vllm", False),
        ("gpu_utilization", "tensorrt-llm", False),  # no request gauges to tell a busy node by
    ],
)
def test_signals_that_cannot_see_busy_nodes_get_the_busy_series(signal, engine, busy):
    planned = gcp.plan_signal(signal, 4, catalog.engines()[engine])
    assert planned.busy_metric == ("custom.googleapis.com/inferstack/busy_instances" if busy else "")


def test_a_grace_above_what_a_managed_instance_group_accepts_is_a_warning_naming_the_cap():
    text = (
        (STACKS / "research.yaml")
        .read_text()
        .replace("  port: 8000\n", "  port: 8000\n  health_check_grace_seconds: 5400\n", 1)
    )
    loaded = parse_spec(text, "research.yaml")
    (warning,) = [w for w in loaded.warnings if "auto-healing initial delay" in w.message]
    assert "uses 3600, not 5400" in warning.message
    assert gcp.plan_gcp_fleet(loaded.spec, "research", "chat").initial_delay_seconds == 3600
