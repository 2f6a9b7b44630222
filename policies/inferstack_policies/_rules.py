"""How a rule is declared, and the property helpers every area shares.

A rule is a plain generator function that yields one message per violation; `resource_rule`
and `stack_rule` wrap it into a pulumi-policy `Policy` with the metadata Pulumi's compliance
packs carry (stable name, description, severity, enforcement, config schema with defaults,
remediation). Keeping the check a plain function keeps it testable without a running pack.

Names follow `<area>-<provider>-<resource>-<verb>-<thing>`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)

Check = Callable[[ResourceValidationArgs, Mapping[str, Any]], Iterable[str]]
StackCheck = Callable[[StackValidationArgs, Mapping[str, Any]], Iterable[tuple[str, str | None]]]


@dataclass(frozen=True)
class Rule:
    """A rule's metadata, kept beside its check so tests and docs can list them."""

    name: str
    description: str
    severity: Severity
    enforcement: EnforcementLevel
    remediation: str
    config: dict[str, dict[str, Any]]
    types: tuple[str, ...]  # exact tokens or prefixes ending in "/" or ":"; empty = every type
    # Hardening properties the rule checks, per resource type: dotted input paths (a list is
    # walked through, a metadata key is its last step). tests/policies/test_hardening_in_step.py
    # reads them to keep the components' secure defaults and the pack's checks in step.
    checks: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def applies_to(self, token: str) -> bool:
        return not self.types or any(token == t or (t[-1] in "/:" and token.startswith(t)) for t in self.types)

    def config_with_defaults(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """The engine fills schema defaults in from the pack config; offline we do it here too."""
        merged = {k: v["default"] for k, v in self.config.items() if "default" in v}
        merged.update({k: v for k, v in given.items() if k != "enforcementLevel"})
        return merged

    def schema(self) -> PolicyConfigSchema | None:
        return PolicyConfigSchema(properties=self.config) if self.config else None


RULES: dict[str, Rule] = {}


def resource_rule(
    name: str,
    description: str,
    *,
    severity: Severity,
    remediation: str,
    types: Iterable[str] = (),
    enforcement: EnforcementLevel = EnforcementLevel.MANDATORY,
    config: dict[str, dict[str, Any]] | None = None,
    checks: Mapping[str, Iterable[str]] | None = None,
) -> Callable[[Check], ResourceValidationPolicy]:
    hardening = tuple((t, tuple(paths)) for t, paths in (checks or {}).items())
    rule = Rule(name, description, severity, enforcement, remediation, config or {}, tuple(types), hardening)
    RULES[name] = rule

    def wrap(check: Check) -> ResourceValidationPolicy:
        def validate(args: ResourceValidationArgs, report_violation) -> None:
            if not rule.applies_to(args.resource_type):
                return
            for message in check(args, rule.config_with_defaults(args.get_config())):
                report_violation(f"{message} Fix: {remediation}")

        return _policy(ResourceValidationPolicy, rule, validate, check)

    return wrap


def stack_rule(
    name: str,
    description: str,
    *,
    severity: Severity,
    remediation: str,
    enforcement: EnforcementLevel = EnforcementLevel.MANDATORY,
    config: dict[str, dict[str, Any]] | None = None,
) -> Callable[[StackCheck], StackValidationPolicy]:
    """A rule over the whole stack; its check yields (message, urn or None)."""
    rule = Rule(name, description, severity, enforcement, remediation, config or {}, ())
    RULES[name] = rule

    def wrap(check: StackCheck) -> StackValidationPolicy:
        def validate(args: StackValidationArgs, report_violation) -> None:
            for message, urn in check(args, rule.config_with_defaults(args.get_config())):
                report_violation(f"{message} Fix: {remediation}", urn)

        return _policy(StackValidationPolicy, rule, validate, check)

    return wrap


def _policy(cls, rule: Rule, validate, check):
    policy = cls(
        name=rule.name,
        description=rule.description,
        validate=validate,
        enforcement_level=rule.enforcement,
        config_schema=rule.schema(),
        severity=rule.severity,
        remediation_steps=rule.remediation,
    )
    policy.check = check  # the bare check, for unit tests
    policy.rule = rule
    return policy


# -- property helpers ---------------------------------------------------------------------------


def get(props: Any, *path: str | int, default: Any = None) -> Any:
    """A nested property, or `default` where any step is missing."""
    node = props
    for step in path:
        if isinstance(step, int):
            if isinstance(node, (str, Mapping)) or not isinstance(node, Sequence) or step >= len(node):
                return default
            node = node[step]
        else:
            if not isinstance(node, Mapping) or step not in node:
                return default
            node = node[step]
    return node


def items(props: Any, *path: str) -> Iterator[Any]:
    """The elements of a list property (none when missing)."""
    value = get(props, *path)
    if value is None or isinstance(value, (str, Mapping)):
        return iter(())
    return iter(value)


def truthy(value: Any) -> bool:
    """Terraform-bridged booleans arrive as bools or as the strings "true"/"false"."""
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


def provider_of(token: str) -> str:
    """'aws' for 'aws:ec2/vpc:Vpc' and for 'pulumi:providers:aws'."""
    if token.startswith("pulumi:providers:"):
        return token.rsplit(":", 1)[1]
    return token.split(":", 1)[0]


# Resource types more than one area reads.
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
ASG = "aws:autoscaling/group:Group"
GCP_TEMPLATES = (
    "gcp:compute/instanceTemplate:InstanceTemplate",
    "gcp:compute/regionInstanceTemplate:RegionInstanceTemplate",
    "gcp:compute/instance:Instance",
)
TPU_VM = "gcp:tpu/v2Vm:V2Vm"
K8S_NAMESPACE = "kubernetes:core/v1:Namespace"
# The site's country on every namespace inferstack's on-prem planner creates: residency reads it.
K8S_LOCATION_LABEL = "inferstack.io/location"

# inferstack creates Cloud TPU queued resources through a Pulumi dynamic provider (pulumi-gcp's
# resource lacks the node's service account, metadata and labels); rules recognise them by the
# `resourceType` input and read the API body's node specs.
DYNAMIC = "pulumi-python:dynamic:Resource"
QUEUED_TPU = "tpu.googleapis.com/QueuedResource"


def queued_tpu_nodes(token: str, props: Any) -> list[Any]:
    if token != DYNAMIC or get(props, "resourceType") != QUEUED_TPU:
        return []
    return [get(spec, "node") or {} for spec in items(props, "body", "tpu", "nodeSpec")]


def is_queued_tpu(token: str, props: Any) -> bool:
    return token == DYNAMIC and get(props, "resourceType") == QUEUED_TPU


def hardening_checks() -> dict[str, set[str]]:
    """Every hardening property some rule checks, per resource type (QUEUED_TPU for the
    queued-resource body's node, paths relative to the node)."""
    out: dict[str, set[str]] = {}
    for rule in RULES.values():
        for token, paths in rule.checks:
            out.setdefault(token, set()).update(paths)
    return out
