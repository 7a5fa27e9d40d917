// The devcontainer target: the mirror-kit Dev Container Feature (rendered from templates/devcontainer/)
// copied beside devcontainer.json, referenced as "./mirror-kit" with a JSONC edit that keeps comments.
import { readFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { isDeepStrictEqual } from "node:util";
import { parse, printParseErrorCode, type ParseError } from "jsonc-parser";
import { GenerateError, lineCol } from "./errors.js";
import { appendToArray, detectStyle, propertyStart, setProperty } from "./jsonc-edit.js";
import { planGeneratedFile, readIfExists, unlessEdited, type FileChange } from "./files.js";
import { packageVersion, render, seal, sha256, STAMP_PLACEHOLDER } from "./render.js";
import { containerMirrorUrl, CONTAINER_PORT, DOCKER_HOST_ALIAS, type Settings } from "./settings.js";
import { requireCoverage } from "./tls-material.js";

export const FEATURE_ID = "mirror-kit";
export const FEATURE_REF = `./${FEATURE_ID}`;
export const ADD_HOST_ARG = `--add-host=${DOCKER_HOST_ALIAS}:host-gateway`;
export const DEFAULT_FEATURE_URL = `http://${DOCKER_HOST_ALIAS}:${CONTAINER_PORT}`;

export interface FeatureFile {
  /** Path inside the feature folder (or the collection's test folder for test.sh). */
  name: string;
  content: string;
  mode?: number;
}

/**
 * Features whose engine ours configures: when a project uses one, ours installs after it (its install
 * may write daemon.json). Listed only then: the Dev Containers CLI fetches the metadata of every
 * installsAfter entry from its registry even when the project does not use it (CLI 0.89), so an unused
 * entry makes `devcontainer up` fail on any machine that cannot reach ghcr.io.
 */
export const ENGINE_FEATURES = ["ghcr.io/devcontainers/features/docker-in-docker"] as const;

/** The engine Features a devcontainer.json's `features` uses, by id without version or digest. */
export function engineFeaturesUsed(features: unknown): string[] {
  if (features === null || typeof features !== "object" || Array.isArray(features)) return [];
  const ids = new Set(Object.keys(features).map((ref) => ref.toLowerCase().replace(/@sha256:[0-9a-f]+$/, "").replace(/:[^/:]+$/, "")));
  return ENGINE_FEATURES.filter((id) => ids.has(id));
}

/**
 * The Feature's files: options travel in devcontainer.json; installsAfter and the CA of a TLS mirror
 * (`init --ca`, carried inside install.sh: a Feature sees only its own folder) follow the project.
 */
export function renderFeature(installsAfter: readonly string[] = [], caPem = ""): { feature: FeatureFile[]; test: FeatureFile } {
  const base = {
    version: packageVersion(),
    defaultMirrorUrl: DEFAULT_FEATURE_URL,
    defaultHostPort: new URL(DEFAULT_FEATURE_URL).host,
    stamp: STAMP_PLACEHOLDER,
  };
  const installsAfterEntry = installsAfter.length > 0 ? `,\n  "installsAfter": ${JSON.stringify(installsAfter)}` : "";
  const json = render("devcontainer/devcontainer-feature.json", { ...base, installsAfterEntry });
  const install = seal(render("devcontainer/install.sh", { ...base, featureJsonSha256: sha256(json), caPem: caPem.trimEnd() }));
  return {
    feature: [
      { name: "devcontainer-feature.json", content: json },
      { name: "install.sh", content: install, mode: 0o755 },
    ],
    test: { name: "test.sh", content: seal(render("devcontainer/test.sh", base)), mode: 0o755 },
  };
}

/** The JSON cannot hold a stamp, so install.sh records its hash: unchanged JSON matches it. */
function jsonMatchesInstallRecord(featureDir: string, existing: string): boolean {
  let install: string;
  try {
    install = readFileSync(join(featureDir, "install.sh"), "utf8");
  } catch {
    return false;
  }
  const recorded = /devcontainer-feature\.json sha256 ([0-9a-f]{64})/.exec(install)?.[1];
  return recorded === sha256(existing);
}

export function planDevcontainer(projectDir: string, file: string, s: Settings, force: boolean): { changes: FileChange[]; notes: string[] } {
  const display = relative(projectDir, file);
  const text = readIfExists(file, display);
  if (text === null) throw new GenerateError("NOT_FOUND", "does not exist", display);
  const featureDir = join(dirname(file), FEATURE_ID);
  const installsAfter = engineFeaturesUsed(parseJsonc(text, display).features);
  requireCoverage(s.ca, new URL(containerMirrorUrl(s)).hostname, "dev containers");
  const changes: FileChange[] = renderFeature(installsAfter, s.ca?.pem).feature.map((f) => {
    const path = join(featureDir, f.name);
    const shown = relative(projectDir, path);
    return unlessEdited(path, shown, () =>
      planGeneratedFile(path, shown, f.content, {
        force,
        ...(f.mode !== undefined ? { mode: f.mode } : {}),
        ...(f.name.endsWith(".json") ? { isOurs: (existing: string) => jsonMatchesInstallRecord(featureDir, existing) } : {}),
      }),
    );
  });
  const notes: string[] = [];
  changes.push(
    unlessEdited(file, display, () => {
      const edited = editDevcontainerJson(text, display, s, force);
      notes.push(...edited.notes);
      return { path: file, display, before: text, after: edited.text };
    }),
  );
  return { changes, notes };
}

type Json = Record<string, unknown>;

// devcontainer.json holds no stamp of ours, so the Feature's options carry a short hash of themselves
// in a block comment before the key: a later run tells its own options (update them) from a hand edit.
const OPTIONS_RECORD_RE = /\/\* mirror-kit-options:([0-9a-f]{12}) \*\/ ?(?="\.\/mirror-kit")/;

function optionsHash(options: unknown): string {
  return sha256(JSON.stringify(options)).slice(0, 12);
}

/** Whether the Feature entry is what some earlier run wrote: its record matches, or it is the default {} of a run before records. */
function isOurEntry(text: string, current: unknown): boolean {
  const recorded = OPTIONS_RECORD_RE.exec(text)?.[1];
  return recorded ? recorded === optionsHash(current) : isDeepStrictEqual(current, {});
}

function writeOptionsRecord(text: string, options: Json): string {
  const cleared = text.replace(OPTIONS_RECORD_RE, "");
  const at = propertyStart(cleared, ["features", FEATURE_REF]);
  return `${cleared.slice(0, at)}/* mirror-kit-options:${optionsHash(options)} */ ${cleared.slice(at)}`;
}

export function editDevcontainerJson(text: string, display: string, s: Settings, force: boolean): { text: string; notes: string[] } {
  const root = parseJsonc(text, display);
  const notes: string[] = [];
  const features = root.features;
  if (features !== undefined && (features === null || typeof features !== "object" || Array.isArray(features))) {
    throw new GenerateError("BAD_INPUT", `"features" must be an object mapping feature ids to options`, display);
  }
  const url = containerMirrorUrl(s);
  const options: Json = url === DEFAULT_FEATURE_URL ? {} : { mirrorUrl: url };
  const expected = structuredClone(root);
  const style = detectStyle(text);
  let out = text;

  const current = (features as Json | undefined)?.[FEATURE_REF];
  if (current === undefined || (!isDeepStrictEqual(current, options) && (force || isOurEntry(text, current)))) {
    out = features === undefined ? setProperty(out, [], "features", { [FEATURE_REF]: options }, style) : setProperty(out, ["features"], FEATURE_REF, options, style);
    out = writeOptionsRecord(out, options);
    ((expected.features ??= {}) as Json)[FEATURE_REF] = options;
  } else if (!isDeepStrictEqual(current, options)) {
    throw new GenerateError(
      "USER_EDITED",
      `features["${FEATURE_REF}"] is ${JSON.stringify(current)}, not ${JSON.stringify(options)}; keep it, or rerun with --force to replace it`,
      display,
    );
  }

  if (root.dockerComposeFile !== undefined) {
    notes.push(`${display}: uses Docker Compose, where runArgs do not apply; give the service extra_hosts: ["${DOCKER_HOST_ALIAS}:host-gateway"]`);
  } else {
    const runArgs = root.runArgs;
    if (runArgs !== undefined && !Array.isArray(runArgs)) throw new GenerateError("BAD_INPUT", `"runArgs" must be an array`, display);
    const hasHost = (runArgs ?? []).some((a) => typeof a === "string" && /host\.docker\.internal[:=]/.test(a));
    if (!hasHost) {
      out = runArgs === undefined ? setProperty(out, [], "runArgs", [ADD_HOST_ARG], style) : appendToArray(out, ["runArgs"], ADD_HOST_ARG, style);
      expected.runArgs = [...((runArgs as unknown[] | undefined) ?? []), ADD_HOST_ARG];
    }
  }
  if (!isDeepStrictEqual(parseJsonc(out, display), expected)) {
    throw new GenerateError("BAD_INPUT", `could not add the mirror-kit feature without changing other settings; add "${FEATURE_REF}": {} to features by hand`, display);
  }
  return { text: out, notes };
}

export function parseJsonc(text: string, display: string): Json {
  const errors: ParseError[] = [];
  const value: unknown = parse(text, errors, { allowTrailingComma: true, disallowComments: false });
  const error = errors[0];
  if (error) {
    const { line, col } = lineCol(text, error.offset);
    throw new GenerateError("BAD_INPUT", `not valid JSON with comments at line ${line}, column ${col}: ${printParseErrorCode(error.error)}`, display);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new GenerateError("BAD_INPUT", "expected a JSON object at the top level", display);
  }
  return value as Json;
}
