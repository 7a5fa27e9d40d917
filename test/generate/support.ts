// Helpers shared by the generator tests: temp project copies, golden-file comparison (UPDATE_GOLDEN=1
// rewrites the expected files instead of failing), and a sink that collects command output.
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, expect } from "vitest";

export const REPO = fileURLToPath(new URL("../../", import.meta.url));
export const UPDATE = process.env.UPDATE_GOLDEN === "1";

const created: string[] = [];
// Registered once per test file that imports this module: temp projects do not pile up in /tmp.
afterAll(() => {
  for (const dir of created.splice(0)) rmSync(dir, { recursive: true, force: true });
});

export function tempDir(prefix = "mk-gen-"): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  created.push(dir);
  return dir;
}

export function copyTree(from: string, to: string): void {
  cpSync(from, to, { recursive: true });
}

/** Every file under dir as relative path -> content, sorted, for whole-tree comparisons. */
export function readTree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const entry of readdirSync(d).sort()) {
      const p = join(d, entry);
      if (statSync(p).isDirectory()) walk(p);
      else out[relative(dir, p)] = readFileSync(p, "utf8");
    }
  };
  walk(dir);
  return out;
}

/** Compares text with a committed golden file; with UPDATE_GOLDEN=1 writes it instead. */
export function expectGolden(actual: string, goldenPath: string): void {
  if (UPDATE) {
    mkdirSync(dirname(goldenPath), { recursive: true });
    writeFileSync(goldenPath, actual);
    return;
  }
  expect(actual, `golden ${relative(REPO, goldenPath)} (rerun with UPDATE_GOLDEN=1 after checking the diff)`).toBe(readFileSync(goldenPath, "utf8"));
}

export function expectGoldenTree(actual: Record<string, string>, goldenDir: string): void {
  if (UPDATE) {
    rmSync(goldenDir, { recursive: true, force: true });
    for (const [rel, content] of Object.entries(actual)) {
      mkdirSync(dirname(join(goldenDir, rel)), { recursive: true });
      writeFileSync(join(goldenDir, rel), content);
    }
    return;
  }
  expect(actual).toEqual(readTree(goldenDir));
}

export class Sink {
  text = "";
  write(s: string): boolean {
    this.text += s;
    return true;
  }
}
