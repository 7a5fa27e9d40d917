// The Compose service's own build (`init --build`): the mirror image's context, made from this
// installed package as `mirror-kit image` makes it, copied into the project at .mirror-kit/image.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { chmod, copyFile, mkdir, rename, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { contextFiles, type ContextFile } from "./image-context.js";
import { PACKAGE_DIR, packageVersion } from "./render.js";

/** Where the context goes, relative to the project folder (and so to its Compose file). */
export const BUILD_CONTEXT = ".mirror-kit/image";
/** Records what was copied, so a re-run with the same package writes nothing. */
const STAMP_FILE = ".mirror-kit-context";
/**
 * The copy holds the package and its production dependencies (tens of MB): it belongs to this
 * machine, not to version control. Ignoring everything ignores this file too. The Dockerfile's
 * .dockerignore allow-list keeps both files out of the build.
 */
const GITIGNORE = "# The mirror image's build context, copied by `mirror-kit init --build`; recreate it with that command.\n*\n";

export interface BuildContextPlan {
  dir: string;
  display: string;
  files: ContextFile[];
  bytes: number;
  stamp: string;
  /** The folder already holds exactly this context. */
  upToDate: boolean;
}

function readStamp(dir: string): string | null {
  try {
    return readFileSync(join(dir, STAMP_FILE), "utf8");
  } catch {
    return null;
  }
}

/** The context of the package at `packageDir` (default: the running one), compared with the project's copy. */
export function planBuildContext(projectDir: string, packageDir = PACKAGE_DIR): BuildContextPlan {
  const files = contextFiles(packageDir).sort((a, b) => (a.name < b.name ? -1 : 1));
  const hash = createHash("sha256");
  for (const f of files) hash.update(`${f.name}\0${f.mode}\0`).update(readFileSync(f.source)).update("\0");
  const stamp = `mirror-kit ${packageVersion()} build context sha256:${hash.digest("hex")}\n`;
  const dir = join(projectDir, BUILD_CONTEXT);
  const bytes = files.reduce((n, f) => n + f.size, 0);
  return { dir, display: `${BUILD_CONTEXT}/`, files, bytes, stamp, upToDate: readStamp(dir) === stamp };
}

/** "N files, X MB": how big the copy is, for init's report. */
export function describeBuildContext(p: BuildContextPlan): string {
  return `the mirror image's build context: ${p.files.length} files, ${(p.bytes / 1e6).toFixed(1)} MB`;
}

/**
 * Writes the copy into a new folder beside the old one and swaps them, so an interrupted init
 * leaves either the previous context or the new one, never a mix.
 */
export async function writeBuildContext(p: BuildContextPlan): Promise<void> {
  const next = `${p.dir}.new-${process.pid}`;
  const old = `${p.dir}.old-${process.pid}`;
  await rm(next, { recursive: true, force: true });
  try {
    for (const f of p.files) {
      const target = join(next, f.name);
      await mkdir(dirname(target), { recursive: true });
      await copyFile(f.source, target);
      await chmod(target, f.mode);
    }
    await writeFile(join(next, ".gitignore"), GITIGNORE);
    await writeFile(join(next, STAMP_FILE), p.stamp);
    await rename(p.dir, old).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== "ENOENT") throw err;
    });
    await rename(next, p.dir);
  } finally {
    await rm(next, { recursive: true, force: true });
    await rm(old, { recursive: true, force: true });
  }
}
