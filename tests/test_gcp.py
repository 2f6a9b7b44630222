"""GcpGpuFleet and GcpTpuSlice through mocks: every default of the GCP issue, on registered inputs."""

from __future__ import annotations

import pytest

from conftest import STACKS, Resources, plan_of_file, plan_of_text
from inferstack.errors import SpecError
from inferstack.planning import gcp as gcp_planning
from inferstack.planning.gcp import HEALTH_CHECK_RANGES
from inferstack.spec.loader import parse_spec

RESEARCH = (STACKS / "research.yaml").read_text()
IT = "gcp:compute/instanceTemplate:InstanceTemplate"
MIG = "gcp:compute/regionInstanceGroupManager:RegionInstanceGroupManager"
FIREWALL = "gcp:compute/firewall:Firewall"
TPU = "gcp:tpu/v2Vm:V2Vm"
QUEUED = "pulumi-python:dynamic:Resource"
PROVIDER = "urn:pulumi:research::inferstack::pulumi:providers:gcp::gcp-acme-ml-staging-europe-west4"


@pytest.fixture(scope="module")
def research() -> Resources:
    return Resources(plan_of_file(str(STACKS / "research.yaml")))


def _named(res: Resources, token: str, prefix: str) -> list[dict]:
    return [r for r in res.of_type(token) if r["name"].startswith(prefix)]


def test_instance_template_is_private_shielded_and_locked_down(research):
    it = research.one(IT)["inputs"]
    assert it["machineType"] == "g2-standard-8"
    assert it["networkInterfaces"] and all(not ni.get("accessConfigs") for ni in it["networkInterfaces"])
    assert it["canIpForward"] is False
    assert it["shieldedInstanceConfig"] == {
        "enableSecureBoot": True,
        "enableVtpm": True,
        "enableIntegrityMonitoring": True,
    }
    meta = it["metadata"]
    assert (meta["enable-oslogin"], meta["block-project-ssh-keys"], meta["serial-port-enable"]) == (
        "TRUE",
        "TRUE",
        "FALSE",
    )
    assert "cos-extensions install gpu" in meta["startup-script"]


def test_gpu_vms_terminate_on_maintenance_and_run_on_spot_when_asked(research):
    scheduling = research.one(IT)["inputs"]["scheduling"]
    assert scheduling["onHostMaintenance"] == "TERMINATE"
    assert scheduling["provisioningModel"] == "SPOT"
    assert scheduling["instanceTerminationAction"] == "DELETE"
    assert scheduling["automaticRestart"] is False


def test_standard_vms_restart_automatically(tmp_path):
    text = RESEARCH.replace("    spot: {enabled: true}\n", "")
    it = Resources(plan_of_text(text, "research")).one(IT)["inputs"]["scheduling"]
    assert (it["provisioningModel"], it["automaticRestart"], it["onHostMaintenance"]) == ("STANDARD", True, "TERMINATE")


def test_boot_disk_uses_a_rotating_regional_key_the_compute_agent_may_use(research):
    ring = research.one("gcp:kms/keyRing:KeyRing", "chat-kms-ring")
    key = research.one("gcp:kms/cryptoKey:CryptoKey", "chat-kms-key")
    assert ring["inputs"]["location"] == "europe-west4"
    assert ring["options"]["protect"] and key["options"]["protect"]
    assert key["inputs"]["rotationPeriod"] == "7776000s"
    disk = research.one(IT)["inputs"]["disks"][0]
    assert disk["diskEncryptionKey"]["kmsKeySelfLink"].endswith(
        "/keyRings/assistant-research-chat/cryptoKeys/boot-disks"
    )
    assert disk["diskType"] == "pd-balanced" and disk["boot"] is True
    grant = research.one("gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember", "chat-kms-compute-agent")["inputs"]
    assert grant["role"] == "roles/cloudkms.cryptoKeyEncrypterDecrypter"
    assert grant["member"].endswith("@compute-system.iam.gserviceaccount.com")


def test_nodes_run_as_a_dedicated_least_privilege_service_account(research):
    sa = research.one(IT)["inputs"]["serviceAccount"]["email"]
    assert sa == "is-assistant-research-chat@acme-ml-staging.iam.gserviceaccount.com"
    assert not sa.endswith("-compute@developer.gserviceaccount.com")
    roles = {r["inputs"]["role"] for r in _named(research, "gcp:projects/iAMMember:IAMMember", "chat-")}
    assert roles == {"roles/logging.logWriter", "roles/monitoring.metricWriter"}
    weights = _named(research, "gcp:storage/bucketIAMMember:BucketIAMMember", "chat-")[0]["inputs"]
    assert (weights["bucket"], weights["role"]) == ("acme-models-europe-west4", "roles/storage.objectViewer")
    assert 'objects/meta-llama/Llama-3.1-8B-Instruct/")' in weights["condition"]["expression"]
    images = _named(research, "gcp:artifactregistry/repositoryIamMember:RepositoryIamMember", "chat-")[0]["inputs"]
    assert (images["location"], images["repository"], images["role"]) == (
        "europe-west4",
        "serving",
        "roles/artifactregistry.reader",
    )


def test_private_subnet_with_google_access_flow_logs_and_deny_by_default(research):
    net = _named(research, "gcp:compute/network:Network", "chat-")[0]["inputs"]
    assert net["autoCreateSubnetworks"] is False
    subnet = research.one("gcp:compute/subnetwork:Subnetwork", "chat-net-private")["inputs"]
    assert subnet["privateIpGoogleAccess"] is True and subnet["region"] == "europe-west4"
    assert subnet["ipCidrRange"] == "10.80.0.0/20" and subnet["logConfig"]["flowSampling"] == 0.5
    rules = {r["name"]: r["inputs"] for r in _named(research, FIREWALL, "chat-net-")}
    deny = rules["chat-net-deny-ingress"]
    assert deny["priority"] == 65534 and deny["denies"] == [{"protocol": "all"}] and "allows" not in deny
    hc = rules["chat-net-allow-health-checks"]
    assert hc["sourceRanges"] == list(HEALTH_CHECK_RANGES) and hc["allows"] == [{"protocol": "tcp", "ports": ["8000"]}]
    assert rules["chat-net-allow-subnet"]["sourceRanges"] == ["10.80.0.0/20"]
    assert all(r["targetServiceAccounts"] for n, r in rules.items() if "allow" in n)
    assert not research.of_type("gcp:compute/routerNat:RouterNat")


def test_cloud_nat_only_when_the_spec_asks(tmp_path):
    text = RESEARCH.replace("    network: {cidr: 10.80.0.0/20}", "    network: {cidr: 10.80.0.0/20, cloud_nat: true}")
    res = Resources(plan_of_text(text, "research"))
    assert len(res.of_type("gcp:compute/routerNat:RouterNat")) == 1


def test_regional_group_heals_after_the_model_loads_and_updates_proactively(research):
    mig = research.one(MIG)
    inputs = mig["inputs"]
    assert inputs["region"] == "europe-west4"
    assert inputs["distributionPolicyZones"] == ["europe-west4-a", "europe-west4-b", "europe-west4-c"]
    # driver install, both pulls and the weights' fetch included (planning.gcp.initial_delay)
    assert inputs["autoHealingPolicies"]["initialDelaySec"] == 840
    policy = inputs["updatePolicy"]
    assert (policy["type"], policy["maxUnavailableFixed"], policy["maxSurgeFixed"]) == ("PROACTIVE", 0, 3)
    assert mig["options"]["ignoreChanges"] == ["targetSize"]
    health = research.one("gcp:compute/healthCheck:HealthCheck")["inputs"]["httpHealthCheck"]
    assert (health["port"], health["requestPath"]) == (8000, "/health")


def test_autoscaler_scales_on_a_per_group_queue_signal(research):
    policy = research.one("gcp:compute/regionAutoscaler:RegionAutoscaler")["inputs"]["autoscalingPolicy"]
    assert (policy["minReplicas"], policy["maxReplicas"]) == (2, 6)
    metric, busy = policy["metrics"]
    assert busy == {
        "name": "custom.googleapis.com/inferstack/busy_instances",
        "singleInstanceAssignment": 1,
        "filter": 'resource.type = "global" AND metric.labels.group = "assistant-research-chat-zcb22"',
    }
    assert metric["name"] == "custom.googleapis.com/inferstack/pending_requests"
    assert metric["singleInstanceAssignment"] == 4
    assert 'metric.labels.group = "assistant-research-chat-zcb22"' in metric["filter"]
    assert policy["scaleInControl"] == {"timeWindowSec": 600, "maxScaledInReplicas": {"fixed": 1}}


def test_gpu_utilisation_is_a_per_instance_gauge(tmp_path):
    text = RESEARCH.replace("signal: queue_depth, target: 4", "signal: gpu_utilization, target: 70")
    metric, busy = Resources(plan_of_text(text, "research")).one("gcp:compute/regionAutoscaler:RegionAutoscaler")[
        "inputs"
    ]["autoscalingPolicy"]["metrics"]
    assert busy["name"] == "custom.googleapis.com/inferstack/busy_instances"
    assert (metric["name"], metric["target"], metric["type"]) == (
        "custom.googleapis.com/inferstack/gpu_utilization",
        70,
        "GAUGE",
    )


def test_single_host_on_demand_slice_is_a_private_tpu_vm(research):
    (vm,) = [r["inputs"] for r in research.of_type(TPU)]
    assert (vm["name"], vm["acceleratorType"], vm["runtimeVersion"], vm["zone"]) == (
        "assistant-research-reasoning-0",
        "v6e-8",
        "v2-alpha-tpuv6e",
        "europe-west4-a",
    )
    assert vm["networkConfig"]["enableExternalIps"] is False and vm["networkConfig"]["canIpForward"] is False
    assert vm["serviceAccount"]["email"].startswith("is-assistant-research-re")
    assert vm["metadata"]["enable-oslogin"] == "TRUE" and vm["labels"]["team"] == "research"
    assert vm["schedulingConfig"] == {"spot": False, "reserved": False}


def test_multi_host_spot_slices_are_queued_resources_with_the_full_node_spec():
    batch = Resources(plan_of_file(str(STACKS / "batch.yaml")))
    assert not batch.of_type(TPU)
    queued = {r["name"]: r["inputs"] for r in batch.of_type(QUEUED)}
    assert set(queued) == {"batch-slice-0", "batch-slice-1"}
    q = queued["batch-slice-0"]
    assert q["__provider"] == "[secret]"  # the serialized dynamic provider never shows
    assert (q["project"], q["zone"], q["queuedResourceId"]) == (
        "acme-ml-staging",
        "europe-west4-b",
        "assistant-batch-batch-0",
    )
    assert q["resourceType"] == "tpu.googleapis.com/QueuedResource"
    assert q["body"]["spot"] == {}
    (spec,) = q["body"]["tpu"]["nodeSpec"]
    node = spec["node"]
    assert spec["parent"] == "projects/acme-ml-staging/locations/europe-west4-b"
    assert node["acceleratorType"] == "v5litepod-16" and node["runtimeVersion"] == "v2-alpha-tpuv5-lite"
    assert node["networkConfig"]["enableExternalIps"] is False and node["networkConfig"]["canIpForward"] is False
    assert node["networkConfig"]["subnetwork"].endswith("/subnetworks/assistant-batch-batch")
    assert node["serviceAccount"]["email"].startswith("is-assistant-batch-batch@")
    assert "ray start --head" in node["metadata"]["startup-script"]
    assert node["labels"]["model"] == "llama-3-8b"


def test_every_gcp_resource_has_the_explicit_provider_and_labelled_ones_carry_the_labels(research):
    from inferstack.policy_pack.inferstack_policies.tags import GCP_LABELED

    for r in research.all:
        if r["custom"] and r["type"].startswith("gcp:"):
            assert r["provider"] == PROVIDER, r["urn"]
            if r["type"] in GCP_LABELED:
                assert {"stack", "environment", "team", "model", "data-classification"} <= set(r["inputs"]["labels"])


def test_nodes_use_gvnic_and_the_metrics_agent_runs_through_bash(research):
    it = research.one(IT)["inputs"]
    assert it["networkInterfaces"][0]["nicType"] == "GVNIC"
    assert "ExecStart=/bin/bash $STATE/bin/metrics" in it["metadata"]["startup-script"]


def test_two_endpoint_targets_in_one_existing_network_cannot_each_create_a_proxy_only_subnet(tmp_path):
    from inferstack.errors import SpecError
    from inferstack.spec.loader import parse_spec

    existing = (
        "    network: {network: shared, subnetwork: shared-ew4, proxy_cidr: 10.90.0.0/23, psc_cidr: 10.90.2.0/24}"
    )
    text = RESEARCH.replace("    network: {cidr: 10.80.0.0/20}", existing).replace(
        "    network: {cidr: 10.81.0.0/20}", existing
    )
    with pytest.raises(SpecError, match=r"one active proxy-only subnet per region.*remove proxy_cidr"):
        parse_spec(text, "research.yaml")
    # Without proxy_cidr both reuse the network's own, which is what the rule allows.
    reuse = RESEARCH.replace(
        "    network: {cidr: 10.80.0.0/20}",
        "    network: {network: shared, subnetwork: shared-ew4, psc_cidr: 10.90.2.0/24}",
    )
    reuse = reuse.replace(
        "    network: {cidr: 10.81.0.0/20}",
        "    network: {network: shared, subnetwork: shared-ew4, psc_cidr: 10.90.3.0/24}",
    )
    parse_spec(reuse, "research.yaml")


def test_a_gcp_fleet_that_omits_the_signal_scales_on_per_group_in_flight_load():
    """The default signal is in_flight on both clouds; GCP planning had no entry for it (KeyError)."""
    text = RESEARCH.replace("autoscaling: {signal: queue_depth, target: 4,", "autoscaling: {target: 4,")
    assert "signal: queue_depth" not in text
    res = Resources(plan_of_text(text, "research"))
    (metric,) = res.one("gcp:compute/regionAutoscaler:RegionAutoscaler")["inputs"]["autoscalingPolicy"]["metrics"]
    assert metric["name"] == "custom.googleapis.com/inferstack/in_flight_requests"
    assert metric["singleInstanceAssignment"] == 4
    assert metric["filter"] == 'resource.type = "global" AND metric.labels.group = "assistant-research-chat-zcb22"'


def test_a_single_host_slice_keeps_70b_weights_on_an_encrypted_data_disk_sized_from_them(research):
    """The 100 GiB boot disk cannot hold ~131 GiB of weights: the TPU VM gets a data disk of the
    type v6e takes (Hyperdisk Balanced), encrypted with the target's key, attached read-write."""
    disk = research.one("gcp:compute/disk:Disk")["inputs"]
    assert disk["name"] == "assistant-research-reasoning-0-weights"
    assert (disk["zone"], disk["type"]) == ("europe-west4-a", "hyperdisk-balanced")
    assert disk["size"] == gcp_planning.tpu_data_disk_gib(70_600_000_000 * 2) == 190
    assert disk["diskEncryptionKey"]["kmsKeySelfLink"].endswith(
        "/keyRings/assistant-research-reasoning/cryptoKeys/boot-disks"
    )
    (vm,) = [r["inputs"] for r in research.of_type(TPU)]
    assert vm["dataDisks"] == [
        {
            "sourceDisk": "projects/acme-ml-staging/zones/europe-west4-a/disks/assistant-research-reasoning-0-weights",
            "mode": "READ_WRITE",
        }
    ]
    assert "mount -o discard,defaults" in vm["metadata"]["startup-script"]
    assert not [f for f in research.of_type("gcp:compute/firewall:Firewall") if "allow-slice" in f["name"]]


def test_a_queued_single_host_slice_asks_for_its_data_disk_in_the_node_body():
    text = RESEARCH.replace("    topology: 2x4\n", "    topology: 2x4\n    provisioning: spot\n")
    text = text[: text.index("\n# Reachable only")] + "\n"  # queued slices cannot sit behind the endpoint
    res = Resources(plan_of_text(text, "research"))
    (q,) = res.of_type(QUEUED)
    (spec,) = q["inputs"]["body"]["tpu"]["nodeSpec"]
    assert spec["node"]["dataDisks"] == [
        {
            "sourceDisk": "projects/acme-ml-staging/zones/europe-west4-a/disks/assistant-research-reasoning-0-weights",
            "mode": "READ_WRITE",
        }
    ]


def test_multi_host_slices_open_every_port_between_their_own_hosts_only():
    batch = Resources(plan_of_file(str(STACKS / "batch.yaml")))
    rule = batch.one("gcp:compute/firewall:Firewall", "batch-allow-slice")["inputs"]
    assert rule["direction"] == "INGRESS"
    assert rule["allows"] == [{"protocol": "tcp"}, {"protocol": "udp"}]
    sa = "is-assistant-batch-batch@acme-ml-staging.iam.gserviceaccount.com"
    assert rule["sourceServiceAccounts"] == rule["targetServiceAccounts"] == [sa]
    assert "sourceRanges" not in rule
    assert not batch.of_type("gcp:compute/disk:Disk")  # weights on each host's boot disk
    for q in batch.of_type(QUEUED):
        assert "dataDisks" not in q["inputs"]["body"]["tpu"]["nodeSpec"][0]["node"]


def test_a_multi_host_slice_whose_weights_fill_the_boot_disk_is_refused():
    text = RESEARCH.replace("topology: 2x4", "topology: 4x4")
    text = text[: text.index("\n# Reachable only")] + "\n"
    with pytest.raises(SpecError, match="do not fit next to the runtime and the engine image") as info:
        parse_spec(text, "research.yaml")
    assert "targets.reasoning.topology" in str(info.value)
