// `npm run regenerate`'s script on a copy of plugins/: --check names what is stale and changes nothing;
// a plain run restores content and modes, removes what no template renders, and keeps the README.
import { spawnSync } from "node:child_process";
import { chmodSync, cpSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { readTree, REPO, tempDir } from "./support.js";

const SCRIPT = join(REPO, "scripts", "regenerate.mjs");
const PLUGINS = join(REPO, "plugins");

function regenerate(...args: string[]) {
  const r = spawnSync(process.execPath, [SCRIPT, "--plugins-only", ...args], { cwd: REPO, encoding: "utf8" });
  return { code: r.status, out: r.stdout + r.stderr };
}

const modes = (dir: string) => Object.fromEntries(Object.keys(readTree(dir)).map((f) => [f, statSync(join(dir, f)).mode & 0o777]));

describe("npm run regenerate", () => {
  test("--check passes on the committed plugins/ (built from today's templates)", () => {
    const r = regenerate("--check");
    expect(r.out).toContain("every generated file is current");
    expect(r.code).toBe(0);
  });

  test("a stale copy: --check names each difference and writes nothing; a run restores it exactly", () => {
    const dir = join(tempDir("mk-regen-"), "plugins");
    cpSync(PLUGINS, dir, { recursive: true });
    writeFileSync(join(dir, "vagrant/provision.sh"), "#!/bin/sh\necho edited\n");
    chmodSync(join(dir, "devcontainer-feature/src/mirror-kit/install.sh"), 0o644);
    writeFileSync(join(dir, "compose/old-fragment.yaml"), "services: {}\n");
    const stale = readTree(dir);

    const check = regenerate("--check", "--plugins-dir", dir);
    expect(check.code).toBe(1);
    expect(check.out).toContain("differs: plugins/vagrant/provision.sh");
    expect(check.out).toContain("differs: plugins/devcontainer-feature/src/mirror-kit/install.sh");
    expect(check.out).toContain("left over: plugins/compose/old-fragment.yaml");
    expect(readTree(dir)).toEqual(stale);

    const run = regenerate("--plugins-dir", dir);
    expect(run.code, run.out).toBe(0);
    expect(readTree(dir)).toEqual(readTree(PLUGINS));
    expect(modes(dir)).toEqual(modes(PLUGINS));
    expect(readFileSync(join(dir, "README.md"), "utf8")).toBe(readFileSync(join(PLUGINS, "README.md"), "utf8"));
    expect(regenerate("--check", "--plugins-dir", dir).code).toBe(0);
  });
});
