// `mirror-kit status` and `mirror-kit ls`, the built binary against a running mirror that skopeo
// pulled through (and ls straight from its storage folder), plus a mirror that is not there.
import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { Ajv2020 } from "ajv/dist/2020.js";
import addFormats from "ajv-formats";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CachedRepository } from "../../src/observe/inventory.js";
import { skopeoCopy } from "../support/clients.js";
import { pushImage } from "../support/fixtures/push.js";
import { uniqueImage } from "../support/fixtures/sets.js";
import { startTestMirror, type TestMirror } from "../support/mirror.js";
import { requireTools } from "../support/preflight.js";
import { UpstreamRegistry } from "../support/registry.js";
import { makeTempDir, removeTempDir } from "../support/scratch.js";

const BIN = join(import.meta.dirname, "..", "..", "dist", "cli", "main.js");

function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { PATH: process.env.PATH ?? "" }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    child.on("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

describe("status and ls in the terminal", () => {
  let hub: UpstreamRegistry;
  let mirror: TestMirror;
  let work: string;
  let digest: string;

  beforeAll(async () => {
    requireTools(["docker-registry", "skopeo"]);
    work = await makeTempDir("cli-status");
    hub = await UpstreamRegistry.start({ name: "upstream docker.io" });
    const image = await uniqueImage("docker");
    digest = image.manifest.digest;
    await pushImage(hub, "library/mk-cli", image, "7");
    mirror = await startTestMirror({ "docker.io": hub.url });
    await skopeoCopy(`${mirror.host}/library/mk-cli:7`, join(work, "oci"));
  });

  afterAll(async () => {
    await mirror?.close();
    await hub?.close();
    if (work) await removeTempDir(work);
  });

  it("status prints the cache, the upstream and the pull", async () => {
    const r = await runCli(["status", "--mirror", mirror.url]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^cache\s+\d+(\.\d)? KiB no size cap, \d+ objects$/m);
    expect(r.stdout).toMatch(/^docker\.io\s+healthy\s+\d+/m);
    expect(r.stdout).toMatch(/^docker\.io\/library\/mk-cli:7\s+127\.0\.0\.1\s+miss/m);
  });

  it("status --json is the documented status", async () => {
    const r = await runCli(["status", "--mirror", mirror.url, "--json"]);
    expect(r.code).toBe(0);
    const schema = JSON.parse(await readFile(new URL("../../schemas/status-v1.schema.json", import.meta.url), "utf8")) as object;
    const ajv = new Ajv2020({ strict: true });
    addFormats.default(ajv);
    const validate = ajv.compile(schema);
    expect(validate(JSON.parse(r.stdout)), JSON.stringify(validate.errors)).toBe(true);
  });

  it("ls lists the repository and tag with size and last use, from the API and from the storage folder", async () => {
    const api = await runCli(["ls", "--mirror", mirror.url]);
    expect(api.code).toBe(0);
    expect(api.stdout).toMatch(new RegExp(`^docker\\.io/library/mk-cli\\s+7\\s+\\d+(\\.\\d)? KiB\\s+\\d+(\\.\\d)? (s|min) ago\\s+${digest.slice(0, 19)}$`, "m"));
    const direct = await runCli(["ls", "--storage", mirror.storage, "--json"]);
    expect(direct.code).toBe(0);
    const repos = JSON.parse(direct.stdout) as CachedRepository[];
    expect(repos).toMatchObject([{ upstream: "docker.io", name: "library/mk-cli", tags: [{ tag: "7", digest }] }]);
    expect(repos[0]!.tags[0]!.sizeBytes).toBeGreaterThan(64 * 1024);
  });

  it("a mirror that is not running: non-zero, saying what to check", async () => {
    const stopped = await startTestMirror({ "docker.io": hub.url });
    const url = stopped.url;
    await stopped.close();
    const r = await runCli(["status", "--mirror", url]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`cannot reach the mirror at ${url}: ECONNREFUSED`);
    expect(r.stdout).toBe("");
  });
});
