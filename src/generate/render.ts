// Renders templates/** with Handlebars and seals generated files with a content hash, so a later run
// can tell "still as generated" from "edited by hand" without keeping any state outside the file.
import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type Handlebars from "handlebars";
import { MirrorKitError } from "../errors.js";

/** templates/ sits two levels above both src/generate/ and dist/generate/. */
export const TEMPLATES_DIR = fileURLToPath(new URL("../../templates/", import.meta.url));
export const PACKAGE_DIR = fileURLToPath(new URL("../../", import.meta.url));

// One isolated environment: strict mode turns a view-model/template mismatch into an error instead of
// an empty string in someone's daemon.json; noEscape because nothing emitted is HTML. Created on
// first use: Handlebars (~2 MiB resident) is loaded by every command, serve included, otherwise.
let hbs: typeof Handlebars | undefined;
let partialsLoaded = false;
const compiled = new Map<string, Handlebars.TemplateDelegate>();

function engine(): typeof Handlebars {
  hbs ??= (createRequire(import.meta.url)("handlebars") as typeof Handlebars).create();
  return hbs;
}

function loadPartials(): void {
  if (partialsLoaded) return;
  const hbs = engine();
  const dir = join(TEMPLATES_DIR, "partials");
  for (const file of readdirSync(dir)) {
    if (!file.endsWith(".hbs")) continue;
    hbs.registerPartial(file.replace(/\.hbs$/, ""), readFileSync(join(dir, file), "utf8"));
  }
  partialsLoaded = true;
}

/** Renders templates/<name>.hbs with a view-model that already holds every value to place. */
export function render(name: string, view: object): string {
  loadPartials();
  let template = compiled.get(name);
  if (!template) {
    const source = readFileSync(join(TEMPLATES_DIR, `${name}.hbs`), "utf8");
    template = engine().compile(source, { noEscape: true, strict: true });
    compiled.set(name, template);
  }
  return template(view);
}

const STAMP_PREFIX = "mirror-kit-sha256:";
/** What a template places where the hash will go; sealed files carry the real hash instead. */
export const STAMP_PLACEHOLDER = `${STAMP_PREFIX}${"0".repeat(64)}`;
const STAMP_RE = /mirror-kit-sha256:([0-9a-f]{64})/;

export function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

/** Replaces the placeholder with the hash of the text around it. */
export function seal(text: string): string {
  if (!text.includes(STAMP_PLACEHOLDER)) throw new MirrorKitError("MK_INTERNAL", "seal: text has no stamp placeholder");
  return text.replace(STAMP_PLACEHOLDER, `${STAMP_PREFIX}${sha256(text)}`);
}

export type StampState = "intact" | "edited" | "unstamped";

/** "intact": the text is exactly what some mirror-kit run generated; "edited": someone changed it. */
export function stampState(text: string): StampState {
  const match = STAMP_RE.exec(text);
  if (!match) return "unstamped";
  const unsealed = text.replace(STAMP_RE, STAMP_PLACEHOLDER);
  return sha256(unsealed) === match[1] ? "intact" : "edited";
}

export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(join(PACKAGE_DIR, "package.json"), "utf8")) as { version: string };
  return pkg.version;
}
