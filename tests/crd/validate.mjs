// Validate Kubernetes custom resources against the schemas of their CRDs, as packaged on npm by
// kubernetes-models (see README.md beside this file for packages, versions and licenses).
//
// Usage: node validate.mjs <install-dir>   (stdin: a JSON array of manifests)
// <install-dir> holds node_modules from `npm ci` of this folder's package.json and package-lock.json
// (the Makefile's crd-validators target). Two checks, both generated from the same CRD openAPIV3Schema:
//  1. the package's JSON-schema validator (ajv, compiled): types, required fields, enums, patterns, bounds;
//  2. its TypeScript declarations, type-checked with tsc: an object literal with a field the schema does
//     not declare is an error. That is what the API server's strict field validation (kubectl's default)
//     rejects; a CRD schema itself does not forbid unknown fields, it prunes them.
// Prints a JSON array, one entry per manifest, {"kind", "name", "errors": ["<path> <message>", ...]},
// and exits 0. A manifest of a kind not listed below gets an error entry.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const MODELS = {
  "monitoring.coreos.com/v1 ServiceMonitor": "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor",
  "monitoring.coreos.com/v1 PrometheusRule": "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule",
  "keda.sh/v1alpha1 ScaledObject": "@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject",
  "keda.sh/v1alpha1 TriggerAuthentication": "@kubernetes-models/keda/keda.sh/v1alpha1/TriggerAuthentication",
};

const root = process.argv[2];
if (!root) {
  console.error("usage: node validate.mjs <install-dir> < manifests.json");
  process.exit(2);
}
const modules = join(root, "node_modules");

async function model(key) {
  // Imported by file path: the packages' "exports" maps do not list every file, and the models' own
  // imports then resolve from <install-dir>/node_modules.
  const mod = await import(pathToFileURL(join(modules, `${MODELS[key]}.js`)).href);
  const kind = key.split(" ")[1];
  const Model = mod[kind] ?? mod.default?.[kind];
  if (typeof Model !== "function") throw new Error(`${MODELS[key]} exports no ${kind} model`);
  return Model;
}

function schemaErrors(Model, manifest) {
  try {
    new Model(manifest).validate();
    return [];
  } catch (e) {
    if (!Array.isArray(e.errors)) throw e;
    return e.errors.map((err) => {
      let detail = err.message ?? err.keyword;
      if (err.params?.missingProperty) detail = `must have required property '${err.params.missingProperty}'`;
      if (err.params?.allowedValues) detail += ` ${JSON.stringify(err.params.allowedValues)}`;
      return `${err.instancePath || "/"} ${detail}`;
    });
  }
}

async function unknownFieldErrors(manifests, entries) {
  // One `export const mN: IKind = <manifest>;` line per manifest: tsc's excess-property check on object
  // literals, at every depth, against the interfaces generated from the CRD schemas.
  const ts = (await import(pathToFileURL(join(modules, "typescript", "lib", "typescript.js")).href)).default;
  const dir = mkdtempSync(join(root, "check-"));
  try {
    const lines = [];
    const lineOf = [];
    manifests.forEach((m, i) => {
      const key = `${m.apiVersion} ${m.kind}`;
      if (!(key in MODELS)) return;
      lines.push(`import type { I${m.kind} as T${i} } from "${MODELS[key]}";`);
      lineOf.push(null);
    });
    manifests.forEach((m, i) => {
      if (!(`${m.apiVersion} ${m.kind}` in MODELS)) return;
      lines.push(`export const m${i}: T${i} = ${JSON.stringify(m)};`);
      lineOf.push(i);
    });
    const file = join(dir, "manifests.ts");
    writeFileSync(file, lines.join("\n") + "\n");
    const program = ts.createProgram([file], {
      noEmit: true, strict: true, skipLibCheck: true, types: [],
      module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext,
    });
    for (const d of ts.getPreEmitDiagnostics(program)) {
      const text = ts.flattenDiagnosticMessageText(d.messageText, " ");
      const line = d.file ? d.file.getLineAndCharacterOfPosition(d.start).line : -1;
      const i = lineOf[line];
      if (i === undefined || i === null) throw new Error(`tsc: ${text}`); // the check itself is broken
      const path = jsonPath(ts, d.file, d.start);
      const excess = d.code === 2353 && /'"?([^'"]+)"?' does not exist/.exec(text);
      entries[i].errors.push(excess ? `${path} unknown field '${excess[1]}' (not in the CRD schema)`
        : `${path} ${text.replace(/ '\{.*$/, " the schema's type")}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function jsonPath(ts, file, pos) {
  // The JSON pointer of the innermost property or element at `pos` in a `const mN: T = <literal>` line.
  let node = file;
  for (;;) {
    const child = node.getChildren(file).find((c) => c.getStart(file) <= pos && pos < c.getEnd());
    if (!child) break;
    node = child;
  }
  const parts = [];
  for (let n = node; n && !ts.isVariableDeclaration(n); n = n.parent) {
    if (ts.isPropertyAssignment(n)) parts.unshift(n.name.text);
    else if (n.parent && ts.isArrayLiteralExpression(n.parent)) parts.unshift(String(n.parent.elements.indexOf(n)));
  }
  return `/${parts.join("/")}`;
}

const manifests = JSON.parse(readFileSync(0, "utf8"));
const entries = [];
for (const m of manifests) {
  const key = `${m.apiVersion} ${m.kind}`;
  const entry = { kind: m.kind, name: m.metadata?.name ?? null, errors: [] };
  if (key in MODELS) entry.errors.push(...schemaErrors(await model(key), m));
  else entry.errors.push(`no CRD validator for ${key}`);
  entries.push(entry);
}
await unknownFieldErrors(manifests, entries);
process.stdout.write(JSON.stringify(entries));
