"""Run the policy pack offline, the way the Pulumi engine does: over its Analyzer gRPC service.

The pack is started as its own process (`python policies/__main__.py`), prints its port on the
first line of stdout, and is then configured and asked to analyze every resource of a plan and
the stack as a whole, with the same protos the engine uses. What passes here passes under
`pulumi preview --policy-pack policies --policy-pack-config <file>`.

A pack that cannot start, or that fails while analyzing, is an error: never a silent pass.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Self

import grpc
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

START_TIMEOUT_SECONDS = 60
ENFORCEMENT = {"advisory": 0, "mandatory": 1, "disabled": 2, "remediate": 3}
ENFORCEMENT_NAMES = {v: k for k, v in ENFORCEMENT.items()}
SEVERITY_NAMES = {0: "unspecified", 1: "low", 2: "medium", 3: "high", 4: "critical"}


class PolicyPackError(RuntimeError):
    """The pack could not start or answer: the check did not run, so nothing passed."""


def default_pack_dir() -> Path:
    return Path(str(resources.files("inferstack.policy_pack")))


def pack_version(pack_dir: Path) -> str:
    """The version the CLI reports: PulumiPolicy.yaml's (the Python SDK always says 0.0.1)."""
    from ruamel.yaml import YAML

    meta = YAML(typ="safe").load((pack_dir / "PulumiPolicy.yaml").read_text(encoding="utf-8"))
    return str(meta.get("version", "0.0.0"))


@dataclass(frozen=True, order=True)
class Violation:
    urn: str
    policy: str
    enforcement: str
    severity: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {
            "urn": self.urn,
            "policy": self.policy,
            "enforcement": self.enforcement,
            "severity": self.severity,
            "message": self.message,
        }


@dataclass
class PolicyReport:
    pack: str
    version: str
    violations: list[Violation] = field(default_factory=list)

    @property
    def mandatory(self) -> list[Violation]:
        return [v for v in self.violations if v.enforcement == "mandatory"]

    def to_json(self) -> dict[str, Any]:
        return {
            "pack": self.pack,
            "version": self.version,
            "mandatory": len(self.mandatory),
            "advisory": len(self.violations) - len(self.mandatory),
            "violations": [v.to_json() for v in self.violations],
        }


class PolicyPackProcess:
    """A running policy pack and a stub for its Analyzer service; use as a context manager."""

    def __init__(self, pack_dir: Path | None = None):
        self.pack_dir = Path(pack_dir or default_pack_dir())
        self.process: subprocess.Popen[bytes] | None = None
        self.channel: grpc.Channel | None = None
        self.stub: analyzer_pb2_grpc.AnalyzerStub | None = None

    def __enter__(self) -> Self:
        main = self.pack_dir / "__main__.py"
        if not main.is_file():
            raise PolicyPackError(f"no policy pack at {self.pack_dir} (missing __main__.py)")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            [sys.executable, "-u", str(main)],
            cwd=self.pack_dir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        port = self._read_port()
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        try:
            grpc.channel_ready_future(self.channel).result(timeout=START_TIMEOUT_SECONDS)
        except grpc.FutureTimeoutError:
            self.__exit__(None, None, None)
            raise PolicyPackError(f"the policy pack at {self.pack_dir} did not answer on port {port}") from None
        self.stub = analyzer_pb2_grpc.AnalyzerStub(self.channel)
        return self

    def _read_port(self) -> int:
        """The engine's contract: the pack's first line of stdout is its port, nothing before it."""
        assert self.process is not None and self.process.stdout is not None
        stdout = self.process.stdout
        line: list[bytes] = []
        reader = threading.Thread(target=lambda: line.append(stdout.readline()), daemon=True)
        reader.start()
        reader.join(START_TIMEOUT_SECONDS)
        first = line[0].decode(errors="replace").strip() if line else ""
        if not first.isdigit():
            if self.process.poll() is None:
                self.process.terminate()
            stderr = self.process.stderr.read().decode(errors="replace").strip() if self.process.stderr else ""
            self.__exit__(None, None, None)
            detail = stderr.splitlines()[-1] if stderr else f"first line of output was {first!r}"
            raise PolicyPackError(f"the policy pack at {self.pack_dir} did not start: {detail}")
        return int(first)

    def __exit__(self, *exc) -> None:
        if self.channel is not None:
            self.channel.close()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        for stream in (self.process.stdout, self.process.stderr) if self.process else ():
            if stream:
                stream.close()


def config_problems(config: Any) -> list[str]:
    """What is wrong with a --policy-pack-config document, in the CLI's terms (empty when fine)."""
    if not isinstance(config, dict):
        return ["the policy config must be a JSON object of policy name to settings"]
    problems = []
    levels = ", ".join(ENFORCEMENT)
    for name, entry in config.items():
        level = entry if isinstance(entry, str) else entry.get("enforcementLevel") if isinstance(entry, dict) else None
        if not isinstance(entry, (str, dict)):
            problems.append(f"{name}: must be an enforcement level ({levels}) or an object of settings")
        elif level is not None and level not in ENFORCEMENT:
            problems.append(f"{name}: unknown enforcement level {level!r}; one of {levels}")
    return problems


def _struct(value: dict[str, Any]) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(value)
    return s


def _config_request(info: analyzer_pb2.AnalyzerInfo, config: dict[str, Any]) -> analyzer_pb2.ConfigureAnalyzerRequest:
    """Per-policy config as the CLI builds it from --policy-pack-config: schema defaults first,
    then the file's values; an entry's `enforcementLevel` (or a bare level string) sets the level,
    over the level `all` sets for every policy."""
    request = analyzer_pb2.ConfigureAnalyzerRequest()
    every = config.get("all")  # the level of every policy, under each policy's own entry
    if isinstance(every, dict):
        every = every.get("enforcementLevel")
    for policy in info.policies:
        given = config.get(policy.name, {})
        if isinstance(given, str):
            given = {"enforcementLevel": given}
        level = policy.enforcementLevel
        if every is not None:
            level = analyzer_pb2.EnforcementLevel.Value(str(every).upper())
        if "enforcementLevel" in given:
            level = ENFORCEMENT[given["enforcementLevel"]]
        schema = json_format.MessageToDict(policy.configSchema.properties) if policy.configSchema else {}
        props = {k: v["default"] for k, v in schema.items() if isinstance(v, dict) and "default" in v}
        props.update({k: v for k, v in given.items() if k != "enforcementLevel"})
        request.policyConfig[policy.name].CopyFrom(
            analyzer_pb2.PolicyConfig(enforcementLevel=level, properties=_struct(props))
        )
    return request


def _options(resource: dict[str, Any]) -> analyzer_pb2.AnalyzerResourceOptions:
    o = resource["options"]
    return analyzer_pb2.AnalyzerResourceOptions(
        protect=o["protect"],
        ignoreChanges=o["ignoreChanges"],
        deleteBeforeReplace=o["deleteBeforeReplace"],
        deleteBeforeReplaceDefined=True,
        parent=resource["parent"] or "",
    )


def analyze(plan_doc: dict[str, Any], config: dict[str, Any], pack_dir: Path | None = None) -> PolicyReport:
    """Analyze a plan document (`Plan.to_json()` or a saved plan file) with the policy pack."""
    resources_ = [r for r in plan_doc["resources"] if r["custom"]]
    by_urn = {r["urn"]: r for r in resources_}

    def provider(resource: dict[str, Any]) -> analyzer_pb2.AnalyzerProviderResource | None:
        p = by_urn.get(resource.get("provider") or "")
        if p is None:
            return None
        return analyzer_pb2.AnalyzerProviderResource(
            type=p["type"], properties=_struct(p["inputs"]), urn=p["urn"], name=p["name"]
        )

    def common(resource: dict[str, Any]) -> dict[str, Any]:
        """The fields AnalyzeRequest and AnalyzerResource share."""
        return {
            "type": resource["type"],
            "properties": _struct(resource["inputs"]),
            "urn": resource["urn"],
            "name": resource["name"],
            "options": _options(resource),
            "provider": provider(resource),
        }

    diagnostics: list[analyzer_pb2.AnalyzeDiagnostic] = []
    with PolicyPackProcess(pack_dir) as pack:
        assert pack.stub is not None
        try:
            info = pack.stub.GetAnalyzerInfo(empty_pb2.Empty())
            pack.stub.Configure(_config_request(info, config))
            pack.stub.ConfigureStack(
                analyzer_pb2.AnalyzerStackConfigureRequest(stack=plan_doc["stack"], project="inferstack", dry_run=True)
            )
            for r in resources_:
                response = pack.stub.Analyze(analyzer_pb2.AnalyzeRequest(**common(r)))
                diagnostics += [_with_urn(d, r["urn"]) for d in response.diagnostics]
            stack = analyzer_pb2.AnalyzeStackRequest(
                resources=[
                    analyzer_pb2.AnalyzerResource(
                        **common(r),
                        parent=r["parent"] or "",
                        dependencies=r["options"]["dependsOn"],
                        propertyDependencies={
                            k: analyzer_pb2.AnalyzerPropertyDependencies(urns=v)
                            for k, v in r.get("propertyDependencies", {}).items()
                        },
                    )
                    for r in resources_
                ]
            )
            diagnostics += list(pack.stub.AnalyzeStack(stack).diagnostics)
        except grpc.RpcError as e:
            raise PolicyPackError(f"the policy pack failed while analyzing: {e.details() or e.code()}") from None
    violations = sorted(
        Violation(
            urn=d.urn,
            policy=d.policyName,
            enforcement=ENFORCEMENT_NAMES.get(d.enforcementLevel, str(d.enforcementLevel)),
            severity=SEVERITY_NAMES.get(d.severity, str(d.severity)),
            message=d.message,
        )
        for d in diagnostics
    )
    return PolicyReport(pack=info.name, version=pack_version(pack.pack_dir), violations=violations)


def _with_urn(d: analyzer_pb2.AnalyzeDiagnostic, urn: str) -> analyzer_pb2.AnalyzeDiagnostic:
    """A resource diagnostic belongs to the analyzed resource (the engine fills it in the same way)."""
    if not d.urn:
        d.urn = urn
    return d
