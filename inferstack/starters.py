"""Starter templates: a platform team's starting points for a model team's spec.

A template is a directory ``<name>/`` holding ``manifest.yaml`` (what it asks for: the
parameters, their types, defaults and allowed values), ``spec.yaml.j2`` (the spec, rendered to
``<stack>.yaml``) and optionally ``Pulumi.stack.yaml.j2`` (the stack's config, rendered to
``Pulumi.<stack>.yaml``; without it the config only names the spec). Templates are found along a
search path: the ``--template-dir`` flags, then the entries of ``INFERSTACK_TEMPLATE_PATH``, then
the built-in starters (``templates/starters``); the first directory holding a name wins.

Everything here is pure: parse and check the values, render, validate. The CLI prompts and
writes. Rendering cannot inject YAML: every value reaches the text through the ``yaml`` filter
(a JSON scalar, which YAML reads back as the same value), and a template that prints a
parameter any other way fails to render.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import jinja2
import jinja2.sandbox
import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from inferstack.errors import did_you_mean, format_loc, quote
from inferstack.spec.loader import LoadedSpec, parse_spec

ENV_VAR = "INFERSTACK_TEMPLATE_PATH"
MANIFEST = "manifest.yaml"
SPEC_TEMPLATE = "spec.yaml.j2"
PULUMI_TEMPLATE = "Pulumi.stack.yaml.j2"
# Where the spec's `# yaml-language-server: $schema=` comment points when no schema/ directory
# is found above the target directory: the repository's layout (specs in stacks/, schema/ beside).
DEFAULT_SCHEMA = "../schema/inferstack.schema.json"
SCHEMA_FILE = Path("schema") / "inferstack.schema.json"
# What the template sees besides its parameters (a parameter may not take these names).
RESERVED = frozenset({"schema_path", "stack", "template_name"})
MANIFEST_BYTES = 256 * 1024
TEMPLATE_BYTES = 1024 * 1024
VALUE_CHARS = 1024
# A Pulumi stack name (pulumi/pulumi validateStackName), starting with a letter or digit so that
# neither the spec's file name nor Pulumi.<stack>.yaml can be hidden or point elsewhere.
STACK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


class StarterError(Exception):
    """A template or a value that cannot be used; the message names it and the fix."""


def builtin_dir() -> Path:
    return Path(str(resources.files("inferstack.templates"))) / "starters"


# -- the manifest ------------------------------------------------------------------------------

Scalar = Annotated[str, Field(strict=True)] | Annotated[bool, Field(strict=True)] | Annotated[int, Field(strict=True)]
_PY_TYPES: dict[str, type] = {"string": str, "integer": int, "boolean": bool}
_UNION_TAGS = frozenset({"str", "bool", "int"})
_A_TYPE = {"string": "a string", "integer": "an integer", "boolean": "a boolean"}


def _is(value: Any, kind: str) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, _PY_TYPES[kind])


class Parameter(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    name: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")] = Field(
        description="An identifier: lower-case letters, digits and '_', starting with a letter."
    )
    type: Literal["string", "integer", "boolean"]
    default: Scalar
    description: Annotated[str, StringConstraints(min_length=1, max_length=300)]
    allowed: Annotated[list[Scalar], Field(min_length=1)] | None = None
    pattern: str | None = Field(default=None, description="A regular expression a string value must match whole.")
    minimum: int | None = None
    maximum: int | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Parameter:
        if self.name in RESERVED:
            raise ValueError(f"parameter name {self.name!r} is reserved (the template sees it already)")
        if self.pattern is not None:
            if self.type != "string":
                raise ValueError("pattern: only a string parameter takes a pattern")
            try:
                re.compile(self.pattern)
            except re.error as e:
                raise ValueError(f"pattern: not a regular expression: {e}") from None
        if (self.minimum is not None or self.maximum is not None) and self.type != "integer":
            raise ValueError("minimum/maximum: only an integer parameter takes bounds")
        for where, value in [
            ("default", self.default),
            *((f"allowed[{i}]", v) for i, v in enumerate(self.allowed or [])),
        ]:
            if not _is(value, self.type):
                raise ValueError(f"{where}: {quote(value)} is not {_A_TYPE[self.type]}")
            problem = self.problem(value, check_allowed=where == "default")
            if problem:
                raise ValueError(f"{where}: {problem}")
        return self

    def problem(self, value: Any, check_allowed: bool = True) -> str | None:
        """Why `value` (already of the parameter's type) is not acceptable, or None."""
        if isinstance(value, str):
            if len(value) > VALUE_CHARS:
                return f"{quote(value)} is longer than {VALUE_CHARS} characters"
            if not value.isprintable():
                return f"{quote(value)} holds a control character or line break; a value is one line of text"
            if self.pattern is not None and not re.fullmatch(self.pattern, value):
                return f"{quote(value)} does not match the pattern {self.pattern}"
        if isinstance(value, int) and not isinstance(value, bool):
            if self.minimum is not None and value < self.minimum:
                return f"{value} is below the minimum {self.minimum}"
            if self.maximum is not None and value > self.maximum:
                return f"{value} is above the maximum {self.maximum}"
        if check_allowed and self.allowed is not None and value not in self.allowed:
            return (
                f"{quote(value)} is not one of the allowed values ({', '.join(format_value(a) for a in self.allowed)})"
            )
        return None


class Manifest(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    description: Annotated[str, StringConstraints(min_length=1, max_length=300)]
    stack_parameter: str = Field(
        default="environment",
        description="The string parameter whose value names the stack: <value>.yaml and Pulumi.<value>.yaml.",
    )
    parameters: Annotated[list[Parameter], Field(min_length=1)]

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        seen: set[str] = set()
        for p in self.parameters:
            if p.name in seen:
                raise ValueError(f"parameter {p.name!r} is declared twice")
            seen.add(p.name)
        stack = self.parameter(self.stack_parameter)
        if stack is None:
            raise ValueError(
                f"stack_parameter: no parameter {self.stack_parameter!r}{did_you_mean(self.stack_parameter, seen)}"
            )
        if stack.type != "string":
            raise ValueError(f"stack_parameter: {stack.name!r} must be a string parameter")
        for value in [stack.default, *(stack.allowed or [])]:
            if not STACK_NAME.fullmatch(str(value)):
                raise ValueError(f"stack_parameter: {quote(value)} is not a Pulumi stack name")
        return self

    def parameter(self, name: str) -> Parameter | None:
        return next((p for p in self.parameters if p.name == name), None)

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.parameters}


def format_value(value: Any) -> str:
    """A value as a user writes it after --set: true/false, 3, eu-central-1."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def load_manifest(path: Path) -> Manifest:
    try:
        with path.open("rb") as f:
            raw = f.read(MANIFEST_BYTES + 1)
        if len(raw) > MANIFEST_BYTES:
            raise StarterError(f"{path}: larger than {MANIFEST_BYTES // 1024} KiB; that is no manifest")
        doc = yaml.safe_load(raw.decode("utf-8"))
    except OSError as e:
        raise StarterError(f"{path}: cannot read it: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise StarterError(f"{path}: not UTF-8 text") from None
    except yaml.YAMLError as e:
        raise StarterError(f"{path}: not valid YAML: {' '.join(str(e).split())}") from None
    if not isinstance(doc, dict):
        raise StarterError(f"{path}: must be a mapping with description and parameters")
    try:
        return Manifest.model_validate(doc)
    except ValidationError as e:
        lines = []
        for err in e.errors(include_url=False):
            raw_loc = tuple(err["loc"])
            # A value that fails every member of the Scalar union is reported once per member.
            loc = tuple(p for p in raw_loc if p not in _UNION_TAGS)
            message = err["msg"].removeprefix("Value error, ")
            if len(raw_loc) > len(loc):
                message = f"must be a string, an integer or a boolean, not {quote(err.get('input'))}"
            if err["type"] == "extra_forbidden":
                known = Manifest.model_fields if len(loc) == 1 else Parameter.model_fields
                message = f"unknown field{did_you_mean(str(loc[-1]), known)}"
            lines.append(f"{path}: {format_loc(loc)}{_parameter_named(doc, loc)}: {message}")
        raise StarterError("\n".join(dict.fromkeys(lines))) from None


def _parameter_named(doc: dict, loc: tuple) -> str:
    """' (parameter 'replicas')' after parameters[2]: the name a user looks for."""
    if len(loc) >= 2 and loc[0] == "parameters" and isinstance(loc[1], int):
        params = doc.get("parameters")
        if isinstance(params, list) and loc[1] < len(params) and isinstance(params[loc[1]], dict):
            name = params[loc[1]].get("name")
            if isinstance(name, str):
                return f" (parameter {quote(name)})"
    return ""


# -- the search path ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchDir:
    path: Path
    origin: str  # "--template-dir", "INFERSTACK_TEMPLATE_PATH" or "built-in"


def search_path(template_dirs: Sequence[str] = (), environ: Mapping[str, str] | None = None) -> list[SearchDir]:
    """The directories templates are looked up in, first winning: each --template-dir in the
    order given, then INFERSTACK_TEMPLATE_PATH's entries (os.pathsep-separated), then the
    built-in starters. A directory that does not exist is an error, naming where it came from."""
    env = os.environ if environ is None else environ
    dirs = [SearchDir(Path(d), "--template-dir") for d in template_dirs]
    dirs += [SearchDir(Path(d), ENV_VAR) for d in env.get(ENV_VAR, "").split(os.pathsep) if d.strip()]
    for d in dirs:
        if not d.path.is_dir():
            raise StarterError(
                f"{d.origin} {d.path}: not a directory; a template directory holds <name>/{MANIFEST} directories"
            )
    dirs.append(SearchDir(builtin_dir(), "built-in"))
    return dirs


@dataclass(frozen=True)
class Template:
    name: str
    directory: Path
    source: SearchDir
    manifest: Manifest
    shadows: tuple[Path, ...] = field(default=())  # later search dirs holding the same name


def _names_in(d: SearchDir) -> list[str]:
    try:
        return sorted(p.name for p in d.path.iterdir() if (p / MANIFEST).is_file() and not p.name.startswith("."))
    except OSError as e:
        raise StarterError(f"{d.origin} {d.path}: cannot list it: {e.strerror or e}") from None


def _located(path: Sequence[SearchDir]) -> dict[str, list[SearchDir]]:
    found: dict[str, list[SearchDir]] = {}
    for d in path:
        for name in _names_in(d):
            found.setdefault(name, []).append(d)
    return found


def discover(path: Sequence[SearchDir]) -> tuple[list[Template], list[str]]:
    """Every template on the search path, by name, and what is wrong with each one that cannot
    be read: one team's broken template does not hide the others."""
    found, broken = [], []
    for name, dirs in sorted(_located(path).items()):
        try:
            found.append(_template(name, dirs))
        except StarterError as error:
            broken.append(str(error))
    return found, broken


def _template(name: str, dirs: list[SearchDir]) -> Template:
    winner = dirs[0]
    manifest = load_manifest(winner.path / name / MANIFEST)
    return Template(name, winner.path / name, winner, manifest, tuple(d.path / name for d in dirs[1:]))


def find(name: str, path: Sequence[SearchDir]) -> Template:
    located = _located(path)
    if name not in located:
        where = ", ".join(str(d.path) for d in path)
        known = ", ".join(sorted(located)) or "none"
        raise StarterError(
            f"unknown template {quote(name)}{did_you_mean(name, located)} (templates: {known}; searched {where}); "
            "`inferstack templates` lists them"
        )
    return _template(name, located[name])


# -- values --------------------------------------------------------------------------------------


def coerce(param: Parameter, text: str) -> Any:
    """A value typed by a user (after --set, or at a prompt) as the parameter's type, checked."""
    value: Any
    if param.type == "integer":
        if not re.fullmatch(r"[+-]?[0-9]{1,18}", text.strip()):
            raise StarterError(
                f"{param.name} is an integer, not {quote(text)}: pass a whole number, e.g. --set {param.name}={format_value(param.default)}"
            )
        value = int(text)
    elif param.type == "boolean":
        lowered = text.strip().lower()
        if lowered not in ("true", "false"):
            raise StarterError(f"{param.name} is a boolean, not {quote(text)}: pass --set {param.name}=true or false")
        value = lowered == "true"
    else:
        value = text
    problem = param.problem(value)
    if problem:
        raise StarterError(f"{param.name}: {problem}: {_fix(param)}")
    return value


def _fix(param: Parameter) -> str:
    if param.allowed is not None:
        return f"pass one of them, e.g. --set {param.name}={format_value(param.allowed[0])}"
    return f"{param.description.rstrip('.')} (default {format_value(param.default)})"


def parse_sets(items: Sequence[str], template: Template) -> dict[str, Any]:
    """``--set key=value`` items, each checked against the template's manifest."""
    manifest = template.manifest
    names = [p.name for p in manifest.parameters]
    values: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise StarterError(
                f"--set {quote(item)}: expected key=value, e.g. --set {names[0]}={format_value(manifest.parameters[0].default)}"
            )
        param = manifest.parameter(key)
        if param is None:
            raise StarterError(
                f"--set {quote(item)}: template {template.name!r} has no parameter {quote(key)}"
                f"{did_you_mean(key, names)} (parameters: {', '.join(names)})"
            )
        if key in values:
            raise StarterError(f"--set {quote(item)}: {key} is set twice; pass it once")
        try:
            values[key] = coerce(param, text)
        except StarterError as e:
            raise StarterError(f"--set {quote(item)}: {e}") from None
    return values


# -- rendering -----------------------------------------------------------------------------------


class _Yaml(str):
    """Text the `yaml` filter made: safe to print into a YAML document as a scalar."""


def to_yaml(value: Any) -> _Yaml:
    """A YAML scalar (or flow sequence) for `value`: JSON, which YAML 1.2 reads back unchanged,
    so a string value stays one quoted string whatever it holds."""
    if isinstance(value, jinja2.Undefined):
        str(value)  # StrictUndefined: raises the "'x' is undefined" error
    if isinstance(value, bool):
        return _Yaml("true" if value else "false")
    if isinstance(value, int | float | str) or value is None:
        return _Yaml(json.dumps(value, ensure_ascii=False))
    if isinstance(value, list | tuple):
        return _Yaml("[" + ", ".join(to_yaml(v) for v in value) + "]")
    raise jinja2.TemplateRuntimeError(
        f"the yaml filter takes a string, number, boolean or list, not {type(value).__name__}"
    )


def _finalize(value: Any) -> str:
    if isinstance(value, _Yaml):
        return str(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise jinja2.TemplateRuntimeError(
        f"{quote(value)} printed without the yaml filter: write {{{{ value | yaml }}}} so it stays one YAML value"
    )


def _environment(directory: Path) -> jinja2.Environment:
    # Sandboxed: a template from another team's directory renders text, and cannot reach into
    # Python objects (attribute walks to os, subclasses) from its expressions.
    env = jinja2.sandbox.SandboxedEnvironment(
        loader=jinja2.FileSystemLoader(str(directory)),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_finalize,
    )
    env.filters["yaml"] = to_yaml
    return env


def schema_path(directory: Path) -> str:
    """The spec's schema comment: the relative path to the nearest schema/inferstack.schema.json
    above `directory` (as stacks/*.yaml point at ../schema/), else the repository layout's path."""
    start = directory.resolve()
    for parent in (start, *start.parents):
        if (parent / SCHEMA_FILE).is_file():
            rel = os.path.relpath(parent / SCHEMA_FILE, start).replace(os.sep, "/")
            if re.fullmatch(r"[A-Za-z0-9._/-]+", rel):
                return rel
            break
    return DEFAULT_SCHEMA


@dataclass(frozen=True)
class Rendered:
    stack: str
    spec_name: str
    spec_text: str
    pulumi_name: str
    pulumi_text: str


def render(template: Template, values: Mapping[str, Any], directory: Path) -> Rendered:
    """The spec and its stack config, from the manifest's defaults overridden by `values`."""
    context = {**template.manifest.defaults(), **values}
    stack = str(context[template.manifest.stack_parameter])
    if not STACK_NAME.fullmatch(stack):
        raise StarterError(
            f"{template.manifest.stack_parameter}: {quote(stack)} is not a Pulumi stack name "
            "(1 to 100 letters, digits, '-', '_' or '.', starting with a letter or digit)"
        )
    spec_name, pulumi_name = f"{stack}.yaml", f"Pulumi.{stack}.yaml"
    extra = {
        "schema_path": _Yaml(schema_path(directory)),
        "stack": _Yaml(json.dumps(stack)),
        "template_name": _Yaml(json.dumps(template.name)),
    }
    env = _environment(template.directory)
    spec_text = _render_one(env, template, SPEC_TEMPLATE, {**context, **extra})
    if (template.directory / PULUMI_TEMPLATE).is_file():
        pulumi_text = _render_one(
            env, template, PULUMI_TEMPLATE, {**context, **extra, "spec_file": _Yaml(json.dumps(spec_name))}
        )
    else:
        pulumi_text = (
            f"# Stack config for `pulumi up -s {stack}`: it only names the spec; the spec is the only input.\n"
            f"config:\n  inferstack:spec: {spec_name}\n"
        )
    return Rendered(stack, spec_name, spec_text, pulumi_name, pulumi_text)


def _render_one(env: jinja2.Environment, template: Template, name: str, context: Mapping[str, Any]) -> str:
    path = template.directory / name
    if not path.is_file():
        raise StarterError(f"{path}: missing; a template directory holds {MANIFEST} and {SPEC_TEMPLATE}")
    if path.stat().st_size > TEMPLATE_BYTES:
        raise StarterError(f"{path}: larger than {TEMPLATE_BYTES // 1024} KiB")
    try:
        return env.get_template(name).render(**context)
    except jinja2.TemplateSyntaxError as e:
        raise StarterError(f"{path}:{e.lineno}: template syntax error: {e.message}") from None
    except jinja2.UndefinedError as e:
        raise StarterError(f"{path}: {e.message}; declare it in {MANIFEST} or fix the template") from None
    except jinja2.TemplateError as e:
        raise StarterError(f"{path}: {e.message or e}") from None
    except UnicodeDecodeError:
        raise StarterError(f"{path}: not UTF-8 text") from None


# -- validation and writing ------------------------------------------------------------------


def validate(rendered: Rendered, directory: Path) -> LoadedSpec:
    """Both files as they would be written: the spec through the loader (SpecError, with the
    rendered file's name), the stack config naming that spec."""
    loaded = parse_spec(rendered.spec_text, str(directory / rendered.spec_name))
    pulumi_file = directory / rendered.pulumi_name
    try:
        doc = yaml.safe_load(rendered.pulumi_text)
    except yaml.YAMLError as e:
        raise StarterError(
            f"{pulumi_file}: the rendered stack config is not valid YAML: {' '.join(str(e).split())}"
        ) from None
    named = (
        doc.get("config", {}).get("inferstack:spec")
        if isinstance(doc, dict) and isinstance(doc.get("config"), dict)
        else None
    )
    if named != rendered.spec_name:
        raise StarterError(
            f"{pulumi_file}: config.inferstack:spec must name the rendered spec {rendered.spec_name!r} "
            f"(got {quote(named)}); fix {PULUMI_TEMPLATE}"
        )
    return loaded


def parameters_at(template: Template, values: Mapping[str, Any], text: str, line: int | None) -> list[str]:
    """The parameters whose value the rendered spec carries on `line`: the ones to change when
    the loader finds that line wrong (a value the template's own text holds names none)."""
    lines = text.splitlines()
    if line is None or not 1 <= line <= len(lines):
        return []
    full = {**template.manifest.defaults(), **values}
    written = lines[line - 1]
    return [
        p.name
        for p in template.manifest.parameters
        if (value := format_value(full.get(p.name)))
        and re.search(rf"(?<![\w.-]){re.escape(value)}(?![\w.-])", written)  # the value whole, not a part
    ]


def targets_of(rendered: Rendered, directory: Path) -> list[Path]:
    return [directory / rendered.spec_name, directory / rendered.pulumi_name]


def check_free(rendered: Rendered, directory: Path, stack_parameter: str) -> None:
    if directory.exists() and not directory.is_dir():
        raise StarterError(f"{directory}: exists and is not a directory; pass a directory to create the files in")
    for path in targets_of(rendered, directory):
        if path.exists() or path.is_symlink():
            raise StarterError(
                f"{path} exists; nothing was written. Pick another directory, another stack name "
                f"(--set {stack_parameter}=...), or remove it first"
            )


def write(rendered: Rendered, directory: Path, stack_parameter: str) -> list[Path]:
    """Write both files, or neither: each to a temporary name first, then linked into place
    (a link fails on an existing name, so a file that appeared meanwhile is never replaced)."""
    check_free(rendered, directory, stack_parameter)
    directory.mkdir(parents=True, exist_ok=True)
    finals = targets_of(rendered, directory)
    temps = [directory / f".{p.name}.{os.getpid()}.inferstack-new" for p in finals]
    placed: list[Path] = []
    try:
        for temp, text in zip(temps, (rendered.spec_text, rendered.pulumi_text), strict=True):
            with temp.open("x", encoding="utf-8") as f:
                f.write(text)
        for temp, final in zip(temps, finals, strict=True):
            try:
                os.link(temp, final)
            except FileExistsError:
                raise StarterError(f"{final} appeared while writing; nothing was written") from None
            except OSError:  # a file system without hard links: check, then rename
                if final.exists():
                    raise StarterError(f"{final} appeared while writing; nothing was written") from None
                os.replace(temp, final)
            placed.append(final)
    except BaseException:
        for path in placed:
            path.unlink(missing_ok=True)
        raise
    finally:
        for temp in temps:
            temp.unlink(missing_ok=True)
    return finals
