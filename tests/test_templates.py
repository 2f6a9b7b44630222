"""Golden files for rendered templates. Regenerate with INFERSTACK_UPDATE_GOLDEN=1 after a
deliberate template change, and review the diff like code."""

from __future__ import annotations

import os
import subprocess

import pytest

from conftest import ROOT, STACKS
from inferstack.planning.aws_fleet import plan_aws_fleet
from inferstack.planning.gcp import plan_gcp_fleet, plan_tpu
from inferstack.spec.loader import load_spec
from inferstack.spec.models import AwsGpuFleetTarget, GcpGpuFleetTarget

GOLDEN = ROOT / "tests" / "golden"
CASES = [
    ("dev", "burst"),
    ("prod", "steady"),
    ("prod", "burst"),
    ("research", "chat"),
    ("research", "reasoning"),
    ("batch", "batch"),
]


def rendered(stack: str, target: str) -> tuple[str, str]:
    """(golden file name, script) for one target: AWS user data or a GCP startup script."""
    spec = load_spec(STACKS / f"{stack}.yaml").spec
    kind = spec.targets[target]
    if isinstance(kind, AwsGpuFleetTarget):
        return f"{stack}-{target}.user-data.sh", plan_aws_fleet(spec, stack, target).user_data
    if isinstance(kind, GcpGpuFleetTarget):
        return f"{stack}-{target}.startup.sh", plan_gcp_fleet(spec, stack, target).startup_script
    return f"{stack}-{target}.tpu-startup.sh", plan_tpu(spec, stack, target).startup_script


@pytest.mark.parametrize(("stack", "target"), CASES)
def test_rendered_script_matches_golden(stack, target):
    name, script = rendered(stack, target)
    golden = GOLDEN / name
    if os.environ.get("INFERSTACK_UPDATE_GOLDEN"):
        golden.write_text(script)
    assert script == golden.read_text()


@pytest.mark.parametrize(("stack", "target"), CASES)
def test_rendered_script_is_valid_bash(stack, target):
    result = subprocess.run(
        ["bash", "-n", str(GOLDEN / rendered(stack, target)[0])], check=False, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_launch_template_carries_the_rendered_user_data(dev):
    assert dev.user_data() == (GOLDEN / "dev-burst.user-data.sh").read_text()


def test_user_data_fetches_on_the_host_and_runs_the_engine_without_credentials(dev):
    text = dev.user_data()
    assert "aws s3 sync" in text and "--network host" not in text
    assert ":/models/llama-3-8b:ro" in text
    assert '--tensor-parallel-size "$TENSOR_PARALLEL"' in text
    assert "--publish 8000:8000" in text


def test_gcp_startup_installs_the_driver_and_publishes_a_per_group_signal():
    _, text = rendered("research", "chat")
    assert "cos-extensions install gpu" in text
    assert "custom.googleapis.com/inferstack/pending_requests" in text
    assert '"group\\": \\"assistant-research-chat\\"' in text or "assistant-research-chat" in text
    assert ":/models/llama-3-8b:ro" in text and "--cap-drop ALL" in text


def test_tpu_startup_single_host_serves_on_the_bridge_multi_host_forms_a_ray_cluster():
    _, single = rendered("research", "reasoning")
    _, multi = rendered("batch", "batch")
    engine = single[single.index("--name engine") :].split("\n\n")[0]
    assert "TENSOR_PARALLEL=8" in single and "--network host" not in engine and "--publish 8000:8000" in engine
    engine = multi[multi.index("--name engine") :].split("\n\n")[0]
    assert "TENSOR_PARALLEL=16" in multi and "ray start --head" in multi and "--network host" in engine


def test_gcp_engines_cannot_reach_the_metadata_server_even_after_a_restart():
    for stack, target in (("research", "chat"), ("research", "reasoning")):
        _, text = rendered(stack, target)
        block = text.index("iptables -I DOCKER-USER -i docker0 -d 169.254.169.254 -j DROP")
        # the rule comes before anything else runs, the engine Docker may have restarted goes,
        # and nothing removes the rule again
        assert block < text.index("docker rm -f engine") < text.index("--name engine")
        assert block < text.index("METADATA=")
        assert "iptables -D" not in text
    _, chat = rendered("research", "chat")
    assert "docker run --rm --network host --volume" in chat  # the weights fetch uses the host's access
