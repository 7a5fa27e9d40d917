// The image's build context from an installed package laid out as npx lays it out (dependencies
// hoisted beside mirror-kit, one version conflict nested): written out, Node resolves every
// dependency in it to the same version as in the original tree, and only production packages travel.
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { describe, expect, test } from "vitest";
import { contextFiles, placeDependencies } from "../../src/generate/image-context.js";
import { tempDir } from "./support.js";

function pkg(dir: string, name: string, version: string, dependencies: Record<string, string> = {}, extra: object = {}): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "package.json"), JSON.stringify({ name, version, main: "index.js", dependencies, ...extra }));
  const requires = Object.keys(dependencies).map((d) => `${JSON.stringify(d)}: require(${JSON.stringify(d)})`).join(", ");
  writeFileSync(join(dir, "index.js"), `module.exports = { version: ${JSON.stringify(version)}, deps: { ${requires} } };\n`);
}

/**
 * root/node_modules/{mirror-kit, a, b, c@1, e@1, a/node_modules/c@2, vitest (dev only)} and
 * mirror-kit/node_modules/{d, d/node_modules/c@2, e@2}.
 */
function npxTree(): string {
  const root = tempDir("mk-ctx-");
  const nm = join(root, "node_modules");
  pkg(join(nm, "mirror-kit"), "mirror-kit", "0.1.0", { a: "1", b: "1", d: "1" }, { files: ["dist"] });
  mkdirSync(join(nm, "mirror-kit", "dist"));
  writeFileSync(join(nm, "mirror-kit", "dist", "main.js"), "console.log('mirror-kit');\n");
  writeFileSync(join(nm, "mirror-kit", "Dockerfile"), "FROM scratch\n");
  writeFileSync(join(nm, "mirror-kit", "README.md"), "not in files\n");
  pkg(join(nm, "a"), "a", "1.0.0", { c: "2" });
  pkg(join(nm, "a", "node_modules", "c"), "c", "2.0.0");
  pkg(join(nm, "b"), "b", "1.0.0", { c: "1" });
  pkg(join(nm, "c"), "c", "1.0.0");
  pkg(join(nm, "mirror-kit", "node_modules", "d"), "d", "1.0.0", { c: "2", e: "2" });
  pkg(join(nm, "mirror-kit", "node_modules", "d", "node_modules", "c"), "c", "2.0.0");
  // The app's own nested e@2 shadows the hoisted e@1 that b... does not use; d finds e@2 through the app's folder.
  pkg(join(nm, "mirror-kit", "node_modules", "e"), "e", "2.0.0");
  pkg(join(nm, "e"), "e", "1.0.0");
  pkg(join(nm, "vitest"), "vitest", "4.0.0");
  return join(nm, "mirror-kit");
}

describe("the image's build context", () => {
  test("places every production package once per folder it was installed in, and no dev package", () => {
    const placed = placeDependencies(npxTree());
    const read = (dir: string) => JSON.parse(execFileSync("cat", [join(dir, "package.json")], { encoding: "utf8" })) as { name: string; version: string };
    const found = [...placed.values()].map((dir) => `${read(dir).name}@${read(dir).version}`).sort();
    // c@2 twice: a's copy and d's copy are two installed folders, as npm left them.
    expect(found).toEqual(["a@1.0.0", "b@1.0.0", "c@1.0.0", "c@2.0.0", "c@2.0.0", "d@1.0.0", "e@2.0.0"]);
  });

  test("written out, the context's node_modules loads every dependency at its version; dev packages and unlisted files stay out", () => {
    const app = npxTree();
    const files = contextFiles(app);
    const names = files.map((f) => f.name);
    expect(names).toContain("Dockerfile");
    expect(names).toContain("dist/main.js");
    expect(names).not.toContain("README.md");
    expect(names.some((n) => n.includes("vitest"))).toBe(false);
    const out = tempDir("mk-ctx-out-");
    for (const f of files) {
      mkdirSync(dirname(join(out, f.name)), { recursive: true });
      writeFileSync(join(out, f.name), execFileSync("cat", [f.source]));
    }
    writeFileSync(join(out, "probe.cjs"), "const v = (m) => require(m); console.log(JSON.stringify({ a: v('a'), b: v('b'), d: v('d') }));\n");
    const seen = JSON.parse(execFileSync(process.execPath, [join(out, "probe.cjs")], { cwd: out, encoding: "utf8" })) as Record<string, { deps: { c: { version: string } } }>;
    expect([seen.a?.deps.c.version, seen.b?.deps.c.version, seen.d?.deps.c.version]).toEqual(["2.0.0", "1.0.0", "2.0.0"]);
  });

  test("a required dependency that is not installed is named", () => {
    const app = npxTree();
    pkg(join(app, "..", "b"), "b", "1.0.0", { gone: "1" });
    expect(() => placeDependencies(app)).toThrow(/gone \(needed by b\) is not installed/);
  });
});
