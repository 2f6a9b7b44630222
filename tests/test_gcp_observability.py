"""GCP observability: what the nodes ship, the Cloud Monitoring dashboard and the SLO alert policies.

- The PromQL of every dashboard widget and alert policy passes `promtool check rules` (Prometheus'
  own parser), and the latency alert fires on a synthetic breach and stays quiet on a healthy
  series (`promtool test rules`), with the series labelled as the collector labels them.
- The dashboard follows Cloud Monitoring's mosaic layout rules, and every metric it and the alerts
  name is one the stack publishes: the collector's kept series, `up`, the node agent's GPU series
  (read out of the rendered agent), or Cloud TPU's own metrics.
- The collector's configuration wires every component it names, and the node agent, run under
  stubs, publishes the GPU series a minute apart and nothing while the engine is not healthy.
- Through the mocks: one alert policy per alert with its PromQL condition, severity and the
  spec's channels of the target's project; one dashboard per project; the collector image's
  mirror gets a reader grant, the public default none.
"""

from __future__ import annotations

import json
import re

import pytest
import yaml
from promtool import needs_promtool, promtool

from conftest import STACKS, Resources, plan_of_text
from inferstack.errors import SpecError
from inferstack.planning import gcp_observability as gcp_obs
from inferstack.planning import observability as obs
from inferstack.planning.gcp import plan_gcp_fleet, plan_tpu
from inferstack.spec.loader import load_spec, parse_spec
from node_harness import NodeHarness

RESEARCH_TEXT = (STACKS / "research.yaml").read_text()
SPEC = load_spec(STACKS / "research.yaml").spec
GPU = plan_gcp_fleet(SPEC, "research", "chat")
TPU = plan_tpu(SPEC, "research", "reasoning")
TARGETS = [
    gcp_obs.DashboardTarget("chat", "gcp-gpu-fleet", GPU.region, GPU.metrics_label, "vllm", GPU.metrics_scope),
    gcp_obs.DashboardTarget("reasoning", "gcp-tpu", TPU.region, TPU.metrics_label, "vllm", TPU.metrics_scope),
]
BOARD = gcp_obs.dashboard(TARGETS, "inferstack assistant research")


def _queries() -> list[str]:
    widgets = [t["widget"] for t in BOARD["mosaicLayout"]["tiles"]]
    board = [d["timeSeriesQuery"]["prometheusQuery"] for w in widgets for d in w.get("xyChart", {}).get("dataSets", [])]
    return board + [p.query for p in (*GPU.alert_policies, *TPU.alert_policies)]


def test_promql_names_follow_cloud_monitorings_mapping():
    assert gcp_obs.promql_name("custom.googleapis.com/inferstack/gpu/utilization") == (
        "custom_googleapis_com:inferstack_gpu_utilization"
    )
    assert (
        gcp_obs.promql_name("tpu.googleapis.com/accelerator/duty_cycle") == "tpu_googleapis_com:accelerator_duty_cycle"
    )


# -- every query, through Prometheus' parser ----------------------------------------------------


def _rules_file() -> dict:
    records = [{"record": f"inferstack:q{i}", "expr": q} for i, q in enumerate(_queries())]
    alerts = [
        {"alert": p.alert_rule, "expr": p.query, "for": p.duration, "labels": p.labels}
        for p in (*GPU.alert_policies, *TPU.alert_policies)
    ]
    return {"groups": [{"name": "board", "rules": records}, {"name": "alerts", "rules": alerts}]}


@needs_promtool
def test_every_dashboard_and_alert_query_parses_as_promql(tmp_path):
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(_rules_file()))
    run = promtool(tmp_path, "check", "rules", "rules.yaml")
    assert run.returncode == 0, run.stdout + run.stderr


def _latency_series(slow: bool) -> list[dict]:
    """Two hours of the chat target's latency histogram, as the collector labels it (two VMs)."""
    out = []
    for vm in ("chat-a", "chat-b"):
        sel = f'inferstack_target="{GPU.metrics_label}",instance="{vm}"'
        out += [
            {
                "series": f'vllm:e2e_request_latency_seconds_bucket{{{sel},le="10"}}',
                "values": "0+0x120" if slow else "0+5x120",
            },
            {"series": f'vllm:e2e_request_latency_seconds_bucket{{{sel},le="60"}}', "values": "0+5x120"},
            {"series": f'vllm:e2e_request_latency_seconds_bucket{{{sel},le="+Inf"}}', "values": "0+5x120"},
        ]
    return out


@needs_promtool
@pytest.mark.parametrize("slow", [True, False])
def test_the_gcp_latency_alert_fires_on_slow_requests_only(tmp_path, slow):
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(_rules_file()))
    policy = next(p for p in GPU.alert_policies if p.alert.key == "latency-p95")
    expected = [{"exp_labels": {**policy.labels, "alertname": policy.alert_rule}}] if slow else []
    for e in expected:
        e["exp_labels"].pop("alertname")
    tests = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": _latency_series(slow),
                "alert_rule_test": [{"eval_time": "110m", "alertname": policy.alert_rule, "exp_alerts": expected}],
            }
        ],
    }
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests))
    run = promtool(tmp_path, "test", "rules", "tests.yaml")
    assert run.returncode == 0, run.stdout + run.stderr


# -- the dashboard ------------------------------------------------------------------------------


def test_the_dashboard_is_a_valid_mosaic_of_the_shared_panels():
    layout = BOARD["mosaicLayout"]
    assert 1 <= layout["columns"] <= 48 and BOARD["displayName"]
    cells: set[tuple[int, int]] = set()
    for tile in layout["tiles"]:
        assert tile["width"] >= 1 and tile["height"] >= 1 and tile["xPos"] + tile["width"] <= layout["columns"]
        area = {
            (x, y)
            for x in range(tile["xPos"], tile["xPos"] + tile["width"])
            for y in range(tile["yPos"], tile["yPos"] + tile["height"])
        }
        assert not area & cells, f"tile {tile['widget']['title']} overlaps another"
        cells |= area
        kinds = [k for k in ("xyChart", "text", "scorecard", "timeSeriesTable") if k in tile["widget"]]
        assert len(kinds) == 1, tile
        for d in tile["widget"].get("xyChart", {}).get("dataSets", []):
            assert d["timeSeriesQuery"]["prometheusQuery"] and d["plotType"] == "LINE"
    titles = [t["widget"]["title"] for t in layout["tiles"]]
    panels = [p.title for p in obs.PANELS]
    assert titles == ["chat", *panels, "reasoning", *[p.replace("GPU", "TPU") for p in panels]]
    json.loads(gcp_obs.dashboard_json(TARGETS, "x"))


def _agent_metrics() -> set[str]:
    agent = GPU.startup_script[GPU.startup_script.index("<<'AGENT'") :]
    return set(re.findall(r"custom\.googleapis\.com/inferstack/gpu/[a-z_]+", agent))


def test_every_metric_the_dashboard_and_alerts_name_is_one_the_stack_publishes():
    published = set(gcp_obs.kept_series("vllm")) | {"up"}
    published |= {gcp_obs.promql_name(m) for m in _agent_metrics()}
    published |= {gcp_obs.promql_name(gcp_obs.TPU_DUTY_CYCLE_METRIC), gcp_obs.promql_name(gcp_obs.TPU_MEMORY_METRIC)}
    named = set()
    for q in _queries():
        named |= set(re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{", q))
    assert named and named <= published, named - published
    # And the other way: each GPU series the agent writes is on the board.
    assert {gcp_obs.promql_name(m) for m in _agent_metrics()} <= named


def test_the_gpu_panels_select_the_target_and_the_tpu_panels_its_slices():
    assert f'inferstack_target="{GPU.metrics_label}"' in obs.promql(
        "gpu_utilization", obs.engine_series(SPEC), GPU.metrics_scope
    )
    tpu = obs.promql("gpu_memory_used", obs.engine_series(SPEC), TPU.metrics_scope)
    assert 'monitored_resource="tpu_worker"' in tpu and f'node_id=~"{TPU.slices[0]}"' in tpu


# -- the collector --------------------------------------------------------------------------------


def test_the_collector_configuration_wires_what_it_names_and_keeps_only_what_is_read():
    config = json.loads(gcp_obs.collector_yaml("vllm", 8000, GPU.metrics_label))
    pipeline = config["service"]["pipelines"]["metrics"]
    for section in ("receivers", "processors", "exporters"):
        assert set(pipeline[section]) <= set(config[section])
    assert config["service"]["extensions"] == list(config["extensions"])
    (scrape,) = config["receivers"]["prometheus"]["config"]["scrape_configs"]
    labels = scrape["static_configs"][0]["labels"]
    assert labels == {"inferstack_target": GPU.metrics_label, "instance": "${env:INFERSTACK_INSTANCE}"}
    keep = re.compile(scrape["metric_relabel_configs"][0]["regex"])
    assert keep.fullmatch("vllm:e2e_request_latency_seconds_bucket") and not keep.fullmatch("vllm:cache_config_info")
    # The collector expands ${...} in its configuration: nothing else may hold a '$'.
    text = json.dumps(config)
    assert text.count("$") == text.count("${env:INFERSTACK_INSTANCE}")


def test_the_collector_runs_on_the_host_network_after_the_engine_locked_down(tmp_path):
    h = NodeHarness(tmp_path, extra_stubs=("/var/lib/nvidia/bin/nvidia-smi",))
    h.answer("curl", "4815162342", when="instance/id")
    h.answer("curl", "chat-a", when="instance/name")
    h.answer("curl", "projects/1/zones/europe-west4-a", when="instance/zone")
    h.answer("/var/lib/nvidia/bin/nvidia-smi", "GPU 0: NVIDIA L4\n", when="--list-gpus")
    run = h.run(GPU.startup_script)
    assert run.returncode == 0, run.stderr
    named = {
        c[c.index("--name") + 1]: i for i, c in enumerate(run.calls) if c[:2] == ["docker", "run"] and "--name" in c
    }
    assert named["engine"] < named["collector"]
    call = run.calls[named["collector"]]
    assert call[call.index("--network") + 1] == "host" and "--read-only" in call and "--cap-drop" in call
    assert "INFERSTACK_INSTANCE=chat-a" in call
    config = run.file("/mnt/stateful_partition/inferstack/otel/config.yaml").read_text()
    assert json.loads(config) == json.loads(gcp_obs.collector_yaml("vllm", GPU.port, GPU.metrics_label))


def test_only_tpu_worker_0_runs_the_collector():
    script = TPU.startup_script
    block = script[script.index("# 5. The engine's metrics") : script.index("# 6. Ready")]
    assert 'if [ "$WORKER" = "0" ]; then' in block and "--name collector" in block


# -- the node agent's GPU series ------------------------------------------------------------------


def _published(run) -> list[dict]:
    return [
        json.loads(c[c.index("-d") + 1])
        for c in run.commands("curl")
        if any("monitoring.googleapis.com" in a for a in c)
    ]


def _agent_node(tmp_path, **kw) -> NodeHarness:
    h = NodeHarness(tmp_path, extra_stubs=("/var/lib/nvidia/bin/nvidia-smi",), **kw)
    h.answer("curl", "4815162342", when="instance/id")
    h.answer("curl", "projects/1/zones/europe-west4-a", when="instance/zone")
    h.answer("curl", '{"access_token":"ya29.token"}', when="default/token")
    h.answer("curl", "", when="/metrics")
    return h


def _agent() -> str:
    script = GPU.startup_script
    m = re.search(r"<<'AGENT'\n(.*?)\nAGENT\n", script, re.S)
    assert m
    return m.group(1) + "\n"


def test_a_healthy_node_publishes_its_gpu_series_once_a_minute(tmp_path):
    run = (
        _agent_node(tmp_path, max_sleeps=6)
        .answer("/var/lib/nvidia/bin/nvidia-smi", "90, 20000\n70, 22000\n", when="utilization.gpu,memory.used")
        .run(_agent())
    )
    gpu = [p for p in _published(run) if "gpu/" in json.dumps(p)]
    assert len(gpu) == 2  # ticks 0 and 4 of six
    series = {s["metric"]["type"]: s for s in gpu[0]["timeSeries"]}
    util = series[gcp_obs.GPU_UTILIZATION_METRIC]
    assert util["points"][0]["value"] == {"doubleValue": 80.0}
    assert series[gcp_obs.GPU_MEMORY_METRIC]["points"][0]["value"] == {"doubleValue": 42000 * 1048576}
    assert util["metric"]["labels"] == {"inferstack_target": GPU.metrics_label}
    assert util["resource"] == {
        "type": "gce_instance",
        "labels": {"project_id": GPU.project, "instance_id": "4815162342", "zone": "europe-west4-a"},
    }


def test_a_booting_node_publishes_no_gpu_series(tmp_path):
    run = (
        _agent_node(tmp_path, max_sleeps=3)
        .fail("curl", when="/health", rc=7)
        .answer("/var/lib/nvidia/bin/nvidia-smi", "90, 20000\n")
        .run(_agent())
    )
    assert _published(run) == [] and not run.ran("/var/lib/nvidia/bin/nvidia-smi")


# -- through the mocks ----------------------------------------------------------------------------

CHANNEL = "projects/acme-ml-staging/notificationChannels/4242"


@pytest.fixture(scope="module")
def research() -> Resources:
    text = RESEARCH_TEXT + f"observability:\n  alerts:\n    gcp_notification_channels: [{CHANNEL}]\n"
    assert "\nobservability:" not in RESEARCH_TEXT
    return Resources(plan_of_text(text, "research"))


def test_each_alert_is_a_policy_with_its_promql_condition_severity_and_channels(research):
    policies = {r["name"]: r["inputs"] for r in research.of_type("gcp:monitoring/alertPolicy:AlertPolicy")}
    assert set(policies) == {
        f"{t}-slo-{p.alert.key}" for t, plan in (("chat", GPU), ("reasoning", TPU)) for p in plan.alert_policies
    }
    p95 = policies["chat-slo-latency-p95"]
    (condition,) = p95["conditions"]
    promql = condition["conditionPrometheusQueryLanguage"]
    assert promql["query"] == next(p.query for p in GPU.alert_policies if p.alert.key == "latency-p95")
    assert promql["duration"] == "120s" and promql["labels"]["severity"] == "page"
    assert p95["severity"] == "CRITICAL" and p95["notificationChannels"] == [CHANNEL]
    assert policies["chat-slo-availability-burn-3d"]["severity"] == "WARNING"
    assert p95["userLabels"]["inferstack-target"] == GPU.metrics_label


def test_one_dashboard_per_project_with_every_gcp_target(research):
    (board,) = research.of_type("gcp:monitoring/dashboard:Dashboard")
    assert board["inputs"]["project"] == GPU.project
    body = json.loads(board["inputs"]["dashboardJson"])
    assert [t["widget"]["title"] for t in body["mosaicLayout"]["tiles"] if "text" in t["widget"]][:1] == ["chat"]


def _grants(text: str) -> list[dict]:
    res = Resources(plan_of_text(text, "research"))
    return [r["inputs"] for r in res.of_type("gcp:artifactregistry/repositoryIamMember:RepositoryIamMember")]


def test_a_collector_mirror_in_artifact_registry_is_readable_by_the_nodes_the_public_default_needs_nothing():
    default = _grants(RESEARCH_TEXT)
    assert all(g["repository"] != "google-cloud-opentelemetry-collector" for g in default)
    mirror = "europe-west4-docker.pkg.dev/acme-ml-staging/mirror/otelcol-google:0.160.0"
    text = RESEARCH_TEXT.replace(
        "    kind: gcp-gpu-fleet\n", f"    kind: gcp-gpu-fleet\n    collector_image: {mirror}\n", 1
    )
    assert text != RESEARCH_TEXT
    assert [g["repository"] for g in _grants(text)].count("mirror") == 1
    spec = parse_spec(text, "research.yaml").spec
    script = plan_gcp_fleet(spec, "research", "chat").startup_script
    assert f"docker pull {mirror}" in script and "--registries=europe-west4-docker.pkg.dev" in script


def test_the_plan_lists_the_gcp_targets_alert_policies():
    entries = {e["target"]: e for e in obs.describe(SPEC, "research")}
    assert entries["chat"]["platform"] == "cloud-monitoring" and entries["chat"]["left_out"] == []
    assert {a["name"] for a in entries["reasoning"]["alerts"]} == {p.display_name for p in TPU.alert_policies}


def test_a_target_whose_project_has_none_of_the_channels_is_refused():
    text = (
        RESEARCH_TEXT
        + "observability:\n  alerts:\n    gcp_notification_channels: [projects/acme-ops/notificationChannels/1]\n"
    )
    with pytest.raises(SpecError) as e:
        parse_spec(text, "research.yaml")
    messages = [
        f.message for f in e.value.findings if f.loc[:3] == ("observability", "alerts", "gcp_notification_channels")
    ]
    assert any("target chat runs in project acme-ml-staging" in m for m in messages)
    assert any("projects/acme-ops/notificationChannels/1 is in project acme-ops" in m for m in messages)
