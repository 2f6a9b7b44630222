"""The offline engine: run the real Pulumi program in-process under mocks and record a plan.

No CLI, no credentials, no network. The plan is a plain, stable document: resources sorted by
URN, keys sorted, secrets masked, so the same spec gives byte-identical JSON.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pulumi.runtime import config as pulumi_config
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import settings
from pulumi.runtime.stack import run_in_stack
from pulumi.runtime.sync_await import _sync_await
from pydantic import BaseModel, ConfigDict

from inferstack.offline.mocks import CloudMocks, RecordingMonitor
from inferstack.planning import cost, observability
from inferstack.planning.cost import TargetCost
from inferstack.spec.loader import LoadedSpec
from inferstack.spec.models import DeploymentSpec

PLAN_VERSION = 1
PROJECT = "inferstack"
_LOCK = threading.Lock()  # the Pulumi runtime's settings are process-global


@dataclass
class Plan:
    stack: str
    spec_path: str
    spec_sha256: str
    resources: list[dict[str, Any]]
    outputs: dict[str, Any] = field(default_factory=dict)
    cost: list[TargetCost] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    policy: dict[str, Any] | None = None  # the policy check's config and report, once it ran
    overflow: dict[str, Any] | None = None  # the hybrid overflow's trigger and burst targets, when set
    sizing: list[dict[str, Any]] = field(default_factory=list)  # shapes chosen for targets that left them out
    observability: list[dict[str, Any]] = field(default_factory=list)  # each target's SLOs and their alerts

    def to_json(self) -> dict[str, Any]:
        return {
            "version": PLAN_VERSION,
            "stack": self.stack,
            "spec": {"path": self.spec_path, "sha256": self.spec_sha256},
            "resources": self.resources,
            "outputs": self.outputs,
            "cost": {
                "targets": [c.to_json() for c in self.cost],
                "total": cost.stack_total(self.cost),
                "basis": cost.BASIS,
            },
            **({"sizing": self.sizing} if self.sizing else {}),
            "observability": self.observability,
            **({"policy": self.policy} if self.policy is not None else {}),
            **({"overflow": self.overflow} if self.overflow is not None else {}),
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n"

    def count_by_type(self) -> Counter[str]:
        return Counter(r["type"] for r in self.resources if r["custom"])


class _Options(BaseModel):
    protect: bool
    ignoreChanges: list[str]
    dependsOn: list[str]
    deleteBeforeReplace: bool


class _Resource(BaseModel):
    model_config = ConfigDict(extra="allow")

    urn: str
    type: str
    name: str
    parent: str | None
    custom: bool
    provider: str | None = None
    inputs: dict[str, Any]
    options: _Options
    propertyDependencies: dict[str, list[str]] = {}


class _PolicySection(BaseModel):
    model_config = ConfigDict(extra="allow")

    config: dict[str, Any]


class PlanDocument(BaseModel):
    """The shape of a saved plan, checked before `inferstack check` hands it to the pack."""

    model_config = ConfigDict(extra="allow")

    version: Literal[1]
    stack: str
    resources: list[_Resource]
    policy: _PolicySection | None = None


# What a secret in the stack's config reads as offline: a placeholder, masked in every plan like
# any secret. Offline no real credential is ever read (nor the PULUMI_CONFIG of the shell).
OFFLINE_SECRET = "offline-placeholder-secret"
# The stack name the planners are asked with where only counts matter (tunnels per link).
OFFLINE_STACK = "offline"
OFFLINE_CA_PEM = "-----BEGIN CERTIFICATE-----\nb2ZmbGluZS1wbGFjZWhvbGRlci1jYQ==\n-----END CERTIFICATE-----\n"
OFFLINE_JWKS = '{"keys": [{"alg": "RS256", "e": "AQAB", "kid": "offline-placeholder", "kty": "RSA", "n": "b2ZmbGluZQ", "use": "sig"}]}'


def offline_config(spec: DeploymentSpec) -> dict[str, str]:
    """The stack config the program reads, as the offline engine answers it: a placeholder secret
    for each config key the spec names (an on-prem cluster's kubeconfig)."""
    keys = {getattr(getattr(t, "cluster", None), "kubeconfig_config_key", None) for t in spec.targets.values()}
    out = {f"{PROJECT}:{key}": OFFLINE_SECRET for key in sorted(k for k in keys if k)}
    if spec.overflow is not None:
        # The publisher's trust: the site CA (a PEM bundle) and the cluster's JWKS, checked for
        # their form by the identity component; offline, well-formed stand-ins.
        out[f"{PROJECT}:{spec.overflow.gateway.site_ca_config_key}"] = OFFLINE_CA_PEM
        out[f"{PROJECT}:{spec.overflow.gateway.jwks_config_key}"] = OFFLINE_JWKS
        out.update(_offline_preshared_keys(spec))
    return out


def _offline_preshared_keys(spec: DeploymentSpec) -> dict[str, str]:
    """The VPN links' pre-shared keys when the spec takes them from config: a JSON list of one
    placeholder per tunnel, each a key AWS accepts (8-64 letters, digits, '.', '_'), so the
    components' own checks of the value's form run offline as they do at deploy time."""
    from inferstack.planning.overflow.aws_link import plan_aws_link
    from inferstack.planning.overflow.gcp_link import plan_gcp_link

    assert spec.overflow is not None
    out = {}
    for name in spec.overflow.burst:
        counts: list[tuple[str | None, int]] = []
        if (aws := plan_aws_link(spec, OFFLINE_STACK, name)) is not None:
            counts.append((aws.preshared_keys_config_key, aws.tunnel_count))
        if (gcp := plan_gcp_link(spec, OFFLINE_STACK, name)) is not None:
            counts.append((gcp.preshared_keys_config_key, len(gcp.tunnels)))
        for key, count in counts:
            if key is not None:
                out[f"{PROJECT}:{key}"] = json.dumps([f"offline_placeholder_psk_{i}" for i in range(count)])
    return out


def record(program: Callable[[], None], stack: str, secrets: dict[str, str] | None = None) -> RecordingMonitor:
    """Run any Pulumi program under the recording mocks and return the monitor that saw it.

    `secrets`: stack config values it reads (full keys, `inferstack:<key>`), set for this run only.
    """
    with _LOCK:
        settings.reset_options(project=PROJECT, stack=stack)
        before = dict(pulumi_config.CONFIG.get())
        pulumi_config.set_all_config({**before, **(secrets or {})})
        mocks = CloudMocks()
        monitor = RecordingMonitor(mocks)
        pulumi_mocks.set_mocks(mocks, project=PROJECT, stack=stack, preview=False, monitor=monitor)
        settings.ROOT.set(None)  # set_mocks made a root stack for unit tests; run_in_stack makes its own
        # run_in_stack is what the real language host runs: a root Stack resource, the program,
        # then the stack's outputs registered once every resource has been.
        try:
            _sync_await(run_in_stack(program))
        finally:
            pulumi_config.set_all_config(before)
    return monitor


def priced(spec: DeploymentSpec, stack: str, resources: list[dict[str, Any]]) -> list[TargetCost]:
    """The cost block: hourly at min and max, and, with a traffic profile, the month its rehearsal
    (the spec's profile, seed 0) takes."""
    costs = cost.estimate(spec)
    if spec.traffic is None:
        return costs
    from inferstack.planning.simulation import simulate_stack
    from inferstack.planning.traffic import arrivals, hourly_rates

    day = simulate_stack(spec, stack, resources, arrivals(hourly_rates(spec.traffic), spec.traffic.burstiness, 0))
    return cost.from_rehearsal(costs, day, spec.traffic.output_tokens)


def run_program(loaded: LoadedSpec, stack: str | None = None) -> Plan:
    """Run `inferstack.program.build` for a loaded spec under mocks; return what it registered."""
    from inferstack.planning.overflow.plan import describe
    from inferstack.program import build

    stack = stack or loaded.stack
    monitor = record(lambda: build(loaded.spec, stack), stack, offline_config(loaded.spec))
    resources = sorted((r.to_json() for r in monitor.registrations), key=lambda r: r["urn"])
    return Plan(
        stack=stack,
        spec_path=loaded.path,
        spec_sha256=loaded.sha256,
        resources=resources,
        outputs=monitor.stack_outputs,
        cost=priced(loaded.spec, stack, resources),
        sizing=[loaded.shapes[n].to_json() for n in sorted(loaded.shapes)],
        observability=observability.describe(loaded.spec, stack),
        warnings=[w.render(loaded.path) for w in loaded.warnings],
        overflow=describe(loaded.spec, stack) if loaded.spec.overflow is not None else None,
    )
