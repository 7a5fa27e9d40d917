// init --prefetch's Compose service, run by Debian's docker-compose (v1) with the mirror image the
// e2e harness builds: `docker-compose up` starts the mirror, then, once its healthcheck passes, the
// prefetch service pulls every image the project uses through it (a service's image and the base of
// a service it builds, read from the project mounted read-only) and exits 0. Counted at the upstream.
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ComposeProject, freePort } from "../support/containers/compose-project.js";
import { buildSmallImage, type RunnableImage } from "../support/containers/e2e-fixtures.js";
import { containerLogLines, dockerApi, REPO_ROOT } from "../support/containers/engine.js";
import { E2eHarness } from "../support/containers/harness.js";
import { RegistryContainer } from "../support/containers/registry-container.js";
import { blobsOf } from "../support/fixtures/image.js";
import { pushImage } from "../support/fixtures/push.js";
import { run } from "../support/process.js";

describe("the prefetch step as a Compose service", () => {
  let h: E2eHarness;
  let hub: RegistryContainer;
  let app: RunnableImage;
  let base: RunnableImage;
  let project: ComposeProject;
  let port: number;
  let dir: string;
  // Names of this run only: the engine is shared with other suites.
  const run_ = Date.now().toString(36);
  const appRef = `mk-pf-app-${run_}:1`;
  const baseRef = `mk-pf-base-${run_}:2`;

  beforeAll(async () => {
    h = await E2eHarness.start(["docker-compose", "docker"]);
    hub = await RegistryContainer.start(h, "upstream-hub");
    app = await buildSmallImage();
    base = await buildSmallImage("oci");
    await pushImage(hub, `library/${appRef.replace(":1", "")}`, app.image, "1");
    await pushImage(hub, `library/${baseRef.replace(":2", "")}`, base.image, "2");
    // The project's own services run from images this engine already has (it is offline): the
    // prefetch step is what puts them in the mirror for the next machine, or the next offline day.
    for (const [ref, repo] of [[appRef, `library/${appRef}`], [baseRef, `library/${baseRef}`]] as const) {
      const remote = `${hub.url.replace(/^https?:\/\//, "")}/${repo}`;
      await run("docker", ["pull", remote]);
      await run("docker", ["tag", remote, ref]);
      await run("docker", ["rmi", remote]);
      h.trackImage(ref);
    }
    dir = await h.tempDir("e2e-prefetch");
    await mkdir(join(dir, "builder"));
    await writeFile(join(dir, "builder", "Dockerfile"), `FROM ${baseRef}\nLABEL mk.e2e=prefetch\n`);
    await writeFile(join(dir, "docker-compose.yml"), `services:\n  app:\n    image: ${appRef}\n  builder:\n    build: ./builder\n    image: mk-pf-built-${run_}:1\n`);
    h.trackImage(`mk-pf-built-${run_}:1`);
    port = await freePort();
    await run(process.execPath, [join(REPO_ROOT, "dist", "cli", "main.js"), "init", "--dir", dir, "--yes", "--prefetch", "--image", h.img.mirrorKit, "--port", String(port), "--upstream", `docker.io=${hub.internalUrl}`], { cwd: dir });
    // Only so the mirror can resolve the stand-in upstream; users' upstreams are on the internet.
    await writeFile(join(dir, "e2e-network.yml"), `services:\n  mirror-kit:\n    networks: [default, e2e]\nnetworks:\n  e2e:\n    external: true\n    name: ${h.network.getName()}\n`);
    project = new ComposeProject(h, [join(dir, "docker-compose.yml"), join(dir, "e2e-network.yml")]);
  });

  afterAll(async () => {
    await h?.cleanup();
  });

  it("`docker-compose up` warms the mirror with every image of the project: one upstream GET per blob, the mirror's own image never asked for", async () => {
    await hub.settle();
    await hub.reset();
    await project.run(["up", "--detach", "--build"]);
    const id = (await project.run(["ps", "--all", "--quiet", "mirror-kit-prefetch"])).stdout.trim();
    expect(id).toMatch(/^[0-9a-f]{64}$/);
    const exit = (await dockerApi().getContainer(id).wait()) as { StatusCode: number };
    const logs = (await containerLogLines(id)).join("\n");
    expect(exit.StatusCode, logs).toBe(0);
    const info = await dockerApi().getContainer(id).inspect();
    expect(info.Config.Image).toBe(h.img.mirrorKit);
    expect(info.Mounts).toContainEqual(expect.objectContaining({ Destination: "/project", RW: false }));
    // It started only once the mirror was healthy (depends_on: service_healthy).
    const mirror = await dockerApi().getContainer(await project.containerId("mirror-kit")).inspect();
    expect(mirror.State.Health?.Status).toBe("healthy");

    await hub.settle();
    const blobs = new Map([...blobsOf(app.image), ...blobsOf(base.image)].map((b) => [b.digest, b]));
    for (const digest of blobs.keys()) {
      expect(await hub.count({ method: "GET", pathIncludes: `/blobs/${digest}` }), await hub.describe({ method: "GET" })).toBe(1);
    }
    expect(await hub.count({ pathIncludes: "mirror-kit" })).toBe(0);
    // The mirror now serves both from its cache.
    for (const [repo, tag, accept] of [[appRef.replace(":1", ""), "1", app.image.manifest.mediaType], [baseRef.replace(":2", ""), "2", base.image.manifest.mediaType]] as const) {
      const res = await fetch(`http://127.0.0.1:${port}/v2/library/${repo}/manifests/${tag}`, { method: "HEAD", headers: { accept } });
      expect(res.headers.get("x-mirror-cache"), repo).toMatch(/^(HIT|REVALIDATED)$/);
    }
  });
});
