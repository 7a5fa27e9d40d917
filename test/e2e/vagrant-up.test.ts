// A real `vagrant up` (Debian's Vagrant 2.3.4) of a project after `mirror-kit init`: Vagrant's docker
// provider boots a box with its own dockerd, runs the generated provisioner over SSH, and the guest's
// engine (Vagrant's own docker provisioner first) pulls through the mirror.
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildSmallImage, type RunnableImage } from "../support/containers/e2e-fixtures.js";
import { dockerApi } from "../support/containers/engine.js";
import { initExample, type GeneratedProject } from "../support/containers/generated.js";
import { E2eHarness, RUN_LABEL } from "../support/containers/harness.js";
import { MirrorContainer } from "../support/containers/mirror-container.js";
import { RegistryContainer } from "../support/containers/registry-container.js";
import { vagrantBoxImage } from "../support/containers/vagrant-box.js";
import { machineCapabilities } from "../support/containers/vm-container.js";
import { blobsOf } from "../support/fixtures/image.js";
import { pushImage } from "../support/fixtures/push.js";
import { run, type RunResult } from "../support/process.js";

/**
 * A box for the docker provider, as `vagrant box add` takes it: metadata.json and a Vagrantfile of
 * provider defaults, the way box authors ship them. `privileged` is spelled out as capabilities:
 * this host's bounding set lacks CAP_SYS_RESOURCE, and runc refuses --privileged there.
 */
async function writeDockerBox(dir: string, image: string, label: string): Promise<string> {
  const args = [
    ...machineCapabilities().flatMap((c) => ["--cap-add", c]),
    "--security-opt", "seccomp=unconfined",
    "--security-opt", "apparmor=unconfined",
    "--label", label,
  ];
  await mkdir(join(dir, "box"), { recursive: true });
  await writeFile(join(dir, "box", "metadata.json"), JSON.stringify({ provider: "docker" }));
  await writeFile(
    join(dir, "box", "Vagrantfile"),
    [
      'Vagrant.configure("2") do |config|',
      '  config.vm.provider "docker" do |d|',
      `    d.image = ${JSON.stringify(image)}`,
      "    d.has_ssh = true",
      `    d.create_args = ${JSON.stringify(args)}`,
      "  end",
      "end",
      "",
    ].join("\n"),
  );
  const file = join(dir, "docker.box");
  await run("tar", ["-C", join(dir, "box"), "-czf", file, "metadata.json", "Vagrantfile"]);
  return file;
}

describe("vagrant up with the docker provider runs the generated provisioner", () => {
  let h: E2eHarness;
  let hub: RegistryContainer;
  let mirror: MirrorContainer;
  let project: GeneratedProject;
  let busybox: RunnableImage;
  let app: RunnableImage;
  let vagrantHome: string;
  let up: RunResult;

  const vagrant = (args: readonly string[], allowFailure = false): Promise<RunResult> =>
    run("vagrant", args, {
      cwd: project.dir,
      allowFailure,
      timeoutMs: 240_000,
      env: {
        ...process.env,
        // Vagrant's docker provider runs the `docker` CLI on PATH against DOCKER_HOST (the harness engine).
        VAGRANT_HOME: vagrantHome,
        VAGRANT_CHECKPOINT_DISABLE: "1",
        VAGRANT_NO_COLOR: "1",
        // The generated block reads these from the user's shell: empty, so the script detects the host itself.
        MIRROR_KIT_URL: "",
        MIRROR_KIT_PROVIDER: "",
      },
    });

  const expectEachBlobDownloadedOnce = async (image: RunnableImage): Promise<void> => {
    await hub.settle();
    for (const blob of blobsOf(image.image)) {
      const n = await hub.count({ method: "GET", pathIncludes: `/blobs/${blob.digest}` });
      expect(n, `GET blob ${blob.digest}\n${await hub.describe({ method: "GET" })}`).toBe(1);
    }
  };

  beforeAll(async () => {
    h = await E2eHarness.start(["vagrant", "ssh"]);
    const box = await vagrantBoxImage();
    vagrantHome = await h.tempDir("vagrant-home");
    [busybox, app] = await Promise.all([buildSmallImage(), buildSmallImage()]);
    hub = await RegistryContainer.start(h, "upstream-hub");
    // What examples/vagrant's own docker provisioner pulls (`d.pull_images "busybox"`), and an app image.
    await pushImage(hub, "library/busybox", busybox.image, "latest");
    await pushImage(hub, "team/app", app.image, "1");
    mirror = await MirrorContainer.start(h, { alias: "mirror", env: { MIRROR_KIT_UPSTREAMS: `docker.io=${hub.internalUrl}` } });
    project = await initExample(h, "vagrant", ["--port", String(mirror.publishedPort)]);
    // The project's Vagrantfile names debian/bookworm64; here that box is one for the docker provider.
    const boxFile = await writeDockerBox(await h.tempDir("vagrant-box"), box, `${RUN_LABEL}=${h.labels[RUN_LABEL]}`);
    await vagrant(["box", "add", "--name", "debian/bookworm64", "--provider", "docker", boxFile]);
    h.trackCleanup(async () => {
      await vagrant(["destroy", "--force"]);
    });
  }, 600_000);

  afterAll(async () => {
    await h?.cleanup();
  });

  it("vagrant up boots the box over SSH and runs the mirror-kit provisioner, which finds the host itself", async () => {
    await hub.reset();
    up = await vagrant(["up", "--provider", "docker", "--no-color"], true);
    if (up.code !== 0) throw new Error(`vagrant up exited ${up.code}:\n${up.stdout.slice(-3000)}\n${up.stderr.slice(-3000)}\n--- upstream ---\n${await hub.describe({})}`);
    const out = up.stdout + up.stderr;
    expect(out).toMatch(/Running provisioner: mirror-kit \(shell\)/);
    // The docker provider's guest reaches the host at its bridge's gateway: the script's fallback.
    const containers = await dockerApi().listContainers({ filters: { label: [`${RUN_LABEL}=${h.labels[RUN_LABEL]}`], ancestor: [await vagrantBoxImage()] } });
    expect(containers).toHaveLength(1);
    const gateway = (await dockerApi().getContainer(containers[0]!.Id).inspect()).NetworkSettings.Gateway;
    expect(out).toContain(`mirror-kit: mirror: http://${gateway}:${mirror.publishedPort}`);
    expect(out).toContain("mirror-kit: wrote /etc/docker/daemon.json");
  }, 400_000);

  it("the docker provisioner in the same Vagrantfile pulled busybox through the mirror", async () => {
    expect(up.stdout + up.stderr).toMatch(/Running provisioner: docker/);
    await expectEachBlobDownloadedOnce(busybox);
    const ran = await vagrant(["ssh", "-c", "sudo docker run --rm --network none busybox"]);
    expect(ran.stdout.trim()).toBe(busybox.marker);
  });

  it("docker pull inside the guest goes through the mirror, and `vagrant provision` again changes nothing", async () => {
    const pulled = await vagrant(["ssh", "-c", "sudo docker pull team/app:1"]);
    expect(pulled.stdout).toContain(`Digest: ${app.image.manifest.digest}`);
    await expectEachBlobDownloadedOnce(app);
    const again = await vagrant(["provision", "--provision-with", "mirror-kit"]);
    expect(again.stdout + again.stderr).toContain("docker: daemon.json already up to date");
  });
});
