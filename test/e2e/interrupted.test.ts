// The mirror container when things stop half-way: a VM killed mid-layer, the mirror itself stopped
// mid-download (SIGTERM), over a slow link so both happen while the large layer is still arriving.
import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildBigImage, buildSmallImage, type BigImage, type RunnableImage } from "../support/containers/e2e-fixtures.js";
import { dockerApi, waitFor } from "../support/containers/engine.js";
import { initExample, vagrantProvisionEnv, type GeneratedProject } from "../support/containers/generated.js";
import { E2eHarness } from "../support/containers/harness.js";
import { MirrorContainer } from "../support/containers/mirror-container.js";
import { RegistryContainer } from "../support/containers/registry-container.js";
import { SlowLink } from "../support/containers/slow-link.js";
import { VmContainer } from "../support/containers/vm-container.js";
import { MediaType } from "../support/fixtures/image.js";
import { pushImage } from "../support/fixtures/push.js";

/**
 * The slow link's rate. The large layer takes BIG_LAYER_BYTES / rate ≈ 20 s to arrive: long enough to
 * kill a client mid-layer, and to SIGTERM the mirror with more left than its 10 s grace can finish.
 */
const SLOW_LINK_BYTES_PER_SEC = 10 * 1024 * 1024;
/** How much of the large layer must have arrived before the test interrupts it. */
const INTERRUPT_AFTER_BYTES = 32 * 1024 * 1024;
/** The mirror's own grace period for in-flight work at shutdown (src/server.ts close()). */
const MIRROR_GRACE_MS = 10_000;

const ACCEPT = [MediaType.dockerManifest, MediaType.dockerManifestList, MediaType.ociManifest, MediaType.ociIndex].join(", ");

describe("interrupted downloads through the mirror container", () => {
  let h: E2eHarness;
  let hub: RegistryContainer;
  let slow: SlowLink;
  let mirror: MirrorContainer;
  let registry2Style: MirrorContainer;
  let project: GeneratedProject;
  let big: BigImage;
  let small: RunnableImage;

  const bigBlobPath = () => `/v2/library/big/blobs/${big.big.digest}`;
  const bigBlobFile = () => `blobs/sha256/${big.big.digest.slice(7, 9)}/${big.big.digest.slice(7)}`;
  const ingestFiles = (files: Map<string, number>) => [...files.keys()].filter((f) => f.startsWith("ingest/"));

  beforeAll(async () => {
    h = await E2eHarness.start();
    hub = await RegistryContainer.start(h, "upstream-hub");
    slow = await SlowLink.start(h, "slow-hub", "upstream-hub:5000", SLOW_LINK_BYTES_PER_SEC);
    mirror = await MirrorContainer.start(h, { alias: "mirror", env: { MIRROR_KIT_UPSTREAMS: `docker.io=${slow.internalUrl}` } });
    // A registry:2 mirror's configuration, unchanged: the remote and the listen address as distribution spells them.
    registry2Style = await MirrorContainer.start(h, { alias: "mirror-r2", port: 5001, env: { REGISTRY_PROXY_REMOTEURL: slow.internalUrl, REGISTRY_HTTP_ADDR: ":5001" } });
    [big, small] = await Promise.all([buildBigImage(), buildSmallImage()]);
    await pushImage(hub, "library/big", big.image, "1");
    await pushImage(hub, "library/small", small.image, "1");
    project = await initExample(h, "vagrant", ["--vagrant", "--port", String(mirror.publishedPort)]);
  });

  afterAll(async () => {
    await h?.cleanup();
  });

  it("the image runs as a non-root user, takes a registry:2 mirror's REGISTRY_* variables and reports healthy", async () => {
    // It starts as root only to give its storage to 10001, then drops to it (MIRROR_KIT_RUN_AS).
    expect((await dockerApi().getImage(h.img.mirrorKit).inspect()).Config.Env).toContain("MIRROR_KIT_RUN_AS=10001:10001");
    expect(await registry2Style.processUid()).toBe(10001);
    // Published from port 5001 (REGISTRY_HTTP_ADDR), fetched from REGISTRY_PROXY_REMOTEURL as the default upstream.
    const res = await fetch(`${registry2Style.url}/v2/library/small/manifests/1`, { headers: { accept: ACCEPT } });
    expect(res.status).toBe(200);
    expect(res.headers.get("docker-content-digest")).toBe(small.image.manifest.digest);
    expect(Buffer.from(await res.arrayBuffer()).equals(small.image.manifest.bytes)).toBe(true);
    // The image's HEALTHCHECK (node, no curl) follows the listen address to 5001.
    await waitFor("the image's HEALTHCHECK to report healthy", async () => ((await registry2Style.health()) === "healthy" ? true : undefined), 60_000, 1_000);
  });

  it("the image's HEALTHCHECK follows `serve --listen` given after the image name", async () => {
    const flagged = await MirrorContainer.start(h, { alias: "mirror-flag", port: 6000, command: ["serve", "--listen", "0.0.0.0:6000"], env: { MIRROR_KIT_UPSTREAMS: `docker.io=${slow.internalUrl}` } });
    await waitFor("the HEALTHCHECK of a mirror on --listen 0.0.0.0:6000 to report healthy", async () => ((await flagged.health()) === "healthy" ? true : undefined), 60_000, 1_000);
  });

  it("(6) a VM killed mid-layer leaves the download running; the next pull completes from the cache with one upstream download", async () => {
    await hub.settle();
    await hub.reset();
    const { script, env } = await vagrantProvisionEnv(project, { MIRROR_KIT_PROVIDER: "libvirt" });
    const first = await VmContainer.start(h, "vm-killed");
    await first.runScript(script, env);
    await first.waitForMirror(mirror.viaHostUrl);

    const pull = first.dockerPull("big:1").then(
      () => "completed",
      () => "interrupted",
    );
    await waitFor(
      `${INTERRUPT_AFTER_BYTES} bytes of the large layer to reach the VM`,
      async () => ((await mirror.metric("mirrorkit_served_bytes_total", { source: "upstream" })) >= INTERRUPT_AFTER_BYTES ? true : undefined),
      60_000,
      100,
    );
    expect(await mirror.metric("mirrorkit_fills_active")).toBeGreaterThanOrEqual(1);
    await first.kill();
    expect(await pull).toBe("interrupted");
    expect(await mirror.metric("mirrorkit_served_bytes_total", { source: "upstream" })).toBeLessThan(big.big.size);

    // Nobody is waiting for the layer any more; the mirror finishes it anyway (fill.orphanTimeout).
    await waitFor("the orphaned download to finish", async () => ((await mirror.metric("mirrorkit_fills_active")) === 0 ? true : undefined), 120_000, 500);
    const stored = await mirror.storageFiles();
    expect(stored.get(bigBlobFile())).toBe(big.big.size);
    expect(ingestFiles(stored)).toEqual([]);

    const fromCacheBefore = await mirror.metric("mirrorkit_served_bytes_total", { source: "cache" });
    const second = await VmContainer.start(h, "vm-retry");
    await second.runScript(script, env);
    await second.waitForMirror(mirror.viaHostUrl);
    expect(await second.dockerPull("big:1")).toBe(big.image.manifest.digest);
    expect((await second.dockerRun("big:1")).trim()).toBe(big.marker);
    expect((await mirror.metric("mirrorkit_served_bytes_total", { source: "cache" })) - fromCacheBefore).toBeGreaterThanOrEqual(big.big.size);

    await hub.settle();
    expect(await hub.count({ method: "GET", pathIncludes: bigBlobPath() }), await hub.describe({ method: "GET" })).toBe(1);
  });

  it("SIGTERM mid-download: the mirror exits cleanly, publishes nothing half-written, and re-fetches the layer after a restart", async () => {
    await hub.settle();
    await hub.reset();
    const manifest = await fetch(`${registry2Style.url}/v2/library/big/manifests/1`, { headers: { accept: ACCEPT } });
    expect(manifest.status).toBe(200);
    await manifest.arrayBuffer();

    // A client downloading the large layer, reading everything it is sent.
    const res = await fetch(`${registry2Style.url}${bigBlobPath()}`);
    expect(res.status).toBe(200);
    let received = 0;
    const reader = res.body!.getReader();
    const download = (async () => {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return "ended";
        received += value.byteLength;
      }
    })().catch(() => "failed");
    await waitFor(`${INTERRUPT_AFTER_BYTES} bytes of the layer to arrive`, async () => (received >= INTERRUPT_AFTER_BYTES ? true : undefined), 60_000, 50);
    // Precondition, not outcome: what is left cannot arrive within the grace period, so the mirror must cancel it.
    const left = big.big.size - (await registry2Style.metric("mirrorkit_upstream_bytes_total"));
    expect(left / SLOW_LINK_BYTES_PER_SEC, "seconds of download left at SIGTERM").toBeGreaterThan(MIRROR_GRACE_MS / 1000 + 2);

    const stopped = await registry2Style.stop(30);
    expect(stopped, JSON.stringify(await registry2Style.logLines().then((l) => l.slice(-10)))).toMatchObject({ exitCode: 0, killed: false });
    expect(stopped.ms).toBeLessThan(MIRROR_GRACE_MS + 8_000);
    expect((await registry2Style.logLines()).join("\n")).toContain("mirror-kit stopped");
    // The client saw a broken download, never a short body passed off as complete.
    expect(await download).toBe("failed");
    expect(received).toBeLessThan(big.big.size);

    // On disk, before anything restarts: no object for the layer, no temporary file left. (The
    // repository's empty link file for it, written with the manifest that lists it, is not content.)
    const afterStop = await registry2Style.storageFiles();
    expect([...afterStop.keys()].filter((f) => f.includes(big.big.digest.slice(7)) && !/^repositories\/.+\/_layers\//.test(f))).toEqual([]);
    expect(afterStop.get(bigBlobFile())).toBeUndefined();
    expect(ingestFiles(afterStop)).toEqual([]);

    await registry2Style.start();
    const again = await fetch(`${registry2Style.url}${bigBlobPath()}`);
    expect(again.status).toBe(200);
    expect(again.headers.get("x-mirror-cache")).toBe("MISS");
    const body = Buffer.from(await again.arrayBuffer());
    expect(body.length).toBe(big.big.size);
    expect(`sha256:${createHash("sha256").update(body).digest("hex")}`).toBe(big.big.digest);

    const afterRestart = await registry2Style.storageFiles();
    expect(afterRestart.get(bigBlobFile())).toBe(big.big.size);
    expect(ingestFiles(afterRestart)).toEqual([]);
    await hub.settle();
    // The download SIGTERM cancelled, then the one after the restart: nothing was kept from the first.
    expect(await hub.count({ method: "GET", pathIncludes: bigBlobPath() }), await hub.describe({ method: "GET" })).toBe(2);
  });
});
