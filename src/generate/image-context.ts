// The mirror image's build context, made from an installed mirror-kit package: its own files, and
// its production dependencies laid out in one node_modules so Node resolves each as it does here.
import { existsSync, readdirSync, readFileSync, realpathSync, statSync } from "node:fs";
import { dirname, join, sep } from "node:path";
import dockerignore from "@balena/dockerignore";
import { MirrorKitError } from "../errors.js";
import { GenerateError } from "./errors.js";

/** One file of the context: where it goes in the tar, and where it is on this machine. */
export interface ContextFile {
  name: string;
  source: string;
  mode: number;
  size: number;
}

interface Manifest {
  name?: string;
  files?: string[];
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
}

const readManifest = (dir: string): Manifest => JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as Manifest;

/** Node's lookup for a bare name from inside `fromDir`: the nearest node_modules/<name> up the tree. */
function resolvePackage(fromDir: string, name: string): string | null {
  for (let dir = fromDir; ; dir = dirname(dir)) {
    const candidate = join(dir, "node_modules", name);
    if (existsSync(join(candidate, "package.json"))) return realpathSync(candidate);
    if (dirname(dir) === dir) return null;
  }
}

/**
 * The dependency edges of one package: required ones must resolve; optional ones and optional peers
 * may be absent (npm skips an optional dependency that does not build or fit the platform).
 */
function edges(dir: string): { name: string; required: boolean }[] {
  const m = readManifest(dir);
  const out = new Map<string, boolean>();
  for (const name of Object.keys(m.dependencies ?? {})) out.set(name, true);
  for (const name of Object.keys(m.optionalDependencies ?? {})) out.set(name, false);
  for (const name of Object.keys(m.peerDependencies ?? {})) if (!out.has(name)) out.set(name, !m.peerDependenciesMeta?.[name]?.optional);
  return [...out].map(([name, required]) => ({ name, required }));
}

/**
 * Where each production dependency goes under the context's node_modules. npm may have hoisted a
 * package above mirror-kit (npx, a project's node_modules) or nested it inside; the context gets one
 * tree whose lookups give the same package for every dependent: hoisted to the top while that name
 * is free there, nested under the dependent when the top holds another version.
 */
export function placeDependencies(appDir: string): Map<string, string> {
  const placed = new Map<string, string>(); // context path ("node_modules/a/node_modules/b") -> real dir
  const queue: { real: string; at: string }[] = [{ real: realpathSync(appDir), at: "" }];
  const seen = new Set<string>();
  while (queue.length > 0) {
    const { real, at } = queue.shift()!;
    if (seen.has(`${real}\0${at}`)) continue;
    seen.add(`${real}\0${at}`);
    // All direct dependencies first, then theirs: a package nested below this one must be in place
    // before any of its siblings' own lookups are decided.
    for (const { name, required } of edges(real)) {
      const dep = resolvePackage(real, name);
      if (!dep) {
        if (required) throw new GenerateError("NOT_FOUND", `cannot build the image: ${name} (needed by ${readManifest(real).name ?? real}) is not installed; reinstall mirror-kit`);
        continue;
      }
      const target = lookup(placed, at, name);
      if (target && placed.get(target) === dep) {
        queue.push({ real: dep, at: target });
        continue;
      }
      const where = target === undefined ? `node_modules/${name}` : `${at ? `${at}/` : ""}node_modules/${name}`;
      if (placed.has(where) && placed.get(where) !== dep) throw new MirrorKitError("MK_INTERNAL", `cannot lay out ${name} for the image: two versions at ${where}`);
      placed.set(where, dep);
      queue.push({ real: dep, at: where });
    }
  }
  return placed;
}

/** The context path Node would find `name` at from a package placed at `at`, if any. */
function lookup(placed: Map<string, string>, at: string, name: string): string | undefined {
  const parts = at ? at.split("/") : [];
  for (let i = parts.length; i >= 0; i--) {
    const base = parts.slice(0, i).join("/");
    // Only a folder that is a package's own (…/node_modules/x) or the root holds a node_modules.
    if (base && parts[i - 1] === "node_modules") continue;
    const candidate = `${base ? `${base}/` : ""}node_modules/${name}`;
    if (placed.has(candidate)) return candidate;
  }
  return undefined;
}

function walk(dir: string, name: string, out: ContextFile[], skipRootNodeModules: boolean): void {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (skipRootNodeModules && entry.name === "node_modules") continue;
    const source = join(dir, entry.name);
    const inner = `${name}/${entry.name}`;
    // A package's symlinks (bin links) are left out: the image runs node on the files themselves.
    if (entry.isSymbolicLink()) continue;
    if (entry.isDirectory()) walk(source, inner, out, false);
    else if (entry.isFile()) {
      const st = statSync(source);
      out.push({ name: inner, source, mode: st.mode & 0o777, size: st.size });
    }
  }
}

/**
 * Every file of the context for the package at `appDir`: the Dockerfile, package.json and the
 * package's `files`, plus the production dependencies, filtered by the package's .dockerignore
 * exactly as `docker build` would filter a checkout.
 */
export function contextFiles(appDir: string): ContextFile[] {
  const manifest = readManifest(appDir);
  const out: ContextFile[] = [];
  for (const name of ["Dockerfile", ".dockerignore", "package.json", ...(manifest.files ?? [])]) {
    const source = join(appDir, name);
    if (!existsSync(source)) {
      if (name === "Dockerfile") throw new GenerateError("NOT_FOUND", `no Dockerfile in ${appDir}: this mirror-kit package cannot build its image; pass --image with one you have`);
      continue;
    }
    if (statSync(source).isDirectory()) walk(source, name, out, false);
    else if (!out.some((f) => f.name === name)) out.push({ name, source, mode: statSync(source).mode & 0o777, size: statSync(source).size });
  }
  for (const [at, real] of placeDependencies(appDir)) walk(real, at, out, true);
  const ignorePath = join(appDir, ".dockerignore");
  if (!existsSync(ignorePath)) return out;
  // A CommonJS module: under NodeNext its default import is module.exports, which is the factory.
  const ignore = (dockerignore as unknown as typeof dockerignore.default)({ ignorecase: false }).add(readFileSync(ignorePath, "utf8"));
  // The Dockerfile and .dockerignore always reach the daemon, as with the docker CLI.
  return out.filter((f) => f.name === "Dockerfile" || f.name === ".dockerignore" || !ignore.ignores(f.name.split(sep).join("/")));
}

