// What `init` generates, run for real: the Vagrant provisioning script and the devcontainer Feature's
// install.sh configure a real dockerd (reloaded with SIGHUP, as in a VM), containerd's ctr and skopeo,
// and each then pulls through a real mirror from real upstream registries, offline.
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runWire } from "../../src/cli/wire.js";
import { renderFeature } from "../../src/generate/devcontainer.js";
import { resolveSettings } from "../../src/generate/settings.js";
import { renderProvisionScript } from "../../src/generate/vagrant.js";
import { ctrPull, dockerPull, engineFallbackLines } from "../support/clients.js";
import { DockerEngine } from "../support/docker-engine.js";
import { blobsOf, type Image } from "../support/fixtures/image.js";
import { pushImage } from "../support/fixtures/push.js";
import { buildFixtureSet, uniqueImage, type FixtureSet } from "../support/fixtures/sets.js";
import { startTestMirror, type TestMirror } from "../support/mirror.js";
import { requireTools } from "../support/preflight.js";
import { run } from "../support/process.js";
import { UpstreamRegistry } from "../support/registry.js";
import { makeTempDir, removeTempDir } from "../support/scratch.js";

describe("generated provisioning wires real daemons to the mirror", () => {
  let fx: FixtureSet;
  let featureImage: Image;
  let toolImage: Image;
  let hub: UpstreamRegistry;
  let ghcr: UpstreamRegistry;
  let mirror: TestMirror;
  let work: string;
  const engines: DockerEngine[] = [];

  beforeAll(async () => {
    requireTools(["dockerd", "docker", "ctr", "docker-registry", "skopeo", "busybox", "tar", "jq"], { root: true });
    work = await makeTempDir("gen-real");
    fx = await buildFixtureSet();
    featureImage = await uniqueImage("docker");
    toolImage = await uniqueImage("oci");
    hub = await UpstreamRegistry.start({ name: "upstream docker.io" });
    ghcr = await UpstreamRegistry.start({ name: "upstream ghcr.io" });
    await pushImage(hub, "library/mk-gen-fixture", fx.runnable, "1");
    await pushImage(hub, "library/mk-gen-feature", featureImage, "1");
    await pushImage(ghcr, "owner/mk-gen-tool", toolImage, "1");
    mirror = await startTestMirror({ "docker.io": hub.url, "ghcr.io": ghcr.url }, { cache: { tagFreshness: "10m" } });
    hub.reset();
    ghcr.reset();
  });

  afterAll(async () => {
    for (const e of engines) await e.stop();
    await mirror?.close();
    await hub?.close();
    await ghcr?.close();
    if (work) await removeTempDir(work);
  });

  /** A fresh engine plus a machine root whose /etc/docker/daemon.json is that engine's own config. */
  async function machine(name: string): Promise<{ engine: DockerEngine; root: string; reloads: string; reload: string }> {
    const engine = await DockerEngine.start();
    engines.push(engine);
    const root = join(work, name);
    mkdirSync(join(root, "etc/docker"), { recursive: true });
    copyFileSync(join(engine.dir, "daemon.json"), join(root, "etc/docker/daemon.json"));
    const reloads = join(work, `${name}-reloads`);
    // What `systemctl reload docker` does in a VM: dockerd re-reads its file on SIGHUP.
    const reload = `echo reload >> ${reloads}; cp ${root}/etc/docker/daemon.json ${engine.dir}/daemon.json && kill -HUP $(cat ${engine.dir}/dockerd.pid)`;
    return { engine, root, reloads, reload };
  }

  async function reloaded(engine: DockerEngine): Promise<void> {
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline) {
      if (engine.logLines.some((l) => /Reloaded configuration/.test(l))) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`dockerd did not reload:\n${engine.logTail()}`);
  }

  function script(name: string, content: string): string {
    const path = join(work, name);
    writeFileSync(path, content, { mode: 0o755 });
    return path;
  }

  it("provision.sh: dockerd, ctr and skopeo pull through the mirror; a second run changes nothing", async () => {
    const { engine, root, reloads, reload } = await machine("vm");
    const provision = script("provision.sh", renderProvisionScript(resolveSettings({})));
    const env = {
      ...process.env,
      MIRROR_KIT_ROOT: root,
      MIRROR_KIT_URL: mirror.url,
      MIRROR_KIT_ENGINES: "docker containerd podman",
      MIRROR_KIT_DOCKER_RELOAD: reload,
      MIRROR_KIT_CONTAINERD_RESTART: "true",
    };
    await run("sh", [provision], { env });
    await reloaded(engine);

    // dockerd (classic path, registry-mirrors from the merged daemon.json)
    expect(await dockerPull(engine, "mk-gen-fixture:1")).toBe(fx.runnable.manifest.digest);
    expect(engineFallbackLines(engine)).toEqual([]);
    await hub.settle();
    for (const blob of blobsOf(fx.runnable)) expect(hub.count({ method: "GET", pathIncludes: `/blobs/${blob.digest}` })).toBe(1);

    // containerd (certs.d/ghcr.io/hosts.toml: ?ns=ghcr.io; the real ghcr.io is unreachable offline)
    const digest = await ctrPull({ socket: engine.containerdSocket, namespace: "mk-gen", hostsDir: join(root, "etc/containerd/certs.d") }, "ghcr.io/owner/mk-gen-tool:1");
    expect(digest).toBe(toolImage.manifest.digest);
    await ghcr.settle();
    for (const blob of blobsOf(toolImage)) expect(ghcr.count({ method: "GET", pathIncludes: `/blobs/${blob.digest}` })).toBe(1);

    // skopeo with the Podman drop-in as its registries.conf (path prefix /docker.io, no ns=)
    const policy = join(work, "policy.json");
    writeFileSync(policy, JSON.stringify({ default: [{ type: "insecureAcceptAnything" }] }));
    const dest = join(work, "skopeo-oci");
    // skopeo 1.9 ignores CONTAINERS_REGISTRIES_CONF; --registries-conf is what it reads.
    const conf = join(root, "etc/containers/registries.conf.d/50-mirror-kit.conf");
    await run("skopeo", ["--registries-conf", conf, "--policy", policy, "copy", "--src-no-creds", "docker://docker.io/library/mk-gen-fixture:1", `oci:${dest}`]);
    expect(readFileSync(join(dest, "index.json"), "utf8")).toContain("sha256:");

    // Every boot runs it again: nothing may change and dockerd must not be reloaded twice.
    const before = spawnSync("sh", ["-c", `find ${root} -type f -exec sha256sum {} + | sort`], { encoding: "utf8" }).stdout;
    await run("sh", [provision], { env });
    expect(spawnSync("sh", ["-c", `find ${root} -type f -exec sha256sum {} + | sort`], { encoding: "utf8" }).stdout).toBe(before);
    expect(readFileSync(reloads, "utf8")).toBe("reload\n");
  });

  it("the Feature's install.sh leaves a daemon.json that makes dockerd pull through the mirror", async () => {
    const { engine, root, reload } = await machine("devcontainer");
    const install = script("install.sh", renderFeature().feature.find((f) => f.name === "install.sh")!.content);
    await run("sh", [install], { env: { ...process.env, MIRROR_KIT_ROOT: root, MIRRORURL: mirror.url, INSECURE: "true" } });
    const merged = JSON.parse(readFileSync(join(root, "etc/docker/daemon.json"), "utf8")) as Record<string, unknown>;
    expect(merged["registry-mirrors"]).toEqual([mirror.url]);
    expect(merged.bridge).toBe(engine.bridge); // the engine's own settings survive the merge
    await run("sh", ["-c", reload]);
    await reloaded(engine);
    hub.reset();
    expect(await dockerPull(engine, "mk-gen-feature:1")).toBe(featureImage.manifest.digest);
    await hub.settle();
    for (const blob of blobsOf(featureImage)) expect(hub.count({ method: "GET", pathIncludes: `/blobs/${blob.digest}` })).toBe(1);
    expect(engineFallbackLines(engine)).toEqual([]);
  });

  it("wire --apply: docker, containerd and podman files on the host pull through the mirror", async () => {
    const { engine, root, reload } = await machine("host");
    const sink = { write: () => true };
    for (const client of ["docker", "containerd", "podman"] as const) {
      await runWire({ client, root, mirrorUrl: mirror.url, apply: true }, { stdout: sink });
    }
    expect(readFileSync(join(root, "etc/docker/daemon.json.mirror-kit.bak"), "utf8")).toBe(readFileSync(join(engine.dir, "daemon.json"), "utf8"));
    await run("sh", ["-c", reload]);
    await reloaded(engine);
    const other = await uniqueImage("docker");
    await pushImage(hub, "library/mk-gen-wire", other, "1");
    expect(await dockerPull(engine, "mk-gen-wire:1")).toBe(other.manifest.digest);
    expect(engineFallbackLines(engine)).toEqual([]);

    const tool = await uniqueImage("oci");
    await pushImage(ghcr, "owner/mk-gen-wire", tool, "1");
    const hostsDir = join(root, "etc/containerd/certs.d");
    expect(await ctrPull({ socket: engine.containerdSocket, namespace: "mk-gen-wire", hostsDir }, "ghcr.io/owner/mk-gen-wire:1")).toBe(tool.manifest.digest);

    const policy = join(work, "policy-wire.json");
    writeFileSync(policy, JSON.stringify({ default: [{ type: "insecureAcceptAnything" }] }));
    const conf = join(root, "etc/containers/registries.conf.d/50-mirror-kit.conf");
    await run("skopeo", ["--registries-conf", conf, "--policy", policy, "copy", "--src-no-creds", "docker://ghcr.io/owner/mk-gen-wire:1", `oci:${join(work, "wire-oci")}`]);
    expect(readFileSync(join(work, "wire-oci", "index.json"), "utf8")).toContain(tool.manifest.digest);
  });
});
