// `mirror-kit prefetch` as a user runs it before going offline: it finds the images of a Compose
// project (a service image, and the FROM of a build context's Dockerfile, via an ARG default), warms
// the mirror with exactly one upstream download per blob — only the host's platform of a multi-arch
// index —, resumes when interrupted without downloading again, and then a real Docker engine pulls
// every image of the project with the upstream stopped.
import { spawn } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dockerPull, dockerRun, engineFallbackLines } from "../support/clients.js";
import { DockerEngine } from "../support/docker-engine.js";
import { blobsOf, buildImage, type Image } from "../support/fixtures/image.js";
import { randomLayer } from "../support/fixtures/layers.js";
import { pushImage, pushIndex } from "../support/fixtures/push.js";
import { buildFixtureSet, uniqueImage, type FixtureSet } from "../support/fixtures/sets.js";
import { metricValue, startTestMirror, type TestMirror } from "../support/mirror.js";
import { PacedLink } from "../support/paced-link.js";
import { requireTools } from "../support/preflight.js";
import { run } from "../support/process.js";
import { UpstreamRegistry } from "../support/registry.js";
import { makeTempDir, removeTempDir } from "../support/scratch.js";

const BIN = join(import.meta.dirname, "..", "..", "dist", "cli", "main.js");
const BIG_LAYER = 32 * 1024 * 1024;
// The paced link makes the big layer take seconds, so the first prefetch can be interrupted mid-blob.
const LINK_BYTES_PER_SEC = 10 * 1024 * 1024;

function prefetchCli(args: string[], cwd: string) {
  return run(process.execPath, [BIN, "prefetch", ...args], { cwd, timeoutMs: 100_000, allowFailure: true, env: { PATH: process.env.PATH ?? "" } });
}

describe("mirror-kit prefetch", () => {
  let fx: FixtureSet;
  let db: Image;
  let big: Image;
  let hub: UpstreamRegistry;
  let link: PacedLink;
  let mirror: TestMirror;
  let project: string;
  const engines: DockerEngine[] = [];

  beforeAll(async () => {
    requireTools(["dockerd", "docker", "docker-registry", "busybox", "tar"], { root: true });
    fx = await buildFixtureSet();
    db = await uniqueImage("docker");
    big = buildImage({ layers: [await randomLayer("data/big.bin", BIG_LAYER)] });
    hub = await UpstreamRegistry.start({ name: "upstream docker.io" });
    await pushImage(hub, "library/mk-base", fx.runnable, "1");
    await pushImage(hub, "team/mk-db", db, "16");
    await pushIndex(hub, "library/mk-multi", fx.multiArch, "1");
    await pushImage(hub, "library/mk-big", big, "1");
    // Pushing HEADs every blob: only what the mirror asks for counts from here on.
    await hub.settle();
    hub.reset();
    link = await PacedLink.start(hub.url, LINK_BYTES_PER_SEC);
    // A long freshness window: the offline pulls at the end must be served from what prefetch cached.
    mirror = await startTestMirror({ "docker.io": link.url }, { cache: { tagFreshness: "10m" } });
    project = await makeTempDir("prefetch-project");
    await mkdir(join(project, "app"));
    await writeFile(join(project, "compose.yaml"), "services:\n  db:\n    image: team/mk-db:16\n  app:\n    build:\n      context: ./app\n");
    await writeFile(join(project, "app", "Dockerfile"), "ARG BASE=mk-base\nFROM ${BASE}:1 AS runtime\nCOPY . /app\n");
  });

  afterAll(async () => {
    for (const e of engines) await e.stop();
    await mirror?.close();
    await link?.close();
    await hub?.close();
    if (project) await removeTempDir(project);
  });

  it("warms the mirror with every blob of the project once, and only the host's platform of an index", async () => {
    const r = await prefetchCli(["--mirror", mirror.url, ".", "mk-multi:1"], project);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain("docker.io/team/mk-db:16");
    expect(r.stderr).toContain("docker.io/library/mk-base:1");
    expect(r.stdout).toContain("3 of 3 image(s) cached in the mirror");
    await hub.settle();
    const wanted = [...blobsOf(fx.runnable), ...blobsOf(db), ...blobsOf(fx.multiArch.images[0]!)];
    for (const b of wanted) expect(hub.count({ method: "GET", pathIncludes: b.digest }), b.digest).toBe(1);
    // linux/arm64 is in the index but not this host's platform: none of its blobs was fetched.
    for (const b of blobsOf(fx.multiArch.images[1]!)) expect(hub.count({ pathIncludes: b.digest })).toBe(0);
  });

  it("resumes after an interruption without downloading anything twice", async () => {
    const child = spawn(process.execPath, [BIN, "prefetch", "--mirror", mirror.url, "mk-big:1"], { stdio: "ignore" });
    // Interrupt it while the mirror is in the middle of the big layer.
    const deadline = Date.now() + 30_000;
    while ((await metricValue(mirror.url, "mirrorkit_fills_active")) < 1) {
      if (Date.now() > deadline) throw new Error("the big layer's download never started");
      await new Promise((r) => setTimeout(r, 50));
    }
    child.kill("SIGKILL");
    await new Promise((r) => child.once("exit", r));

    const again = await prefetchCli(["--mirror", mirror.url, "mk-big:1"], project);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain("1 of 1 image(s) cached in the mirror");
    const third = await prefetchCli(["--mirror", mirror.url, "mk-big:1", "mk-base:1"], project);
    expect(third.stderr).toMatch(/mk-big:1 \(single\): 2 blob\(s\), 2 already cached, 0B fetched/);
    await hub.settle();
    expect(hub.count({ method: "GET", pathIncludes: big.layers[0]!.digest })).toBe(1);
  });

  it("then a Docker engine pulls every image of the project with the upstream stopped", async () => {
    await hub.stop();
    const engine = await DockerEngine.start({ registryMirrors: [mirror.url], insecureRegistries: [mirror.host] });
    engines.push(engine);
    expect(await dockerPull(engine, "team/mk-db:16")).toBe(db.manifest.digest);
    expect(await dockerPull(engine, "mk-base:1")).toBe(fx.runnable.manifest.digest);
    expect(await dockerPull(engine, "mk-multi:1")).toBe(fx.multiArch.manifest.digest);
    expect((await dockerRun(engine, "mk-base:1", [])).trim()).toBe(fx.marker);
    expect(engineFallbackLines(engine)).toEqual([]);
  });

  it("fails with a clear message and a non-zero exit when the mirror cannot be reached", async () => {
    // --platform takes one value: the image after it is a target, not a second platform.
    const r = await prefetchCli(["--mirror", "http://127.0.0.1:9", "--platform", "linux/amd64", "busybox"], project);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("cannot reach the mirror at http://127.0.0.1:9");
  });
});
