// A Compose project wired by `init --ca` after `mirror-kit cert --san mirror-kit`, run with docker-compose
// (v1): the mirror-kit service serves https with the mounted certificate and key, and a docker:dind
// service's own dockerd pulls through https://mirror-kit:5000 with the mounted CA and nothing insecure.
import { readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { expectDaemonPullsThroughMirror, hostOverride } from "../support/containers/compose-dind.js";
import { ComposeProject, freePort } from "../support/containers/compose-project.js";
import { buildSmallImage, type RunnableImage } from "../support/containers/e2e-fixtures.js";
import { dockerApi, REPO_ROOT } from "../support/containers/engine.js";
import { E2eHarness, RUN_LABEL } from "../support/containers/harness.js";
import { RegistryContainer } from "../support/containers/registry-container.js";
import { pushImage } from "../support/fixtures/push.js";
import { run } from "../support/process.js";

interface Service {
  image?: string;
  command?: string[];
  volumes?: unknown[];
  environment?: Record<string, string>;
}

describe("the generated Compose wiring over TLS", () => {
  let h: E2eHarness;
  let hub: RegistryContainer;
  let probe: RunnableImage;
  /** No dind image can be pulled here: the VM image (its own dockerd) is tagged under a dind name. */
  let dindImage: string;

  const mirrorKit = (args: readonly string[], cwd: string) => run(process.execPath, [join(REPO_ROOT, "dist", "cli", "main.js"), ...args], { cwd });

  beforeAll(async () => {
    h = await E2eHarness.start(["docker-compose"]);
    hub = await RegistryContainer.start(h, "upstream-hub");
    probe = await buildSmallImage();
    await pushImage(hub, "library/probe", probe.image, "1");
    const tag = h.labels[RUN_LABEL].slice(0, 8);
    dindImage = `mirror-kit-e2e/dind:${tag}`;
    await dockerApi().getImage(h.img.vm).tag({ repo: "mirror-kit-e2e/dind", tag });
    h.trackImage(dindImage);
  }, 600_000);

  afterAll(async () => {
    await h?.cleanup();
  });

  it("cert --san mirror-kit, init --ca, docker-compose up: the dind daemon pulls through the mirror over https", async () => {
    const dir = await h.tempDir("compose-tls");
    await writeFile(join(dir, "compose.yaml"), `services:\n  builder:\n    image: ${dindImage}\n    privileged: true\n`);
    await mirrorKit(["cert", "--san", "mirror-kit"], dir);
    const port = await freePort();
    const init = await mirrorKit(["init", "--yes", "--ca", "mirror-kit-tls", "--port", String(port), "--image", h.img.mirrorKit, "--upstream", `docker.io=${hub.internalUrl}`], dir);
    expect(init.stdout).toContain("service builder runs its own Docker daemon; it pulls through the mirror (--registry-mirror=https://mirror-kit:5000)");
    expect(init.stdout).toContain("service mirror-kit serves https with mirror-kit-tls/server.crt and mirror-kit-tls/server.key");

    const text = await readFile(join(dir, "compose.yaml"), "utf8");
    expect(text).not.toContain("insecure");
    const services = (parse(text) as { services: Record<string, Service> }).services;
    expect(services.builder?.command).toEqual(["--registry-mirror=https://mirror-kit:5000"]);
    expect(services.builder?.volumes).toEqual([{ type: "bind", source: "./mirror-kit-tls/ca.crt", target: "/etc/docker/certs.d/mirror-kit:5000/ca.crt", read_only: true }]);
    expect(services["mirror-kit"]?.environment).toMatchObject({ MIRROR_KIT_TLS_CERT: "/etc/mirror-kit/tls/server.crt", MIRROR_KIT_TLS_KEY: "/etc/mirror-kit/tls/server.key" });

    const project = new ComposeProject(h, [join(dir, "compose.yaml"), await hostOverride(h, "builder")]);
    await project.run(["up", "--detach", "--no-build"]);

    // The CA is in the builder where its dockerd looks, read-only.
    const builder = await dockerApi().getContainer(await project.containerId("builder")).inspect();
    expect(builder.Mounts).toContainEqual(expect.objectContaining({ Type: "bind", Destination: "/etc/docker/certs.d/mirror-kit:5000/ca.crt", RW: false }));
    expect(await project.exec("builder", ["cat", "/etc/docker/certs.d/mirror-kit:5000/ca.crt"])).toBe(await readFile(join(dir, "mirror-kit-tls", "ca.crt"), "utf8"));
    await expectDaemonPullsThroughMirror(project, "builder", "https://mirror-kit:5000", "probe:1", probe, hub);

    // The key is the host user's and 0600, yet the server runs as the image's service user: it read the key first.
    expect((await stat(join(dir, "mirror-kit-tls", "server.key"))).mode & 0o777).toBe(0o600);
    const status = await project.exec("mirror-kit", ["node", "-e", "process.stdout.write(require('fs').readFileSync('/proc/1/status','utf8').match(/^Uid:\\s+(\\d+)/m)[1])"]);
    expect(status).toBe("10001");
  }, 900_000);
});
