"""The spec's JSON Schema, for editors (yaml-language-server) and CI checks, in two forms.

A whole spec is checked against the model's schema. An environment file that `extends:` a base
holds only what differs from it, so its schema is the same one with nothing required, every
field nullable (`null` removes the base's key), `<list field>+` keys allowed (they append to
the base's list) and a target's kind optional (the base has it): an editor then completes and
checks the fields an overlay does write.
"""

from __future__ import annotations

import copy
from typing import Any

from inferstack.spec.models import DeploymentSpec

EXTENDS_SCHEMA = {
    "description": "A base spec this one is written on, relative to this file; see the README's Environments.",
    "type": "string",
    "pattern": r"\.ya?ml$",
}


def spec_schema(overlay: bool = False) -> dict[str, Any]:
    schema = DeploymentSpec.model_json_schema()
    schema["properties"]["extends"] = EXTENDS_SCHEMA
    if not overlay:
        return schema
    out = copy.deepcopy(schema)
    _relax(out)
    out["title"] = "inferstack deployment spec (an environment on a base)"
    return out


def _relax(node: Any) -> None:
    """Nothing required, every property nullable, `name+` keys for lists; in every object."""
    if isinstance(node, dict):
        node.pop("required", None)
        if "oneOf" in node:  # an overlay's target may leave out the kind: any member may match
            node["anyOf"] = node.pop("oneOf")
            node.pop("discriminator", None)
        properties = node.get("properties")
        if isinstance(properties, dict):
            for name, prop in list(properties.items()):
                if name not in ("kind", "extends"):  # the kind picks the union member; keep it
                    properties[name] = {"anyOf": [prop, {"type": "null"}]}
            node.setdefault("patternProperties", {})[r"^[a-z_]+\+$"] = {"type": "array"}
        elif isinstance(node.get("additionalProperties"), dict):  # a map of names: null removes one
            node["additionalProperties"] = {"anyOf": [node["additionalProperties"], {"type": "null"}]}
        elif isinstance(node.get("patternProperties"), dict):
            for pattern, prop in list(node["patternProperties"].items()):
                node["patternProperties"][pattern] = {"anyOf": [prop, {"type": "null"}]}
        for value in node.values():
            if isinstance(value, (dict, list)):
                _relax(value)
    elif isinstance(node, list):
        for value in node:
            _relax(value)
