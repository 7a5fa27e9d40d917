// Every project under examples/ regenerated into a temp copy: the result must match the committed
// golden tree, a second run must change nothing, and --dry-run must write nothing.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { runInit } from "../../src/generate/init.js";
import { copyTree, expectGoldenTree, readTree, REPO, Sink, tempDir } from "./support.js";

const EXAMPLES = join(REPO, "examples");
const GOLDEN = join(REPO, "test/generate/golden");
// The generator's example projects (examples/config belongs to the server's configuration).
const names = ["all-three", "compose-only", "devcontainer", "vagrant"];

function fresh(name: string): string {
  const dir = join(tempDir(`mk-ex-${name}-`), name);
  copyTree(join(EXAMPLES, name), dir);
  return dir;
}

describe.each(names)("examples/%s", (name) => {
  test("init produces the golden tree", async () => {
    const dir = fresh(name);
    await runInit({ yes: true }, { cwd: dir, stdout: new Sink(), isTTY: false });
    expectGoldenTree(readTree(dir), join(GOLDEN, name));
  });

  test("a second init reports up to date and leaves every byte as it was", async () => {
    const dir = fresh(name);
    await runInit({ yes: true }, { cwd: dir, stdout: new Sink(), isTTY: false });
    const first = readTree(dir);
    const out = new Sink();
    const result = await runInit({ yes: true }, { cwd: dir, stdout: out, isTTY: false });
    expect(result.written).toBe(false);
    expect(out.text).toContain("everything is up to date");
    expect(readTree(dir)).toEqual(first);
  });

  test("--dry-run prints a unified diff and writes nothing", async () => {
    const dir = fresh(name);
    const before = readTree(dir);
    const out = new Sink();
    await runInit({ dryRun: true }, { cwd: dir, stdout: out, isTTY: false });
    expect(out.text).toMatch(/^\+\+\+ b\//m);
    expect(out.text).toMatch(/^@@ -\d+(,\d+)? \+\d+(,\d+)? @@/m);
    expect(readTree(dir)).toEqual(before);
  });
});

test.each(names)("examples/%s exists with its before files", (name) => {
  expect(existsSync(join(EXAMPLES, name))).toBe(true);
  expect(Object.keys(readTree(join(EXAMPLES, name))).length).toBeGreaterThan(0);
});
