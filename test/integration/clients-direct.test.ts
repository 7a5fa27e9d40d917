// Control experiment for the real-client suite: the same engines, clients and fixtures pulling
// straight from distribution, no mirror. When this passes and clients.test.ts fails, the mirror is at fault.
import { readFile, readdir } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ctrPull,
  dockerPull,
  dockerRun,
  engineFallbackLines,
  podmanPull,
  skopeoCopy,
  writeHostsToml,
  writeRegistriesConf,
} from "../support/clients.js";
import { DockerEngine } from "../support/docker-engine.js";
import { blobsOf } from "../support/fixtures/image.js";
import { sha256 } from "../support/fixtures/layers.js";
import { pushImage, pushIndex } from "../support/fixtures/push.js";
import { buildFixtureSet, type FixtureSet } from "../support/fixtures/sets.js";
import { requireTools } from "../support/preflight.js";
import { UpstreamRegistry } from "../support/registry.js";
import { makeTempDir, removeTempDir } from "../support/scratch.js";

describe("harness control: real clients pulling straight from distribution", () => {
  let fixtures: FixtureSet;
  let registry: UpstreamRegistry;
  let engine: DockerEngine | undefined;
  let work: string;

  beforeAll(async () => {
    requireTools(["dockerd", "docker", "ctr", "docker-registry", "skopeo", "podman", "busybox", "tar"], { root: true });
    work = await makeTempDir("direct");
    fixtures = await buildFixtureSet();
    registry = await UpstreamRegistry.start({ name: "upstream" });
    await pushImage(registry, "library/mk-fixture", fixtures.runnable, "1");
    await pushIndex(registry, "owner/multi", fixtures.multiArch, "2");
  });

  afterAll(async () => {
    await engine?.stop();
    await registry?.close();
    if (work) await removeTempDir(work);
  });

  it("counts each upstream request from the registry's access log", async () => {
    registry.reset();
    const blob = fixtures.runnable.layers[1]!;
    for (let i = 0; i < 2; i++) {
      const res = await fetch(`${registry.url}/v2/library/mk-fixture/blobs/${blob.digest}`);
      expect(sha256(Buffer.from(await res.arrayBuffer()))).toBe(blob.digest);
    }
    await fetch(`${registry.url}/v2/library/mk-fixture/manifests/1`, { method: "HEAD" });
    await registry.settle();
    expect(registry.count({ method: "GET", pathIncludes: blob.digest })).toBe(2);
    expect(registry.count({ method: "HEAD", kind: "manifest" })).toBe(1);
    expect(registry.count({ kind: "blob" })).toBe(2);
    registry.reset();
    expect(registry.count()).toBe(0);
  });

  it("a Docker engine with registry-mirrors pulls a plain name and runs it", async () => {
    engine = await DockerEngine.start({ registryMirrors: [registry.url], insecureRegistries: [registry.host] });
    registry.reset();
    const digest = await dockerPull(engine, "mk-fixture:1");
    expect(digest).toBe(fixtures.runnable.manifest.digest);
    expect((await dockerRun(engine, "mk-fixture:1", [])).trim()).toBe(fixtures.marker);
    await registry.settle();
    // The classic pull path: no ns, library/ added by the engine, each blob fetched once.
    for (const blob of blobsOf(fixtures.runnable)) {
      expect(registry.count({ method: "GET", pathIncludes: `/v2/library/mk-fixture/blobs/${blob.digest}` }), registry.log.describe()).toBe(1);
    }
    expect(registry.log.entries.some((e) => e.query.includes("ns="))).toBe(false);
    expect(engineFallbackLines(engine)).toEqual([]);
  });

  it("ctr with hosts.toml sends ?ns=docker.io and unpacks the image", async () => {
    const hostsDir = join(work, "hosts");
    await writeHostsToml(hostsDir, "docker.io", registry.url);
    registry.reset();
    const digest = await ctrPull({ socket: engine!.containerdSocket, namespace: "direct", hostsDir }, "docker.io/library/mk-fixture:1");
    expect(digest).toBe(fixtures.runnable.manifest.digest);
    await registry.settle();
    const manifestRequests = registry.log.entries.filter((e) => e.path.includes("/manifests/"));
    expect(manifestRequests.length).toBeGreaterThan(0);
    expect(manifestRequests.every((e) => e.query === "ns=docker.io"), registry.log.describe()).toBe(true);
  });

  it("skopeo copies the amd64 image of an OCI index into an OCI layout", async () => {
    const dest = join(work, "oci-multi");
    await skopeoCopy(`${registry.host}/owner/multi:2`, dest);
    const amd64 = fixtures.multiArch.images[0]!;
    const blobs = await readdir(join(dest, "blobs", "sha256"));
    for (const layer of amd64.layers) expect(blobs).toContain(layer.digest.slice("sha256:".length));
    // The OCI image is copied as-is: its manifest digest is the one pushed.
    const index = JSON.parse(await readFile(join(dest, "index.json"), "utf8")) as { manifests: { digest: string }[] };
    expect(index.manifests.map((m) => m.digest)).toEqual([amd64.manifest.digest]);
  });

  it("podman pulls docker.io through a registries.conf mirror", async () => {
    const conf = await writeRegistriesConf(join(work, "podman.conf"), [{ prefix: "docker.io", location: registry.host }]);
    registry.reset();
    const id = await podmanPull({ dir: join(work, "podman"), registriesConf: conf }, "docker.io/library/mk-fixture:1");
    expect(`sha256:${id}`).toBe(fixtures.runnable.config.digest);
    await registry.settle();
    expect(registry.count({ method: "GET", kind: "blob" })).toBe(blobsOf(fixtures.runnable).length);
  });

  it("an upstream stopped and started again keeps its port and its content", async () => {
    await registry.stop();
    await expect(fetch(`${registry.url}/v2/`)).rejects.toThrow();
    await registry.start();
    const res = await fetch(`${registry.url}/v2/library/mk-fixture/manifests/1`, { headers: { accept: fixtures.runnable.manifest.mediaType } });
    expect(res.headers.get("docker-content-digest")).toBe(fixtures.runnable.manifest.digest);
  });

  it("distribution in proxy mode pulls through from the upstream", async () => {
    const proxy = await UpstreamRegistry.start({ name: "distribution-proxy", proxy: { remoteurl: registry.url } });
    try {
      registry.reset();
      await skopeoCopy(`${proxy.host}/library/mk-fixture:1`, join(work, "oci-proxy"));
      await registry.settle();
      expect(registry.count({ method: "GET", pathIncludes: fixtures.runnable.layers[0]!.digest }), registry.log.describe()).toBeGreaterThanOrEqual(1);
    } finally {
      await proxy.close();
    }
  });

  it("basic auth refuses anonymous requests and accepts the configured user", async () => {
    // distribution 2.8's proxy mode sends credentials only to Bearer realms, so a
    // basic-auth upstream serves as a direct upstream only, never behind its proxy.
    const auth = { username: "mk", password: "s3cret-pw" };
    const secured = await UpstreamRegistry.start({ name: "secured", basicAuth: auth });
    try {
      expect((await fetch(`${secured.url}/v2/`)).status).toBe(401);
      await pushImage({ url: secured.url, headers: secured.authHeader() }, "library/mk-fixture", fixtures.runnable, "1");
      const res = await fetch(`${secured.url}/v2/library/mk-fixture/manifests/1`, {
        headers: { ...secured.authHeader(), accept: fixtures.runnable.manifest.mediaType },
      });
      expect(res.headers.get("docker-content-digest")).toBe(fixtures.runnable.manifest.digest);
    } finally {
      await secured.close();
    }
  });
});
