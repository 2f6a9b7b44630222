"""Golden files for rendered templates. Regenerate with INFERSTACK_UPDATE_GOLDEN=1 after a
deliberate template change, and review the diff like code."""

from __future__ import annotations

import os
import subprocess

import pytest

from conftest import ROOT, STACKS
from inferstack.planning.aws_fleet import plan_aws_fleet
from inferstack.spec.loader import load_spec

GOLDEN = ROOT / "tests" / "golden"
CASES = [("dev", "burst"), ("prod", "steady"), ("prod", "burst")]


@pytest.mark.parametrize(("stack", "target"), CASES)
def test_user_data_matches_golden(stack, target):
    plan = plan_aws_fleet(load_spec(STACKS / f"{stack}.yaml").spec, stack, target)
    golden = GOLDEN / f"{stack}-{target}.user-data.sh"
    if os.environ.get("INFERSTACK_UPDATE_GOLDEN"):
        golden.write_text(plan.user_data)
    assert plan.user_data == golden.read_text()


@pytest.mark.parametrize(("stack", "target"), CASES)
def test_user_data_is_valid_bash(stack, target):
    result = subprocess.run(["bash", "-n", str(GOLDEN / f"{stack}-{target}.user-data.sh")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_launch_template_carries_the_rendered_user_data(dev):
    assert dev.user_data() == (GOLDEN / "dev-burst.user-data.sh").read_text()


def test_user_data_fetches_on_the_host_and_runs_the_engine_without_credentials(dev):
    text = dev.user_data()
    assert "aws s3 sync" in text and "--network host" not in text
    assert ":/models/llama-3-8b:ro" in text
    assert '--tensor-parallel-size "$GPUS"' in text
    assert "--publish 8000:8000" in text
