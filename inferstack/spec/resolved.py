"""The spec as it is validated, printed back as YAML: `inferstack show`.

An environment file holds only what differs from its base; a reviewer, and a person debugging a
plan, wants the whole merged spec, and with `--origins` the file and line each value came from.
Mappings and lists keep the style they were written in ({min: 0, max: 4} stays on one line).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from inferstack.errors import Loc
from inferstack.spec.loader import LoadedSpec


def resolved_yaml(loaded: LoadedSpec, *, origins: bool = False, full: bool = False) -> str:
    """The merged spec (`full`: the validated model, every default filled in) as YAML."""
    chain = " <- ".join(loaded.sources or (loaded.path,))
    if full:
        doc = loaded.spec.model_dump(mode="json", exclude_none=True)
        head = f"# {loaded.path}, validated, with every default filled in (from {chain})\n"
        style = _Style(None, None)
    else:
        doc = loaded.resolved
        head = f"# {loaded.path}, resolved: {chain}\n"
        style = _Style(loaded.origins if origins else None, set() if origins else set(loaded.flow))
    out = io.StringIO()
    yaml = YAML(typ="rt")
    yaml.width = 4096  # a long value (an image digest, an ARN) stays on its line
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.dump(style.tree(doc, ()), out)
    return head + out.getvalue()


@dataclass
class _Style:
    origins: dict[Loc, tuple[str, int]] | None  # mark each value with where it was written
    flow: set[Loc] | None  # the paths written in flow style; None: lists of values inline

    def tree(self, value: Any, loc: Loc) -> Any:
        if isinstance(value, dict):
            node = CommentedMap()
            for key, item in value.items():
                node[key] = self.tree(item, (*loc, key))
                if self.origins is not None and (*loc, key) in self.origins:
                    file, line = self.origins[(*loc, key)]
                    node.yaml_add_eol_comment(f"{file}:{line}", key)
            if self.flow is not None and loc in self.flow:
                node.fa.set_flow_style()
            return node
        if isinstance(value, list):
            seq = CommentedSeq()
            values = all(not isinstance(item, (dict, list)) for item in value)
            inline = loc in self.flow if self.flow is not None else values and self.origins is None
            for i, item in enumerate(value):
                if inline and isinstance(item, str) and (":" in item or item.startswith("-")):
                    seq.append(DoubleQuotedScalarString(item))  # an ARN, a flag: quoted, as the stacks write them
                else:
                    seq.append(self.tree(item, (*loc, i)))
                if self.origins is not None and (*loc, i) in self.origins and not isinstance(item, (dict, list)):
                    file, line = self.origins[(*loc, i)]
                    seq.yaml_add_eol_comment(f"{file}:{line}", i)
            if inline:
                seq.fa.set_flow_style()
            return seq
        return value
