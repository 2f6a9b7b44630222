// Custom resources against the validators of the @kubernetes-models packages (pinned in
// package.json, installed by `npm ci`): reads a JSON array of objects on stdin and writes, for each,
// the list of its problems as {path: [...], message} (an empty list is a pass). Called by
// tests/k8s_schemas.py; see tests/crd_validators.md for the packages and what they carry.
//
// Each package ships, per kind, a validator that ajv compiled from the OpenAPI schema of the Go API
// types (types, required fields, enums, patterns, formats, bounds), but with no
// `additionalProperties`: a misspelt field passes it. The API server refuses one (strict field
// validation; a structural schema prunes what it does not name). So the object is handed to the
// validator through proxies that record which fields the validator reads: ajv's compiled code
// reads every property its schema names (`void 0!==data.name`) and enumerates the keys of a map
// (`for (const key in data)`). Then, in an object whose fields the validator read, a field it did
// not read is unknown to the schema; an object it enumerated is a map (any key); an object it
// never looked into is free-form (x-kubernetes-preserve-unknown-fields, apiextensions JSON such
// as a HelmRelease's values) and is not closed.

const MODELS = {
  "keda.sh/v1alpha1 ScaledObject": "@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject",
  "gateway.networking.k8s.io/v1 Gateway": "@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/Gateway",
  "gateway.networking.k8s.io/v1 HTTPRoute": "@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/HTTPRoute",
  "gateway.networking.k8s.io/v1beta1 ReferenceGrant":
    "@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1beta1/ReferenceGrant",
  "source.toolkit.fluxcd.io/v1 HelmRepository": "@kubernetes-models/flux-cd/source.toolkit.fluxcd.io/v1/HelmRepository",
  "helm.toolkit.fluxcd.io/v2 HelmRelease": "@kubernetes-models/flux-cd/helm.toolkit.fluxcd.io/v2/HelmRelease",
  "argoproj.io/v1alpha1 Application": "@kubernetes-models/argo-cd/argoproj.io/v1alpha1/Application",
  "monitoring.coreos.com/v1 ServiceMonitor": "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor",
  "monitoring.coreos.com/v1 PrometheusRule": "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule",
};

const isPlainObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

// A proxy over `value` (and, lazily, over everything under it) that records reads per object.
function watch(value, seen, proxies = new WeakMap()) {
  if (value === null || typeof value !== "object") return value;
  if (proxies.has(value)) return proxies.get(value);
  const record = { read: new Set(), enumerated: false };
  seen.set(value, record);
  const proxy = new Proxy(value, {
    get(target, key, receiver) {
      if (typeof key === "string") record.read.add(key);
      const child = Reflect.get(target, key, receiver);
      return child !== null && typeof child === "object" ? watch(child, seen, proxies) : child;
    },
    has(target, key) {
      if (typeof key === "string") record.read.add(key);
      return Reflect.has(target, key);
    },
    ownKeys(target) {
      record.enumerated = true;
      return Reflect.ownKeys(target);
    },
  });
  proxies.set(value, proxy);
  return proxy;
}

function* unknownFields(value, seen, path) {
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) yield* unknownFields(value[i], seen, [...path, i]);
    return;
  }
  if (!isPlainObject(value)) return;
  const record = seen.get(value);
  if (!record || record.enumerated || record.read.size === 0) return; // unread, a map, or free-form
  // The root's metadata is checked by tests/k8s_schemas.py against the Kubernetes version's own
  // ObjectMeta (strict), so its unknown fields are reported once, there.
  const skip = path.length === 0 ? new Set(["metadata"]) : new Set();
  const extra = Object.keys(value).filter((k) => !record.read.has(k));
  if (extra.length) {
    yield { path, message: `Additional properties are not allowed (${extra.map((k) => `'${k}'`).join(", ")} was unexpected)` };
  }
  for (const key of Object.keys(value)) {
    if (!skip.has(key) && record.read.has(key)) yield* unknownFields(value[key], seen, [...path, key]);
  }
}

const show = (v) => (typeof v === "string" ? `'${v}'` : JSON.stringify(v));

function describe(error, data) {
  const path = error.instancePath
    .split("/")
    .slice(1)
    .map((p) => p.replaceAll("~1", "/").replaceAll("~0", "~"));
  let value = data;
  for (let i = 0; i < path.length; i++) {
    if (Array.isArray(value)) path[i] = Number(path[i]);
    value = value?.[path[i]];
  }
  const p = error.params;
  switch (error.keyword) {
    case "required":
      return { path, message: `'${p.missingProperty}' is a required property` };
    case "type":
      return { path, message: `${show(value)} is not of type '${p.type}'` };
    case "enum":
      return { path, message: `${show(value)} is not one of ${JSON.stringify(p.allowedValues)}` };
    case "pattern":
      return { path, message: `${show(value)} does not match '${p.pattern}'` };
    default:
      return { path, message: `${show(value)}: ${error.message ?? error.keyword} (${error.keyword} ${JSON.stringify(p)})` };
  }
}

const cache = new Map();
async function model(key) {
  if (!cache.has(key)) {
    const specifier = MODELS[key];
    cache.set(key, specifier ? await import(specifier) : null);
  }
  return cache.get(key);
}

async function check(obj) {
  const key = `${obj?.apiVersion} ${obj?.kind}`;
  const mod = await model(key);
  if (!mod) return [{ path: [], message: `no @kubernetes-models validator for ${key} here` }];
  const cls = mod[obj.kind];
  const seen = new Map();
  const problems = [];
  try {
    // The generated class validates `this`; calling it on the proxy (not on a copy made by the
    // constructor) lets the proxy see what the validator reads.
    cls.prototype.validate.call(watch(obj, seen));
  } catch (e) {
    if (!Array.isArray(e.errors)) throw e;
    // ajv reports an error once per schema that refers to the same type: say each once.
    const said = new Set();
    for (const problem of e.errors.map((err) => describe(err, obj))) {
      const key = JSON.stringify(problem);
      if (!said.has(key)) problems.push(problem);
      said.add(key);
    }
  }
  problems.push(...unknownFields(obj, seen, []));
  return problems;
}

let input = "";
for await (const chunk of process.stdin) input += chunk;
const results = [];
for (const obj of JSON.parse(input)) results.push(await check(obj));
process.stdout.write(JSON.stringify(results));
