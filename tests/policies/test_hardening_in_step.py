"""Keeps the components' secure defaults and the pack's rules in step.

Design: each rule declares the input paths it checks, per resource type (`checks=` on
`resource_rule`; `hardening_checks()` collects them), so the pack stays self-contained (it
imports nothing from inferstack) and the declaration sits beside the code that reads the field.
This test derives the other side from what the components actually do: it walks the recorded
inputs of every resource of every example plan whose type runs a node (GCP instance templates,
TPU VMs, the queued-resource body's nodes, AWS launch templates), keeps the set fields whose
path names a hardening property (HARDENING_TERMS: Shielded VM, OS Login, SSH keys, serial port,
IP forwarding, service account, IMDS, encryption and keys, public addresses), and fails when a
component sets one that no rule declares. A new secure default in a component therefore needs a
rule before the suite passes; a field that matches a term but is not a security control is
listed in NOT_HARDENING with the reason.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from conftest import EXAMPLE_STACKS, plan_of_file
from inferstack.policy_pack.inferstack_policies._rules import (
    GCP_TEMPLATES,
    LAUNCH_TEMPLATE,
    QUEUED_TPU,
    TPU_VM,
    hardening_checks,
)

NODE_TYPES = (*GCP_TEMPLATES, TPU_VM, LAUNCH_TEMPLATE, "aws:ec2/instance:Instance")
DYNAMIC = "pulumi-python:dynamic:Resource"

# Lower-case fragments of a path (dots and dashes removed) that name a hardening property.
HARDENING_TERMS = (
    "shielded",
    "secureboot",
    "vtpm",
    "integritymonitoring",
    "oslogin",
    "sshkeys",
    "keyname",
    "serialport",
    "ipforward",
    "serviceaccount",
    "confidential",
    "metadataoptions",
    "encrypt",
    "kms",
    "publicip",
    "externalip",
    "accessconfig",
)

# Paths that match a term but are not a control the pack should enforce, and why.
NOT_HARDENING = {
    # IMDS must be reachable: the node reads its role's credentials (IMDSv2 and hop limit are checked).
    (LAUNCH_TEMPLATE, "metadataOptions.httpEndpoint"),
    # The node reads its own tags (target, model) from IMDS; not a security boundary.
    (LAUNCH_TEMPLATE, "metadataOptions.instanceMetadataTags"),
    # Google recommends the cloud-platform scope with a narrowly granted account: the account is
    # what is checked (security-gcp-compute-require-dedicated-service-account), not the scope.
    *((t, "serviceAccount.scopes") for t in GCP_TEMPLATES),
    (TPU_VM, "serviceAccount.scopes"),
    (QUEUED_TPU, "serviceAccount.scope"),
}


def leaf_paths(value: Any, prefix: str = "") -> Iterator[str]:
    """Dotted paths of the set leaves; list elements share their list's path, map keys are steps."""
    if isinstance(value, dict):
        for key, child in value.items():
            yield from leaf_paths(child, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
        for child in value:
            yield from leaf_paths(child, prefix)
    elif value is not None and prefix:
        yield prefix


def is_hardening(path: str) -> bool:
    flat = path.lower().replace(".", "").replace("-", "").replace("_", "")
    return any(term in flat for term in HARDENING_TERMS)


def set_hardening_fields(resources: list[dict]) -> set[tuple[str, str]]:
    """(resource type, path) of every hardening field the plan's node resources set."""
    found: set[tuple[str, str]] = set()
    for r in resources:
        inputs = r.get("inputs") or {}
        if r["type"] in NODE_TYPES:
            nodes = [(r["type"], inputs)]
        elif r["type"] == DYNAMIC and inputs.get("resourceType") == QUEUED_TPU:
            nodes = [(QUEUED_TPU, spec.get("node") or {}) for spec in inputs["body"]["tpu"]["nodeSpec"]]
        else:
            continue
        for token, props in nodes:
            found |= {(token, p) for p in leaf_paths(props) if is_hardening(p)}
    return found


@pytest.fixture(scope="module")
def components_set() -> set[tuple[str, str]]:
    return {f for spec in EXAMPLE_STACKS for f in set_hardening_fields(plan_of_file(str(spec)).resources)}


def test_every_hardening_field_the_components_set_is_checked_by_a_rule(components_set):
    checked = {(t, p) for t, paths in hardening_checks().items() for p in paths}
    unchecked = sorted(components_set - checked - NOT_HARDENING)
    assert not unchecked, f"set by a component, checked by no rule: {unchecked}"


def test_the_examples_cover_every_kind_of_node(components_set):
    """Without a plan of each node type the test above would pass by seeing nothing."""
    kinds = {t for t, _ in components_set}
    assert {GCP_TEMPLATES[0], TPU_VM, QUEUED_TPU, LAUNCH_TEMPLATE} <= kinds
    for field in [
        (GCP_TEMPLATES[0], "shieldedInstanceConfig.enableSecureBoot"),
        (GCP_TEMPLATES[0], "metadata.block-project-ssh-keys"),
        (GCP_TEMPLATES[0], "serviceAccount.email"),
        (LAUNCH_TEMPLATE, "metadataOptions.httpTokens"),
    ]:
        assert field in components_set


def test_a_new_secure_default_without_a_rule_fails():
    template = {
        "type": GCP_TEMPLATES[0],
        "inputs": {
            "shieldedInstanceConfig": {"enableSecureBoot": True},
            "confidentialInstanceConfig": {"enableConfidentialCompute": True},
            "metadata": {"enable-oslogin-2fa": "TRUE", "startup-script": "#!/bin/bash"},
        },
    }
    found = set_hardening_fields([template])
    checked = {(t, p) for t, paths in hardening_checks().items() for p in paths}
    assert found - checked == {
        (GCP_TEMPLATES[0], "metadata.enable-oslogin-2fa"),
        (GCP_TEMPLATES[0], "confidentialInstanceConfig.enableConfidentialCompute"),
    }


def test_no_exemption_is_stale(components_set):
    """An exemption for a field no component sets any more is removed, so the list stays honest."""
    assert NOT_HARDENING - components_set <= {(t, "serviceAccount.scopes") for t in GCP_TEMPLATES[1:]}
