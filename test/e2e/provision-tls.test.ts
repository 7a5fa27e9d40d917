// The Vagrant provisioning `init --ca` generates, run in a VM stand-in (its own dockerd and containerd)
// against the mirror image serving the certificate `mirror-kit cert` made: the VM's dockerd pulls over
// https with the CA in certs.d and nothing insecure, ctr with hosts.toml `ca`; without the CA it cannot.
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildSmallImage, type RunnableImage } from "../support/containers/e2e-fixtures.js";
import { REPO_ROOT } from "../support/containers/engine.js";
import { initExample, vagrantProvisionEnv } from "../support/containers/generated.js";
import { E2eHarness } from "../support/containers/harness.js";
import { expectPulledOnceThroughMirror, MirrorContainer, mirrorRequests } from "../support/containers/mirror-container.js";
import { RegistryContainer } from "../support/containers/registry-container.js";
import { VmContainer } from "../support/containers/vm-container.js";
import { pushImage } from "../support/fixtures/push.js";
import { run } from "../support/process.js";

describe("generated Vagrant provisioning with --ca, in a VM stand-in", () => {
  let h: E2eHarness;
  let hub: RegistryContainer;
  let mirror: MirrorContainer;
  let vm: VmContainer;
  let tlsDir: string;
  let mirrorUrl: string;
  let hostPort: string;
  let script: string;
  let env: Record<string, string>;
  const images: Record<"docker" | "ctr" | "withoutCa", RunnableImage> = {} as never;

  beforeAll(async () => {
    h = await E2eHarness.start();
    hub = await RegistryContainer.start(h, "upstream-hub");
    for (const [name, tag] of [["docker", "probe-docker"], ["ctr", "probe-ctr"], ["withoutCa", "probe-noca"]] as const) {
      images[name] = await buildSmallImage();
      await pushImage(hub, `library/${tag}`, images[name].image, "1");
    }
    // As a user does it: a CA and a certificate naming the address VMs reach this host on.
    tlsDir = join(await h.tempDir("provision-tls"), "mirror-kit-tls");
    await run(process.execPath, [join(REPO_ROOT, "dist", "cli", "main.js"), "cert", "--dir", tlsDir, "--san", h.gateway]);
    expect((await stat(join(tlsDir, "server.key"))).mode & 0o777).toBe(0o600);
    mirror = await MirrorContainer.start(h, {
      alias: "mirror",
      env: { MIRROR_KIT_UPSTREAMS: `docker.io=${hub.internalUrl}` },
      tls: { certFile: join(tlsDir, "server.crt"), keyFile: join(tlsDir, "server.key") },
    });
    // The key is root's and 0600, yet the server runs as the image's service user: it read the key first.
    expect(await mirror.processUid()).toBe(10001);
    mirrorUrl = mirror.viaHostUrl;
    hostPort = `${h.gateway}:${mirror.publishedPort}`;
    expect(mirrorUrl).toBe(`https://${hostPort}`);

    const project = await initExample(h, "vagrant", ["--ca", tlsDir, "--host", h.gateway, "--port", String(mirror.publishedPort)]);
    ({ script, env } = await vagrantProvisionEnv(project, {}));
    expect(env.MIRROR_KIT_URL).toBe(mirrorUrl);
    vm = await VmContainer.start(h, "vm-tls");
    await vm.runScript(script, env);
  }, 600_000);

  afterAll(async () => {
    await h?.cleanup();
  });

  it("installs the CA for dockerd and containerd (the engines this VM has) and wires https with nothing insecure", async () => {
    const ca = await readFile(join(tlsDir, "ca.crt"), "utf8");
    for (const dir of ["/etc/docker/certs.d", "/etc/containerd/certs.d"]) {
      expect(await vm.sh(["cat", `${dir}/${hostPort}/ca.crt`]), dir).toBe(ca);
    }
    expect(JSON.parse(await vm.sh(["cat", "/etc/docker/daemon.json"]))).toEqual({ "registry-mirrors": [mirrorUrl] });
    expect(await vm.sh(["cat", "/etc/containerd/certs.d/docker.io/hosts.toml"])).toContain(`[host."${mirrorUrl}"]\n  capabilities = ["pull", "resolve"]\n  ca = "/etc/containerd/certs.d/${hostPort}/ca.crt"\n`);
    await vm.waitForMirror(mirrorUrl);
    // The running engine: the mirror is not among the registries it would skip certificate checks for.
    const index = JSON.parse(await vm.sh(["docker", "info", "--format", "{{json .RegistryConfig.IndexConfigs}}"])) as Record<string, { Secure: boolean }>;
    expect(Object.entries(index).filter(([, c]) => !c.Secure).map(([name]) => name)).toEqual([]);
  });

  it("the VM's dockerd pulls through the mirror over https, counted at the mirror and the upstream", async () => {
    const { image, marker } = images.docker;
    expect(await vm.dockerPull("probe-docker:1")).toBe(image.manifest.digest);
    expect((await vm.dockerRun("probe-docker:1")).trim()).toBe(marker);
    expect(await vm.fallbackLines()).toEqual([]);
    await expectPulledOnceThroughMirror(() => mirror.logLines(), "library/probe-docker", "1", image, hub);
  });

  it("ctr pulls through the mirror with the generated hosts.toml and its ca", async () => {
    const { image } = images.ctr;
    expect(await vm.ctrPull("docker.io/library/probe-ctr:1", "/etc/containerd/certs.d")).toBe(image.manifest.digest);
    await expectPulledOnceThroughMirror(() => mirror.logLines(), "library/probe-ctr", "", image, hub);
  });

  it("without the CA in certs.d the same engine cannot pull over https; provisioning again puts it back", async () => {
    await vm.sh(["rm", `/etc/docker/certs.d/${hostPort}/ca.crt`]);
    const failed = await vm.container.exec(["docker", "pull", "probe-noca:1"]);
    expect(failed.exitCode, failed.output).not.toBe(0);
    // dockerd gave up on the mirror for its certificate, then found Docker Hub unreachable.
    expect((await vm.engineLog()).some((l) => l.includes(hostPort) && /x509|certificate signed by unknown authority/.test(l))).toBe(true);
    expect(mirrorRequests(await mirror.logLines(), "/v2/library/probe-noca/")).toEqual([]);

    await vm.runScript(script, env);
    expect(await vm.dockerPull("probe-noca:1")).toBe(images.withoutCa.image.manifest.digest);
  });
});
