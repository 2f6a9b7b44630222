"""Kubernetes objects against the real schemas of the cluster's version: offline and strict.

A plan registers whatever dict it is given; the API server refuses a misspelt field, a string
where it wants an integer or a name with an underscore at `pulumi up`. `validate(obj, version)`
says so in the tests instead, and returns every problem it finds (an empty list is a pass):

- built-in kinds through kubernetes-validate (the OpenAPI schemas of each Kubernetes minor
  version, bundled in the wheel, read offline) in strict mode: a field the schema does not name is
  an error, as it is for `kubectl apply --validate=strict` (server-side field validation);
- custom resources (the nine kinds of CUSTOM_RESOURCES) through the validators of the
  @kubernetes-models npm packages, pinned in package.json (tests/crd_validators.md: which
  package, which upstream version): ajv validators compiled from the OpenAPI schema of each
  project's Go API types (types, required fields, enums, patterns). They do not close objects, so
  tests/crd_validate.mjs watches which fields the validator reads and reports any other field of
  an object it looked into, as the API server's strict field validation does; maps and free-form
  objects (a HelmRelease's values) stay open. The object's metadata is checked against the
  cluster version's ObjectMeta through kubernetes-validate;
- an apiVersion/kind that is neither a built-in of that version nor a CRD here is an error:
  nothing is skipped silently;
- the metadata rules the schemas do not express (apimachinery's validation, Kubernetes
  documentation "Object Names and IDs" and "Labels and Selectors"): the name's syntax per kind
  (DNS-1123 subdomain for most, DNS-1123 label for a Namespace, DNS-1035 label for a Service), a
  namespace only on namespaced kinds, label keys and values (qualified names, 63 characters),
  annotation keys and their total size (256 KiB).

Limits: CEL rules (`x-kubernetes-validations`) are not evaluated, the custom resources' schemas
are the Go types' (not the CRD YAML, see the README), and admission
(Pod Security, quotas, webhooks) is not simulated; the policy pack and the other tests own those.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
from collections.abc import Iterable, Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
from kubernetes_validate.utils import VersionNotSupportedError, all_versions

ROOT = Path(__file__).resolve().parent.parent

# pulumi-kubernetes names an object that has no metadata.name "<logical name>-<8 hex>"
# (provider/pkg/metadata/naming.go AssignNameIfAutonamable -> resource.NewUniqueName, 8 random
# characters of [0-9a-f] by default); the checks run on a name of that shape.
AUTONAME_SUFFIX = "-0a1b2c3d"

# Built-in kinds that are cluster-scoped (Kubernetes API reference; `kubectl api-resources
# --namespaced=false`): metadata.namespace is forbidden on them ("not allowed on this type").
CLUSTER_SCOPED = frozenset(
    {
        "APIService",
        "CertificateSigningRequest",
        "ClusterRole",
        "ClusterRoleBinding",
        "ClusterTrustBundle",
        "CSIDriver",
        "CSINode",
        "CustomResourceDefinition",
        "DeviceClass",
        "FlowSchema",
        "IngressClass",
        "IPAddress",
        "MutatingAdmissionPolicy",
        "MutatingAdmissionPolicyBinding",
        "MutatingWebhookConfiguration",
        "Namespace",
        "Node",
        "PersistentVolume",
        "PriorityClass",
        "PriorityLevelConfiguration",
        "ResourceSlice",
        "RuntimeClass",
        "ServiceCIDR",
        "StorageClass",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "ValidatingWebhookConfiguration",
        "VolumeAttachment",
        "VolumeAttributesClass",
    }
)

# apimachinery/pkg/util/validation: IsDNS1123Label, IsDNS1123Subdomain, IsDNS1035Label,
# IsQualifiedName, IsValidLabelValue; TotalAnnotationSizeLimitB = 256 * (1 << 10).
DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
DNS1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
QUALIFIED_NAME_PART = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
ANNOTATIONS_MAX_BYTES = 256 * 1024

# Name rules that are not the default DNS-1123 subdomain (pkg/apis/core/validation:
# ValidateNamespaceName = NameIsDNSLabel, ValidateServiceName = NameIsDNS1035Label;
# pkg/apis/rbac/validation: ValidateRBACName = path segment name).
NAME_RULES = {
    "Namespace": "label",
    "Service": "dns1035",
    "Role": "path",
    "ClusterRole": "path",
    "RoleBinding": "path",
    "ClusterRoleBinding": "path",
}


# -- the helper ------------------------------------------------------------------------------


def validate(obj: Mapping[str, Any], version: str) -> list[str]:
    """Every reason the API server of Kubernetes `version` ("1.31") would refuse `obj`."""
    if not isinstance(obj, Mapping):
        return [f"not an object: {obj!r}"]
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    metadata = obj.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    where = f"{api_version} {kind} {name or '<no name>'}"
    if not isinstance(api_version, str) or not isinstance(kind, str) or not api_version or not kind:
        return [f"{where}: apiVersion and kind are required strings"]
    if f"{version}.0" not in all_versions():
        # kubernetes-validate would fall back to an older version's schema: say so instead.
        supported = sorted({v.rsplit(".", 1)[0] for v in all_versions()}, key=lambda v: int(v.split(".")[1]))
        return [
            f"{where}: kubernetes-validate {kubernetes_validate.__version__} has no schema for Kubernetes {version} (it has {', '.join(supported)})"
        ]
    scope = CUSTOM_RESOURCES.get((api_version, kind))
    if scope is not None:
        errors = list(_crd_errors(obj, version))
        cluster_scoped = scope == "Cluster"
    else:
        errors = list(_builtin_errors(obj, version))
        cluster_scoped = kind in CLUSTER_SCOPED
    errors += metadata_errors(obj, cluster_scoped)
    return [f"{where}: {e}" for e in errors]


def _builtin_errors(obj: Mapping[str, Any], version: str) -> Iterator[str]:
    try:
        kubernetes_validate.validate(dict(obj), version, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        yield (
            f"unknown apiVersion/kind: not a built-in kind of Kubernetes {version} and not one of the custom "
            "resources in CUSTOM_RESOURCES (tests/crd_validators.md says how to add one)"
        )
    except kubernetes_validate.ValidationError as e:
        yield f"{_path(e.absolute_path)}: {e.message}"
    except VersionNotSupportedError as e:  # the check in validate() makes this unreachable; kept loud
        yield e.message


def _path(parts: Iterable[Any]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(root)"


# -- metadata --------------------------------------------------------------------------------


def metadata_errors(obj: Mapping[str, Any], cluster_scoped: bool) -> list[str]:
    """What apimachinery checks in ObjectMeta beyond types: name syntax, namespace, labels, annotations."""
    kind = obj.get("kind")
    metadata = obj.get("metadata")
    if not isinstance(metadata, Mapping):
        return ["metadata is required"]
    errors: list[str] = []
    name = metadata.get("name")
    if not name:
        errors.append("metadata.name is required")
    elif isinstance(name, str):
        errors += [f"metadata.name {name!r} {e}" for e in name_errors(str(kind), name)]
    namespace = metadata.get("namespace")
    if namespace is not None:
        if cluster_scoped:
            errors.append(f"metadata.namespace is not allowed on the cluster-scoped kind {kind}")
        elif isinstance(namespace, str):
            errors += [f"metadata.namespace {namespace!r} {e}" for e in dns1123_label_errors(namespace)]
    for where, labels in _label_maps(obj):
        errors += [f"{where}: {e}" for e in label_map_errors(labels)]
    for where, notes in _annotation_maps(obj):
        errors += [f"{where}: {e}" for e in annotation_errors(notes)]
    return errors


def name_errors(kind: str, name: str) -> list[str]:
    rule = NAME_RULES.get(kind, "subdomain")
    if rule == "label":
        return dns1123_label_errors(name)
    if rule == "dns1035":
        if len(name) > 63:
            return [f"is {len(name)} characters; a {kind} name is an RFC 1035 label of at most 63"]
        if not DNS1035_LABEL.fullmatch(name):
            return [f"is not an RFC 1035 label (a {kind} name: a-z first, then a-z, 0-9 or '-', ending alphanumeric)"]
        return []
    if rule == "path":
        return [] if name not in (".", "..") and "/" not in name and "%" not in name else ["is not a path segment name"]
    return dns1123_subdomain_errors(name)


def dns1123_label_errors(value: str) -> list[str]:
    if len(value) > 63:
        return [f"is {len(value)} characters; an RFC 1123 label has at most 63"]
    if not DNS1123_LABEL.fullmatch(value):
        return ["is not an RFC 1123 label (a-z, 0-9 or '-', starting and ending alphanumeric)"]
    return []


def dns1123_subdomain_errors(value: str) -> list[str]:
    if len(value) > 253:
        return [f"is {len(value)} characters; an RFC 1123 subdomain has at most 253"]
    if not DNS1123_SUBDOMAIN.fullmatch(value):
        return ["is not an RFC 1123 subdomain (a-z, 0-9, '-' or '.', starting and ending alphanumeric)"]
    return []


def qualified_name_errors(key: Any) -> list[str]:
    """A label or annotation key: an optional DNS-1123 subdomain prefix and '/', then a name of 1-63."""
    if not isinstance(key, str) or not key:
        return [f"key {key!r} must be a non-empty string"]
    prefix, _, name = key.rpartition("/")
    errors = []
    if "/" in key and not prefix:
        errors.append(f"key {key!r} has an empty prefix")
    if prefix:
        errors += [f"key {key!r}: prefix {prefix!r} {e}" for e in dns1123_subdomain_errors(prefix)]
    if len(name) > 63:
        errors.append(f"key {key!r}: name part is {len(name)} characters; at most 63")
    elif not QUALIFIED_NAME_PART.fullmatch(name):
        errors.append(f"key {key!r}: name part must be alphanumeric, '-', '_' or '.', starting and ending alphanumeric")
    return errors


def label_map_errors(labels: Any) -> list[str]:
    if not isinstance(labels, Mapping):
        return [f"must be a map of strings, not {labels!r}"]
    errors = []
    for key, value in labels.items():
        errors += qualified_name_errors(key)
        if not isinstance(value, str):
            errors.append(f"value of {key!r} must be a string, not {value!r}")
        elif len(value) > 63:
            errors.append(f"value of {key!r} is {len(value)} characters; a label value has at most 63")
        elif value and not QUALIFIED_NAME_PART.fullmatch(value):
            errors.append(
                f"value of {key!r} ({value!r}) must be empty or alphanumeric, '-', '_' or '.', starting and ending alphanumeric"
            )
    return errors


def annotation_errors(annotations: Any) -> list[str]:
    if not isinstance(annotations, Mapping):
        return [f"must be a map of strings, not {annotations!r}"]
    errors = [e for key in annotations for e in qualified_name_errors(key)]
    size = sum(len(str(k)) + len(str(v)) for k, v in annotations.items())
    if size > ANNOTATIONS_MAX_BYTES:
        errors.append(f"annotations total {size} bytes; the limit is {ANNOTATIONS_MAX_BYTES} (256 KiB)")
    return errors


def _dig(obj: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def _label_maps(obj: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """The label maps the API server validates as labels: the object's, a pod template's, selectors."""
    candidates = {
        "metadata.labels": ("metadata", "labels"),
        "spec.template.metadata.labels": ("spec", "template", "metadata", "labels"),
        "spec.selector.matchLabels": ("spec", "selector", "matchLabels"),
        "spec.template.spec.nodeSelector": ("spec", "template", "spec", "nodeSelector"),
        "spec.podSelector.matchLabels": ("spec", "podSelector", "matchLabels"),
    }
    if obj.get("kind") == "Service":  # a Service's selector is a plain label map
        candidates["spec.selector"] = ("spec", "selector")
    for where, keys in candidates.items():
        value = _dig(obj, *keys)
        if value is not None:
            yield where, value


def _annotation_maps(obj: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    for where, keys in {
        "metadata.annotations": ("metadata", "annotations"),
        "spec.template.metadata.annotations": ("spec", "template", "metadata", "annotations"),
    }.items():
        value = _dig(obj, *keys)
        if value is not None:
            yield where, value


# -- custom resources ------------------------------------------------------------------------

# The custom resources an inferstack plan may produce, and their CRD's scope (spec.scope of the
# upstream CRDs: all nine are namespaced). Only these apiVersions are accepted: an older served
# version (Gateway API v1beta1, Flux helm v2beta2) is an error, like any other unknown kind.
CUSTOM_RESOURCES: dict[tuple[str, str], str] = {
    ("keda.sh/v1alpha1", "ScaledObject"): "Namespaced",
    ("gateway.networking.k8s.io/v1", "Gateway"): "Namespaced",
    ("gateway.networking.k8s.io/v1", "HTTPRoute"): "Namespaced",
    ("gateway.networking.k8s.io/v1beta1", "ReferenceGrant"): "Namespaced",
    ("source.toolkit.fluxcd.io/v1", "HelmRepository"): "Namespaced",
    ("helm.toolkit.fluxcd.io/v2", "HelmRelease"): "Namespaced",
    ("argoproj.io/v1alpha1", "Application"): "Namespaced",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "Namespaced",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "Namespaced",
}
# The validators come from the npm packages pinned in package.json (`npm ci` at the repository
# root, as .ci/run does); tests/crd_validate.mjs runs them (tests/crd_validators.md).
CRD_VALIDATOR = ROOT / "tests" / "crd_validate.mjs"
NODE_MODULES = ROOT / "node_modules"


def _crd_errors(obj: Mapping[str, Any], version: str) -> Iterator[str]:
    for problem in custom_resource_problems(json.dumps(obj, sort_keys=True)):
        yield f"{_path(problem['path'])}: {problem['message']}"
    metadata = obj.get("metadata")
    if isinstance(metadata, Mapping):
        # ObjectMeta's own schema of that version, strict, through a kind that has nothing else required.
        carrier = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": dict(metadata)}
        yield from _builtin_errors(carrier, version)


@cache
def custom_resource_problems(obj_json: str) -> list[dict[str, Any]]:
    """The problems the package validators find in one custom resource (JSON text, so that the
    same object on several cluster versions is validated once)."""
    if not (NODE_MODULES / "@kubernetes-models").is_dir():
        return [{"path": [], "message": f"no CRD validators: {NODE_MODULES} is missing; run `npm ci` (package.json)"}]
    run = subprocess.run(
        ["node", str(CRD_VALIDATOR)], input=f"[{obj_json}]", capture_output=True, text=True, cwd=ROOT, check=False
    )
    if run.returncode != 0:
        raise RuntimeError(f"{CRD_VALIDATOR.name} failed ({run.returncode}): {run.stderr.strip()}")
    problems: list[dict[str, Any]] = json.loads(run.stdout)[0]
    return problems


# -- plans -----------------------------------------------------------------------------------

# Kubernetes provider resources that are not API objects: validated by what they are, not here.
NOT_OBJECTS = {
    "kubernetes:helm.sh/v3:Release": "a Helm release: the chart's objects are made by Helm from its values",
}
# pulumi-kubernetes components whose objects only exist at deploy time (the provider builds them
# in Construct, which mocks do not run), so no offline check sees them: an error, not a skip.
# A ConfigGroup given `objs` is the exception: its objects are in its inputs and are checked.
OPAQUE_COMPONENTS = ("kubernetes:helm.sh/v4:Chart", "kubernetes:yaml/", "kubernetes:kustomize/")
CONFIG_GROUP = "kubernetes:yaml/v2:ConfigGroup"


def plan_objects(resources: Iterable[Mapping[str, Any]]) -> Iterator[tuple[str, tuple[str, str], dict[str, Any]]]:
    """(logical name, (apiVersion, kind) it is registered as, object body) of every Kubernetes
    object a plan registers. The type token says what the provider creates
    (`kubernetes:apps/v1:Deployment` -> apps/v1 Deployment; `core/v1` is `v1`; a `...Patch`
    patches the kind before it; a CustomResource's token is its own apiVersion and kind); the body
    is the inputs, named as the provider would name it. A ConfigGroup's `objs` are objects too."""
    for resource in resources:
        token = resource["type"]
        if token == CONFIG_GROUP:
            for i, obj in enumerate(resource["inputs"].get("objs") or []):
                body = copy.deepcopy(dict(obj))
                yield f"{resource['name']}.objs[{i}]", (body.get("apiVersion"), body.get("kind")), body
            continue
        if not token.startswith("kubernetes:") or not resource.get("custom") or token in NOT_OBJECTS:
            continue
        _, group_version, kind = token.split(":")
        expected = (group_version.removeprefix("core/"), kind.removesuffix("Patch"))
        body = copy.deepcopy(dict(resource["inputs"]))
        body.setdefault("apiVersion", expected[0])
        body.setdefault("kind", expected[1])
        metadata = body.setdefault("metadata", {})
        if isinstance(metadata, dict) and not metadata.get("name") and not metadata.get("generateName"):
            metadata["name"] = resource["name"] + AUTONAME_SUFFIX
        yield resource["name"], expected, body


def opaque_resources(resources: Iterable[Mapping[str, Any]]) -> list[str]:
    """Kubernetes components whose objects no offline check can see."""
    errors = []
    for resource in resources:
        token, inputs = resource["type"], resource.get("inputs") or {}
        if token == CONFIG_GROUP and not ({"yaml", "files"} & {k for k, v in inputs.items() if v}):
            continue
        if token.startswith(OPAQUE_COMPONENTS):
            errors.append(
                f"{resource['name']}: {token} makes its objects at deploy time, where no test sees them; "
                "register the objects themselves (a ConfigGroup with `objs`, or one resource per object)"
            )
    return errors


def plan_errors(resources: Iterable[Mapping[str, Any]], versions: Iterable[str]) -> list[str]:
    """Every problem of every Kubernetes object of a plan, on every given cluster version."""
    resources = list(resources)
    versions = sorted(set(versions))
    errors = opaque_resources(resources)
    for logical, (api_version, kind), body in plan_objects(resources):
        if (body.get("apiVersion"), body.get("kind")) != (api_version, kind):
            errors.append(
                f"{logical}: registered as {api_version} {kind} but its body says {body['apiVersion']} {body['kind']}"
            )
        if not versions:
            errors.append(f"{logical}: a Kubernetes object in a stack with no onprem-k8s target (no cluster version)")
        for version in versions:
            errors += [f"[{version}] {logical}: {e}" for e in validate(body, version)]
    return errors
