// Real clients through the mirror: a Docker engine (registry-mirrors), containerd's ctr (hosts.toml,
// ?ns= for two upstreams) and skopeo (path prefix, plain name), each checked against the upstream's own log.
import { readFile, readdir } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ctrPull, dockerPull, dockerRun, engineFallbackLines, skopeoCopy, writeHostsToml } from "../support/clients.js";
import { DockerEngine } from "../support/docker-engine.js";
import { blobsOf, type Image } from "../support/fixtures/image.js";
import { pushImage, pushIndex } from "../support/fixtures/push.js";
import { buildFixtureSet, uniqueImage, type FixtureSet } from "../support/fixtures/sets.js";
import { cacheHeader, metricValue, startTestMirror, type TestMirror } from "../support/mirror.js";
import { requireTools } from "../support/preflight.js";
import { UpstreamRegistry } from "../support/registry.js";
import { makeTempDir, removeTempDir } from "../support/scratch.js";


describe("real clients pull through the mirror", () => {
  let fx: FixtureSet;
  let ociTool: Image;
  let hub: UpstreamRegistry;
  let ghcr: UpstreamRegistry;
  let mirror: TestMirror;
  let work: string;
  const engines: DockerEngine[] = [];

  const engine = async (): Promise<DockerEngine> => {
    const started = await DockerEngine.start({ registryMirrors: [mirror.url], insecureRegistries: [mirror.host] });
    engines.push(started);
    return started;
  };

  /** Every blob of `image` was fetched from `upstream` exactly once, under `repo`. */
  const expectEachBlobFetchedOnce = (upstream: UpstreamRegistry, repo: string, image: Image): void => {
    for (const blob of blobsOf(image)) {
      const got = upstream.count({ method: "GET", pathIncludes: `/v2/${repo}/blobs/${blob.digest}` });
      expect(got, `GET ${repo} blob ${blob.digest} on ${upstream.name}:\n${upstream.log.describe()}`).toBe(1);
    }
  };

  beforeAll(async () => {
    requireTools(["dockerd", "docker", "ctr", "docker-registry", "skopeo", "busybox", "tar"], { root: true });
    work = await makeTempDir("clients");
    fx = await buildFixtureSet();
    ociTool = await uniqueImage("oci");
    hub = await UpstreamRegistry.start({ name: "upstream docker.io" });
    ghcr = await UpstreamRegistry.start({ name: "upstream ghcr.io" });
    await pushImage(hub, "library/mk-fixture", fx.runnable, "1");
    await pushIndex(hub, "library/mk-list", fx.manifestList, "1");
    await pushIndex(ghcr, "owner/img", fx.multiArch, "2");
    await pushImage(ghcr, "owner/tool", ociTool, "1");
    // 10m, not 1m: the "zero upstream requests" claims below must not depend on how fast CI is.
    mirror = await startTestMirror({ "docker.io": hub.url, "ghcr.io": ghcr.url }, { cache: { tagFreshness: "10m" } });
    hub.reset();
    ghcr.reset();
  });

  afterAll(async () => {
    for (const e of engines) await e.stop();
    await mirror?.close();
    await hub?.close();
    await ghcr?.close();
    if (work) await removeTempDir(work);
  });

  it("docker pull of a plain name goes engine → mirror → upstream once, and the image runs", async () => {
    const first = await engine();
    hub.reset();
    const digest = await dockerPull(first, "mk-fixture:1");
    expect(digest).toBe(fx.runnable.manifest.digest);
    expect((await dockerRun(first, "mk-fixture:1", [])).trim()).toBe(fx.marker);
    await hub.settle();
    expectEachBlobFetchedOnce(hub, "library/mk-fixture", fx.runnable);
    // The mirror was the engine's only route: it never gave up on it.
    expect(engineFallbackLines(first)).toEqual([]);
    expect(ghcr.count()).toBe(0);
    for (const blob of blobsOf(fx.runnable)) {
      expect(await cacheHeader(mirror.url, `/v2/library/mk-fixture/blobs/${blob.digest}`)).toBe("HIT");
    }
  });

  it("a second engine pulls the same image with zero upstream requests", async () => {
    const second = await engine();
    const hitsBefore = await metricValue(mirror.url, "mirrorkit_cache_results_total", { kind: "blob", result: "hit" });
    hub.reset();
    expect(await dockerPull(second, "mk-fixture:1")).toBe(fx.runnable.manifest.digest);
    expect((await dockerRun(second, "mk-fixture:1", [])).trim()).toBe(fx.marker);
    await hub.settle();
    expect(hub.count(), hub.log.describe()).toBe(0);
    const hitsAfter = await metricValue(mirror.url, "mirrorkit_cache_results_total", { kind: "blob", result: "hit" });
    expect(hitsAfter - hitsBefore).toBeGreaterThanOrEqual(blobsOf(fx.runnable).length);
    expect(engineFallbackLines(second)).toEqual([]);
  });

  it("ctr with hosts.toml pulls from docker.io and ghcr.io through one mirror, routed by ?ns=", async () => {
    const hostsDir = join(work, "hosts");
    await writeHostsToml(hostsDir, "docker.io", mirror.url);
    await writeHostsToml(hostsDir, "ghcr.io", mirror.url);
    const ctr = { socket: engines[0]!.containerdSocket, namespace: "mk-ns", hostsDir };
    hub.reset();
    ghcr.reset();

    expect(await ctrPull(ctr, "docker.io/library/mk-list:1")).toBe(fx.manifestList.manifest.digest);
    expect(await ctrPull(ctr, "ghcr.io/owner/img:2")).toBe(fx.multiArch.manifest.digest);
    await hub.settle();
    await ghcr.settle();

    // Each upstream saw only its own repository, and only the amd64 blobs this host needs.
    expectEachBlobFetchedOnce(hub, "library/mk-list", fx.manifestList.images[0]!);
    expectEachBlobFetchedOnce(ghcr, "owner/img", fx.multiArch.images[0]!);
    for (const blob of blobsOf(fx.multiArch.images[1]!)) expect(ghcr.count({ pathIncludes: blob.digest })).toBe(0);
    expect(hub.count({ pathIncludes: "owner/img" })).toBe(0);
    expect(ghcr.count({ pathIncludes: "library/" })).toBe(0);
  });

  it("after a one-platform pull the whole index is served by digest from the cache; the other platform is fetched only when asked", async () => {
    ghcr.reset();
    const index = await fetch(`${mirror.url}/v2/owner/img/manifests/${fx.multiArch.manifest.digest}?ns=ghcr.io`, { headers: { accept: fx.multiArch.manifest.mediaType } });
    expect(index.status).toBe(200);
    expect(index.headers.get("x-mirror-cache")).toBe("HIT");
    expect(Buffer.from(await index.arrayBuffer()).equals(fx.multiArch.manifest.bytes)).toBe(true);
    const arm = fx.multiArch.images[1]!.manifest;
    const child = await fetch(`${mirror.url}/v2/owner/img/manifests/${arm.digest}?ns=ghcr.io`, { headers: { accept: arm.mediaType } });
    expect([child.status, child.headers.get("x-mirror-cache")]).toEqual([200, "MISS"]);
    await child.arrayBuffer();
    await ghcr.settle();
    expect(ghcr.count({ kind: "manifest", pathIncludes: fx.multiArch.manifest.digest })).toBe(0);
    expect(ghcr.count({ method: "GET", kind: "manifest", pathIncludes: arm.digest })).toBe(1);
    // Asking for a manifest fetches no layers: those come when a client of that platform pulls.
    for (const blob of blobsOf(fx.multiArch.images[1]!)) expect(ghcr.count({ pathIncludes: blob.digest })).toBe(0);
  });

  it("skopeo copies through the path prefix form /v2/ghcr.io/owner/tool", async () => {
    ghcr.reset();
    hub.reset();
    const dest = join(work, "oci-prefix");
    await skopeoCopy(`${mirror.host}/ghcr.io/owner/tool:1`, dest);
    await ghcr.settle();
    await hub.settle();
    expectEachBlobFetchedOnce(ghcr, "owner/tool", ociTool);
    expect(hub.count()).toBe(0);
    // An OCI image is copied byte for byte: same manifest digest, every blob present.
    const index = JSON.parse(await readFile(join(dest, "index.json"), "utf8")) as { manifests: { digest: string }[] };
    expect(index.manifests.map((m) => m.digest)).toEqual([ociTool.manifest.digest]);
    const files = await readdir(join(dest, "blobs", "sha256"));
    for (const blob of blobsOf(ociTool)) expect(files).toContain(blob.digest.slice("sha256:".length));
  });

  it("skopeo copies a one-segment plain name (mk-fixture → library/mk-fixture) from the cache", async () => {
    hub.reset();
    const dest = join(work, "oci-plain");
    await skopeoCopy(`${mirror.host}/mk-fixture:1`, dest).catch(async (err: Error) => {
      await hub.settle();
      throw new Error(`${err.message}\nupstream docker.io saw:\n${hub.log.describe()}`);
    });
    await hub.settle();
    expect(hub.count(), hub.log.describe()).toBe(0);
    // skopeo rewrites a Docker manifest as OCI, but the compressed layers are kept as they are.
    const files = await readdir(join(dest, "blobs", "sha256"));
    for (const layer of fx.runnable.layers) expect(files).toContain(layer.digest.slice("sha256:".length));
  });
});
