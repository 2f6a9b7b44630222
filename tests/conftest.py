"""Shared fixtures: plans of the example stacks, run once per test session under mocks."""

from __future__ import annotations

import base64
from functools import cache
from pathlib import Path

import pytest

from inferstack.offline.engine import Plan, run_program
from inferstack.spec.loader import load_spec, parse_spec
from inferstack.spec.resolved import resolved_yaml

ROOT = Path(__file__).resolve().parent.parent
STACKS = ROOT / "stacks"
EXAMPLE_STACKS = sorted(p for p in STACKS.glob("*.yaml") if not p.name.startswith("Pulumi."))


@cache
def stack_text(name: str) -> str:
    """An example stack's spec, its base merged in, as one self-contained file (`inferstack show`):
    what a test edits and plans on its own. A stack that extends nothing is its file's text."""
    loaded = load_spec(STACKS / name)
    return resolved_yaml(loaded) if len(loaded.sources) > 1 else (STACKS / name).read_text()


DEV_TEXT = stack_text("dev.yaml")
# dev.yaml without its endpoint section: the fleet as it stands on its own.
# Without an endpoint nothing could wake a group at zero (a spec error), so this variant keeps one node.
DEV_NO_ENDPOINT = DEV_TEXT[: DEV_TEXT.index("\nendpoint:")].replace("      min: 0\n", "      min: 1\n") + "\n"


@cache
def plan_of_file(path: str) -> Plan:
    return run_program(load_spec(path))


def plan_of_text(text: str, stack: str = "test") -> Plan:
    return run_program(parse_spec(text, f"{stack}.yaml"))


class Resources:
    """Query helpers over a plan's recorded resources."""

    def __init__(self, plan: Plan):
        self.plan = plan
        self.all = plan.resources

    def of_type(self, token: str) -> list[dict]:
        return [r for r in self.all if r["type"] == token]

    def one(self, token: str, name: str | None = None) -> dict:
        found = [r for r in self.of_type(token) if name is None or r["name"] == name]
        assert len(found) == 1, f"expected one {token} {name or ''}, found {[r['name'] for r in found]}"
        return found[0]

    def user_data(self) -> str:
        lt = self.one("aws:ec2/launchTemplate:LaunchTemplate")
        return base64.b64decode(lt["inputs"]["userData"]).decode()


@pytest.fixture(scope="session")
def dev() -> Resources:
    return Resources(plan_of_file(str(STACKS / "dev.yaml")))


@pytest.fixture(scope="session")
def prod() -> Resources:
    return Resources(plan_of_file(str(STACKS / "prod.yaml")))
