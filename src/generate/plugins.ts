// What ships under plugins/: every file rendered from templates/ with default settings, so the
// published Feature, Vagrant snippet and Compose fragment can never drift from what `init` writes.
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { renderComposeFragment } from "./compose-view.js";
import { renderFeature } from "./devcontainer.js";
import { resolveSettings } from "./settings.js";
import { renderProvisionScript, renderSnippet } from "./vagrant.js";

export interface PluginFile {
  /** Path under plugins/. */
  path: string;
  content: string;
  mode?: number;
}

export function renderPlugins(): PluginFile[] {
  const defaults = resolveSettings({});
  const { feature, test } = renderFeature();
  return [
    ...feature.map((f) => ({ path: `devcontainer-feature/src/mirror-kit/${f.name}`, content: f.content, ...(f.mode ? { mode: f.mode } : {}) })),
    { path: `devcontainer-feature/test/mirror-kit/${test.name}`, content: test.content, mode: 0o755 },
    { path: "vagrant/mirror-kit.rb", content: renderSnippet(defaults, "config", "") },
    { path: "vagrant/provision.sh", content: renderProvisionScript(defaults), mode: 0o755 },
    { path: "compose/compose.mirror-kit.yaml", content: renderComposeFragment(defaults) },
  ];
}

/** Files under plugins/ that are written by hand, not rendered: kept by syncPlugins. */
export const HAND_WRITTEN = new Set(["README.md"]);

export interface SyncResult {
  /** Paths under the folder whose content or mode changed. */
  written: string[];
  /** Files no template renders any more. */
  removed: string[];
}

/**
 * Makes `dir` hold exactly what renderPlugins() gives (content and mode), plus the hand-written
 * README; with `check`, changes nothing and only reports what it would do (for `npm run regenerate -- --check`).
 */
export function syncPlugins(dir: string, check = false): SyncResult {
  const rendered = renderPlugins();
  const wanted = new Set(rendered.map((f) => f.path));
  const result: SyncResult = { written: [], removed: [] };
  for (const f of rendered) {
    const path = join(dir, f.path);
    const mode = f.mode ?? 0o644;
    const current = existsSync(path) ? { text: readFileSync(path, "utf8"), mode: statSync(path).mode & 0o777 } : null;
    if (current?.text === f.content && current.mode === mode) continue;
    result.written.push(f.path);
    if (check) continue;
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, f.content);
    chmodSync(path, mode);
  }
  const walk = (rel: string): void => {
    for (const entry of readdirSync(join(dir, rel), { withFileTypes: true })) {
      const child = rel ? `${rel}/${entry.name}` : entry.name;
      if (entry.isDirectory()) walk(child);
      else if (!wanted.has(child) && !HAND_WRITTEN.has(child)) result.removed.push(child);
    }
  };
  if (existsSync(dir)) walk("");
  if (!check) for (const rel of result.removed) rmSync(join(dir, rel));
  return result;
}
