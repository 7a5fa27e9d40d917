// plugins/ is generated from templates/ with default settings; this keeps the shipped copies current
// (UPDATE_GOLDEN=1 or `npm run regenerate` rewrites them).
import { createHash } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { HAND_WRITTEN, renderPlugins, syncPlugins } from "../../src/generate/plugins.js";
import { readTree, REPO, UPDATE } from "./support.js";

const PLUGINS = join(REPO, "plugins");

describe("plugins/", () => {
  const rendered = renderPlugins();

  test("every shipped file equals what the templates render today", () => {
    if (UPDATE) syncPlugins(PLUGINS);
    const shipped = Object.fromEntries(Object.entries(readTree(PLUGINS)).filter(([p]) => !HAND_WRITTEN.has(p)));
    expect(shipped).toEqual(Object.fromEntries(rendered.map((f) => [f.path, f.content])));
  });

  test("nothing under plugins/ is left over from an older template", () => {
    expect(Object.keys(readTree(PLUGINS)).filter((p) => !HAND_WRITTEN.has(p)).sort()).toEqual(rendered.map((f) => f.path).sort());
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
