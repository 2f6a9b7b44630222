"""The table of target kinds is the one place a kind is declared: every kind the spec accepts has
an entry, every entry's component can deploy, and the program branches on nothing else."""

from __future__ import annotations

import ast
import importlib
import typing
from pathlib import Path

from inferstack.kinds import KINDS
from inferstack.spec.models import Target

ROOT = Path(__file__).resolve().parent.parent


def _spec_kinds() -> set[str]:
    union = typing.get_args(Target)[0]
    return {typing.get_args(m.model_fields["kind"].annotation)[0] for m in typing.get_args(union)}


def test_every_kind_of_the_spec_has_one_entry():
    assert set(KINDS) == _spec_kinds()
    for name, kind in KINDS.items():
        assert kind.kind == name
        assert typing.get_args(kind.model.model_fields["kind"].annotation) == (name,)


def test_every_component_has_a_deploy_entry_point():
    for kind in KINDS.values():
        assert callable(importlib.import_module(kind.component).deploy), kind.component


def test_nothing_outside_the_kind_modules_branches_on_target_classes():
    """isinstance on a target class belongs to the kind's own planner/checks, never to the program,
    cost, policy config or replica model."""
    classes = {m.__name__ for m in typing.get_args(typing.get_args(Target)[0])}
    for path in (
        "inferstack/program.py",
        "inferstack/planning/cost.py",
        "inferstack/planning/policy_config.py",
        "inferstack/planning/replica.py",
        "inferstack/planning/simulation.py",
    ):
        tree = ast.parse((ROOT / path).read_text())
        branches = {
            a.id
            for call in ast.walk(tree)
            if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "isinstance"
            for a in ast.walk(call.args[1])
            if isinstance(a, ast.Name)
        }
        assert not branches & classes, f"{path} branches on {branches & classes}"
