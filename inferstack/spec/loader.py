"""Read a spec file into a `DeploymentSpec`, or fail with every finding at its YAML line.

ruamel.yaml's round-trip loader keeps the line of every key and item; pydantic reports the path
of every error. Joining the two gives ``stacks/dev.yaml:14: targets.burst.capacity.max: ...``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.composer import Composer, MaxDepthExceededError
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.events import AliasEvent
from ruamel.yaml.nodes import MappingNode, Node, SequenceNode

from inferstack import limits
from inferstack.errors import (
    MAX_FINDINGS,
    QUOTE_CHARS,
    FieldError,
    Finding,
    Loc,
    SpecError,
    did_you_mean,
    format_loc,
    quote,
)
from inferstack.planning.shapes import ShapeChoice, resolve
from inferstack.spec.checks import check_spec
from inferstack.spec.models import PATTERN_HINTS, DeploymentSpec


@dataclass(frozen=True)
class LoadedSpec:
    spec: DeploymentSpec
    path: str
    sha256: str
    warnings: tuple[Finding, ...]
    # The shapes inferstack chose for targets that left them out (planning.shapes), by target.
    shapes: dict[str, ShapeChoice] = field(default_factory=dict)

    @property
    def stack(self) -> str:
        """The Pulumi stack a spec file belongs to: its file name, as in stacks/<stack>.yaml."""
        return Path(self.path).stem


def load_spec(path: str | Path) -> LoadedSpec:
    source = str(path)
    try:
        text = limits.read_bytes(path, limits.SPEC_BYTES).decode("utf-8")
    except OSError as e:
        raise SpecError([Finding((), f"cannot read the spec: {e.strerror or e}")], source) from None
    except limits.TooLarge as e:
        raise SpecError(
            [Finding((), f"the spec is {e}; a spec this size is a mistake, split or trim it")], source
        ) from None
    except UnicodeDecodeError as e:
        raise SpecError(
            [Finding((), f"the spec is not UTF-8 text (byte {e.start}); save it as UTF-8")], source
        ) from None
    return parse_spec(text, source)


def parse_spec(text: str, source: str = "spec") -> LoadedSpec:
    if len(text) > limits.SPEC_BYTES:  # load_spec checked the file; this is for text from elsewhere
        raise SpecError([Finding((), f"the spec is {limits.TooLarge(limits.SPEC_BYTES)}; split or trim it")], source)
    tree = _parse_yaml(text, source)
    long_values: set[str] = set()
    plain = _plain(tree, long_values)
    try:
        spec = DeploymentSpec.model_validate(plain)
    except ValidationError as e:
        details = e.errors(include_url=False)
        found = _findings_from(details[:MAX_FINDINGS])
        raise SpecError([_locate(tree, f, long_values) for f in found], source, total=len(details)) from None
    spec, shapes, unserved = resolve(spec)
    findings = [_locate(tree, f, long_values) for f in unserved + check_spec(spec)]
    errors = [f for f in findings if f.severity == "error"]
    if errors:
        raise SpecError(errors, source)
    warnings = tuple(
        sorted((f for f in findings if f.severity == "warning"), key=lambda f: (f.line or 0, format_loc(f.loc)))
    )
    return LoadedSpec(spec, source, hashlib.sha256(text.encode()).hexdigest(), warnings, shapes)


_INT_DIGITS = 1000


class _BoundedComposer(Composer):
    """ruamel's composer, refusing a document whose aliases would expand past a bound.

    Composing keeps one node per anchor and hands out that same node for every alias, so the
    graph stays as small as the text; the constructor shares objects the same way. The blow-up
    of an alias bomb comes later, when the tree is walked as a tree (`_plain`, validation): nine
    levels of nine aliases are 9**9 nodes. So each alias is charged here, while composing, with
    the size of the subtree it stands for (memoised per node, so counting is linear in the
    text), and the document is refused the moment the total passes `limits.MAX_ALIAS_NODES`.
    """

    def __init__(self, loader: Any = None) -> None:
        super().__init__(loader)
        self._sizes: dict[int, int] = {}
        self._expanded = 0
        self._nodes = 0
        self._alias_mark: Any = None

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.parser.check_event(AliasEvent):
            self._alias_mark = self.parser.peek_event().start_mark
        else:
            self._nodes += 1
            if self._nodes > limits.MAX_NODES:
                raise _InputLimitError(
                    None,
                    None,
                    f"more than {limits.MAX_NODES} values (keys, items, scalars); a spec needs a few hundred",
                    self.parser.peek_event().start_mark,
                )
        return super().compose_node(parent, index)

    def compose_scalar_node(self, anchor: Any) -> Any:
        node = super().compose_scalar_node(anchor)
        # Python refuses to read an integer of more than 4300 digits (a ValueError from deep in
        # the constructor); no field of a spec wants one of even 20.
        if node.tag == "tag:yaml.org,2002:int" and len(node.value) > _INT_DIGITS:
            raise _InputLimitError(
                None, None, f"a number of {len(node.value)} digits; no field takes one that long", node.start_mark
            )
        return node

    def return_alias(self, a: Any) -> Any:
        mark = self._alias_mark
        if a.end_mark is None:  # the anchor's own node is still being composed: `&a [*a]`
            raise _InputLimitError(None, None, "an alias refers to the node it is inside (a recursive alias)", mark)
        self._expanded += self._size(a)
        if self._expanded > limits.MAX_ALIAS_NODES:
            raise _InputLimitError(
                None,
                None,
                f"aliases expand to more than {limits.MAX_ALIAS_NODES} values (an alias bomb?); "
                "write the values out or use fewer aliases",
                mark,
            )
        return a

    def _size(self, node: Node) -> int:
        """Nodes in the subtree, counting every alias inside it in full."""
        known = self._sizes.get(id(node))
        if known is not None:
            return known
        size = 1
        if isinstance(node, SequenceNode):
            size += sum(self._size(child) for child in node.value)
        elif isinstance(node, MappingNode):
            size += sum(self._size(k) + self._size(v) for k, v in node.value)
        self._sizes[id(node)] = size
        return size


class _InputLimitError(MarkedYAMLError):
    """Valid YAML that is too much of it: reported as a limit, not as a syntax error."""


def _parse_yaml(text: str, source: str) -> Any:
    yaml = YAML(typ="rt")
    yaml.Composer = _BoundedComposer
    yaml.max_depth = limits.MAX_DEPTH
    try:
        tree = yaml.load(text)
    except MaxDepthExceededError as e:
        line = e.problem_mark.line + 1 if e.problem_mark else None
        message = f"nested deeper than {limits.MAX_DEPTH} levels; a spec needs fewer than ten"
        raise SpecError([Finding((), message, line=line)], source) from None
    except _InputLimitError as e:
        line = e.problem_mark.line + 1 if e.problem_mark else None
        raise SpecError([Finding((), str(e.problem), line=line)], source) from None
    except MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else None
        problem = (e.problem or str(e)).strip()
        raise SpecError([Finding((), f"not valid YAML: {problem}", line=line)], source) from None
    if not isinstance(tree, CommentedMap):
        raise SpecError([Finding((), "the spec must be a YAML mapping (metadata:, residency:, ...)", line=1)], source)
    return tree


def _plain(node: Any, long_values: set[str]) -> Any:
    """ruamel's node types as plain dicts, lists and scalars, for strict validation.

    Strings too long to quote whole are collected in `long_values`, so `_locate` can shorten
    them in any message that echoes one back.
    """
    if isinstance(node, dict):
        return {_plain(k, long_values): _plain(v, long_values) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v, long_values) for v in node]
    if isinstance(node, str) and len(node) > QUOTE_CHARS:
        long_values.add(str(node))
    for kind in (bool, int, float, str):
        if isinstance(node, kind):
            return kind(node)
    return node


# -- pydantic errors as findings ---------------------------------------------------------------

_MESSAGES = {
    "missing": "required field is missing",
    "extra_forbidden": "unknown field",
}


def _findings_from(errors: list[ErrorDetails]) -> list[Finding]:
    out = []
    for e in errors:
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
            msg = f"{PATTERN_HINTS[e['ctx']['pattern']]} (got {quote(e['input'])})"
        elif e["type"].startswith("value_error"):
            msg = msg.removeprefix("Value error, ")
        elif e["type"] not in _MESSAGES and "input" in e and not isinstance(e["input"], (dict, list)):
            msg = f"{msg[0].lower()}{msg[1:]} (got {quote(e['input'])})"
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


def _locate(tree: Any, finding: Finding, long_values: set[str]) -> Finding:
    """Attach the YAML line of the deepest part of `finding.loc` that exists in the file, and
    shorten any long value of the file that the message quotes back (checks write `{value!r}`)."""
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
    return Finding(tuple(loc), _shorten_values(finding.message, long_values), finding.severity, line)


def _shorten_values(message: str, long_values: set[str]) -> str:
    for value in long_values:
        if value in message or repr(value) in message:
            message = message.replace(repr(value), quote(value)).replace(value, quote(value))
    return message
