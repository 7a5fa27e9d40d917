// A first run as a new user makes it, before anything is published and offline: `npm pack` of the
// project, `npx <tarball> init --yes` in a Compose project with a docker:dind service, the mirror
// image built from the Dockerfile inside the package on a local Node base, `docker-compose up`, and
// the dind service's own daemon pulling through the mirror (counted at the upstream, seen at the mirror).
// The image is built by `mirror-kit image`, or by Compose itself after `init --build`.
import { readFile, realpath, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { parse } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ComposeProject, freePort } from "../support/containers/compose-project.js";
import { buildSmallImage, type RunnableImage } from "../support/containers/e2e-fixtures.js";
import { dockerApi } from "../support/containers/engine.js";
import { E2eHarness, RUN_LABEL } from "../support/containers/harness.js";
import { expectDaemonPullsThroughMirror, hostOverride } from "../support/containers/compose-dind.js";
import { PackedCli } from "../support/containers/packed.js";
import { RegistryContainer } from "../support/containers/registry-container.js";
import { blobsOf } from "../support/fixtures/image.js";
import { pushImage } from "../support/fixtures/push.js";

/** The dind image the user's Compose file names; the harness's VM image (its own dockerd) stands in for it. */
const DIND_IMAGE = "docker:27-dind";

/** A project whose CI-style builder runs its own Docker engine, as users write it. */
const USER_COMPOSE = `# A project with a Docker-in-Docker builder.
services:
  builder:
    image: ${DIND_IMAGE}
    privileged: true
    environment:
      DOCKER_TLS_CERTDIR: ""
`;

interface Compose {
  services: Record<string, { image?: string; command?: string[]; build?: unknown; environment?: Record<string, string> }>;
}

describe("from the packed tarball, with nothing published", () => {
  let h: E2eHarness;
  let hub: RegistryContainer;
  let probe: RunnableImage;
  let cli: PackedCli;

  // The images (the mirror's is rebuilt whenever dist/ changes), a registry and `npm pack`: minutes on a busy machine.
  beforeAll(async () => {
    h = await E2eHarness.start(["docker-compose", "npm", "npx"]);
    hub = await RegistryContainer.start(h, "upstream-hub");
    probe = await buildSmallImage();
    await pushImage(hub, "library/probe", probe.image, "1");
    cli = await PackedCli.pack(h);
    // No dind image can be pulled here: the VM image (dockerd, containerd, runc) is tagged under its name.
    await dockerApi().getImage(h.img.vm).tag({ repo: DIND_IMAGE.split(":")[0], tag: DIND_IMAGE.split(":")[1] });
    h.trackCleanup(async () => {
      await dockerApi().getImage(DIND_IMAGE).remove();
    });
  }, 900_000);

  afterAll(async () => {
    await h?.cleanup();
  });

  it("npx <tarball> init --yes wires the dind service, `mirror-kit image` builds the mirror from the package, docker-compose up, and the dind daemon pulls through it", async () => {
    const dir = await h.tempDir("first-run");
    await writeFile(join(dir, "compose.yaml"), USER_COMPOSE);
    const override = await hostOverride(h, "builder");
    const port = await freePort();
    // A tag of this run's own: the engine is shared with other suites (a user would keep the default).
    const image = `mirror-kit-e2e/first-run:${h.labels[RUN_LABEL].slice(0, 8)}`;
    h.trackImage(image);

    // A host folder for the cache, which Docker creates as root on `up`: the image must make it its own.
    const init = await cli.npx(["init", "--yes", "--port", String(port), "--image", image, "--storage", "./cache", "--upstream", `docker.io=${hub.internalUrl}`], dir);
    expect(init.stdout).toContain("updated    compose.yaml");
    expect(init.stdout).toContain("service builder runs its own Docker daemon; it pulls through the mirror (--registry-mirror=http://mirror-kit:5000)");
    expect(init.stdout).toContain(`image: the mirror runs ${image}`);
    expect(init.stdout).toContain(`mirror-kit image --tag ${image}`);
    expect(init.stdout).toContain("mirror-kit wire docker --apply");
    const compose = parse(await readFile(join(dir, "compose.yaml"), "utf8")) as Compose;
    expect(compose.services.builder?.command).toEqual(["--registry-mirror=http://mirror-kit:5000", "--insecure-registry=mirror-kit:5000"]);
    expect(compose.services["mirror-kit"]?.image).toBe(image);
    expect(compose.services["mirror-kit"]?.environment?.MIRROR_KIT_STORAGE_HOST_PATH).toBe("./cache");

    // The package npx installed, not this checkout, holds the Dockerfile and context that are built.
    const installed = await realpath(await cli.packageDir());
    expect(JSON.parse(await readFile(join(installed, "package.json"), "utf8")).version).toBe(cli.version);
    const built = await cli.npx(["image", "--tag", image, "--base-image", h.img.nodeRuntime], dir, 600_000);
    expect(built.stdout).toContain(`building ${image} from the Dockerfile in ${installed}`);
    expect(built.stdout).toContain(`on ${h.img.nodeRuntime}`);
    expect(built.stdout).toMatch(/Step \d+\/\d+ : FROM /);
    expect(built.stdout).toContain(`built ${image}`);

    const project = new ComposeProject(h, [join(dir, "compose.yaml"), override]);
    await project.run(["up", "--detach", "--no-build"]);
    expect((await dockerApi().getContainer(await project.containerId("mirror-kit")).inspect()).Config.Image).toBe(image);
    await expectDaemonPullsThroughMirror(project, "builder", "http://mirror-kit:5000", "probe:1", probe, hub);
    // Docker created ./cache as root; the mirror gave it to its service user and cached the pull there.
    expect((await stat(join(dir, "cache"))).uid).toBe(10001);
    for (const blob of blobsOf(probe.image)) {
      const hex = blob.digest.replace("sha256:", "");
      expect((await stat(join(dir, "cache", "blobs", "sha256", hex.slice(0, 2), hex))).size).toBe(blob.size);
    }
    // Never restarted: no crash loop on the way.
    const info = await dockerApi().getContainer(await project.containerId("mirror-kit")).inspect();
    expect({ running: info.State.Running, health: info.State.Health?.Status, restarts: info.RestartCount }).toEqual({ running: true, health: "healthy", restarts: 0 });
  }, 1_200_000);

  it("npx <tarball> init --yes --build gives the mirror service a build: docker-compose up builds the image from the package on the local base, and the dind daemon pulls through it", async () => {
    const dir = await h.tempDir("first-run-build");
    await writeFile(join(dir, "compose.yaml"), USER_COMPOSE);
    const override = await hostOverride(h, "builder");
    const image = `mirror-kit-e2e/first-run-build:${h.labels[RUN_LABEL].slice(0, 8)}`;
    h.trackImage(image);

    const args = ["init", "--yes", "--build", "--base-image", h.img.nodeRuntime, "--image", image, "--port", String(await freePort()), "--upstream", `docker.io=${hub.internalUrl}`];
    const init = await cli.npx(args, dir);
    expect(init.stdout).toMatch(/^wrote {6}\.mirror-kit\/image\/ \(the mirror image's build context: \d+ files, [\d.]+ MB\)$/m);
    expect(init.stdout).toContain(`image: the mirror runs ${image}, built on this machine by Compose from the Dockerfile in this mirror-kit ${cli.version} package on the Node base ${h.img.nodeRuntime}`);
    const compose = parse(await readFile(join(dir, "compose.yaml"), "utf8")) as Compose;
    expect(compose.services["mirror-kit"]?.build).toEqual({ context: "./.mirror-kit/image", args: { NODE_IMAGE: h.img.nodeRuntime } });
    // The context is the npx-installed package's own: its Dockerfile and package.json.
    const installed = await realpath(await cli.packageDir());
    for (const file of ["Dockerfile", "package.json"]) {
      expect(await readFile(join(dir, ".mirror-kit/image", file), "utf8"), file).toBe(await readFile(join(installed, file), "utf8"));
    }
    // A rerun finds everything as it wrote it.
    expect((await cli.npx(args, dir)).stdout).toContain("everything is up to date");

    const project = new ComposeProject(h, [join(dir, "compose.yaml"), override]);
    // No image yet: `up` builds it (Compose v1 says so), as it would on a user's first run.
    const up = await project.run(["up", "--detach"], 900_000);
    expect(up.stdout + up.stderr).toMatch(/Building mirror-kit/);
    const built = await dockerApi().getImage(image).inspect();
    expect(built.Config.Entrypoint).toEqual(["node", "/app/dist/cli/main.js"]);
    expect((await dockerApi().getContainer(await project.containerId("mirror-kit")).inspect()).Image).toBe(built.Id);
    await expectDaemonPullsThroughMirror(project, "builder", "http://mirror-kit:5000", "probe:1", probe, hub);
    // `docker compose build mirror-kit` rebuilds it from the same context.
    const rebuild = await project.run(["build", "mirror-kit"], 900_000);
    expect(rebuild.stdout + rebuild.stderr).toContain(`Successfully tagged ${image}`);
  }, 1_800_000);
});
