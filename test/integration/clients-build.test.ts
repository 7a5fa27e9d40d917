// Image builders and test frameworks pull through the mirror: BuildKit inside dockerd
// (registry-mirrors), buildah (registries.conf) and testcontainers-node (TESTCONTAINERS_HUB_IMAGE_NAME_PREFIX).
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { GenericContainer, Wait } from "testcontainers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeRegistriesConf } from "../support/clients.js";
import { DockerEngine } from "../support/docker-engine.js";
import { blobsOf, buildImage, type Image } from "../support/fixtures/image.js";
import { busyboxLayer, filesLayer } from "../support/fixtures/layers.js";
import { pushImage } from "../support/fixtures/push.js";
import { startTestMirror, type TestMirror } from "../support/mirror.js";
import { requireTools } from "../support/preflight.js";
import { run } from "../support/process.js";
import { UpstreamRegistry } from "../support/registry.js";
import { makeTempDir, removeTempDir } from "../support/scratch.js";

/**
 * Debian's docker CLI (20.10, from docker.io): it speaks to the engine's built-in BuildKit itself.
 * A newer CLI (23+) hands `DOCKER_BUILDKIT=1 docker build` to the buildx plugin, which Debian 12
 * does not package ("BuildKit is enabled but the buildx component is missing or broken").
 */
const DEBIAN_DOCKER_CLI = "/usr/bin/docker";

/** A runnable image with its own marker: busybox, then a file only this image has. */
async function markedImage(marker: string): Promise<Image> {
  return buildImage({
    layers: [await busyboxLayer(["sh", "cat", "sleep", "echo"]), await filesLayer({ "etc/mk-marker": `${marker}\n` })],
    cmd: ["cat", "/etc/mk-marker"],
  });
}

describe("builders and testcontainers pull through the mirror", () => {
  const run_ = `${process.pid}-${Date.now().toString(36)}`;
  let hub: UpstreamRegistry;
  let mirror: TestMirror;
  let work: string;
  const images: Record<"buildkit" | "buildah" | "tcPlain" | "tcOwner", Image> = {} as never;
  let engine: DockerEngine;
  let baseFetches = 0;

  /**
   * Every blob of `image` came from the upstream exactly once, under `repo`. The busybox layer is
   * the same in every image here: the first pull fetches it, later ones get it from the cache.
   */
  const expectEachBlobFetchedOnce = (repo: string, image: Image): void => {
    const base = image.layers[0]!.digest;
    for (const blob of blobsOf(image).filter((b) => b.digest !== base)) {
      const got = hub.count({ method: "GET", pathIncludes: `/v2/${repo}/blobs/${blob.digest}` });
      expect(got, `GET ${repo} blob ${blob.digest} on the upstream:\n${hub.log.describe()}`).toBe(1);
    }
    baseFetches += hub.count({ method: "GET", pathIncludes: `/blobs/${base}` });
    expect(baseFetches, `GETs of the shared busybox layer so far:\n${hub.log.describe()}`).toBe(1);
  };

  beforeAll(async () => {
    requireTools(["dockerd", "docker", "containerd", "docker-registry", "buildah", "busybox", "tar"], { root: true });
    work = await makeTempDir("builders");
    hub = await UpstreamRegistry.start({ name: "upstream docker.io" });
    for (const key of ["buildkit", "buildah", "tcPlain", "tcOwner"] as const) images[key] = await markedImage(`mk-${key}-${run_}`);
    await pushImage(hub, "library/mk-buildkit-base", images.buildkit, "1");
    await pushImage(hub, "library/mk-buildah-base", images.buildah, "1");
    await pushImage(hub, "library/mk-tc-plain", images.tcPlain, "1");
    await pushImage(hub, "team/mk-tc-owner", images.tcOwner, "1");
    mirror = await startTestMirror({ "docker.io": hub.url }, { cache: { tagFreshness: "10m" } });
    // One private engine for BuildKit and testcontainers: testcontainers reads DOCKER_HOST on first
    // use (this file runs in its own worker), so its containers never land on a shared engine.
    engine = await DockerEngine.start({ registryMirrors: [mirror.url], insecureRegistries: [mirror.host] });
    process.env.DOCKER_HOST = engine.host;
    process.env.TESTCONTAINERS_RYUK_DISABLED = "true";
    hub.reset();
  });

  afterAll(async () => {
    await engine?.stop();
    await mirror?.close();
    await hub?.close();
    if (work) await removeTempDir(work);
  });

  it("DOCKER_BUILDKIT=1 docker build: BuildKit resolves and fetches the FROM image through the engine's registry mirror", async () => {
    const context = join(work, "buildkit");
    await mkdir(context);
    await writeFile(join(context, "Dockerfile"), 'FROM mk-buildkit-base:1\nRUN cat /etc/mk-marker > /etc/mk-built\nCMD ["cat", "/etc/mk-built"]\n');
    hub.reset();
    const env = { ...process.env, DOCKER_BUILDKIT: "1", DOCKER_HOST: engine.host, BUILDKIT_PROGRESS: "plain" };
    const build = await run(DEBIAN_DOCKER_CLI, ["build", "-t", "mk-built:1", context], { env, timeoutMs: 100_000 }).catch((err: Error) => {
      throw new Error(`${err.message}\n--- dockerd log ---\n${engine.logTail()}`);
    });
    // BuildKit's plain progress ("#2 [internal] load metadata for …"), not the classic builder's "Step 1/3".
    const progress = build.stderr + build.stdout;
    expect(progress).toMatch(/#\d+ \[internal\] load metadata for docker\.io\/library\/mk-buildkit-base:1/);
    expect(progress).not.toMatch(/Step 1\/\d/);
    await hub.settle();
    expectEachBlobFetchedOnce("library/mk-buildkit-base", images.buildkit);
    const out = await engine.docker(["run", "--rm", "--network", "none", "mk-built:1"]);
    expect(out.stdout.trim()).toBe(`mk-buildkit-${run_}`);
  });

  it("buildah build: the FROM image comes through a registries.conf mirror, and RUN works on it", async () => {
    const dir = join(work, "buildah");
    await mkdir(join(dir, "context"), { recursive: true });
    await mkdir(join(dir, "tmp"));
    const conf = await writeRegistriesConf(join(dir, "registries.conf"), [{ prefix: "docker.io", location: mirror.host }]);
    const policy = join(dir, "policy.json");
    await writeFile(policy, JSON.stringify({ default: [{ type: "insecureAcceptAnything" }] }));
    await writeFile(join(dir, "context", "Containerfile"), "FROM docker.io/library/mk-buildah-base:1\nRUN cat /etc/mk-marker > /etc/mk-built\n");
    const storage = ["--root", join(dir, "root"), "--runroot", join(dir, "run"), "--storage-driver", "vfs"];
    const env = { ...process.env, CONTAINERS_REGISTRIES_CONF: conf, TMPDIR: join(dir, "tmp") };
    hub.reset();
    await run(
      "buildah",
      [...storage, "build", "--isolation", "chroot", "--signature-policy", policy, "-f", join(dir, "context", "Containerfile"), "-t", "mk-buildah-built:1", join(dir, "context")],
      { env, timeoutMs: 100_000 },
    );
    await hub.settle();
    expectEachBlobFetchedOnce("library/mk-buildah-base", images.buildah);
    // The RUN step ran on the pulled layers: the built image holds the marker it copied.
    const ctr = (await run("buildah", [...storage, "from", "--signature-policy", policy, "--pull-never", "mk-buildah-built:1"], { env })).stdout.trim();
    const mount = (await run("buildah", [...storage, "mount", ctr], { env })).stdout.trim();
    try {
      expect((await readFile(join(mount, "etc", "mk-built"), "utf8")).trim()).toBe(`mk-buildah-${run_}`);
    } finally {
      await run("buildah", [...storage, "rm", ctr], { env, allowFailure: true });
    }
  });

  /** Starts `name` the way a testcontainers suite does, with the prefix set; returns its log line. */
  const startWithPrefix = async (name: string, marker: string): Promise<{ image: string; line: string }> => {
    const saved = process.env.TESTCONTAINERS_HUB_IMAGE_NAME_PREFIX;
    process.env.TESTCONTAINERS_HUB_IMAGE_NAME_PREFIX = `${mirror.host}/`;
    let container;
    try {
      container = new GenericContainer(name).withCommand(["sh", "-c", "cat /etc/mk-marker; exec sleep 60"]).withWaitStrategy(Wait.forLogMessage(marker));
    } finally {
      if (saved === undefined) delete process.env.TESTCONTAINERS_HUB_IMAGE_NAME_PREFIX;
      else process.env.TESTCONTAINERS_HUB_IMAGE_NAME_PREFIX = saved;
    }
    const started = await container.start();
    try {
      const inspect = JSON.parse((await engine.docker(["inspect", started.getId()])).stdout) as { Config: { Image: string } }[];
      const logs = await engine.docker(["logs", started.getId()]);
      return { image: inspect[0]!.Config.Image, line: logs.stdout.trim() };
    } finally {
      await started.stop({ timeout: 1 });
    }
  };

  it("testcontainers with TESTCONTAINERS_HUB_IMAGE_NAME_PREFIX: a one-segment name (library/) and a two-segment name", async () => {
    hub.reset();
    const plain = await startWithPrefix("mk-tc-plain:1", `mk-tcPlain-${run_}`);
    expect(plain.image).toBe(`${mirror.host}/mk-tc-plain:1`);
    expect(plain.line).toBe(`mk-tcPlain-${run_}`);
    const owner = await startWithPrefix("team/mk-tc-owner:1", `mk-tcOwner-${run_}`);
    expect(owner.image).toBe(`${mirror.host}/team/mk-tc-owner:1`);
    expect(owner.line).toBe(`mk-tcOwner-${run_}`);
    await hub.settle();
    // The one-segment name reached Docker Hub's official-images namespace, the other its own.
    expectEachBlobFetchedOnce("library/mk-tc-plain", images.tcPlain);
    expectEachBlobFetchedOnce("team/mk-tc-owner", images.tcOwner);
  });
});
