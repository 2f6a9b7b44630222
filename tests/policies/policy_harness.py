"""Run single rules of the pack in-process: a resource (or a stack) in, violation messages out."""

from __future__ import annotations

from typing import Any

from pulumi_policy import PolicyCustomTimeouts, PolicyProviderResource, PolicyResource, PolicyResourceOptions
from pulumi_policy.policy import ResourceValidationArgs, StackValidationArgs

from inferstack.policy_pack.inferstack_policies import all_policies

POLICIES = {p.name: p for p in all_policies()}


def _opts() -> PolicyResourceOptions:
    return PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])


def provider(token: str = "pulumi:providers:aws", **props: Any) -> PolicyProviderResource:
    return PolicyProviderResource(token, props, f"urn:pulumi:s::p::{token}::default", "default")


def run_resource(policy: str, token: str, props: dict, *, config: dict | None = None, prov=None) -> list[str]:
    """Violations of one resource rule for one resource, as the pack would report them."""
    found: list[str] = []
    args = ResourceValidationArgs(token, props, f"urn:pulumi:s::p::{token}::r", "r", _opts(), prov, config or {})
    POLICIES[policy].validate(args, lambda message, urn=None: found.append(message))
    return found


def resource(token: str, props: dict, name: str = "r", prov=None, deps: dict | None = None) -> PolicyResource:
    r = PolicyResource(token, props, f"urn:pulumi:s::p::{token}::{name}", name, _opts(), prov, None, [], {})
    r.property_dependencies.update(deps or {})
    return r


def run_stack(
    policy: str, resources: list[PolicyResource], *, config: dict | None = None
) -> list[tuple[str, str | None]]:
    found: list[tuple[str, str | None]] = []
    args = StackValidationArgs(resources, config or {})
    POLICIES[policy].validate(args, lambda message, urn=None: found.append((message, urn)))
    return found
