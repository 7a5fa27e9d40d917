// Finds what a project uses: its Compose file (Compose's own precedence), Vagrantfile and
// devcontainer.json files; flags narrow the set, and a flagged target that is missing is an error.
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { COMPOSE_FILE_NAMES } from "./compose.js";

export type Target = "compose" | "vagrant" | "devcontainer";

export interface Detected {
  /** The Compose file Compose itself would read (compose.yaml first); null when there is none. */
  compose: string | null;
  vagrantfile: string | null;
  devcontainers: string[];
}

export function detect(dir: string): Detected {
  const compose = COMPOSE_FILE_NAMES.map((n) => join(dir, n)).find(isFile) ?? null;
  const vagrant = join(dir, "Vagrantfile");
  const dc = join(dir, ".devcontainer");
  const devcontainers: string[] = [];
  if (isFile(join(dc, "devcontainer.json"))) devcontainers.push(join(dc, "devcontainer.json"));
  if (isDir(dc)) {
    for (const entry of readdirSync(dc).sort()) {
      const candidate = join(dc, entry, "devcontainer.json");
      if (isFile(candidate)) devcontainers.push(candidate);
    }
  }
  return { compose, vagrantfile: isFile(vagrant) ? vagrant : null, devcontainers };
}

function isFile(p: string): boolean {
  return existsSync(p) && statSync(p).isFile();
}

function isDir(p: string): boolean {
  return existsSync(p) && statSync(p).isDirectory();
}
