// Every project under examples/ regenerated into a temp copy: the result must match the committed
// golden tree, a second run must change nothing, and --dry-run must write nothing.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { runInit } from "../../src/generate/init.js";
import { copyTree, expectGolden, expectGoldenTree, readTree, REPO, Sink, tempDir } from "./support.js";

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

test("examples/compose-only with --build: the mirror service builds its image from the copied context (golden)", async () => {
  const dir = fresh("compose-only");
  await runInit({ yes: true, build: true }, { cwd: dir, stdout: new Sink(), isTTY: false });
  // Only the Compose file: the context is a copy of the package (tests of init --build check it).
  expectGolden(readFileSync(join(dir, "compose.yaml"), "utf8"), join(REPO, "test/generate/golden-build/compose-only/compose.yaml"));
  expect(existsSync(join(dir, ".mirror-kit/image/Dockerfile"))).toBe(true);
});

test.each(names)("examples/%s exists with its before files", (name) => {
  expect(existsSync(join(EXAMPLES, name))).toBe(true);
  expect(Object.keys(readTree(join(EXAMPLES, name))).length).toBeGreaterThan(0);
});

// The same projects wired to a TLS mirror: `init --ca` given the folder `mirror-kit cert --san mirror-kit
// --san host.docker.internal` wrote (copied in as mirror-kit-tls/; its server.key is a stand-in file).
describe.each(["all-three", "compose-only", "devcontainer", "vagrant"])("examples/%s with --ca", (name) => {
  const withCa = (): string => {
    const dir = fresh(name);
    copyTree(join(REPO, "test/generate/tls-fixture"), join(dir, "mirror-kit-tls"));
    return dir;
  };

  test("init --ca produces the golden TLS tree, and a second run changes nothing", async () => {
    const dir = withCa();
    await runInit({ yes: true, ca: join(dir, "mirror-kit-tls") }, { cwd: dir, stdout: new Sink(), isTTY: false });
    // The fixture itself is not generated output: the golden tree holds what init wrote.
    const generated = Object.fromEntries(Object.entries(readTree(dir)).filter(([rel]) => !rel.startsWith("mirror-kit-tls/")));
    expectGoldenTree(generated, join(REPO, "test/generate/golden-tls", name));
    const first = readTree(dir);
    const out = new Sink();
    expect((await runInit({ yes: true, ca: join(dir, "mirror-kit-tls") }, { cwd: dir, stdout: out, isTTY: false })).written).toBe(false);
    expect(out.text).toContain("everything is up to date");
    expect(readTree(dir)).toEqual(first);
  });

  test("a project wired over plain HTTP first is moved to the same TLS tree by init --ca", async () => {
    const dir = withCa();
    await runInit({ yes: true }, { cwd: dir, stdout: new Sink(), isTTY: false });
    await runInit({ yes: true, ca: join(dir, "mirror-kit-tls") }, { cwd: dir, stdout: new Sink(), isTTY: false });
    const generated = Object.fromEntries(Object.entries(readTree(dir)).filter(([rel]) => !rel.startsWith("mirror-kit-tls/")));
    expect(generated).toEqual(readTree(join(REPO, "test/generate/golden-tls", name)));
  });
});
