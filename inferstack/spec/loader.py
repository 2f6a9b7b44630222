"""Read a spec file into a `DeploymentSpec`, or fail with every finding at its YAML line.

ruamel.yaml's round-trip loader keeps the line of every key and item; pydantic reports the path
of every error. Joining the two gives ``stacks/dev.yaml:14: targets.burst.capacity.max: ...``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from inferstack.errors import FieldError, Finding, Loc, SpecError, did_you_mean, format_loc
from inferstack.spec.checks import check_spec
from inferstack.spec.models import PATTERN_HINTS, DeploymentSpec


@dataclass(frozen=True)
class LoadedSpec:
    spec: DeploymentSpec
    path: str
    sha256: str
    warnings: tuple[Finding, ...]

    @property
    def stack(self) -> str:
        """The Pulumi stack a spec file belongs to: its file name, as in stacks/<stack>.yaml."""
        return Path(self.path).stem


def load_spec(path: str | Path) -> LoadedSpec:
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise SpecError([Finding((), f"cannot read the spec: {e.strerror or e}")], source) from None
    except UnicodeDecodeError as e:
        raise SpecError([Finding((), f"the spec is not UTF-8 text (byte {e.start}); save it as UTF-8")], source) from None
    return parse_spec(text, source)


def parse_spec(text: str, source: str = "spec") -> LoadedSpec:
    tree = _parse_yaml(text, source)
    try:
        spec = DeploymentSpec.model_validate(_plain(tree))
    except ValidationError as e:
        raise SpecError([_locate(tree, f) for f in _findings_from(e)], source) from None
    findings = [_locate(tree, f) for f in check_spec(spec)]
    errors = [f for f in findings if f.severity == "error"]
    if errors:
        raise SpecError(errors, source)
    warnings = tuple(sorted((f for f in findings if f.severity == "warning"), key=lambda f: (f.line or 0, format_loc(f.loc))))
    return LoadedSpec(spec, source, hashlib.sha256(text.encode()).hexdigest(), warnings)


def _parse_yaml(text: str, source: str) -> Any:
    yaml = YAML(typ="rt")
    try:
        tree = yaml.load(text)
    except MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else None
        problem = (e.problem or str(e)).strip()
        raise SpecError([Finding((), f"not valid YAML: {problem}", line=line)], source) from None
    if not isinstance(tree, CommentedMap):
        raise SpecError([Finding((), "the spec must be a YAML mapping (metadata:, residency:, ...)", line=1)], source)
    return tree


def _plain(node: Any) -> Any:
    """ruamel's node types as plain dicts, lists and scalars, for strict validation."""
    if isinstance(node, dict):
        return {_plain(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    for kind in (bool, int, float, str):
        if isinstance(node, kind):
            return kind(node)
    return node


# -- pydantic errors as findings ---------------------------------------------------------------

_MESSAGES = {
    "missing": "required field is missing",
    "extra_forbidden": "unknown field",
}


def _findings_from(error: ValidationError) -> list[Finding]:
    out = []
    for e in error.errors(include_url=False):
        loc: Loc = tuple(e["loc"])
        cause = (e.get("ctx") or {}).get("error")
        if isinstance(cause, FieldError):
            out.append(Finding(loc + cause.field, cause.message))
            continue
        msg = _MESSAGES.get(e["type"], e["msg"])
        if e["type"] == "extra_forbidden":
            allowed = _fields_at(DeploymentSpec, loc[:-1])
            msg += did_you_mean(str(loc[-1]), allowed) or f"; allowed here: {', '.join(sorted(allowed))}"
        elif e["type"] == "string_pattern_mismatch" and e["ctx"]["pattern"] in PATTERN_HINTS:
            msg = f"{PATTERN_HINTS[e['ctx']['pattern']]} (got {e['input']!r})"
        elif e["type"].startswith("value_error"):
            msg = msg.removeprefix("Value error, ")
        elif e["type"] not in _MESSAGES and "input" in e and not isinstance(e["input"], (dict, list)):
            msg = f"{msg[0].lower()}{msg[1:]} (got {e['input']!r})"
        if loc and loc[-1] == "[key]":  # pydantic's marker for a bad mapping key, not a field of the spec
            loc, msg = loc[:-1], f"invalid name: {msg}"
        out.append(Finding(loc, msg))
    return out


def _fields_at(model: Any, loc: Loc) -> list[str]:
    """The field names allowed at `loc`, by walking the model's annotations.

    A discriminated union's step in pydantic's path is the tag (``aws-gpu-fleet``): it picks the
    member whose `kind` is that tag.
    """
    options = _members(model)
    for part in loc:
        tagged = [m for m in options if _is_model(m) and _kind_of(m) == part]
        if tagged:
            options = tagged
            continue
        following: list[Any] = []
        for node in options:
            if _is_model(node) and str(part) in node.model_fields:
                following += _members(node.model_fields[str(part)].annotation)
            elif get_origin(node) in (dict, list):
                following += _members(get_args(node)[-1])
        options = following
    models = [m for m in options if _is_model(m)]
    return list(models[0].model_fields) if len(models) == 1 else []


def _is_model(node: Any) -> bool:
    return isinstance(node, type) and issubclass(node, BaseModel)


def _kind_of(model: type[BaseModel]) -> Any:
    field = model.model_fields.get("kind")
    args = get_args(field.annotation) if field is not None else ()
    return args[0] if args else None


def _members(annotation: Any) -> list[Any]:
    """Annotated[X, ...] -> [X]; X | Y | None -> [X, Y]; anything else -> [it]."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _members(get_args(annotation)[0])
    if origin in (Union, UnionType):
        return [m for a in get_args(annotation) if a is not type(None) for m in _members(a)]
    return [annotation]


# -- paths as lines ----------------------------------------------------------------------------


def _locate(tree: Any, finding: Finding) -> Finding:
    """Attach the YAML line of the deepest part of `finding.loc` that exists in the file."""
    node, line = tree, 1
    loc: list[str | int] = []
    for part in finding.loc:
        if isinstance(node, CommentedMap) and part in node:
            # A key merged in with `<<:` has no position of its own: keep the mapping's line.
            if part in (node.lc.data or {}):
                line = node.lc.key(part)[0] + 1
            node = node[part]
            loc.append(part)
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            line = node.lc.item(part)[0] + 1
            node = node[part]
            loc.append(part)
        elif isinstance(node, CommentedMap) and node.get("kind") == part:
            continue  # a discriminated union's tag: pydantic's path step, not the file's
        else:
            loc.append(part)
            node = None
    return Finding(tuple(loc), finding.message, finding.severity, line)
