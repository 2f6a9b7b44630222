"""Read a spec file into a `DeploymentSpec`, or fail with every finding at its YAML line.

ruamel.yaml's round-trip loader keeps the line of every key and item; pydantic reports the path
of every error. Joining the two gives ``stacks/dev.yaml:14: targets.burst.capacity.max: ...``.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, NoReturn, Union, get_args, get_origin

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
    # The spec as written once its bases are merged in (what was validated), and the files it
    # came from: the spec first, then the base it extends, then that base's base.
    resolved: dict[str, Any] = field(default_factory=dict)
    sources: tuple[str, ...] = ()
    # Where each key and item of `resolved` was written: (file, line), by its path.
    origins: dict[Loc, tuple[str, int]] = field(default_factory=dict)
    # The mappings and lists of `resolved` that were written in flow style ({a: 1}, [a, b]).
    flow: frozenset[Loc] = frozenset()

    @property
    def stack(self) -> str:
        """The Pulumi stack a spec file belongs to: its file name, as in stacks/<stack>.yaml."""
        return Path(self.path).stem


# How long a chain of `extends:` may be: an environment on a base on an organisation's defaults
# is three; a longer chain is a cycle's cousin and a reader's puzzle.
MAX_EXTENDS = 4
EXTENDS = "extends"
# A key ending in this appends its list to the base's list of the same name (`args+: [...]`);
# without it an overlay's list replaces the base's, as Kustomize and Helm values do.
APPEND = "+"


def load_spec(path: str | Path) -> LoadedSpec:
    source = str(path)
    return parse_spec(_read_spec(source, source), source)


def _read_spec(path: str, source: str, finding_at: Finding | None = None) -> str:
    """A spec file's text; `finding_at` is the `extends:` that named it, blamed when it cannot be read."""

    def fail(message: str) -> SpecError:
        if finding_at is None:
            return SpecError([Finding((), message)], source)
        return SpecError([_replace_message(finding_at, f"{path}: {message}")], source)

    try:
        return limits.read_bytes(path, limits.SPEC_BYTES).decode("utf-8")
    except OSError as e:
        raise fail(f"cannot read the spec: {e.strerror or e}") from None
    except limits.TooLarge as e:
        raise fail(f"the spec is {e}; a spec this size is a mistake, split or trim it") from None
    except UnicodeDecodeError as e:
        raise fail(f"the spec is not UTF-8 text (byte {e.start}); save it as UTF-8") from None


def parse_spec(text: str, source: str = "spec") -> LoadedSpec:
    """Validate a spec's text; an `extends:` in it is read relative to `source`'s directory."""
    if len(text) > limits.SPEC_BYTES:  # load_spec checked the file; this is for text from elsewhere
        raise SpecError([Finding((), f"the spec is {limits.TooLarge(limits.SPEC_BYTES)}; split or trim it")], source)
    long_values: set[str] = set()
    doc = _resolve(text, source, long_values, chain=())
    try:
        spec = DeploymentSpec.model_validate(doc.value)
    except ValidationError as e:
        details = e.errors(include_url=False)
        found = _findings_from(details[:MAX_FINDINGS])
        raise SpecError([_locate(doc, f, long_values) for f in found], source, total=len(details)) from None
    spec, shapes, unserved = resolve(spec)
    findings = [_locate(doc, f, long_values) for f in unserved + check_spec(spec)]
    errors = [f for f in findings if f.severity == "error"]
    if errors:
        raise SpecError(errors, source)
    warnings = tuple(
        sorted((f for f in findings if f.severity == "warning"), key=lambda f: (f.line or 0, format_loc(f.loc)))
    )
    if len(doc.texts) == 1:
        digest = hashlib.sha256(text.encode()).hexdigest()
    else:  # a plan is stale when any file of the chain changed, not only the spec's own; the
        # bases are named relative to the spec, so `./stacks/dev.yaml` is the same spec
        top = Path(source).parent
        named = [(os.path.relpath(s, top), t) for s, t in doc.texts[1:]]
        digest = hashlib.sha256("\x00".join(f"{s}\x00{t}" for s, t in [("", text), *named]).encode()).hexdigest()
    return LoadedSpec(
        spec,
        source,
        digest,
        warnings,
        shapes,
        doc.value,
        tuple(s for s, _ in doc.texts),
        doc.origins,
        frozenset(doc.flow),
    )


# -- extends: a spec on a base -----------------------------------------------------------------

# Where a value was written: (file, line). `_Pos` mirrors the document's shape: a mapping's
# entry is (where its key is, the value's positions), a list's item (where it is, its positions);
# where is (file, line, whether the value was written in flow style).
Origin = tuple[str, int]
_Where = tuple[str, int, bool]
_Pos = dict[Any, "tuple[_Where, _Pos]"] | list["tuple[_Where, _Pos]"] | None


@dataclass
class _Resolved:
    value: Any
    pos: _Pos
    root: Origin
    texts: list[tuple[str, str]]  # (file, text), the spec's first
    origins: dict[Loc, Origin] = field(default_factory=dict)
    flow: set[Loc] = field(default_factory=set)


def _resolve(text: str, source: str, long_values: set[str], chain: tuple[str, ...]) -> _Resolved:
    """The document of `text` with the base it `extends` merged under it, recursively."""
    tree = _parse_yaml(text, source)
    value = _plain(tree, long_values)
    pos = _positions(tree, source, 1)
    assert isinstance(pos, dict)
    doc = _Resolved(value, pos, (source, 1), [(source, text)])
    if EXTENDS in value:
        where = pos[EXTENDS][0]
        base_file = value.pop(EXTENDS)
        pos.pop(EXTENDS)
        at = Finding((EXTENDS,), "", line=where[1], source=where[0] if chain else None)
        base_path = _base_path(base_file, source, at, chain)
        if len(chain) >= MAX_EXTENDS:
            raise SpecError(
                [
                    _replace_message(
                        at, f"more than {MAX_EXTENDS} bases deep ({' -> '.join((*chain, source))}); flatten the chain"
                    )
                ],
                chain[0] if chain else source,
            )
        base = _resolve(
            _read_spec(base_path, chain[0] if chain else source, at), base_path, long_values, (*chain, source)
        )
        doc.value, doc.pos = _merge(base.value, base.pos, value, pos, chain[0] if chain else source)
        doc.texts += base.texts
    if not chain:
        _flatten(doc.pos, (), doc.origins, doc.flow)
    return doc


def _base_path(base_file: Any, source: str, at: Finding, chain: tuple[str, ...]) -> str:
    top = chain[0] if chain else source

    def fail(message: str) -> NoReturn:
        raise SpecError([_replace_message(at, message)], top)

    if not isinstance(base_file, str) or not base_file.strip():
        got = "null" if base_file is None else quote(base_file)
        fail(f"must be the path of a base spec, relative to this file (got {got})")
    if Path(base_file).is_absolute():
        fail(f"{quote(base_file)} is an absolute path; write it relative to this file, as base/app.yaml")
    if Path(base_file).suffix not in (".yaml", ".yml"):
        fail(f"{quote(base_file)} is not a .yaml file; a base is a spec file")
    path = Path(source).parent / base_file
    try:
        resolved = str(path.resolve())
        seen = [str(Path(s).resolve()) for s in (*chain, source)]
    except (OSError, RuntimeError, ValueError) as e:  # a symlink loop, a NUL in the path
        fail(f"{quote(base_file)} cannot be resolved ({e}); name a spec file, relative to this file")
    if resolved in seen:
        fail(f"{quote(base_file)} is already in the chain ({' -> '.join((*chain, source, str(path)))}): a cycle")
    return str(path)


def _merge(base: Any, base_pos: _Pos, over: Any, over_pos: _Pos, top: str, loc: Loc = ()) -> tuple[Any, _Pos]:
    """An overlay on its base: mappings merge key by key, anything else replaces, `null`
    removes the base's key, and `key+: [...]` appends to the base's list. A mapping of another
    `kind` (a target moved to another cloud) replaces the base's whole: their fields differ."""
    if not (isinstance(base, dict) and isinstance(over, dict)):
        return over, over_pos
    if "kind" in base and "kind" in over and base["kind"] != over["kind"]:
        return over, over_pos
    assert isinstance(base_pos, dict) and isinstance(over_pos, dict)
    out, out_pos = dict(base), dict(base_pos)
    for key, value in over.items():
        where, pos = over_pos[key]
        at = Finding((*loc, key), "", line=where[1], source=where[0] if where[0] != top else None)
        if isinstance(key, str) and key.endswith(APPEND) and len(key) > len(APPEND):
            name = key[: -len(APPEND)]
            if name in over:
                raise SpecError([_replace_message(at, f"both {name}: and {key}: are set; keep one")], top)
            if not isinstance(value, list):
                raise SpecError([_replace_message(at, f"{key}: appends a list to the base's {name}; give a list")], top)
            old = out.get(name, [])
            if not isinstance(old, list):
                raise SpecError(
                    [_replace_message(at, f"{key}: appends to a list, but the base's {name} is not a list")], top
                )
            old_items = out_pos[name][1] if name in out_pos else []
            assert isinstance(old_items, list) and isinstance(pos, list)
            out[name] = [*old, *value]
            out_pos[name] = (where, [*old_items, *pos])
        elif value is None:
            if key not in out:  # a typo here would silently keep what it meant to remove
                hint = did_you_mean(str(key), [str(k) for k in out]) or f"; the base has: {', '.join(map(str, out))}"
                raise SpecError(
                    [_replace_message(at, f"null removes a key of the base, which has no {key!s}{hint}")], top
                )
            out.pop(key)
            out_pos.pop(key)
        elif key in out:
            out[key], merged = _merge(out[key], out_pos[key][1], value, pos, top, (*loc, key))
            out_pos[key] = (where, merged)
        else:
            out[key], out_pos[key] = value, (where, pos)
    return out, out_pos


def _positions(node: Any, source: str, line: int) -> _Pos:
    """Where each key and item of a ruamel tree was written. A key merged in with `<<:` has no
    position of its own: it keeps its mapping's line."""
    if isinstance(node, CommentedMap):
        keyed = node.lc.data or {}
        out: dict[Any, tuple[_Where, _Pos]] = {}
        for key, value in node.items():
            at = keyed[key][0] + 1 if key in keyed else line
            out[_plain(key, set())] = ((source, at, _is_flow(value)), _positions(value, source, at))
        return out
    if isinstance(node, CommentedSeq):
        items = []
        for i, value in enumerate(node):
            at = node.lc.item(i)[0] + 1
            items.append(((source, at, _is_flow(value)), _positions(value, source, at)))
        return items
    return None


def _is_flow(node: Any) -> bool:
    return isinstance(node, (CommentedMap, CommentedSeq)) and bool(node.fa.flow_style())


def _flatten(pos: _Pos, loc: Loc, out: dict[Loc, Origin], flow: set[Loc]) -> None:
    entries = pos.items() if isinstance(pos, dict) else enumerate(pos) if isinstance(pos, list) else ()
    for part, ((source, line, is_flow), below) in entries:
        out[(*loc, part)] = (source, line)
        if is_flow:
            flow.add((*loc, part))
        _flatten(below, (*loc, part), out, flow)


def _replace_message(finding: Finding, message: str) -> Finding:
    return Finding(finding.loc, message, finding.severity, finding.line, finding.source)


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
        if e["type"] == "extra_forbidden" and str(loc[-1]).endswith(APPEND):
            name = str(loc[-1])[: -len(APPEND)]
            msg = f"appends to a base's {name}, and this spec extends no base; write {name}: [...]"
        elif e["type"] == "extra_forbidden":
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


def _locate(doc: _Resolved, finding: Finding, long_values: set[str]) -> Finding:
    """Attach the file and line of the deepest part of `finding.loc` that was written (in the
    spec or a base it extends), and shorten any long value the message quotes back (checks
    write `{value!r}`)."""
    node, where = doc.value, doc.root
    loc: list[str | int] = []
    for part in finding.loc:
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_list or (isinstance(node, dict) and part in node):
            node = node[part]
        elif isinstance(node, dict) and node.get("kind") == part:
            continue  # a discriminated union's tag: pydantic's path step, not the file's
        else:
            loc.append(part)
            node = None
            continue
        loc.append(part)
        where = doc.origins.get(tuple(loc), where)
    source = where[0] if where[0] != doc.root[0] else None
    return Finding(tuple(loc), _shorten_values(finding.message, long_values), finding.severity, where[1], source)


def _shorten_values(message: str, long_values: set[str]) -> str:
    for value in long_values:
        if value in message or repr(value) in message:
            message = message.replace(repr(value), quote(value)).replace(value, quote(value))
    return message
