"""The overflow section through the CLI: the hybrid example validates, and what the issue says the
spec rejects exits 2 with the field and the fix."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from conftest import STACKS
from inferstack.cli import main

EXAMPLE = (STACKS / "hybrid.yaml").read_text()


def _validate(tmp_path, text: str):
    path = tmp_path / "hybrid.yaml"
    path.write_text(text)
    return CliRunner().invoke(main, ["validate", str(path)])


def test_the_example_validates(tmp_path):
    result = _validate(tmp_path, EXAMPLE)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        # A burst target outside residency.
        ("    region: eu-central-1\n", "    region: us-east-1\n", "outside residency"),
        # The primary must be the on-prem target.
        ("  primary: muc\n", "  primary: aws-burst\n", "the primary is an onprem-k8s target"),
        # A burst target that is not a cloud fleet.
        ("  burst: [aws-burst, gcp-burst]\n", "  burst: [muc, gcp-burst]\n", "burst targets are"),
        # Confidential data never leaves the site.
        (
            "  classifications: [public, internal]\n",
            "  classifications: [internal, confidential]\n",
            "confidential data never leaves the primary site",
        ),
        # Overlapping site and cloud networks.
        ("    onprem_cidrs: [10.20.0.0/16]\n", "    onprem_cidrs: [10.64.0.0/18]\n", "overlaps 10.64.0.0/16"),
        # Two site devices need four AWS tunnels (two VPN connections).
        (
            "      tunnel_inside_cidrs: [169.254.10.0/30, 169.254.10.4/30, 169.254.10.8/30, 169.254.10.12/30]\n",
            "      tunnel_inside_cidrs: [169.254.10.0/30, 169.254.10.4/30]\n",
            "4 ranges for 2 device(s)",
        ),
        # A tunnel range outside link-local, and one used twice.
        ("169.254.20.12/30]", "10.0.0.0/30]", "must be a /30 inside 169.254.0.0/16"),
        ("169.254.20.12/30]", "169.254.10.12/30]", "169.254.10.12/30"),
        # A timeout shorter than a burst target's cold start, with no reason given.
        (
            "    overflow_timeout_seconds: 900\n",
            "    overflow_timeout_seconds: 60\n",
            "longer than the overflow timeout",
        ),
        # No endpoint: a burst target is reachable only through it.
        ("  private_dns_name: llm.acme.internal\n", "", "set private_dns_name"),
        # A private address for the site's VPN device.
        ("site_public_ips: [198.51.100.10,", "site_public_ips: [10.1.1.1,", "is not a public address"),
    ],
)
def test_the_spec_rejects(tmp_path, old, new, expected):
    assert old in EXAMPLE
    result = _validate(tmp_path, EXAMPLE.replace(old, new, 1))
    assert result.exit_code == 2, result.output
    assert expected in result.output
    assert "Traceback" not in result.output


def test_without_the_endpoint_section_every_burst_target_is_refused(tmp_path):
    start, end = EXAMPLE.index("\nendpoint:\n"), EXAMPLE.index("\noverflow:\n")
    result = _validate(tmp_path, EXAMPLE[:start] + EXAMPLE[end:])
    assert result.exit_code == 2
    assert "reachable only through its private endpoint" in result.output


def test_a_gcp_group_may_sit_at_zero_only_as_a_burst_target(tmp_path):
    alone = EXAMPLE.replace("  burst: [aws-burst, gcp-burst]\n", "  burst: [aws-burst]\n")
    start, end = alone.index("    gcp:\n      tunnel_inside_cidrs"), alone.index("  gateway:\n    image")
    result = _validate(tmp_path, alone[:start] + alone[end:])
    assert result.exit_code == 2
    assert "targets.gcp-burst.capacity.min" in result.output


def test_a_short_timeout_with_its_reason_is_accepted(tmp_path):
    text = EXAMPLE.replace(
        "    overflow_timeout_seconds: 900\n",
        "    overflow_timeout_seconds: 60\n    short_timeout_reason: clients retry on 504 and the cloud warms meanwhile\n",
    )
    assert _validate(tmp_path, text).exit_code == 0


def test_the_derived_policy_config_allows_the_sites_vpn_devices_only():
    from inferstack.planning import policy_config
    from inferstack.spec.loader import load_spec

    config = policy_config.derive(load_spec(STACKS / "hybrid.yaml").spec)
    assert config[policy_config.VPN_PEERS] == {"allowedPeerIps": ["198.51.100.10", "198.51.100.11"]}


def test_the_plan_shows_the_trigger_beside_each_burst_targets_time_from_zero():
    from inferstack.planning.overflow.plan import describe, plan_upstreams
    from inferstack.spec.loader import load_spec

    spec = load_spec(STACKS / "hybrid.yaml").spec
    shown = describe(spec, "hybrid")
    assert shown["trigger"] == "more than 32 requests waiting for 30 s or no healthy replica on the primary"
    assert [b["target"] for b in shown["burst"]] == ["aws-burst", "gcp-burst"]
    aws, gcp = plan_upstreams(spec, "hybrid")
    assert shown["burst"][0]["coldStartSeconds"] == aws.cold_start_seconds > 0
    assert aws.host == "llm.acme.internal" and gcp.host == "gcp-burst.llm.acme.internal"
    assert shown["burst"][0]["wakesOn"] == "InferStack/PendingRequests AutoScalingGroupName=assistant-hybrid-aws-burst"
    assert (
        gcp.wake is not None
        and gcp.wake.resource == "global"
        and gcp.wake.dimensions["group"].startswith("assistant-hybrid-gcp-burst-")
    )
