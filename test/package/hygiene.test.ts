// What the repository and the npm package carry: the license, ignores, source maps that need no
// unshipped file, Debian installs without recommends, and the README's `npm start -- --flag`.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, test } from "vitest";

const REPO = join(import.meta.dirname, "..", "..");
const read = (rel: string) => readFileSync(join(REPO, rel), "utf8");
const git = (...args: string[]) => execFileSync("git", args, { cwd: REPO, encoding: "utf8" });

interface PackedFile {
  path: string;
}

let packed: string[] | undefined;
/** What `npm pack` would put in the tarball (after `npm run build`, which the test script runs first). */
function packedFiles(): string[] {
  if (packed) return packed;
  const out = execFileSync("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], { cwd: REPO, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  const [pack] = JSON.parse(out) as [{ files: PackedFile[] }];
  packed = pack.files.map((f) => f.path);
  return packed;
}

/** `apt-get install` commands with their continuation lines joined, from a shell script or Dockerfile. */
function aptInstalls(text: string): string[] {
  return text
    .replace(/\\\n/g, " ")
    .split("\n")
    .flatMap((line) => line.split(/&&|;/))
    .filter((cmd) => /\bapt(-get)?\s+(-\S+\s+)*install\b/.test(cmd));
}

describe("repository and package hygiene", () => {
  test("LICENSE holds the Apache License 2.0 that package.json names, and the package ships it", () => {
    expect(JSON.parse(read("package.json")).license).toBe("Apache-2.0");
    const license = read("LICENSE");
    expect(license).toMatch(/^\s*Apache License\s+Version 2\.0, January 2004/);
    expect(license).toContain("TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION");
    expect(packedFiles()).toContain("LICENSE");
  });

  test.each([["mirror-kit-data/blobs/sha256/ab"], ["node_modules/x/index.js"], ["dist/cli/main.js"], ["mirror-kit-0.1.0.tgz"]])(".gitignore keeps %s out of git", (path) => {
    expect(git("check-ignore", "--no-index", path).trim()).toBe(path);
  });

  test("no shipped file points at a source map that is not shipped, and every shipped map carries its sources", () => {
    const files = packedFiles();
    const shipped = new Set(files);
    const maps = files.filter((f) => f.endsWith(".map"));
    for (const file of files.filter((f) => /\.(c|m)?js$/.test(f))) {
      const ref = /\/[/*]# sourceMappingURL=(\S+?)(?:\s*\*\/)?\s*$/m.exec(read(file))?.[1];
      if (ref === undefined || ref.startsWith("data:")) continue;
      expect(shipped.has(join(file, "..", ref)), `${file} points at ${ref}`).toBe(true);
    }
    for (const map of maps) {
      const m = JSON.parse(read(map)) as { sources: string[]; sourcesContent?: (string | null)[] };
      expect(m.sourcesContent?.length, `${map}: sourcesContent`).toBe(m.sources.length);
      expect(m.sourcesContent!.every((c) => typeof c === "string"), `${map}: every source inlined`).toBe(true);
    }
  });

  test("every Debian install in .ci/run and in the Dockerfiles skips recommends", () => {
    const files = [".ci/run", ...git("ls-files", "*Dockerfile*", "**/Dockerfile*").split("\n").filter(Boolean)];
    const installs = files.flatMap((f) => aptInstalls(read(f)).map((cmd) => [f, cmd.trim()] as const));
    expect(installs.filter(([f]) => f === ".ci/run").length).toBeGreaterThan(0);
    for (const [file, cmd] of installs) expect(cmd, `${file}: ${cmd}`).toContain("--no-install-recommends");
  });

  test("the README shows how to pass serve's flags through npm start", () => {
    expect(read("README.md")).toMatch(/^npm start -- --\w/m);
  });
});
