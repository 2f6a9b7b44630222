"""AWS user data, run: every AWS target of the example stacks (and of the valid spec corpus, for the
template's other branches) is rendered and executed under bash with recording stubs
(tests/node_harness.py), and shellchecked, outer script and the two scripts it installs alike.

What is pinned: the order of steps (weights before the engine, engine health before the launch
lifecycle hook is completed), the flags that matter, what a failed step does (the launch is
abandoned, nothing serves), the warm-pool path (prepare, complete the hook, no engine), and the
node agent's behaviour (nothing published before the engine is healthy; in-flight computed from
the engine's gauges; the termination hook completed once drained, or after a bounded wait).
"""

from __future__ import annotations

import re
from functools import cache

import pytest

from conftest import EXAMPLE_STACKS, ROOT
from inferstack.planning.aws_fleet import DRAIN_HOOK, LAUNCH_HOOK, AwsFleetPlan, plan_aws_fleet
from inferstack.planning.serving import ENGINE_CACHE_DIR, ENGINE_CACHE_VOLUME, ENGINE_TMPFS
from inferstack.spec.loader import load_spec
from inferstack.spec.models import AwsGpuFleetTarget
from node_harness import NodeHarness, shellcheck

CORPUS = sorted((ROOT / "tests" / "spec_corpus" / "valid").glob("*.yaml"))


@cache
def _plans(paths: tuple) -> dict[str, AwsFleetPlan]:
    out = {}
    for path in paths:
        spec = load_spec(path).spec
        for name, target in spec.targets.items():
            if isinstance(target, AwsGpuFleetTarget):
                out[f"{path.stem}/{name}"] = plan_aws_fleet(spec, path.stem, name)
    return out


EXAMPLES = _plans(tuple(EXAMPLE_STACKS))
EVERY = {**_plans(tuple(CORPUS)), **EXAMPLES}
INSTANCE = "i-0123456789abcdef0"


def installed(user_data: str, marker: str) -> str:
    """The script the user data writes with `cat > ... <<'MARKER'`."""
    m = re.search(rf"<<'{marker}'\n(.*?)\n{marker}\n", user_data, re.S)
    assert m, f"no {marker} heredoc"
    return m.group(1) + "\n"


def node(tmp_path, state: str = "InService", **kw) -> NodeHarness:
    """A harness answering IMDS (token, instance id, target lifecycle state) and one GPU."""
    h = NodeHarness(tmp_path, **kw)
    h.answer("curl", "token", when="api/token")
    h.answer("curl", INSTANCE, when="meta-data/instance-id")
    h.answer("curl", state, when="target-lifecycle-state")
    h.answer("nvidia-smi", "GPU 0: NVIDIA L4\n", when="--list-gpus")
    return h


def lifecycle(run, result: str, hook: str = LAUNCH_HOOK) -> int:
    return run.first("aws", "complete-lifecycle-action", hook, result)


# -- the bootstrap, serving path ------------------------------------------------------------------


@pytest.mark.parametrize("key", sorted(EXAMPLES))
def test_serving_boot_fetches_then_runs_then_waits_for_health_then_completes_the_hook(tmp_path, key):
    plan = EXAMPLES[key]
    run = node(tmp_path).run(plan.user_data)
    assert run.returncode == 0, run.stderr
    sync, pull = run.first("aws", "s3", "sync"), run.first("docker", "pull")
    engine = run.first("docker", "run")
    health = run.first("curl", f"127.0.0.1:{plan.port}{plan.health_path}")
    done = lifecycle(run, "CONTINUE")
    assert sync < engine and pull < engine < health < done
    assert not run.ran("aws", "ABANDON")
    args = run.calls[done]
    for flag in ("--auto-scaling-group-name", plan.asg_name, "--instance-id", INSTANCE, "--region", plan.region):
        assert flag in args
    # the agent starts once the engine is healthy, and both units come back at every boot
    assert health < run.first("systemctl", "start", "inferstack-agent.service")
    assert run.ran("systemctl", "enable", "inferstack-node.service", "inferstack-agent.service")
    unit = run.file("/etc/systemd/system/inferstack-node.service").read_text()
    assert "WantedBy=multi-user.target" in unit and "Type=oneshot" in unit


@pytest.mark.parametrize("key", sorted(EXAMPLES))
def test_the_engine_gets_its_cache_volume_exec_tmpfs_offline_env_and_no_credentials(tmp_path, key):
    plan = EXAMPLES[key]
    run = node(tmp_path).run(plan.user_data)
    docker_run = run.calls[run.first("docker", "run")]
    joined = " ".join(docker_run)
    assert f"{ENGINE_CACHE_VOLUME}:{ENGINE_CACHE_DIR}" in docker_run
    assert docker_run[docker_run.index("--tmpfs") + 1] == ENGINE_TMPFS and "exec" in ENGINE_TMPFS.split(",")
    for env in ("HF_HUB_OFFLINE=1", "TRANSFORMERS_OFFLINE=1", "VLLM_NO_USAGE_STATS=1"):
        assert env in docker_run
    assert "--read-only" in docker_run and "--cap-drop" in docker_run
    # no credentials: no host network (IMDS one hop further is out of reach), no AWS keys, no mounts of ~/.aws
    assert "--network" not in docker_run and "AWS_" not in joined and ".aws" not in joined
    assert f"/models/{plan.model_name}:ro" in joined


def test_a_failed_weights_download_runs_no_engine_and_abandons_the_launch(tmp_path):
    plan = EXAMPLES["dev/burst"]
    run = node(tmp_path).fail("aws", when="s3 sync").run(plan.user_data)
    assert run.returncode != 0
    assert not run.ran("docker", "run") and not run.ran("docker", "pull")
    assert lifecycle(run, "ABANDON") > run.first("aws", "s3", "sync")
    assert not run.ran("aws", "CONTINUE")


def test_an_engine_that_never_answers_is_abandoned_by_the_node_before_the_hook_times_out(tmp_path):
    plan = EXAMPLES["dev/burst"]
    run = node(tmp_path, max_sleeps=1000).fail("curl", when=plan.health_path).run(plan.user_data)
    assert run.returncode != 0 and not run.stopped_by_sleep_limit
    polls = len([c for c in run.commands("curl") if any(plan.health_path in a for a in c)])
    assert polls * 10 < plan.readiness.launch_hook_timeout  # gives up before the group would
    assert lifecycle(run, "ABANDON") > run.first("docker", "run")
    assert not run.ran("aws", "CONTINUE") and not run.ran("systemctl", "start")


def test_no_lifecycle_state_no_service(tmp_path):
    run = node(tmp_path, state="", max_sleeps=1000).run(EXAMPLES["dev/burst"].user_data)
    assert run.returncode != 0 and not run.ran("aws", "s3", "sync")
    assert run.ran("aws", "complete-lifecycle-action", "ABANDON")


# -- the bootstrap, warm-pool path ----------------------------------------------------------------


@pytest.mark.parametrize("state", ["Warmed:Stopped", "Warmed:Hibernated", "Warmed:Running"])
def test_a_warm_pool_boot_prepares_weights_and_image_then_completes_the_hook_without_an_engine(tmp_path, state):
    plan = EXAMPLES["prod/steady"]
    assert plan.warm_pool_size > 0
    run = node(tmp_path, state=state).run(plan.user_data)
    assert run.returncode == 0, run.stderr
    done = lifecycle(run, "CONTINUE")
    assert run.first("aws", "s3", "sync") < done and run.first("docker", "pull") < done
    assert not run.ran("docker", "run") and not run.ran("nvidia-smi") and not run.ran("systemctl", "start")


# -- the node agent -------------------------------------------------------------------------------

VLLM_METRICS = """\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="llama-3-8b"} 3.0
vllm:num_requests_running{engine="1",model_name="llama-3-8b"} 1.0
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="llama-3-8b"} 2.0
vllm:num_requests_waiting_by_reason{reason="capacity"} 9.0
vllm:num_requests_running_total 40
"""
IDLE_METRICS = VLLM_METRICS.replace("} 3.0", "} 0.0").replace("} 1.0", "} 0.0").replace("} 2.0", "} 0.0")


def agent(plan: AwsFleetPlan) -> str:
    return installed(plan.user_data, "AGENT")


def with_states(script: str, *states: str) -> str:
    """The agent, with IMDS's target lifecycle state answering `states` in turn (last one sticks):
    a shell function in front of the curl stub, counting calls in a file (imds runs in a subshell)."""
    cases = " ".join(f"{i}) echo {s};;" for i, s in enumerate(states[:-1], 1))
    shim = (
        "curl() {\n"
        '  case "$*" in\n'
        "    *target-lifecycle-state*)\n"
        '      n=$(( $(cat state-calls 2>/dev/null || echo 0) + 1 )); echo "$n" > state-calls\n'
        f'      case "$n" in {cases} *) echo {states[-1]};; esac; return 0;;\n'
        "  esac\n"
        '  command curl "$@"\n'
        "}\n"
    )
    first, rest = script.split("\n", 1)
    return f"{first}\n{shim}{rest}"


def published(run) -> list[tuple[str, str]]:
    out = []
    for call in run.commands("aws"):
        if "put-metric-data" in call and "--value" in call:
            out.append((call[call.index("--metric-name") + 1], call[call.index("--value") + 1]))
    return out


def test_the_agent_publishes_nothing_before_the_engine_is_healthy(tmp_path):
    run = (
        node(tmp_path, max_sleeps=5)
        .fail("curl", when="/health")
        .answer("curl", VLLM_METRICS, when="/metrics")
        .run(agent(EXAMPLES["dev/burst"]))
    )
    assert run.stopped_by_sleep_limit and run.ran("curl", "/health")
    assert published(run) == []


def test_the_agent_publishes_nothing_while_the_node_is_not_in_service(tmp_path):
    run = (
        node(tmp_path, state="Warmed:Pending", max_sleeps=5)
        .answer("curl", VLLM_METRICS, when="/metrics")
        .run(agent(EXAMPLES["dev/burst"]))
    )
    assert run.stopped_by_sleep_limit and published(run) == []
    assert not run.ran("aws", "complete-lifecycle-action")  # never served, so nothing to drain


def test_the_agent_computes_in_flight_from_the_engines_gauges(tmp_path):
    plan = EXAMPLES["prod/steady"]  # signal in_flight
    run = node(tmp_path, max_sleeps=2).answer("curl", VLLM_METRICS, when="/metrics").run(agent(plan))
    assert set(published(run)) == {("InFlightRequests", "6")}  # 3 + 1 running, 2 waiting; look-alikes ignored
    call = run.calls[run.first("aws", "put-metric-data")]
    assert f"AutoScalingGroupName={plan.asg_name}" in call and "InferStack" in call


def test_a_queue_depth_fleet_publishes_its_signal_and_in_flight_for_scale_in(tmp_path):
    plan = EXAMPLES["dev/burst"]
    run = node(tmp_path, max_sleeps=2).answer("curl", VLLM_METRICS, when="/metrics").run(agent(plan))
    assert set(published(run)) == {("PendingRequests", "2"), ("InFlightRequests", "6")}


LATENCY_BEFORE = """\
# TYPE vllm:e2e_request_latency_seconds histogram
vllm:e2e_request_latency_seconds_bucket{engine="0",le="0.5"} 1.0
vllm:e2e_request_latency_seconds_bucket{engine="0",le="1.0"} 3.0
vllm:e2e_request_latency_seconds_bucket{engine="0",le="+Inf"} 4.0
vllm:e2e_request_latency_seconds_bucket{engine="1",le="0.5"} 1.0
vllm:e2e_request_latency_seconds_bucket{engine="1",le="1.0"} 2.0
vllm:e2e_request_latency_seconds_bucket{engine="1",le="+Inf"} 2.0
vllm:e2e_request_latency_seconds_count{engine="0"} 4.0
"""
# Per bound, summed over both engines: before 2, 5, 6; after 4, 9, 11. Growth 2, 4, 5, so the
# buckets gained 2 (<= 0.5 s), 2 (0.5-1 s) and 1 (> 1 s, published at the last finite bound, 1.0).
LATENCY_AFTER = (
    LATENCY_BEFORE.replace('"0",le="0.5"} 1.0', '"0",le="0.5"} 3.0')
    .replace('"0",le="1.0"} 3.0', '"0",le="1.0"} 6.0')
    .replace('"0",le="+Inf"} 4.0', '"0",le="+Inf"} 8.0')
    .replace('"1",le="1.0"} 2.0', '"1",le="1.0"} 3.0')
    .replace('"1",le="+Inf"} 2.0', '"1",le="+Inf"} 3.0')
)


def with_histograms(script: str, before: str, after: str, tmp_path) -> str:
    """The agent, with its once-a-minute histogram scrape (curl --max-time 10) answering `before`
    the first time and `after` from then on."""
    (tmp_path / "before.txt").write_text(before)
    (tmp_path / "after.txt").write_text(after)
    shim = (
        "curl() {\n"
        '  case "$*" in\n'
        "    *'max-time 10'*)\n"
        f"      if [ -e {tmp_path}/scraped ]; then cat {tmp_path}/after.txt; else touch {tmp_path}/scraped; "
        f"cat {tmp_path}/before.txt; fi; return 0;;\n"
        "  esac\n"
        '  command curl "$@"\n'
        "}\n"
    )
    first, rest = script.split("\n", 1)
    return f"{first}\n{shim}{rest}"


def distributions(run) -> list[tuple[str, list[str], list[str]]]:
    out = []
    for call in run.commands("aws"):
        if "put-metric-data" in call and "--values" in call:
            i, j = call.index("--values"), call.index("--counts")
            out.append((call[call.index("--metric-name") + 1], call[i + 1 : j], call[j + 1 :]))
    return out


def test_the_agent_publishes_the_latency_histogram_as_a_distribution_of_the_minutes_new_requests(tmp_path):
    plan = EXAMPLES["dev/burst"]
    script = with_histograms(agent(plan), LATENCY_BEFORE, LATENCY_AFTER, tmp_path)
    run = node(tmp_path, max_sleeps=6).answer("curl", VLLM_METRICS, when="/metrics").run(script)
    assert run.stopped_by_sleep_limit
    # The first scrape only remembers; the one a minute later (4 ticks of 15 s) publishes the growth.
    assert distributions(run) == [("request_latency_seconds", ["0.5", "1.0"], ["2", "3"])]
    call = run.calls[run.first("aws", "--values")]
    assert f"AutoScalingGroupName={plan.asg_name}" in call and "Seconds" in call and "InferStack" in call


def test_an_engine_restart_publishes_no_negative_counts(tmp_path):
    script = with_histograms(agent(EXAMPLES["dev/burst"]), LATENCY_AFTER, LATENCY_BEFORE, tmp_path)
    run = node(tmp_path, max_sleeps=6).answer("curl", VLLM_METRICS, when="/metrics").run(script)
    assert run.stopped_by_sleep_limit and distributions(run) == []


def test_the_agent_completes_the_termination_hook_once_drained(tmp_path):
    plan = EXAMPLES["dev/burst"]
    script = with_states(agent(plan), "InService", "InService", "Terminated")
    run = node(tmp_path, max_sleeps=50).answer("curl", IDLE_METRICS, when="/metrics").run(script)
    assert run.returncode == 0 and not run.stopped_by_sleep_limit, run.stderr
    done = lifecycle(run, "CONTINUE", DRAIN_HOOK)
    assert INSTANCE in run.calls[done] and plan.asg_name in run.calls[done]
    assert run.first("curl", "/metrics") < done


def test_a_busy_node_is_released_after_the_bounded_drain(tmp_path):
    plan = EXAMPLES["dev/burst"]
    script = with_states(agent(plan), "InService", "Terminated")
    run = node(tmp_path, max_sleeps=1000).answer("curl", VLLM_METRICS, when="/metrics").run(script)
    assert run.returncode == 0 and not run.stopped_by_sleep_limit, run.stderr
    waits = [c for c in run.commands("sleep") if c == [str(5)]]
    assert len(waits) * 5 == plan.readiness.drain_seconds <= plan.readiness.drain_hook_timeout
    assert run.ran("aws", "complete-lifecycle-action", DRAIN_HOOK, "CONTINUE")


def test_a_node_going_back_to_the_warm_pool_drains_too(tmp_path):
    script = with_states(agent(EXAMPLES["prod/steady"]), "InService", "Warmed:Stopped")
    run = node(tmp_path, max_sleeps=50).answer("curl", IDLE_METRICS, when="/metrics").run(script)
    assert run.ran("aws", "complete-lifecycle-action", DRAIN_HOOK, "CONTINUE")


# -- shellcheck -----------------------------------------------------------------------------------


@pytest.mark.parametrize("key", sorted(EVERY))
def test_every_aws_user_data_and_the_scripts_it_installs_are_shellcheck_clean(tmp_path, key):
    user_data = EVERY[key].user_data
    for name, script in (
        ("user data", user_data),
        ("bootstrap", installed(user_data, "NODE")),
        ("agent", installed(user_data, "AGENT")),
    ):
        assert shellcheck(script, tmp_path) == "", f"{key} {name}"


def test_a_serving_node_that_reboots_serves_again_without_abandoning(tmp_path):
    # no pending launch action after a reboot: completing it fails, and that must not abandon the node
    run = node(tmp_path).fail("aws", when="complete-lifecycle-action").run(EXAMPLES["dev/burst"].user_data)
    assert run.returncode == 0, run.stderr
    assert run.ran("docker", "run") and run.ran("systemctl", "start", "inferstack-agent.service")
    assert not run.ran("aws", "ABANDON")
