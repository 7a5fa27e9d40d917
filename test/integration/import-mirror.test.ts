// `mirror-kit import --mirror URL`: an archive handed to a running mirror (PUT /api/v1/import),
// which verifies and caches it and then serves it with no upstream at all. The archive is a real
// `mirror-kit export` of an image pulled from real distribution; the client that pulls it afterwards
// is skopeo. The mirror behind client auth takes imports from authenticated clients only; a broken
// archive is refused by name and leaves nothing behind.
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { skopeoCopy } from "../support/clients.js";
import { buildImage, type Image } from "../support/fixtures/image.js";
import { randomLayer } from "../support/fixtures/layers.js";
import { pushImage } from "../support/fixtures/push.js";
import { writeHtpasswd } from "../support/htpasswd.js";
import { startTestMirror, type TestMirror } from "../support/mirror.js";
import { requireTools } from "../support/preflight.js";
import { run } from "../support/process.js";
import { UpstreamRegistry } from "../support/registry.js";
import { makeTempDir, removeTempDir } from "../support/scratch.js";

const BIN = join(import.meta.dirname, "..", "..", "dist", "cli", "main.js");
const cli = (args: string[]) => run(process.execPath, [BIN, ...args], { timeoutMs: 100_000, allowFailure: true, env: { PATH: process.env.PATH ?? "" } });

async function blobCount(storage: string): Promise<number> {
  let n = 0;
  const root = join(storage, "blobs", "sha256");
  for (const p of await readdir(root).catch(() => [] as string[])) n += (await readdir(join(root, p))).length;
  return n;
}

describe("import into a running mirror", () => {
  let hub: UpstreamRegistry;
  let source: TestMirror;
  let offline: TestMirror;
  let work: string;
  let image: Image;
  let archive: string;

  beforeAll(async () => {
    requireTools(["docker-registry", "skopeo"]);
    work = await makeTempDir("import-mirror");
    hub = await UpstreamRegistry.start({ name: "upstream docker.io" });
    image = buildImage({ format: "oci", layers: [await randomLayer("imported.bin", 256 * 1024)] });
    await pushImage(hub, "library/mk-imported", image, "1");
    source = await startTestMirror({ "docker.io": hub.url });
    archive = join(work, "bundle.tar");
    const exported = await cli(["export", "--mirror", source.url, "-o", archive, "mk-imported:1"]);
    expect(exported.code, exported.stderr).toBe(0);
    await writeHtpasswd(join(work, "htpasswd"), { laptop: "import-pass" });
    // Its upstream is a port nothing listens on: whatever it serves comes from the import.
    offline = await startTestMirror({ "docker.io": "http://127.0.0.1:9" }, { auth: { htpasswd: { realm: "mk", path: join(work, "htpasswd") } } });
  });

  afterAll(async () => {
    await offline?.close();
    await source?.close();
    await hub?.close();
    if (work) await removeTempDir(work);
  });

  it("behind client auth, an anonymous import is refused and caches nothing", async () => {
    const r = await cli(["import", "--mirror", offline.url, archive]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("user:password@");
    expect(await blobCount(offline.storage)).toBe(0);
  });

  it("a broken archive is refused by name and caches nothing", async () => {
    const junk = join(work, "junk.tar");
    await writeFile(junk, "this is not a tar archive at all ".repeat(100));
    const url = new URL(offline.url);
    url.username = "laptop";
    url.password = "import-pass";
    const r = await cli(["import", "--mirror", url.href, junk]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/refused .*junk\.tar/);
    expect(await blobCount(offline.storage)).toBe(0);
  });

  it("an authenticated import is verified and cached, and the mirror serves it with no upstream", async () => {
    const url = new URL(offline.url);
    url.username = "laptop";
    url.password = "import-pass";
    const r = await cli(["import", "--mirror", url.href, archive]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("cached docker.io/library/mk-imported:1");
    expect(r.stdout).not.toContain("import-pass");
    await skopeoCopy(`${offline.host}/library/mk-imported:1`, join(work, "pulled"), { creds: "laptop:import-pass" });
    const index = JSON.parse(await readFile(join(work, "pulled", "index.json"), "utf8")) as { manifests: { digest: string }[] };
    expect(index.manifests[0]?.digest).toBe(image.manifest.digest);
  });
});
