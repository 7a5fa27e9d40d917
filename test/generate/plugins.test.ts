// plugins/ is generated from templates/ with default settings; this keeps the shipped copies current
// (UPDATE_GOLDEN=1 regenerates them).
import { createHash } from "node:crypto";
import { chmodSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { renderPlugins } from "../../src/generate/plugins.js";
import { expectGoldenTree, readTree, REPO, UPDATE } from "./support.js";

const PLUGINS = join(REPO, "plugins");

describe("plugins/", () => {
  const rendered = renderPlugins();

  test("every shipped file equals what the templates render today", () => {
    expectGoldenTree(Object.fromEntries(rendered.map((f) => [f.path, f.content])), PLUGINS);
    if (UPDATE) for (const f of rendered) if (f.mode) chmodSync(join(PLUGINS, f.path), f.mode);
  });

  test("nothing under plugins/ is left over from an older template", () => {
    expect(Object.keys(readTree(PLUGINS)).sort()).toEqual(rendered.map((f) => f.path).sort());
  });

  test.each(rendered.filter((f) => f.mode).map((f) => [f.path]))("%s is executable", (path) => {
    expect(statSync(join(PLUGINS, path)).mode & 0o111).toBe(0o111);
  });

  test("the Feature's install.sh records the hash of the Feature JSON beside it", () => {
    const dir = join(PLUGINS, "devcontainer-feature/src/mirror-kit");
    const json = readFileSync(join(dir, "devcontainer-feature.json"), "utf8");
    const install = readFileSync(join(dir, "install.sh"), "utf8");
    expect(install).toContain(`devcontainer-feature.json sha256 ${createHash("sha256").update(json).digest("hex")}`);
  });
});
