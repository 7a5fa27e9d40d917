// Finding the images a project uses, from its own files: Compose services (and the Dockerfiles of
// their build contexts), Dockerfiles (every FROM, ARG defaults resolved), devcontainer.json and
// Kubernetes / Helm-rendered YAML; anything that is not a file is taken as an image reference.
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { DockerfileParser } from "dockerfile-ast";
import { parse as parseJsonc, printParseErrorCode, type ParseError } from "jsonc-parser";
import { parseAllDocuments } from "yaml";
import { MirrorKitError } from "../errors.js";
import { formatImageReference, parseImageReference } from "../oci/reference.js";

export interface FoundImage {
  /** Canonical reference: docker.io/library/busybox:latest. */
  ref: string;
  /** Where it was found, for messages: "compose.yaml services.web.image". */
  source: string;
}

export interface Discovery {
  images: FoundImage[];
  /** References that could not be resolved (an ARG without a default, …): reported, not guessed. */
  warnings: string[];
}

/** Files looked for in a folder given without file names (or the current folder when nothing is given). */
const PROJECT_FILES = ["compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml", "Dockerfile", ".devcontainer/devcontainer.json", ".devcontainer.json"];

export function discover(inputs: readonly string[], cwd: string, env: Readonly<Record<string, string | undefined>> = {}): Discovery {
  const d = new Discoverer(env);
  for (const input of inputs.length > 0 ? inputs : [cwd]) {
    const path = resolve(cwd, input);
    if (existsSync(path) && statSync(path).isDirectory()) d.folder(path);
    else if (existsSync(path)) d.file(path);
    else d.reference(input, "command line");
  }
  return { images: [...d.images.values()], warnings: d.warnings };
}

class Discoverer {
  readonly images = new Map<string, FoundImage>();
  readonly warnings: string[] = [];
  private readonly seen = new Set<string>();

  constructor(private readonly env: Readonly<Record<string, string | undefined>>) {}

  folder(dir: string): void {
    let present = PROJECT_FILES.map((f) => join(dir, f)).filter((f) => existsSync(f));
    // A folder of manifests (k8s/, a Helm chart rendered to files): every YAML file in it.
    if (present.length === 0) present = readdirSync(dir).filter((f) => /\.ya?ml$/i.test(f)).sort().map((f) => join(dir, f));
    if (present.length === 0) throw new MirrorKitError("MK_PREFETCH_NOTHING", `${dir}: no Compose file, Dockerfile or devcontainer.json here; name files or images`);
    // Compose's own precedence: only the first Compose file is the project's.
    const compose = present.find((f) => /compose\.ya?ml$/.test(f));
    for (const f of present) if (f === compose || !/compose\.ya?ml$/.test(f)) this.file(f);
  }

  file(path: string, buildArgs: Readonly<Record<string, string>> = {}): void {
    const key = `${path}\0${JSON.stringify(buildArgs)}`;
    if (this.seen.has(key)) return;
    this.seen.add(key);
    const name = basename(path);
    const text = readText(path);
    if (/^(Dockerfile|Containerfile)(\..+)?$/i.test(name) || /\.(dockerfile|containerfile)$/i.test(name)) return this.dockerfile(path, text, buildArgs);
    if (/^\.?devcontainer\.json$/.test(name)) return this.devcontainer(path, text);
    if (/\.ya?ml$/i.test(name)) return this.yaml(path, text);
    throw new MirrorKitError("MK_PREFETCH_UNKNOWN_FILE", `${path}: not a Compose file, Dockerfile, devcontainer.json or Kubernetes YAML`);
  }

  reference(value: string, source: string): void {
    const ref = formatImageReference(parseImageReference(value));
    if (!this.images.has(ref)) this.images.set(ref, { ref, source });
  }

  /** Compose and Kubernetes values may hold ${VAR} / ${VAR:-default}: resolved from the environment. */
  private interpolated(value: string, source: string, vars: (name: string) => string | undefined): string | undefined {
    let unresolved: string | undefined;
    const out = value.replace(/\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-+])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))/g, (_m, braced?: string, op?: string, word?: string, bare?: string) => {
      const name = (braced ?? bare) as string;
      const v = vars(name);
      const set = op?.startsWith(":") ? v !== undefined && v !== "" : v !== undefined;
      if (op?.endsWith("-")) return set ? (v as string) : (word ?? "");
      if (op?.endsWith("+")) return set ? (word ?? "") : "";
      if (v === undefined) unresolved ??= name;
      return v ?? "";
    });
    if (unresolved !== undefined) {
      this.warnings.push(`${source}: ${value} uses $${unresolved}, which has no value; skipped`);
      return undefined;
    }
    return out;
  }

  private add(value: string, source: string, vars: (name: string) => string | undefined): void {
    const resolved = this.interpolated(value, source, vars);
    if (resolved === undefined) return;
    try {
      this.reference(resolved, source);
    } catch (err) {
      this.warnings.push(`${source}: ${(err as Error).message}`);
    }
  }

  private dockerfile(path: string, text: string, buildArgs: Readonly<Record<string, string>>): void {
    const df = DockerfileParser.parse(text);
    const defaults = new Map<string, string | undefined>();
    for (const arg of df.getInitialARGs()) {
      const p = arg.getProperty();
      if (p) defaults.set(p.getName(), p.getValue() ?? undefined);
    }
    const vars = (name: string) => buildArgs[name] ?? defaults.get(name);
    const stages = new Set<string>();
    for (const from of df.getFROMs()) {
      const image = from.getImage();
      const stage = from.getBuildStage();
      const line = from.getRange().start.line + 1;
      if (image && image.toLowerCase() !== "scratch" && !stages.has(image.toLowerCase())) this.add(image, `${path}:${line} FROM`, vars);
      if (stage) stages.add(stage.toLowerCase());
    }
  }

  private devcontainer(path: string, text: string): void {
    const errors: ParseError[] = [];
    const doc = parseJsonc(text, errors, { allowTrailingComma: true }) as Record<string, unknown> | undefined;
    if (errors.length > 0 || !doc || typeof doc !== "object") {
      const why = errors[0] ? printParseErrorCode(errors[0].error) : "not an object";
      throw new MirrorKitError("MK_PREFETCH_BAD_FILE", `${path}: not valid JSON with comments (${why})`);
    }
    const dir = dirname(path);
    if (typeof doc.image === "string") this.add(doc.image, `${path} image`, (n) => this.env[n]);
    const build = doc.build as { dockerfile?: unknown; args?: unknown } | undefined;
    // build.dockerfile is relative to devcontainer.json (not to build.context).
    if (build && typeof build.dockerfile === "string") this.file(resolve(dir, build.dockerfile), stringRecord(build.args));
    const compose = doc.dockerComposeFile;
    for (const f of typeof compose === "string" ? [compose] : Array.isArray(compose) ? compose : []) {
      if (typeof f === "string") this.file(resolve(dir, f));
    }
  }

  private yaml(path: string, text: string): void {
    const docs = parseAllDocuments(text);
    if (!Array.isArray(docs)) throw new MirrorKitError("MK_PREFETCH_BAD_FILE", `${path}: not valid YAML`);
    for (const doc of docs) {
      const error = doc.errors[0];
      if (error) throw new MirrorKitError("MK_PREFETCH_BAD_FILE", `${path}: not valid YAML: ${error.message.split("\n")[0]}`);
      const js = doc.toJS() as unknown;
      if (isRecord(js) && isRecord(js.services)) this.compose(path, js.services);
      else this.imageKeys(path, js, []);
    }
  }

  private compose(path: string, services: Record<string, unknown>): void {
    const dir = dirname(path);
    const vars = (n: string) => this.env[n];
    for (const [name, svc] of Object.entries(services)) {
      if (!isRecord(svc)) continue;
      // The mirror itself and its prefetch step (the services `mirror-kit init` adds): they run the
      // mirror's own image, which cannot be pulled through itself.
      if (name === "mirror-kit" || name === "mirror-kit-prefetch") continue;
      const build = typeof svc.build === "string" ? { context: svc.build } : isRecord(svc.build) ? svc.build : undefined;
      if (build) {
        // With build:, image: names what the build produces, not something to pull.
        const context = resolve(dir, typeof build.context === "string" ? (this.interpolated(build.context, `${path} services.${name}.build`, vars) ?? ".") : ".");
        if (typeof build.dockerfile_inline === "string") {
          this.dockerfile(`${path} services.${name}.build.dockerfile_inline`, build.dockerfile_inline, stringRecord(build.args));
          continue;
        }
        const dockerfile = resolve(context, typeof build.dockerfile === "string" ? build.dockerfile : "Dockerfile");
        if (existsSync(dockerfile)) this.file(dockerfile, stringRecord(build.args));
        else this.warnings.push(`${path} services.${name}.build: ${dockerfile} does not exist; skipped`);
      } else if (typeof svc.image === "string") {
        this.add(svc.image, `${path} services.${name}.image`, vars);
      }
    }
  }

  /** Kubernetes (and Helm-rendered) manifests: every `image:` string, wherever containers sit. */
  private imageKeys(path: string, node: unknown, at: string[]): void {
    if (Array.isArray(node)) node.forEach((n, i) => this.imageKeys(path, n, [...at, String(i)]));
    else if (isRecord(node)) {
      for (const [k, v] of Object.entries(node)) {
        if (k === "image" && typeof v === "string") this.add(v, `${path} ${[...at, k].join(".")}`, (n) => this.env[n]);
        else this.imageKeys(path, v, [...at, k]);
      }
    }
  }
}

function readText(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    throw new MirrorKitError("MK_PREFETCH_BAD_FILE", `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Compose build.args: a mapping, or a list of NAME=value. */
function stringRecord(v: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (Array.isArray(v)) {
    for (const item of v) {
      const s = String(item);
      const eq = s.indexOf("=");
      if (eq > 0) out[s.slice(0, eq)] = s.slice(eq + 1);
    }
  } else if (isRecord(v)) {
    for (const [k, val] of Object.entries(v)) if (val !== null && val !== undefined) out[k] = String(val);
  }
  return out;
}
