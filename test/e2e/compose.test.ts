// The Compose service `mirror-kit init` adds to a project, started with the Compose v1 CLI these
// machines have, serving a VM's pull once its generated healthcheck reports healthy.
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../support/containers/compose-project.js";
import { buildSmallImage, type RunnableImage } from "../support/containers/e2e-fixtures.js";
import { dockerApi, waitFor } from "../support/containers/engine.js";
import { initExample, vagrantProvisionEnv, type GeneratedProject } from "../support/containers/generated.js";
import { E2eHarness } from "../support/containers/harness.js";
import { RegistryContainer } from "../support/containers/registry-container.js";
import { VmContainer } from "../support/containers/vm-container.js";
import { blobsOf } from "../support/fixtures/image.js";
import { pushImage } from "../support/fixtures/push.js";
import { run } from "../support/process.js";

describe("the generated Compose service", () => {
  let h: E2eHarness;
  let hub: RegistryContainer;
  let project: GeneratedProject;
  let probe: RunnableImage;
  let port: number;
  const composeProject = `mke2e${Date.now().toString(36)}`;

  const compose = (args: readonly string[]) =>
    run("docker-compose", ["-p", composeProject, "-f", join(project.dir, "docker-compose.yml"), ...args], { cwd: project.dir, timeoutMs: 180_000 });

  beforeAll(async () => {
    h = await E2eHarness.start(["docker-compose"]);
    hub = await RegistryContainer.start(h, "upstream-hub");
    probe = await buildSmallImage();
    await pushImage(hub, "library/probe", probe.image, "1");
    port = await freePort();
    // The image built from this checkout instead of the published one; the test's registry as docker.io.
    project = await initExample(h, "all-three", [
      "--compose",
      "--vagrant",
      "--image", h.img.mirrorKit,
      "--port", String(port),
      "--upstream", `docker.io=${hub.internalUrl}`,
    ]);
    h.trackCleanup(async () => {
      await compose(["down", "--volumes", "--timeout", "20"]);
    });
  });

  afterAll(async () => {
    await h?.cleanup();
  });

  it("(4) `docker-compose up` starts it from the built image, its healthcheck goes healthy, and a VM pulls through it", async () => {
    await compose(["up", "--detach", "--no-build", "mirror-kit"]);
    const { stdout } = await compose(["ps", "--quiet", "mirror-kit"]);
    const id = stdout.trim();
    expect(id).toMatch(/^[0-9a-f]{64}$/);
    // Only so the service can resolve the stand-in upstream; users' upstreams are on the internet.
    await dockerApi().getNetwork(h.network.getId()).connect({ Container: id });

    const info = await dockerApi().getContainer(id).inspect();
    expect(info.Config.Image).toBe(h.img.mirrorKit);
    expect(info.HostConfig.RestartPolicy?.Name).toBe("unless-stopped");
    expect(info.Mounts).toContainEqual(expect.objectContaining({ Type: "volume", Destination: "/var/lib/mirror-kit" }));
    expect(info.NetworkSettings.Ports["5000/tcp"]?.[0]?.HostPort).toBe(String(port));

    // The generated healthcheck (30 s interval) runs inside the image: node, no curl.
    await waitFor(
      "the Compose service's healthcheck to report healthy",
      async () => {
        const state = (await dockerApi().getContainer(id).inspect()).State;
        if (state.Health?.Status === "unhealthy") throw new Error(`unhealthy: ${JSON.stringify(state.Health.Log?.slice(-2))}`);
        return state.Health?.Status === "healthy" ? true : undefined;
      },
      90_000,
      1_000,
    );

    // A VM reaches the published port on the host, wired by the provisioner from the same init run.
    const vm = await VmContainer.start(h, "vm-compose");
    const { script, env } = await vagrantProvisionEnv(project, { MIRROR_KIT_PROVIDER: "libvirt" });
    expect(env.MIRROR_KIT_PORT).toBe(String(port));
    await vm.runScript(script, env);
    await vm.waitForMirror(`http://${h.gateway}:${port}`);
    expect(await vm.dockerPull("probe:1")).toBe(probe.image.manifest.digest);
    expect((await vm.dockerRun("probe:1")).trim()).toBe(probe.marker);
    expect(await vm.fallbackLines()).toEqual([]);

    await hub.settle();
    for (const blob of blobsOf(probe.image)) {
      expect(await hub.count({ method: "GET", pathIncludes: `/blobs/${blob.digest}` }), await hub.describe({ method: "GET" })).toBe(1);
    }
  });
});
