"""The rollout timeout's arithmetic (planning.onprem.rollout): batches of maxSurge + maxUnavailable
pods, each the old pod's grace period and the new pod's startup budget, plus one margin."""

from __future__ import annotations

import pytest

from inferstack.planning.onprem.rollout import (
    ROLLOUT_MARGIN_SECONDS,
    deployment_rollout_seconds,
    pod_seconds,
    rollout_seconds,
)


def test_serial_replacement_takes_one_pod_budget_per_replica():
    # 16 replicas at maxSurge 0 / maxUnavailable 1: 16 batches of 1300 s, plus the margin.
    assert rollout_seconds(replicas=16, max_surge=0, max_unavailable=1, pod_seconds=1300, margin=0) == 16 * 1300
    assert rollout_seconds(replicas=16, max_surge=0, max_unavailable=1, pod_seconds=1300) == (
        16 * 1300 + ROLLOUT_MARGIN_SECONDS
    )


@pytest.mark.parametrize(
    ("replicas", "surge", "unavailable", "batches"),
    [(1, 0, 1, 1), (5, 1, 0, 5), (5, 1, 1, 3), (6, 2, 1, 2), (7, 0, 3, 3)],
)
def test_batches_are_the_ceiling_of_replicas_over_surge_plus_unavailable(replicas, surge, unavailable, batches):
    assert rollout_seconds(
        replicas=replicas, max_surge=surge, max_unavailable=unavailable, pod_seconds=100, margin=7
    ) == (batches * 100 + 7)


def test_a_rollout_that_cannot_move_is_an_error():
    with pytest.raises(ValueError, match="both 0"):
        rollout_seconds(replicas=2, max_surge=0, max_unavailable=0, pod_seconds=100)


def test_a_pod_takes_its_grace_period_and_its_longest_startup_probe():
    pod = {
        "terminationGracePeriodSeconds": 900,
        "containers": [
            {"startupProbe": {"periodSeconds": 10, "failureThreshold": 120}},
            {"startupProbe": {"initialDelaySeconds": 30, "periodSeconds": 5, "failureThreshold": 300}},
            {"name": "no-probe"},
        ],
    }
    assert pod_seconds(pod) == 900 + 30 + 5 * 300
    assert pod_seconds({"containers": [{"startupProbe": {}}]}) == 30  # the API defaults: grace 30, no probe


def _deployment(rolling=None, strategy_type="RollingUpdate"):
    strategy = {"type": strategy_type, **({"rollingUpdate": rolling} if rolling is not None else {})}
    pod = {"terminationGracePeriodSeconds": 100, "containers": [{"startupProbe": {"failureThreshold": 20}}]}
    return {"spec": {"strategy": strategy, "template": {"spec": pod}}}


def test_a_deployment_body_gives_its_strategy_and_pod():
    per_pod = 100 + 10 * 20
    assert deployment_rollout_seconds(_deployment({"maxSurge": 0, "maxUnavailable": 1}), 16) == (
        16 * per_pod + ROLLOUT_MARGIN_SECONDS
    )
    # Percentages as the controller counts them: 25% of 16 is 4 each way, batches of 8.
    assert deployment_rollout_seconds(_deployment({"maxSurge": "25%", "maxUnavailable": "25%"}), 16) == (
        2 * per_pod + ROLLOUT_MARGIN_SECONDS
    )
    # 25% of 3: surge rounds up to 1, unavailable down to 0.
    assert deployment_rollout_seconds(_deployment(), 3) == 3 * per_pod + ROLLOUT_MARGIN_SECONDS
    assert deployment_rollout_seconds(_deployment(strategy_type="Recreate"), 16) == per_pod + ROLLOUT_MARGIN_SECONDS
