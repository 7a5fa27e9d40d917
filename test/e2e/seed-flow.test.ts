// The seed flow end to end: the mirror-kit image on the host's Docker, real distribution upstreams,
// and machines with their own Docker engines wired by what `mirror-kit init` generated.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildBigImage, buildMultiArch, type BigImage, type MultiArch } from "../support/containers/e2e-fixtures.js";
import { devcontainerFeature, initExample, vagrantProvisionEnv, type GeneratedProject } from "../support/containers/generated.js";
import { E2eHarness } from "../support/containers/harness.js";
import { devcontainerImage } from "../support/containers/images.js";
import { MirrorContainer } from "../support/containers/mirror-container.js";
import { RegistryContainer } from "../support/containers/registry-container.js";
import { VmContainer } from "../support/containers/vm-container.js";
import { blobsOf, type Image } from "../support/fixtures/image.js";
import { pushImage, pushIndex } from "../support/fixtures/push.js";
import { uniqueImage } from "../support/fixtures/sets.js";

// The tests are one story told in order (vitest runs a file's tests sequentially): the second VM
// finds what the first one cached, the offline pull finds what both did.
describe("seed flow: VMs and devcontainers pull through the mirror container", () => {
  let h: E2eHarness;
  let hub: RegistryContainer;
  let ghcr: RegistryContainer;
  let mirror: MirrorContainer;
  let project: GeneratedProject;
  let big: BigImage;
  let multi: MultiArch;
  let tool: Image;

  /**
   * Every blob of `image` crossed the link from `upstream` exactly once in this whole run, whatever
   * repository asked for it: the cache is shared, so a layer two images share also counts once.
   */
  const expectEachBlobDownloadedOnce = async (upstream: RegistryContainer, image: Image): Promise<void> => {
    await upstream.settle();
    for (const blob of blobsOf(image)) {
      const n = await upstream.count({ method: "GET", pathIncludes: `/blobs/${blob.digest}` });
      expect(n, `GET blob ${blob.digest} (${blob.size} bytes)\n${await upstream.describe({ method: "GET" })}`).toBe(1);
    }
  };

  /** A VM whose engines were wired by the generated provisioner, run with the env the Vagrantfile gives it. */
  const provisionedVm = async (name: string, hostEnv: Record<string, string>, files?: Record<string, string>): Promise<VmContainer> => {
    const vm = await VmContainer.start(h, name, { files });
    const { script, env } = await vagrantProvisionEnv(project, hostEnv);
    const output = await vm.runScript(script, env);
    expect(output).toContain(`mirror: ${mirror.viaHostUrl}`);
    await vm.waitForMirror(mirror.viaHostUrl);
    return vm;
  };

  beforeAll(async () => {
    h = await E2eHarness.start();
    [big, multi, tool] = await Promise.all([buildBigImage(), buildMultiArch(), uniqueImage("oci")]);
    hub = await RegistryContainer.start(h, "upstream-hub");
    ghcr = await RegistryContainer.start(h, "upstream-ghcr");
    await pushImage(hub, "library/big", big.image, "1");
    await pushIndex(hub, "library/multi", multi.index, "1");
    await pushImage(ghcr, "team/tool", tool, "1");
    mirror = await MirrorContainer.start(h, {
      alias: "mirror",
      env: {
        // Only the test's registries: nothing can be fetched from anywhere else.
        MIRROR_KIT_UPSTREAMS: `docker.io=${hub.internalUrl},ghcr.io=${ghcr.internalUrl}`,
        // Every pull revalidates its tag with a HEAD, so the offline pull below really meets a dead upstream.
        MIRROR_KIT_TAG_FRESHNESS: "0s",
      },
    });
    // The user's step: init in the project, told the port the mirror is published on.
    project = await initExample(h, "all-three", ["--vagrant", "--devcontainer", "--port", String(mirror.publishedPort)]);
  });

  afterAll(async () => {
    await h?.cleanup();
  });

  it("(1) a VM provisioned by the generated Vagrant script pulls `big:1` by its plain name through the mirror", async () => {
    // vagrant-libvirt: the host is the VM's default gateway, found by the script itself.
    const vm = await provisionedVm("vm1", { MIRROR_KIT_PROVIDER: "libvirt" });
    expect(await vm.dockerPull("big:1")).toBe(big.image.manifest.digest);
    expect((await vm.dockerRun("big:1")).trim()).toBe(big.marker);
    await expectEachBlobDownloadedOnce(hub, big.image);
    // The mirror was the engine's only route: it never gave up on it for registry-1.docker.io.
    expect(await vm.fallbackLines()).toEqual([]);
  });

  it("(1b) the same wiring reaches a second upstream: containerd sends ?ns=ghcr.io, dockerd uses the ghcr.io/ path prefix", async () => {
    const vm = await provisionedVm("vm-ghcr", { MIRROR_KIT_PROVIDER: "libvirt" });
    // hosts.toml under /etc/containerd/certs.d/ghcr.io, written by the provisioner.
    expect(await vm.ctrPull("ghcr.io/team/tool:1", "/etc/containerd/certs.d")).toBe(tool.manifest.digest);
    const viaPrefix = `${new URL(mirror.viaHostUrl).host}/ghcr.io/team/tool:1`;
    expect(await vm.dockerPull(viaPrefix)).toBe(tool.manifest.digest);
    // Routing is proven by who was asked: without ?ns=ghcr.io (or the prefix) the mirror would have
    // asked its default upstream, docker.io, for team/tool, found nothing, and the pull would fail.
    await expectEachBlobDownloadedOnce(ghcr, tool);
    await ghcr.settle();
    expect(await ghcr.count({ method: "GET", kind: "manifest", pathIncludes: "/v2/team/tool/" }), await ghcr.describe({ method: "GET" })).toBeGreaterThan(0);
    await hub.settle();
    expect(await hub.count({ pathIncludes: "/team/tool/" }), await hub.describe({ method: "GET" })).toBe(0);
  });

  it("(2) a second VM gets `big:1` from the cache: the upstream sees no second blob download", async () => {
    // This VM already has a daemon.json; the provisioner merges into it (MIRROR_KIT_URL skips detection).
    const vm = await provisionedVm("vm2", { MIRROR_KIT_URL: mirror.viaHostUrl }, { "/etc/docker/daemon.json": '{\n  "log-level": "info",\n  "max-concurrent-downloads": 2\n}\n' });
    const daemonJson = JSON.parse(await vm.sh(["cat", "/etc/docker/daemon.json"])) as Record<string, unknown>;
    expect(daemonJson).toEqual({
      "log-level": "info",
      "max-concurrent-downloads": 2,
      "registry-mirrors": [mirror.viaHostUrl],
      "insecure-registries": [new URL(mirror.viaHostUrl).host],
    });
    const fromCacheBefore = await mirror.metric("mirrorkit_served_bytes_total", { source: "cache" });
    expect(await vm.dockerPull("big:1")).toBe(big.image.manifest.digest);
    expect((await vm.dockerRun("big:1")).trim()).toBe(big.marker);
    await expectEachBlobDownloadedOnce(hub, big.image);
    const fromCache = (await mirror.metric("mirrorkit_served_bytes_total", { source: "cache" })) - fromCacheBefore;
    expect(fromCache).toBeGreaterThanOrEqual(big.big.size);
    expect(await vm.fallbackLines()).toEqual([]);
  });

  it("(3) a devcontainer with the generated Feature installed pulls a multi-arch image through the mirror", async () => {
    const feature = await devcontainerFeature(project);
    // init wrote the published port into the Feature's options and the host-gateway run arg.
    expect(feature.env.MIRRORURL).toBe(`http://host.docker.internal:${mirror.publishedPort}`);
    expect(feature.extraHosts).toContainEqual({ host: "host.docker.internal", ipAddress: "host-gateway" });
    const dev = await VmContainer.start(h, "devcontainer", { image: await devcontainerImage(h, feature), extraHosts: feature.extraHosts });
    // install.sh ran at image build time; the engine read its daemon.json when the container started.
    await dev.waitForMirror(`http://host.docker.internal:${mirror.publishedPort}`);
    expect(await dev.dockerPull("multi:1")).toBe(multi.index.manifest.digest);
    expect((await dev.dockerRun("multi:1")).trim()).toBe(multi.amd64.marker);
    await expectEachBlobDownloadedOnce(hub, multi.amd64.image);
    for (const blob of [multi.arm64.manifest, ...blobsOf(multi.arm64)]) {
      expect(await hub.count({ method: "GET", pathIncludes: blob.digest }), `arm64 content ${blob.digest} was fetched:\n${await hub.describe({ method: "GET" })}`).toBe(0);
    }
    expect(await dev.fallbackLines()).toEqual([]);
  });

  it("(5) with the upstream stopped, a fresh VM still pulls the cached image", async () => {
    await hub.stop();
    try {
      const staleBefore = await mirror.metric("mirrorkit_cache_results_total", { kind: "manifest", result: "stale" });
      const vm = await provisionedVm("vm-offline", { MIRROR_KIT_PROVIDER: "libvirt" });
      expect(await vm.dockerPull("big:1")).toBe(big.image.manifest.digest);
      expect((await vm.dockerRun("big:1")).trim()).toBe(big.marker);
      // The tag could not be revalidated (freshness 0s): it was served stale, not from a live upstream.
      expect(await mirror.metric("mirrorkit_cache_results_total", { kind: "manifest", result: "stale" })).toBeGreaterThan(staleBefore);
      expect(await vm.fallbackLines()).toEqual([]);
    } finally {
      await hub.start();
    }
    // Nothing reached the upstream while it was down, and nothing was downloaded twice once it was back.
    await expectEachBlobDownloadedOnce(hub, big.image);
  });
});
