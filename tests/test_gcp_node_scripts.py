"""GCP startup scripts, run: every GCP GPU group's and TPU slice's script of the example stacks
(and of the valid spec corpus, for the templates' other branches) is rendered and executed under
bash with recording stubs (tests/node_harness.py), and shellchecked with the agent it installs.

What is pinned: the order of steps (the metadata-server rule first, with DOCKER-USER created;
DOCKER_CONFIG before docker-credential-gcr; the driver before the engine; the data disk mounted
before the weights; the weights before the engine), the flags that matter (the engine's cache
volume and exec tmpfs, memlock on TPU, no host network for a single-host engine), what a failed
fetch does (no engine), and the metrics agent (nothing published before the engine is healthy;
in_flight summed from the engine's gauges).
"""

from __future__ import annotations

import json
import re
from functools import cache

import pytest

from conftest import EXAMPLE_STACKS, ROOT
from inferstack.planning.gcp import GcpGpuFleetPlan, GcpTpuPlan, plan_gcp_fleet, plan_tpu
from inferstack.planning.serving import ENGINE_CACHE_DIR, ENGINE_CACHE_VOLUME, ENGINE_TMPFS
from inferstack.spec.loader import load_spec, parse_spec
from inferstack.spec.models import GcpGpuFleetTarget, GcpTpuTarget
from node_harness import NodeHarness, shellcheck

CORPUS = sorted((ROOT / "tests" / "spec_corpus" / "valid").glob("*.yaml"))
METADATA_RULE = ("DOCKER-USER", "-i", "docker0", "-d", "169.254.169.254", "-j", "DROP")
INSTANCE = "4815162342"
STATE = "/mnt/stateful_partition/inferstack"
METRICS = """# HELP vllm:num_requests_running Number of requests currently running.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{model_name="llama-3-8b"} 5.0
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{model_name="llama-3-8b"} 2.0
vllm:num_requests_running_total 99.0
"""


@cache
def _plans(paths: tuple) -> tuple[dict[str, GcpGpuFleetPlan], dict[str, GcpTpuPlan]]:
    gpus, tpus = {}, {}
    for path in paths:
        spec = load_spec(path).spec
        for name, target in spec.targets.items():
            if isinstance(target, GcpGpuFleetTarget):
                gpus[f"{path.stem}/{name}"] = plan_gcp_fleet(spec, path.stem, name)
            elif isinstance(target, GcpTpuTarget):
                tpus[f"{path.stem}/{name}"] = plan_tpu(spec, path.stem, name)
    return gpus, tpus


GPUS, TPUS = _plans(tuple(EXAMPLE_STACKS))
EVERY_GPU = {**_plans(tuple(CORPUS))[0], **GPUS}
EVERY_TPU = {**_plans(tuple(CORPUS))[1], **TPUS}


def installed(script: str, marker: str) -> str:
    m = re.search(rf"<<'{marker}'\n(.*?)\n{marker}\n", script, re.S)
    assert m, f"no {marker} heredoc"
    return m.group(1) + "\n"


def gpu_node(tmp_path, **kw) -> NodeHarness:
    """A harness answering the metadata server and one L4."""
    h = NodeHarness(tmp_path, extra_stubs=("/var/lib/nvidia/bin/nvidia-smi",), **kw)
    h.answer("curl", INSTANCE, when="instance/id")
    h.answer("curl", "projects/1/zones/europe-west4-a", when="instance/zone")
    h.answer("curl", '{"access_token":"ya29.token","expires_in":3599}', when="default/token")
    h.answer("/var/lib/nvidia/bin/nvidia-smi", "GPU 0: NVIDIA L4\n", when="--list-gpus")
    return h


def tpu_node(tmp_path, **kw) -> NodeHarness:
    h = NodeHarness(tmp_path, **kw)
    h.answer("curl", "0", when="agent-worker-number")
    h.answer("curl", "a:b:10.0.0.2,a:b:10.0.0.3", when="worker-network-endpoints")
    h.answer("lsblk", "/dev/sda disk gpt\n/dev/sdb disk\n")
    h.fail("mountpoint")  # a fresh boot: the data disk is not mounted yet
    h.fail("iptables", when="-C ")  # nor are the FORWARD jump and the metadata rule in place
    return h


def engine_run(run) -> list[str]:
    """The engine's `docker run` (the weights fetch is a `docker run --rm` too on COS)."""
    return run.calls[run.first("docker", "run", "--name", "engine")]


def assert_metadata_rule_first(run) -> None:
    """The chain exists and FORWARD jumps to it before the rule goes in, all before anything else."""
    create = run.first("iptables", "-N", "DOCKER-USER")
    jump = run.first("iptables", "-I", "FORWARD", "-j", "DOCKER-USER")
    insert = run.first("iptables", "-I", *METADATA_RULE)
    assert create < jump < insert
    assert all(c[0] == "iptables" for c in run.calls[: insert + 1])


# -- GPU groups on Container-Optimized OS -------------------------------------------------------


@pytest.mark.parametrize("key", sorted(GPUS))
def test_gpu_boot_order_rule_config_driver_weights_engine_health(tmp_path, key):
    plan = GPUS[key]
    run = gpu_node(tmp_path).fail("iptables", when="-C ").run(plan.startup_script)
    assert run.returncode == 0, run.stderr
    assert_metadata_rule_first(run)
    driver = run.first("cos-extensions", "install", "gpu")
    fetch = run.first("docker", "run", "storage", "rsync")
    pull = run.first("docker", "pull", plan.image)
    engine = run.calls.index(engine_run(run))
    health = run.first("curl", f"127.0.0.1:{plan.port}{plan.health_path}")
    assert driver < fetch < engine and pull < engine < health
    if plan.artifact_repository is not None:
        assert run.first("docker-credential-gcr", "configure-docker") < pull
    # Docker's client config lives on the writable stateful partition, set before any credential
    # helper or pull runs (COS mounts root's home read-only).
    lines = plan.startup_script.splitlines()
    export = lines.index('export DOCKER_CONFIG="$STATE/docker"')
    assert all(
        export < i
        for i, line in enumerate(lines)
        if line.startswith(("docker-credential-gcr ", "docker pull ", "docker run "))
    )
    assert run.file(f"{STATE}/docker").is_dir()


def test_an_existing_metadata_rule_is_not_inserted_twice(tmp_path):
    run = gpu_node(tmp_path).run(GPUS["research/chat"].startup_script)
    assert run.returncode == 0, run.stderr
    assert run.ran("iptables", "-C", *METADATA_RULE) and run.ran("iptables", "-C", "FORWARD", "-j", "DOCKER-USER")
    assert not run.ran("iptables", "-I")


@pytest.mark.parametrize("key", sorted(GPUS))
def test_the_gpu_engine_gets_its_cache_volume_exec_tmpfs_and_no_metadata_access(tmp_path, key):
    plan = GPUS[key]
    run = gpu_node(tmp_path).run(plan.startup_script)
    docker_run = engine_run(run)
    assert f"{ENGINE_CACHE_VOLUME}:{ENGINE_CACHE_DIR}" in docker_run
    assert docker_run[docker_run.index("--tmpfs") + 1] == ENGINE_TMPFS and "exec" in ENGINE_TMPFS.split(",")
    assert "--read-only" in docker_run and "--cap-drop" in docker_run
    assert "--network" not in docker_run  # the bridge, which the DOCKER-USER rule cuts off the metadata server
    fetch = run.calls[run.first("docker", "run", "storage", "rsync")]
    assert fetch[fetch.index("--network") + 1] == "host"  # only the weights fetch uses the VM's account
    assert any(
        a.startswith("gcr.io/google.com/cloudsdktool/google-cloud-cli:") and not a.endswith(":stable") for a in fetch
    )


def test_a_failed_weights_fetch_runs_no_engine(tmp_path):
    plan = GPUS["research/chat"]
    run = gpu_node(tmp_path).fail("docker", when="storage rsync").run(plan.startup_script)
    assert run.returncode != 0
    assert not run.ran("docker", "--name", "engine") and not run.ran("docker", "pull")


def test_a_failed_credential_helper_ends_the_script_before_the_pull(tmp_path):
    plan = GPUS["research/chat"]
    run = gpu_node(tmp_path).fail("docker-credential-gcr").run(plan.startup_script)
    assert run.returncode != 0 and not run.ran("docker", "pull")


def test_a_failed_driver_install_runs_nothing_else(tmp_path):
    run = gpu_node(tmp_path).fail("cos-extensions").run(GPUS["research/chat"].startup_script)
    assert run.returncode != 0 and not run.ran("docker", "run")


# -- the metrics agent ---------------------------------------------------------------------------


def _agent_plan(signal: str) -> GcpGpuFleetPlan:
    text = (
        (ROOT / "stacks" / "research.yaml")
        .read_text()
        .replace(
            "signal: queue_depth, target: 4", f"signal: {signal}, target: {70 if signal == 'gpu_utilization' else 4}"
        )
    )
    return plan_gcp_fleet(parse_spec(text, "research.yaml").spec, "research", "chat")


def _published(run) -> list[dict]:
    out = []
    for call in run.commands("curl"):
        if any("monitoring.googleapis.com" in a for a in call):
            out.append(json.loads(call[call.index("-d") + 1]))
    return out


def test_the_agent_publishes_nothing_while_the_engine_is_not_healthy(tmp_path):
    plan = _agent_plan("in_flight")
    agent = installed(plan.startup_script, "AGENT")
    run = (
        gpu_node(tmp_path, max_sleeps=3)
        .fail("curl", when="/health", rc=7)
        .answer("curl", METRICS, when="/metrics")
        .run(agent)
    )
    assert run.stopped_by_sleep_limit
    assert _published(run) == []
    assert not run.ran("curl", "/metrics")  # not even read: a booting engine's gauges mean nothing


@pytest.mark.parametrize("signal", ["gpu_utilization"])
def test_a_booting_node_publishes_no_gpu_utilisation(tmp_path, signal):
    agent = installed(_agent_plan(signal).startup_script, "AGENT")
    run = (
        gpu_node(tmp_path, max_sleeps=3)
        .fail("curl", when="/health", rc=7)
        .answer("/var/lib/nvidia/bin/nvidia-smi", "0\n")
        .run(agent)
    )
    assert _published(run) == [] and not run.ran("/var/lib/nvidia/bin/nvidia-smi")


@pytest.mark.parametrize(
    ("signal", "value", "metric"),
    [
        ("in_flight", 7.0, "in_flight_requests"),  # running 5 + waiting 2; the _total counter is not a gauge of these
        ("queue_depth", 2.0, "pending_requests"),
        ("requests_per_target", 5.0, "running_requests"),
    ],
)
def test_a_healthy_node_publishes_its_series_of_the_per_group_metric(tmp_path, signal, value, metric):
    plan = _agent_plan(signal)
    agent = installed(plan.startup_script, "AGENT")
    run = gpu_node(tmp_path, max_sleeps=2).answer("curl", METRICS, when="/metrics").run(agent)
    (first, *_) = _published(run)
    (series,) = first["timeSeries"]
    assert series["metric"] == {
        "type": f"custom.googleapis.com/inferstack/{metric}",
        "labels": {"group": plan.group_name, "instance": INSTANCE},
    }
    assert series["resource"] == {"type": "global", "labels": {"project_id": plan.project}}
    assert series["points"][0]["value"] == {"doubleValue": value}
    post = next(c for c in run.commands("curl") if any("monitoring.googleapis.com" in a for a in c))
    assert "Authorization: Bearer ya29.token" in post


def test_a_healthy_node_publishes_gpu_utilisation_as_its_own_gauge(tmp_path):
    agent = installed(_agent_plan("gpu_utilization").startup_script, "AGENT")
    run = gpu_node(tmp_path, max_sleeps=2).answer("/var/lib/nvidia/bin/nvidia-smi", "90\n70\n").run(agent)
    signal = [p for p in _published(run) if "/gpu/" not in json.dumps(p)]  # not the dashboard's GPU series
    (series,) = signal[0]["timeSeries"]
    assert series["resource"]["type"] == "gce_instance" and series["resource"]["labels"]["instance_id"] == INSTANCE
    assert series["points"][0]["value"] == {"doubleValue": 80.0}


# -- TPU slices ----------------------------------------------------------------------------------


@pytest.mark.parametrize("key", sorted(TPUS))
def test_tpu_boot_order_disk_weights_engine(tmp_path, key):
    plan = TPUS[key]
    run = tpu_node(tmp_path).fail("blkid").run(plan.startup_script)
    assert run.returncode == 0, run.stderr
    fetch = run.first("gcloud", "storage", "rsync")
    engine = run.calls.index(engine_run(run))
    assert run.first("docker", "pull", plan.image) < engine and fetch < engine
    docker_run = engine_run(run)
    assert docker_run[docker_run.index("--ulimit") + 1] == "memlock=-1:-1"
    assert f"{ENGINE_CACHE_VOLUME}:{ENGINE_CACHE_DIR}" in docker_run
    assert docker_run[docker_run.index("--tmpfs") + 1] == ENGINE_TMPFS
    if plan.hosts == 1:
        assert_metadata_rule_first(run)
        assert "--network" not in docker_run
        # the data disk: found, formatted because blkid found no file system, mounted, then the weights
        mkfs = run.first("mkfs.ext4", "/dev/sdb")
        mount = run.first("mount", "/dev/sdb", "/mnt/disks/inferstack")
        assert mkfs < mount < fetch
        assert "/mnt/disks/inferstack/models/" in run.calls[fetch][-1]  # onto the data disk
    else:
        assert not run.ran("mkfs.ext4") and not run.ran("mount")
        assert docker_run[docker_run.index("--network") + 1] == "host"
        assert "ray start --head --port=6379" in docker_run[-1]


def test_a_tpu_data_disk_with_a_file_system_is_not_formatted_again(tmp_path):
    run = tpu_node(tmp_path).answer("blkid", '/dev/sdb: TYPE="ext4"').run(TPUS["research/reasoning"].startup_script)
    assert run.returncode == 0, run.stderr
    assert not run.ran("mkfs.ext4") and run.ran("mount", "/dev/sdb")


def test_no_tpu_data_disk_no_fetch_no_engine(tmp_path):
    h = NodeHarness(tmp_path).answer("curl", "0", when="agent-worker-number").answer("lsblk", "/dev/sda disk gpt\n")
    run = h.run(TPUS["research/reasoning"].startup_script)
    assert run.returncode != 0 and "no data disk" in run.stderr
    assert not run.ran("gcloud", "storage") and not run.ran("docker", "run")


@pytest.mark.parametrize("key", sorted(TPUS))
def test_a_failed_tpu_weights_fetch_runs_no_engine(tmp_path, key):
    run = tpu_node(tmp_path).fail("gcloud", when="storage rsync").run(TPUS[key].startup_script)
    assert run.returncode != 0 and not run.ran("docker", "run")


def test_a_second_host_of_a_multi_host_slice_joins_worker_0s_ray_cluster(tmp_path):
    plan = TPUS["batch/batch"]
    h = (
        NodeHarness(tmp_path)
        .answer("curl", "1", when="agent-worker-number")
        .answer("curl", "a:b:10.0.0.2,a:b:10.0.0.3", when="worker-network-endpoints")
    )
    run = h.run(plan.startup_script)
    assert run.returncode == 0, run.stderr
    assert engine_run(run)[-1] == "ray start --address=10.0.0.2:6379 --block"
    assert not run.ran("curl", "/health")  # only worker 0 serves


# -- shellcheck ----------------------------------------------------------------------------------


@pytest.mark.parametrize("key", sorted(EVERY_GPU) + sorted(EVERY_TPU))
def test_every_gcp_startup_script_and_its_agent_are_shellcheck_clean(tmp_path, key):
    script = (EVERY_GPU.get(key) or EVERY_TPU[key]).startup_script
    scripts = {"startup": script}
    if "<<'AGENT'" in script:
        scripts["agent"] = installed(script, "AGENT")
    for name, text in scripts.items():
        assert shellcheck(text, tmp_path) == "", f"{key} {name}"


@pytest.mark.parametrize(
    ("metrics", "busy"), [(METRICS, 1.0), (METRICS.replace(" 5.0", " 0.0").replace(" 2.0", " 0.0"), 0.0)]
)
def test_with_queue_depth_a_healthy_node_also_says_whether_it_is_busy(tmp_path, metrics, busy):
    """Waiting is 0 whenever the batch has room: the busy series keeps the autoscaler from
    removing nodes that still serve requests."""
    plan = _agent_plan("queue_depth")
    run = (
        gpu_node(tmp_path, max_sleeps=2)
        .answer("curl", metrics, when="/metrics")
        .run(installed(plan.startup_script, "AGENT"))
    )
    points = {p["timeSeries"][0]["metric"]["type"]: p["timeSeries"][0] for p in _published(run)}
    series = points["custom.googleapis.com/inferstack/busy_instances"]
    assert series["metric"]["labels"] == {"group": plan.group_name, "instance": INSTANCE}
    assert series["points"][0]["value"] == {"doubleValue": busy}


def test_in_flight_needs_no_busy_series(tmp_path):
    plan = _agent_plan("in_flight")
    run = (
        gpu_node(tmp_path, max_sleeps=2)
        .answer("curl", METRICS, when="/metrics")
        .run(installed(plan.startup_script, "AGENT"))
    )
    assert {p["timeSeries"][0]["metric"]["type"] for p in _published(run)} == {
        "custom.googleapis.com/inferstack/in_flight_requests"
    }
