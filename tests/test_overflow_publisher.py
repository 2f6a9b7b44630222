"""The overflow publisher: its planned config, its pod wiring, and its script run under bash with
stub commands (tests/node_harness.py): Envoy's admin, the engines' metrics, the clouds' APIs and
the AWS CLI are stubs, jq is the real one. It must hold the trigger for for_seconds before raising
overflow.active, clear it with the same hysteresis, write each cloud's wake metric exactly as the
fleet's autoscaler reads it, skip a cloud with no identity, and never show a token."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from conftest import STACKS
from inferstack.planning.overflow import (
    GCP_TOKEN_DIR,
    GCP_TOKEN_EXPIRATION_SECONDS,
    PUBLISHER_CLIENT_TLS_DIR,
    PUBLISHER_IDENTITY_CONFIGMAP,
    PUBLISHER_IDENTITY_DIR,
    gcp_token_audience,
)
from inferstack.planning.overflow.gateway import plan_gateway
from inferstack.planning.overflow.plan import plan_upstreams
from inferstack.planning.overflow.publisher import plan_publisher, publisher_config
from inferstack.planning.overflow.ranges import gateway_egress_ranges
from inferstack.spec.checks import check_spec
from inferstack.spec.loader import parse_spec
from node_harness import NodeHarness, shellcheck

pytestmark = pytest.mark.skipif(shutil.which("jq") is None, reason="the publisher's script needs jq")

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden" / "overflow" / "hybrid-publisher.sh"
HYBRID = (STACKS / "hybrid.yaml").read_text()
SECRET = "ya29.FEDERATED-SECRET-TOKEN"
SA_SECRET = "ya29.SERVICE-ACCOUNT-SECRET"
JWT = "eyJhbGciOiJSUzI1NiJ9.PROJECTED-JWT.sig"
AWS_IDENTITY = {
    "region": "eu-central-1",
    "trustAnchorArn": "arn:aws:rolesanywhere:eu-central-1:123456789012:trust-anchor/0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d",
    "profileArn": "arn:aws:rolesanywhere:eu-central-1:123456789012:profile/1a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d",
    "roleArn": "arn:aws:iam::123456789012:role/hybrid-overflow-publisher",
}
AUDIENCE = (
    "//iam.googleapis.com/projects/123456789/locations/global/workloadIdentityPools/hybrid-overflow/providers/muc"
)


def spec_of(text: str = HYBRID):
    return parse_spec(text).spec


def gateway(text: str = HYBRID):
    spec = spec_of(text)
    return plan_gateway(spec, "hybrid", plan_upstreams(spec, "hybrid"), gateway_egress_ranges(spec))


def pod(text: str = HYBRID) -> dict:
    dep = next(m.body for m in gateway(text).manifests if m.body["kind"] == "Deployment")
    return dict(dep["spec"]["template"]["spec"])


# -- the plan ----------------------------------------------------------------------------------------


def test_the_config_follows_the_spec_and_the_fleets_wake_metrics():
    spec = spec_of()
    config = publisher_config(spec, plan_upstreams(spec, "hybrid"))
    assert (config.pending_requests, config.for_seconds, config.primary_unhealthy) == (32, 30, True)
    assert config.hold_cycles == 3 and config.cycle_seconds == 10 and config.replicas == 2
    assert config.engine_queue_metric == "vllm:num_requests_waiting"
    aws, gcp = config.targets
    assert (aws.target, aws.cloud, aws.cluster) == ("aws-burst", "aws", "burst-aws-burst")
    assert (aws.namespace, aws.metric) == ("InferStack", "PendingRequests")
    assert (gcp.target, gcp.cloud, gcp.cluster, gcp.resource) == ("gcp-burst", "gcp", "burst-gcp-burst", "global")
    # The GCP group's autoscaler filter and the node agents' series: the same metric and group.
    upstream = {u.target: u for u in plan_upstreams(spec, "hybrid")}
    assert gcp.metric == upstream["gcp-burst"].wake.name
    assert gcp.group == upstream["gcp-burst"].wake.dimensions["group"]
    assert aws.group == upstream["aws-burst"].wake.dimensions["AutoScalingGroupName"]


def test_the_pod_mounts_the_identity_the_client_certificate_and_a_projected_token():
    spec = pod()
    envoy, publisher = spec["containers"]
    assert publisher["image"].startswith("registry.muc.acme.internal/inferstack/overflow-publisher@sha256:")
    volumes = {v["name"]: v for v in spec["volumes"]}
    identity = volumes["publisher-identity"]["configMap"]
    assert identity["name"] == PUBLISHER_IDENTITY_CONFIGMAP and identity["optional"] is True
    assert volumes["publisher-client-tls"]["secret"]["secretName"] == "overflow-publisher-cert"
    (source,) = volumes["publisher-gcp-token"]["projected"]["sources"]
    assert source["serviceAccountToken"] == {
        "audience": gcp_token_audience("hybrid"),
        "expirationSeconds": GCP_TOKEN_EXPIRATION_SECONDS,
        "path": "token",
    }
    # The default API token stays off: the projected one is the publisher's only credential.
    assert spec["automountServiceAccountToken"] is False
    mounts = {m["mountPath"]: m for m in publisher["volumeMounts"]}
    assert {PUBLISHER_IDENTITY_DIR, PUBLISHER_CLIENT_TLS_DIR, GCP_TOKEN_DIR} <= set(mounts)
    assert all(m["readOnly"] for p, m in mounts.items() if p != "/tmp")
    assert volumes["publisher-work"]["emptyDir"]["medium"] == "Memory"
    # Envoy sees none of the publisher's credentials.
    assert {m["name"] for m in envoy["volumeMounts"]} == {"config", "tls", "cloud-ca"}


def test_google_apis_resolve_to_the_restricted_vip_only_with_a_gcp_burst_target():
    (alias,) = pod()["hostAliases"]
    assert alias["ip"] == "199.36.153.4"
    assert set(alias["hostnames"]) == {
        "sts.googleapis.com",
        "monitoring.googleapis.com",
        "iamcredentials.googleapis.com",
    }
    # Upstreams on AWS alone: no alias, no projected token (nor a GCP script path).
    spec = spec_of()
    aws_only = [u for u in plan_upstreams(spec, "hybrid") if u.cloud == "aws"]
    plan = plan_publisher(spec, "hybrid", aws_only)
    assert plan is not None and plan.host_aliases == ()
    assert "publisher-gcp-token" not in {v["name"] for v in plan.volumes}
    assert "publisher-client-tls" in {v["name"] for v in plan.volumes}
    assert "publish_gcp" not in plan.script


def test_without_a_publisher_image_the_plan_warns_that_the_fleets_would_never_wake():
    text = "\n".join(line for line in HYBRID.splitlines() if "publisher_image:" not in line) + "\n"
    spec = spec_of(text)
    assert plan_publisher(spec, "hybrid", plan_upstreams(spec, "hybrid")) is None
    plan = gateway(text)
    assert plan.publisher_script is None
    assert "publish.sh" not in next(m.body for m in plan.manifests if m.body["kind"] == "ConfigMap")["data"]
    warnings = [f for f in check_spec(spec) if f.severity == "warning" and "would never wake" in f.message]
    assert {f.message.split(":")[0] for f in warnings} == {
        "burst fleet aws-burst would never wake",
        "burst fleet gcp-burst would never wake",
    }
    assert all(f.loc == ("overflow", "gateway", "publisher_image") for f in warnings)
    assert not [f for f in check_spec(spec_of()) if "would never wake" in f.message]


def test_the_rendered_script_matches_golden_and_is_shellcheck_clean(tmp_path):
    script = gateway().publisher_script
    assert script is not None
    if os.environ.get("INFERSTACK_UPDATE_GOLDEN"):
        GOLDEN.write_text(script)
    assert script == GOLDEN.read_text()
    assert shellcheck(script, tmp_path) == ""


# -- the script, run -----------------------------------------------------------------------------------


def stats(local_healthy: int, aws_healthy: int, gcp_healthy: int, pending: int = 0, p95: float | None = None) -> str:
    """Envoy's /stats?format=json for the publisher's filter (admin's JSON renderer's shape)."""
    out: list[dict] = [
        {"name": "cluster.local.membership_healthy", "value": local_healthy},
        {"name": "cluster.local.upstream_rq_pending_active", "value": pending},
        {"name": "cluster.burst-aws-burst.membership_healthy", "value": aws_healthy},
        {"name": "cluster.burst-gcp-burst.membership_healthy", "value": gcp_healthy},
    ]
    quantiles = [0, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 100]
    values = [{"interval": None if p95 is None else p95 * q / 95, "cumulative": 1.0} for q in quantiles]
    out.append(
        {
            "histograms": {
                "supported_quantiles": quantiles,
                "computed_quantiles": [{"name": "cluster.local.upstream_rq_time", "values": values}],
            }
        }
    )
    return json.dumps({"stats": out})


CLUSTERS = json.dumps(
    {
        "cluster_statuses": [
            {
                "name": "local",
                "host_statuses": [
                    {"address": {"socket_address": {"address": "10.20.1.5", "port_value": 8000}}},
                    {"address": {"socket_address": {"address": "10.20.1.6", "port_value": 8000}}},
                ],
            },
            {"name": "burst-aws-burst", "host_statuses": []},
        ]
    }
)


def metrics(waiting: float) -> str:
    return (
        "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.\n"
        "# TYPE vllm:num_requests_waiting gauge\n"
        f'vllm:num_requests_waiting{{engine="0",model_name="m"}} {waiting}\n'
        f'vllm:num_requests_running{{engine="0",model_name="m"}} 99.0\n'
    )


def timeline(script: str, capture: Path, cycles: list[tuple[str, str]]) -> str:
    """The script with curl and aws as shell functions in front of the stubs: Envoy's /stats and
    each engine's /metrics answer cycle by cycle (a cycle is one /stats read; the last sticks), and
    aws keeps a copy of the profile's config it was given. Both then call the recording stubs."""
    capture.mkdir(parents=True, exist_ok=True)
    for i, (stat, metric) in enumerate(cycles, 1):
        (capture / f"stats.{i}").write_text(stat)
        (capture / f"metrics.{i}").write_text(metric)
    (capture / "clusters").write_text(CLUSTERS)
    last = len(cycles)
    shim = f"""CAPTURE={capture}
curl() {{
  local n
  n=$(cat "$CAPTURE/cycle" 2>/dev/null || echo 0)
  case "$*" in
    *127.0.0.1:9901/stats*)
      n=$(( n + 1 )); echo "$n" > "$CAPTURE/cycle"
      [ "$n" -le {last} ] || n={last}
      command curl "$@" >/dev/null; cat "$CAPTURE/stats.$n"; return 0;;
    *127.0.0.1:9901/clusters*) command curl "$@" >/dev/null; cat "$CAPTURE/clusters"; return 0;;
    *:8000/metrics*)
      [ "$n" -le {last} ] || n={last}
      command curl "$@" >/dev/null; cat "$CAPTURE/metrics.$n"; return 0;;
  esac
  command curl "$@"
}}
aws() {{
  cp "$AWS_CONFIG_FILE" "$CAPTURE/aws.config"
  echo "$AWS_PROFILE $AWS_SHARED_CREDENTIALS_FILE" > "$CAPTURE/aws.env"
  command aws "$@"
}}
"""
    first, rest = script.split("\n", 1)
    return f"{first}\n{shim}{rest}"


def harness(tmp_path: Path, max_sleeps: int) -> NodeHarness:
    return (
        NodeHarness(tmp_path, max_sleeps=max_sleeps, extra_real=("jq",))
        .answer("curl", json.dumps({"access_token": SECRET, "expires_in": 3599}), when="sts.googleapis.com")
        .answer("curl", json.dumps({"accessToken": SA_SECRET}), when="iamcredentials.googleapis.com")
    )


def run_publisher(tmp_path: Path, cycles, identity: dict | None, max_sleeps: int | None = None, text: str = HYBRID):
    script = gateway(text).publisher_script
    assert script is not None
    site = tmp_path / "pod"
    (site / "identity").mkdir(parents=True)
    (site / "gcp").mkdir()
    (site / "gcp" / "token").write_text(JWT)
    if identity is not None:
        (site / "identity" / "identity.json").write_text(json.dumps(identity))
    script = (
        script.replace(PUBLISHER_IDENTITY_DIR, str(site / "identity"))
        .replace(GCP_TOKEN_DIR, str(site / "gcp"))
        .replace(PUBLISHER_CLIENT_TLS_DIR, str(site / "client-tls"))
    )
    capture = tmp_path / "capture"
    script = timeline(script, capture, cycles)
    run = harness(tmp_path, max_sleeps or len(cycles)).run(script, env={"POD_NAME": "overflow-gateway-7d9f-abcde"})
    return run, capture


def cycle_of(run, index: int) -> int:
    """The cycle (1-based) a call ran in: one more than the sleeps before it."""
    return 1 + sum(1 for c in run.calls[:index] if c[0] == "sleep")


def runtime_changes(run) -> list[tuple[int, str]]:
    out = []
    for i, call in enumerate(run.calls):
        if call[0] == "curl" and any("runtime_modify" in a for a in call):
            (url,) = [a for a in call if "runtime_modify" in a]
            out.append((cycle_of(run, i), url.rsplit("=", 1)[1]))
    return out


def aws_points(run) -> list[tuple[int, list[str]]]:
    return [(cycle_of(run, i), c[1:]) for i, c in enumerate(run.calls) if c[0] == "aws" and "put-metric-data" in c]


def gcp_series(run) -> list[tuple[int, dict]]:
    out = []
    for i, c in enumerate(run.calls):
        if c[0] == "curl" and any(a.endswith("/timeSeries") for a in c):
            out.append((cycle_of(run, i), json.loads(c[c.index("--data") + 1])))
    return out


IDENTITY = {
    "aws": {"aws-burst": AWS_IDENTITY},
    "gcp": {
        "gcp-burst": {
            "project": "acme-ml-prod",
            "credentialConfig": {
                "type": "external_account",
                "audience": AUDIENCE,
                "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
                "token_url": "https://sts.googleapis.com/v1/token",
                "credential_source": {"file": GCP_TOKEN_DIR + "/token"},
            },
        }
    },
}
BUSY = (stats(2, 1, 0), metrics(20))  # 2 engines x 20 waiting = 40 > 32; the AWS burst cluster is healthy
CALM = (stats(2, 1, 0), metrics(1))


def test_the_trigger_holds_for_for_seconds_then_clears_with_the_same_hysteresis(tmp_path):
    # Cycles 1-5 busy, 6-10 calm; the spec holds 30 s, three cycles of 10 s.
    run, _ = run_publisher(tmp_path, [BUSY] * 5 + [CALM] * 5, IDENTITY)
    assert run.stopped_by_sleep_limit, run.stderr
    # 0 once at start (whatever a previous publisher left); from the third busy cycle a share that
    # rises a step a cycle while the primary is still pressed, falls a step on each calm cycle
    # (never below a step while the trigger holds), and 0 once it clears on the third calm one.
    assert runtime_changes(run) == [(1, "0"), (3, "10"), (4, "20"), (5, "30"), (6, "20"), (7, "10"), (8, "0")]
    assert "trigger fired: 40 requests waiting" in run.stderr
    assert "trigger cleared" in run.stderr


def test_sustained_pressure_raises_the_share_to_all_and_no_further(tmp_path):
    run, _ = run_publisher(tmp_path, [BUSY] * 14, IDENTITY)
    assert runtime_changes(run) == [(1, "0"), *((c, str(10 * (c - 2))) for c in range(3, 13))]


def test_a_flapping_queue_never_fires(tmp_path):
    run, _ = run_publisher(tmp_path, [BUSY, BUSY, CALM] * 3, IDENTITY)
    assert runtime_changes(run) == [(1, "0")]
    assert aws_points(run) == []


def test_overflow_stays_off_while_no_burst_cluster_is_healthy_but_the_fleet_is_woken(tmp_path):
    cold = (stats(2, 0, 0), metrics(20))
    run, _ = run_publisher(tmp_path, [cold] * 5, IDENTITY)
    assert runtime_changes(run) == [(1, "0")]
    assert [c for c, _ in aws_points(run)] == [3, 4, 5]


def test_the_aws_wake_metric_is_the_groups_pending_requests_as_the_roles_anywhere_role(tmp_path):
    run, capture = run_publisher(tmp_path, [BUSY] * 4, IDENTITY)
    points = aws_points(run)
    # Written only while the trigger holds: cycles 3 and 4.
    assert [c for c, _ in points] == [3, 4]
    args = points[0][1]

    def arg(flag: str) -> str:
        return args[args.index(flag) + 1]

    assert arg("--namespace") == "InferStack" and arg("--metric-name") == "PendingRequests"
    assert (
        arg("--dimensions")
        == "AutoScalingGroupName=" + publisher_config(spec_of(), plan_upstreams(spec_of(), "hybrid")).targets[0].group
    )
    assert arg("--region") == "eu-central-1"
    assert arg("--endpoint-url") == "https://monitoring.eu-central-1.amazonaws.com"
    # (40 waiting - 32) over the 2 gateway replicas: each publishes its share.
    assert arg("--value") == "4" and arg("--unit") == "Count"
    config = (capture / "aws.config").read_text()
    assert "[profile aws-burst]" in config
    (process,) = [line for line in config.splitlines() if line.startswith("credential_process = ")]
    assert process.split(" = ", 1)[1].split() == [
        "aws_signing_helper",
        "credential-process",
        "--certificate",
        str(tmp_path / "pod" / "client-tls" / "tls.crt"),
        "--private-key",
        str(tmp_path / "pod" / "client-tls" / "tls.key"),
        "--trust-anchor-arn",
        AWS_IDENTITY["trustAnchorArn"],
        "--profile-arn",
        AWS_IDENTITY["profileArn"],
        "--role-arn",
        AWS_IDENTITY["roleArn"],
        "--region",
        "eu-central-1",
    ]
    # No shared credentials file: the profile's credential process is the only source.
    assert (capture / "aws.env").read_text().split() == ["aws-burst", "/dev/null"]


def test_the_gcp_series_is_the_node_agents_series_with_a_federated_token(tmp_path):
    run, _ = run_publisher(tmp_path, [BUSY] * 4, IDENTITY)
    series = gcp_series(run)
    assert [c for c, _ in series][:4] == [1, 2, 3, 4]
    spec = spec_of()
    gcp = publisher_config(spec, plan_upstreams(spec, "hybrid")).targets[1]
    for _, body in series:
        (ts,) = body["timeSeries"]
        assert ts["metric"] == {
            "type": gcp.metric,
            "labels": {"group": gcp.group, "instance": "overflow-gateway-7d9f-abcde"},
        }
        assert ts["resource"] == {"type": "global", "labels": {"project_id": "acme-ml-prod"}}
        assert (ts["metricKind"], ts["valueType"]) == ("GAUGE", "DOUBLE")
        (point,) = ts["points"]
        assert set(point["interval"]) == {"endTime"} and point["interval"]["endTime"].endswith("Z")
        # The AWS fleet comes first and can be woken: the GCP one is told 0.
        assert point["value"] == {"doubleValue": 0}
    # One token exchange for the run (the token is kept until it nearly expires).
    exchanges = [c for c in run.calls if c[0] == "curl" and "https://sts.googleapis.com/v1/token" in c]
    assert len(exchanges) == 1
    form = exchanges[0]
    for field in (
        "grant_type=urn:ietf:params:oauth:grant-type:token-exchange",
        "audience=" + AUDIENCE,
        "requested_token_type=urn:ietf:params:oauth:token-type:access_token",
        "subject_token_type=urn:ietf:params:oauth:token-type:jwt",
        f"subject_token@{tmp_path / 'pod' / 'gcp' / 'token'}",
    ):
        assert field in form
    posts = [c for c in run.calls if c[0] == "curl" and any(a.endswith("/timeSeries") for a in c)]
    assert all("https://monitoring.googleapis.com/v3/projects/acme-ml-prod/timeSeries" in c for c in posts)
    assert all(any(a.startswith("@") and a.endswith("gcp-gcp-burst.auth") for a in c) for c in posts)


def test_a_gcp_target_first_in_preference_gets_the_demand(tmp_path):
    text = HYBRID.replace("burst: [aws-burst, gcp-burst]", "burst: [gcp-burst, aws-burst]")
    run, _ = run_publisher(tmp_path, [BUSY] * 4, IDENTITY, text=text)
    values = [(c, b["timeSeries"][0]["points"][0]["value"]["doubleValue"]) for c, b in gcp_series(run)]
    assert values[:4] == [(1, 0), (2, 0), (3, 4), (4, 4)]
    # Stopped (the harness's TERM after the last cycle): the pod's series is set back to 0 first.
    assert values[-1] == (5, 0) and run.returncode == 0
    assert aws_points(run) == []  # told 0: AWS is never written a zero


def test_a_missing_identity_file_skips_the_clouds_and_keeps_the_overflow_off(tmp_path):
    run, _ = run_publisher(tmp_path, [BUSY] * 4, None)
    assert run.stopped_by_sleep_limit
    assert runtime_changes(run) == [(1, "0")]
    assert aws_points(run) == [] and gcp_series(run) == []
    assert "no identity file at" in run.stderr
    assert "no AWS identity for aws-burst" in run.stderr


def test_a_cloud_missing_from_the_identity_is_skipped_the_other_is_written(tmp_path):
    only_gcp = {"gcp": IDENTITY["gcp"]}
    run, _ = run_publisher(tmp_path, [BUSY] * 4, only_gcp)
    assert aws_points(run) == []
    assert "no AWS identity for aws-burst" in run.stderr
    assert gcp_series(run)


def test_a_malformed_identity_is_refused_before_it_reaches_a_config_file(tmp_path):
    bad = {
        "aws": {"aws-burst": {**AWS_IDENTITY, "roleArn": "arn:aws:iam::123456789012:role/x\ncredential_process = sh"}}
    }
    run, _ = run_publisher(tmp_path, [BUSY] * 4, bad)
    assert aws_points(run) == []
    assert "malformed" in run.stderr


def test_impersonation_trades_the_federated_token_for_the_service_accounts(tmp_path):
    identity = json.loads(json.dumps(IDENTITY))
    identity["gcp"]["gcp-burst"]["credentialConfig"]["service_account_impersonation_url"] = (
        "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/"
        "publisher@acme-ml-prod.iam.gserviceaccount.com:generateAccessToken"
    )
    run, _ = run_publisher(tmp_path, [BUSY] * 3, identity)
    assert run.ran("curl", "iamcredentials.googleapis.com", "generateAccessToken")
    assert gcp_series(run)


def test_no_token_or_key_is_ever_printed_or_passed_as_an_argument(tmp_path):
    identity = json.loads(json.dumps(IDENTITY))
    identity["gcp"]["gcp-burst"]["credentialConfig"]["service_account_impersonation_url"] = (
        "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/"
        "publisher@acme-ml-prod.iam.gserviceaccount.com:generateAccessToken"
    )
    run, _ = run_publisher(tmp_path, [BUSY] * 5, identity)
    assert gcp_series(run)
    seen = run.stdout + run.stderr + json.dumps(run.calls)
    for secret in (SECRET, SA_SECRET, JWT, "PROJECTED-JWT"):
        assert secret not in seen


def test_envoy_not_answering_decides_nothing_and_never_exits(tmp_path):
    script = gateway().publisher_script
    assert script is not None
    run = harness(tmp_path, 4).fail("curl", when="127.0.0.1:9901/stats").run(script)
    assert run.stopped_by_sleep_limit
    assert "Envoy's admin does not answer yet" in run.stderr
    assert not run.ran("curl", "runtime_modify")
    assert not run.ran("aws")


def test_p95_latency_and_an_unhealthy_primary_fire_too(tmp_path):
    text = HYBRID.replace(
        "trigger: {pending_requests: 32, for_seconds: 30, primary_unhealthy: true}",
        "trigger: {pending_requests: 32, for_seconds: 30, p95_latency_ms: 20000, primary_unhealthy: true}",
    )
    slow = (stats(2, 1, 0, p95=25000.0), metrics(0))
    run, _ = run_publisher(tmp_path, [slow] * 3, IDENTITY, text=text)
    assert runtime_changes(run) == [(1, "0"), (3, "10")]
    assert "p95 25000" in run.stderr
    down = (stats(0, 1, 0), metrics(0))
    # No healthy primary: everything allowed goes to the clouds at once.
    run, _ = run_publisher(tmp_path / "down", [down] * 3, IDENTITY)
    assert runtime_changes(run) == [(1, "0"), (3, "100")]
    assert "no healthy primary" in run.stderr
    # The least the woken fleet is told is one request.
    assert aws_points(run)[0][1][aws_points(run)[0][1].index("--value") + 1] == "1"
