// `init --prefetch`: the project's prefetch step (.mirror-kit/prefetch.sh), run as a user would after
// init, warms a real mirror in front of real distribution with every image of a Compose project (a
// service image and the base of a service it builds), but not the mirror's own service; init again
// leaves the script as it is. Counted at the upstream's access log.
import { access, constants, mkdir, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildImage, type Image } from "../support/fixtures/image.js";
import { randomLayer } from "../support/fixtures/layers.js";
import { pushImage } from "../support/fixtures/push.js";
import { startTestMirror, type TestMirror } from "../support/mirror.js";
import { requireTools } from "../support/preflight.js";
import { run } from "../support/process.js";
import { UpstreamRegistry } from "../support/registry.js";
import { makeTempDir, removeTempDir } from "../support/scratch.js";

const BIN = join(import.meta.dirname, "..", "..", "dist", "cli", "main.js");

async function cached(storage: string, digest: string): Promise<boolean> {
  return (await readdir(join(storage, "blobs", "sha256", digest.slice(7, 9))).catch(() => [] as string[])).includes(digest.slice(7));
}

describe("init's prefetch step", () => {
  let hub: UpstreamRegistry;
  let mirror: TestMirror;
  let dir: string;
  let web: Image;
  let base: Image;

  beforeAll(async () => {
    requireTools(["docker-registry"]);
    dir = await makeTempDir("prefetch-step");
    hub = await UpstreamRegistry.start({ name: "upstream docker.io" });
    web = buildImage({ layers: [await randomLayer("web.bin", 32 * 1024)] });
    base = buildImage({ layers: [await randomLayer("base.bin", 32 * 1024)] });
    await pushImage(hub, "library/mk-step-web", web, "1");
    await pushImage(hub, "library/mk-step-base", base, "2");
    mirror = await startTestMirror({ "docker.io": hub.url });
    await mkdir(join(dir, "api"));
    await writeFile(join(dir, "api", "Dockerfile"), "ARG BASE=mk-step-base:2\nFROM ${BASE}\nCOPY . /app\n");
    await writeFile(join(dir, "compose.yaml"), "services:\n  web:\n    image: mk-step-web:1\n  api:\n    build: ./api\n");
  });

  afterAll(async () => {
    await mirror?.close();
    await hub?.close();
    if (dir) await removeTempDir(dir);
  });

  it("init --prefetch writes an executable .mirror-kit/prefetch.sh and says when to run it", async () => {
    const r = await run(process.execPath, [BIN, "init", "--prefetch", "--yes", "--dir", dir], { allowFailure: true, timeoutMs: 100_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("created    .mirror-kit/prefetch.sh");
    expect(r.stdout).toContain("warm it with every image of the project: `docker compose up` runs the service mirror-kit-prefetch once the mirror is healthy (`docker compose up mirror-kit-prefetch` alone), or run `.mirror-kit/prefetch.sh`");
    await access(join(dir, ".mirror-kit", "prefetch.sh"), constants.X_OK);
  });

  it("running it caches every image of the project in the mirror, once each at the upstream", async () => {
    await hub.settle();
    hub.reset();
    const r = await run(join(dir, ".mirror-kit", "prefetch.sh"), [], {
      allowFailure: true,
      timeoutMs: 100_000,
      cwd: "/",
      env: { PATH: process.env.PATH ?? "", MIRROR_KIT_URL: mirror.url, MIRROR_KIT_CLI: `${process.execPath} ${BIN}` },
    });
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    for (const image of [web, base]) {
      for (const d of [image.manifest.digest, image.config.digest, ...image.layers.map((l) => l.digest)]) expect(await cached(mirror.storage, d), d).toBe(true);
    }
    await hub.settle();
    for (const l of [...web.layers, ...base.layers]) expect(hub.count({ method: "GET", pathIncludes: l.digest })).toBe(1);
    // The mirror's own services (added by init: the mirror and its prefetch step) were not pulled through the mirror.
    expect(hub.count({ pathIncludes: "mirror-kit" })).toBe(0);
  });

  it("init again leaves the script as it is", async () => {
    const r = await run(process.execPath, [BIN, "init", "--prefetch", "--yes", "--dir", dir], { allowFailure: true, timeoutMs: 100_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("up to date");
  });
});
