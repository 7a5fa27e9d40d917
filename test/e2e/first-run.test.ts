// A first run as a new user makes it, before anything is published and offline: `npm pack` of the
// project, `npx <tarball> init --yes` in a Compose project with a docker:dind service, the mirror
// image built from the Dockerfile inside the package on a local Node base, `docker-compose up`, and
// the dind service's own daemon pulling through the mirror (counted at the upstream, seen at the mirror).
import { readFile, realpath, writeFile } from "node:fs/promises";
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
  });

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

    const init = await cli.npx(["init", "--yes", "--port", String(port), "--image", image, "--upstream", `docker.io=${hub.internalUrl}`], dir);
    expect(init.stdout).toContain("updated    compose.yaml");
    expect(init.stdout).toContain("service builder runs its own Docker daemon; it pulls through the mirror (--registry-mirror=http://mirror-kit:5000)");
    expect(init.stdout).toContain(`image: the mirror runs ${image}`);
    expect(init.stdout).toContain(`mirror-kit image --tag ${image}`);
    expect(init.stdout).toContain("mirror-kit wire docker --apply");
    const compose = parse(await readFile(join(dir, "compose.yaml"), "utf8")) as Compose;
    expect(compose.services.builder?.command).toEqual(["--registry-mirror=http://mirror-kit:5000", "--insecure-registry=mirror-kit:5000"]);
    expect(compose.services["mirror-kit"]?.image).toBe(image);

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
  }, 1_200_000);
});
