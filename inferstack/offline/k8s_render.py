"""`inferstack render`: the Kubernetes objects of an offline plan, as files a GitOps tool applies.

The layout is the one pulumi-kubernetes' `renderYamlToDirectory` writes (provider/pkg/provider/
provider.go, `renderYaml` and `renderPathForResource`, pulumi-kubernetes v4.32+), so a `mode:
render` target's directory after `pulumi up` and `inferstack render` agree file for file:

    <dir>/0-crd/        CustomResourceDefinitions (apiextensions.k8s.io)
    <dir>/1-manifest/   everything else
    file name: <apiVersion, '/' and ':' as '_'>-<kind, lower case>-<namespace or 'default'>-<name>.yaml

Each file holds one object as the provider writes it: the resource's inputs (what the component
registered), keys sorted. Patch resources are written as the object they patch with only the
patched fields, as the provider does (a NodePatch is a `Node` with labels, annotations and taints);
a second patch of the same object is a file of its own beside the first (`patch_path`).
Helm releases are not Kubernetes objects (the provider installs them, it never renders them).

The content is the same data, keys sorted in both; the formatting follows go-yaml's choices of
string style (`to_yaml`), and never folds long lines, which Go may. A plan with a secret value in an object renders
nothing: a file committed for GitOps never holds a secret (the provider would write it in clear).
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from inferstack.offline.mocks import SECRET

CRD_DIR = "0-crd"
MANIFEST_DIR = "1-manifest"
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
_NOT_OBJECTS = (HELM_RELEASE,)
_CRD_API_VERSIONS = ("apiextensions.k8s.io/v1", "apiextensions.k8s.io/v1beta1")


class RenderError(ValueError):
    """What makes a plan's objects unfit to write; the message names the object."""


@dataclass(frozen=True)
class RenderedObject:
    directory: str  # the target (the component the object belongs to)
    path: str  # relative to the target's directory: 1-manifest/v1-namespace-default-x.yaml
    body: dict[str, Any]


def render_path(body: dict[str, Any]) -> str:
    """pulumi-kubernetes' renderPathForResource, relative to the render directory."""
    meta = body.get("metadata") or {}
    namespace = meta.get("namespace") or "default"
    api_version = str(body["apiVersion"]).replace("/", "_").replace(":", "_")
    name = f"{api_version}-{str(body['kind']).lower()}-{namespace}-{meta['name']}.yaml"
    crd = body["apiVersion"] in _CRD_API_VERSIONS and body["kind"] == "CustomResourceDefinition"
    return f"{CRD_DIR if crd else MANIFEST_DIR}/{name}"


def api_version_kind(token: str, inputs: dict[str, Any]) -> tuple[str, str]:
    """apiVersion and kind: from the inputs (every typed class sets them), else from the type
    token kubernetes:<group>/<version>:<Kind> (core/v1 is apiVersion v1; FooPatch patches Foo)."""
    _, group_version, kind = token.split(":", 2)
    if group_version.startswith("core/"):
        group_version = group_version.removeprefix("core/")
    kind = kind.removesuffix("Patch")
    return str(inputs.get("apiVersion") or group_version), str(inputs.get("kind") or kind)


def object_label(resource: dict[str, Any]) -> str | None:
    """`Kind namespace/name` of a resource that is a Kubernetes object (a patch: of the object it
    patches), None for anything else (a Helm release, a provider, a cloud resource)."""
    token = resource["type"]
    meta = resource["inputs"].get("metadata")
    if (
        not token.startswith("kubernetes:")
        or token in _NOT_OBJECTS
        or not isinstance(meta, dict)
        or not meta.get("name")
    ):
        return None
    kind = api_version_kind(token, resource["inputs"])[1]
    where = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{kind} {where}{meta['name']}" + (" (patch)" if token.endswith("Patch") else "")


def _secret_paths(value: Any, path: str = "") -> Iterable[str]:
    if value == SECRET:
        yield path or "(object)"
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _secret_paths(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _secret_paths(v, f"{path}[{i}]")


def _top_component(resource: dict[str, Any], by_urn: dict[str, dict[str, Any]]) -> str:
    """The name of the outermost component a resource belongs to: its target."""
    current = resource
    while current["parent"] in by_urn:
        current = by_urn[current["parent"]]
    return current["name"]


def patch_path(path: str, resource_name: str) -> str:
    """Where a second patch of one object goes: beside the first, named after its Pulumi resource
    (`1-manifest/v1-node-default-gpu-1+site-node-gpu-1-taints.yaml`; `+` is in no Kubernetes name,
    so no object's own file can take the name)."""
    return f"{path.removesuffix('.yaml')}+{resource_name}.yaml"


def kubernetes_objects(resources: list[dict[str, Any]]) -> tuple[list[RenderedObject], list[str]]:
    """Every Kubernetes object a plan registers, per target directory, and notes on what is not
    written (Helm releases). Two patches of one object (a node's labels and its taints, in apply
    mode) are two files, each exactly what its patch applies: merged, the labels patch's
    `pulumi.com/patchForce` would read as if the taints were forced too, and they never are."""
    by_urn = {r["urn"]: r for r in resources}
    files: dict[tuple[str, str], dict[str, Any]] = {}
    patched: dict[tuple[str, str], bool] = {}
    notes: list[str] = []
    for r in sorted(resources, key=lambda r: r["urn"]):
        if not r["custom"] or not r["type"].startswith("kubernetes:"):
            continue
        if r["type"] in _NOT_OBJECTS:
            notes.append(
                f"{r['name']}: a Helm release ({r['inputs'].get('chart')} {r['inputs'].get('version')}) is installed "
                "by pulumi up in apply mode, not rendered; a render-mode target declares it as a GitOps object"
            )
            continue
        api_version, kind = api_version_kind(r["type"], r["inputs"])
        body = {**r["inputs"], "apiVersion": api_version, "kind": kind}
        if not (body.get("metadata") or {}).get("name"):
            raise RenderError(f"{r['type']} {r['name']}: an object without metadata.name cannot be rendered")
        secrets = list(_secret_paths(body))
        if secrets:
            raise RenderError(
                f"{api_version} {kind} {body['metadata']['name']} holds a secret at {', '.join(secrets)}: rendered "
                "files never hold secrets; reference a Secret that exists on the site instead"
            )
        key = (_top_component(r, by_urn), render_path(body))
        is_patch = r["type"].endswith("Patch")
        if key in files:
            if not (is_patch and patched[key]):
                raise RenderError(f"two objects render to {key[0]}/{key[1]}: {r['name']} and an earlier one")
            key = (key[0], patch_path(key[1], r["name"]))
        files[key] = body
        patched[key] = is_patch
    return [RenderedObject(d, p, b) for (d, p), b in sorted(files.items())], notes


class _Dumper(yaml.SafeDumper):
    """Block style, keys sorted, no line folding, and strings styled as go-yaml v2 styles them (the
    provider's serializer, sigs.k8s.io/yaml over go.yaml.in/yaml/v2, encode.go `stringv`): a
    multi-line string as a literal block, a string that would read as another type ("true", "8000",
    "") double-quoted, anything else plain when YAML allows it. Both emitters are ports of libyaml,
    so the fallbacks (single quotes for a string plain style cannot carry) agree too."""


_STR_TAG = "tag:yaml.org,2002:str"


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    if "\n" in value:
        style: str | None = "|"
    elif dumper.resolve(yaml.ScalarNode, value, (True, False)) != _STR_TAG:
        style = '"'
    else:
        style = None
    return dumper.represent_scalar(_STR_TAG, value, style=style)


_Dumper.add_representer(str, _str)


def to_yaml(body: dict[str, Any]) -> str:
    """An object as YAML. Go folds long strings at 80 columns unless the process opted out
    (go-yaml v2.4 `FutureLineWrap`); a manifest reads and diffs better unfolded, so this never folds."""
    return yaml.dump(
        body, Dumper=_Dumper, sort_keys=True, default_flow_style=False, allow_unicode=True, width=2**31 - 1
    )


def write(objects: list[RenderedObject], out: Path, *, replace: bool) -> list[Path]:
    """Write one file per object under `out/<target>/`. Directories 0700 and files 0600, as the
    provider makes them. With `replace`, the YAML files already in a target's 0-crd/ and 1-manifest/
    go first (an object the stack no longer has must not stay in Git); nothing else is touched."""
    written: list[Path] = []
    by_dir: dict[str, list[RenderedObject]] = defaultdict(list)
    for obj in objects:
        by_dir[obj.directory].append(obj)
    for directory, objs in sorted(by_dir.items()):
        root = out / directory
        for sub in (CRD_DIR, MANIFEST_DIR):
            (root / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
            if replace:
                for stale in sorted((root / sub).glob("*.yaml")):
                    stale.unlink()
        for obj in objs:
            path = root / obj.path
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(to_yaml(obj.body))
            written.append(path)
    return written
