// The Dev Container Feature's install.sh run with sh under a temp MIRROR_KIT_ROOT, with the option
// variables the devcontainer CLI exports (mirrorUrl -> MIRRORURL, insecure -> INSECURE).
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeEach, expect, test } from "vitest";
import { renderFeature } from "../../src/generate/devcontainer.js";
import { readTree, tempDir } from "./support.js";

let root: string;
let script: string;

beforeEach(() => {
  root = tempDir("mk-feat-");
  script = join(tempDir("mk-feat-script-"), "install.sh");
  writeFileSync(script, renderFeature().feature.find((f) => f.name === "install.sh")!.content);
});

const run = (env: Record<string, string> = {}) => {
  const r = spawnSync("sh", [script], { encoding: "utf8", env: { PATH: process.env.PATH ?? "", MIRROR_KIT_ROOT: root, ...env } });
  return { code: r.status, stderr: r.stderr };
};
const daemonJson = () => JSON.parse(readFileSync(join(root, "etc/docker/daemon.json"), "utf8")) as unknown;
const putDaemonJson = (text: string) => {
  mkdirSync(join(root, "etc/docker"), { recursive: true });
  writeFileSync(join(root, "etc/docker/daemon.json"), text);
};

test("with default options it points dockerd at host.docker.internal:5000 and marks it insecure", () => {
  const r = run();
  expect(r.code, r.stderr).toBe(0);
  expect(daemonJson()).toEqual({ "registry-mirrors": ["http://host.docker.internal:5000"], "insecure-registries": ["host.docker.internal:5000"] });
});

test("mirrorUrl and insecure=false are honoured", () => {
  expect(run({ MIRRORURL: "https://mirror.example:8443/", INSECURE: "false" }).code).toBe(0);
  expect(daemonJson()).toEqual({ "registry-mirrors": ["https://mirror.example:8443"] });
});

test("an existing daemon.json is merged and a second run changes nothing", () => {
  putDaemonJson('{ "features": { "buildkit": true }, "registry-mirrors": ["https://mirror.gcr.io"] }');
  expect(run().code).toBe(0);
  const first = readTree(root);
  expect(run().code).toBe(0);
  expect(readTree(root)).toEqual(first);
  expect(daemonJson()).toEqual({
    features: { buildkit: true },
    "registry-mirrors": ["https://mirror.gcr.io", "http://host.docker.internal:5000"],
    "insecure-registries": ["host.docker.internal:5000"],
  });
});

test.each([
  ["invalid JSON", "{ nope"],
  ["a JSON array", "[]"],
])("%s in daemon.json fails the build and leaves the file alone", (_name, bad) => {
  putDaemonJson(bad);
  const r = run();
  expect(r.code).not.toBe(0);
  expect(r.stderr).toContain("/etc/docker/daemon.json is not valid JSON or not an object");
  expect(readFileSync(join(root, "etc/docker/daemon.json"), "utf8")).toBe(bad);
});

test("a mirrorUrl without scheme fails with the fix in the message", () => {
  const r = run({ MIRRORURL: "host.docker.internal:5000" });
  expect(r.code).not.toBe(0);
  expect(r.stderr).toContain("write it as http://host.docker.internal:5000");
});
