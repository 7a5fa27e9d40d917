// `init --prefetch`: the project's prefetch step, .mirror-kit/prefetch.sh (templates/prefetch/), which
// warms the mirror with every image the project uses, so they are cached before going offline.
import { join } from "node:path";
import { planGeneratedFile, unlessEdited, type FileChange } from "./files.js";
import { packageVersion, render, seal, STAMP_PLACEHOLDER } from "./render.js";
import { mirrorScheme, type Settings } from "./settings.js";

export const PREFETCH_SCRIPT = ".mirror-kit/prefetch.sh";

/** The mirror as this machine (where the script runs) reaches it: --mirror-url, else its published port on loopback. */
export function hostMirrorUrl(s: Settings): string {
  return s.mirrorUrl ?? `${mirrorScheme(s)}://127.0.0.1:${s.port}`;
}

export function renderPrefetchScript(s: Settings): string {
  const url = hostMirrorUrl(s);
  // Single-quoted for sh: nothing in it is expanded.
  return seal(render("prefetch/prefetch.sh", { stamp: STAMP_PLACEHOLDER, version: packageVersion(), mirrorUrl: url, mirrorUrlShell: `'${url.replace(/'/g, `'\\''`)}'` }));
}

export function planPrefetchStep(cwd: string, s: Settings, force: boolean): FileChange {
  const path = join(cwd, PREFETCH_SCRIPT);
  return unlessEdited(path, PREFETCH_SCRIPT, () => planGeneratedFile(path, PREFETCH_SCRIPT, renderPrefetchScript(s), { force, mode: 0o755 }));
}
