"""The root __main__.py, the program `pulumi up` runs, registers what the offline plan shows."""

from __future__ import annotations

import os
import runpy

import pulumi
import pytest

from conftest import ROOT, STACKS, plan_of_file, stack_text
from inferstack.offline.engine import record


def _run_main(spec_file: str, stack: str, project_dir=ROOT):
    pulumi.runtime.set_all_config({"inferstack:spec": spec_file})
    cwd = os.getcwd()
    os.chdir(project_dir)  # the engine runs the program in the project directory
    try:
        return record(lambda: runpy.run_path(str(ROOT / "__main__.py")), stack)
    finally:
        os.chdir(cwd)
        pulumi.runtime.set_all_config({})


def test_main_builds_the_stack_named_by_the_stack_config():
    monitor = _run_main("dev.yaml", "dev")
    expected = plan_of_file(str(STACKS / "dev.yaml"))
    assert sorted(r.urn for r in monitor.registrations) == [r["urn"] for r in expected.resources]


def test_main_reports_a_bad_spec_as_a_run_error_before_creating_anything(tmp_path):
    (tmp_path / "stacks").mkdir()
    (tmp_path / "stacks" / "bad.yaml").write_text(stack_text("dev.yaml").replace("max: 4", "max: 0"))
    with pytest.raises(pulumi.RunError, match=r"stacks/bad.yaml:\d+: targets.burst.capacity.max"):
        _run_main("bad.yaml", "bad", tmp_path)


def test_every_package_of_the_source_tree_is_installed():
    """A package left out of pyproject's list is missing from a non-editable install."""
    import tomllib

    from conftest import ROOT

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "inferstack").rglob("__init__.py")}
    assert found <= listed, sorted(found - listed)
