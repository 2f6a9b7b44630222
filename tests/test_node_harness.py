"""The node-script harness itself: stubs record, answer, fail on demand, and bound loops."""

from __future__ import annotations

from node_harness import NodeHarness, shellcheck


def test_stubs_record_calls_in_order_and_answer(tmp_path):
    h = NodeHarness(tmp_path).answer("nvidia-smi", "GPU 0\nGPU 1\n")
    run = h.run('set -euo pipefail\nN=$(nvidia-smi --list-gpus | wc -l)\ndocker run --gpus all x "$N"\n')
    assert run.returncode == 0, run.stderr
    assert run.calls == [["nvidia-smi", "--list-gpus"], ["docker", "run", "--gpus", "all", "x", "2"]]
    assert run.first("docker", "--gpus") == 1


def test_a_failing_step_stops_a_strict_script(tmp_path):
    run = NodeHarness(tmp_path).fail("aws", when="s3 sync").run("set -e\naws s3 sync a b\ndocker pull x\n")
    assert run.returncode == 1 and not run.ran("docker")


def test_unknown_commands_are_not_found_and_paths_are_rewritten(tmp_path):
    run = NodeHarness(tmp_path).run("mkdir -p /opt/inferstack/x && echo hi > /opt/inferstack/x/f\nwget y\n")
    assert run.file("/opt/inferstack/x/f").read_text() == "hi\n"
    assert "wget: command not found" in run.stderr


def test_sleep_limit_ends_endless_loops(tmp_path):
    run = NodeHarness(tmp_path, max_sleeps=3).fail("curl").run("until curl -sf h; do sleep 10; done\n")
    assert run.stopped_by_sleep_limit and len(run.commands("curl")) == 3


def test_shellcheck_finds_an_unquoted_variable(tmp_path):
    assert "SC2086" in shellcheck("#!/bin/bash\nx=$1\nrm $x\n", tmp_path)
    assert shellcheck('#!/bin/bash\nx=$1\nrm -- "$x"\n', tmp_path) == ""
