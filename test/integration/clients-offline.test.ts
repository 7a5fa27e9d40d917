// The seeds' promise with real clients: the upstream registry is stopped and pulls keep working
// from the cache; when it comes back, a tag is revalidated with a single HEAD and nothing is downloaded.
import { setTimeout as sleep } from "node:timers/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ctrPull, dockerPull, dockerRun, engineFallbackLines, writeHostsToml } from "../support/clients.js";
import { DockerEngine } from "../support/docker-engine.js";
import { pushImage } from "../support/fixtures/push.js";
import { buildFixtureSet, type FixtureSet } from "../support/fixtures/sets.js";
import { cacheHeader, startTestMirror, type TestMirror } from "../support/mirror.js";
import { requireTools } from "../support/preflight.js";
import { UpstreamRegistry } from "../support/registry.js";
import { makeTempDir, removeTempDir } from "../support/scratch.js";

// Short windows so the test crosses them in seconds: past FRESHNESS a tag must be revalidated,
// past BREAKER_COOLDOWN an upstream that failed is tried again.
const FRESHNESS = "1s";
const BREAKER_COOLDOWN = "1s";
const PAST_BOTH_MS = 1_500;

describe("pulls through the mirror while the upstream is offline", () => {
  let fx: FixtureSet;
  let hub: UpstreamRegistry;
  let mirror: TestMirror;
  let work: string;
  let fresh: DockerEngine | undefined;
  const engines: DockerEngine[] = [];

  const engine = async (): Promise<DockerEngine> => {
    const started = await DockerEngine.start({ registryMirrors: [mirror.url], insecureRegistries: [mirror.host] });
    engines.push(started);
    return started;
  };

  beforeAll(async () => {
    requireTools(["dockerd", "docker", "ctr", "docker-registry", "busybox", "tar"], { root: true });
    work = await makeTempDir("offline");
    fx = await buildFixtureSet();
    hub = await UpstreamRegistry.start({ name: "upstream docker.io" });
    await pushImage(hub, "library/mk-fixture", fx.runnable, "1");
    mirror = await startTestMirror(
      { "docker.io": hub.url },
      { cache: { tagFreshness: FRESHNESS }, upstream: { breakerCooldown: BREAKER_COOLDOWN } },
    );
  });

  afterAll(async () => {
    for (const e of engines) await e.stop();
    await mirror?.close();
    await hub?.close();
    if (work) await removeTempDir(work);
  });

  it("a fresh engine and a fresh ctr namespace pull a cached image with the upstream stopped", async () => {
    const warm = await engine();
    expect(await dockerPull(warm, "mk-fixture:1")).toBe(fx.runnable.manifest.digest);
    await warm.stop();

    await hub.stop();
    await sleep(PAST_BOTH_MS);

    fresh = await engine();
    expect(await dockerPull(fresh, "mk-fixture:1")).toBe(fx.runnable.manifest.digest);
    expect((await dockerRun(fresh, "mk-fixture:1", [])).trim()).toBe(fx.marker);
    expect(engineFallbackLines(fresh)).toEqual([]);

    const hostsDir = join(work, "hosts");
    await writeHostsToml(hostsDir, "docker.io", mirror.url);
    const ctr = { socket: fresh.containerdSocket, namespace: "mk-offline", hostsDir };
    expect(await ctrPull(ctr, "docker.io/library/mk-fixture:1")).toBe(fx.runnable.manifest.digest);

    expect(hub.running).toBe(false);
    expect(await cacheHeader(mirror.url, "/v2/library/mk-fixture/manifests/1", fx.runnable.manifest.mediaType)).toBe("STALE");
  });

  it("once the upstream is back, a pull revalidates the tag with one HEAD and downloads nothing", async () => {
    await hub.start();
    hub.reset();
    await sleep(PAST_BOTH_MS);
    await fresh!.docker(["rmi", "mk-fixture:1"]);

    expect(await dockerPull(fresh!, "mk-fixture:1")).toBe(fx.runnable.manifest.digest);
    await hub.settle();
    expect(hub.count({ method: "HEAD", kind: "manifest" }), hub.log.describe()).toBe(1);
    expect(hub.count({ method: "GET", kind: "manifest" }), hub.log.describe()).toBe(0);
    expect(hub.count({ kind: "blob" }), hub.log.describe()).toBe(0);
  });
});
