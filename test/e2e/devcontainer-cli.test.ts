// The Dev Containers CLI (@devcontainers/cli) on a project after `mirror-kit init`: `devcontainer up`
// installs the generated local Feature on a base image with its own Docker engine, `devcontainer exec
// … docker pull` goes through the mirror, over plain HTTP and, after `init --ca`, over TLS with the CA
// `mirror-kit cert` made; `devcontainer features test` passes for plugins/devcontainer-feature.
import { cp, mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { devcontainerBaseImage } from "../support/containers/dind-base.js";
import { buildSmallImage, type RunnableImage } from "../support/containers/e2e-fixtures.js";
import { dockerApi, REPO_ROOT } from "../support/containers/engine.js";
import { E2eHarness, RUN_LABEL } from "../support/containers/harness.js";
import { MirrorContainer, mirrorRequests } from "../support/containers/mirror-container.js";
import { RegistryContainer } from "../support/containers/registry-container.js";
import { blobsOf } from "../support/fixtures/image.js";
import { pushImage } from "../support/fixtures/push.js";
import { run, type RunResult } from "../support/process.js";

const CLI = join(REPO_ROOT, "node_modules", ".bin", "devcontainer");

/**
 * The CLI fetches the metadata of every `installsAfter` entry from its registry even when the project
 * does not use that Feature (CLI 0.89), and ghcr.io cannot be reached here, as on any offline machine.
 * The generated Feature lists docker-in-docker only for a project that uses it, so these projects'
 * Feature has no such entry and the CLI runs it as generated.
 */
async function expectNoInstallsAfter(featureJson: string): Promise<void> {
  const meta = JSON.parse(await readFile(featureJson, "utf8")) as Record<string, unknown>;
  expect(meta).not.toHaveProperty("installsAfter");
}

describe("the Dev Containers CLI runs the generated Feature", () => {
  let h: E2eHarness;
  let hub: RegistryContainer;
  let mirror: MirrorContainer;
  let tlsMirror: MirrorContainer;
  let base: string;
  let app: RunnableImage;
  let secureApp: RunnableImage;
  let project: string;
  let tlsProject: string;
  let tlsDir: string;
  const imagesBefore = new Set<string>();

  const devcontainer = (args: readonly string[], allowFailure = false): Promise<RunResult> =>
    run(CLI, args, { timeoutMs: 300_000, allowFailure, env: { ...process.env } });
  const mirrorKit = (args: readonly string[]): Promise<RunResult> => run(process.execPath, [join(REPO_ROOT, "dist", "cli", "main.js"), ...args]);

  beforeAll(async () => {
    h = await E2eHarness.start();
    base = await devcontainerBaseImage();
    for (const image of await dockerApi().listImages()) imagesBefore.add(image.Id);
    // The CLI's own images (vsc-…) are this run's: removed with everything else.
    h.trackCleanup(async () => {
      // The dev container first (the harness would remove it only after this step): its image is in use.
      for (const c of await dockerApi().listContainers({ all: true, filters: { label: [`${RUN_LABEL}=${h.labels[RUN_LABEL]}`] } })) {
        await dockerApi().getContainer(c.Id).remove({ force: true, v: true });
      }
      for (const image of await dockerApi().listImages()) {
        if (!imagesBefore.has(image.Id) && (image.RepoTags ?? []).some((t) => t.startsWith("vsc-"))) {
          await dockerApi().getImage(image.Id).remove({ force: true }).catch(() => undefined);
        }
      }
    });
    app = await buildSmallImage();
    hub = await RegistryContainer.start(h, "upstream-hub");
    await pushImage(hub, "team/app", app.image, "1");
    mirror = await MirrorContainer.start(h, { alias: "mirror", env: { MIRROR_KIT_UPSTREAMS: `docker.io=${hub.internalUrl}` } });

    // A project whose dev container runs its own Docker engine (only local images and Features here).
    const newProject = async (name: string): Promise<string> => {
      const dir = await h.tempDir(`devcontainer-${name}`);
      await mkdir(join(dir, ".devcontainer"));
      const config = `// a dev container with a Docker engine inside\n{\n  "name": "${name}",\n  "image": ${JSON.stringify(base)},\n  "runArgs": ["--label", "${RUN_LABEL}=${h.labels[RUN_LABEL]}"]\n}\n`;
      await writeFile(join(dir, ".devcontainer", "devcontainer.json"), config);
      return dir;
    };
    project = await newProject("app");
    await mirrorKit(["init", "--dir", project, "--yes", "--port", String(mirror.publishedPort)]);
    await expectNoInstallsAfter(join(project, ".devcontainer", "mirror-kit", "devcontainer-feature.json"));

    // The same over TLS, as a user sets it up: a CA and a certificate naming the host as dev containers
    // see it, the mirror serving it, and init --ca given the folder cert wrote.
    secureApp = await buildSmallImage();
    await pushImage(hub, "team/secure", secureApp.image, "1");
    tlsDir = join(await h.tempDir("devcontainer-tls"), "mirror-kit-tls");
    await mirrorKit(["cert", "--dir", tlsDir, "--san", "host.docker.internal"]);
    tlsMirror = await MirrorContainer.start(h, {
      alias: "mirror-tls",
      env: { MIRROR_KIT_UPSTREAMS: `docker.io=${hub.internalUrl}` },
      tls: { certFile: join(tlsDir, "server.crt"), keyFile: join(tlsDir, "server.key") },
    });
    tlsProject = await newProject("app-tls");
    await mirrorKit(["init", "--dir", tlsProject, "--yes", "--ca", tlsDir, "--port", String(tlsMirror.publishedPort)]);
  }, 600_000);

  afterAll(async () => {
    await h?.cleanup();
  });

  it("devcontainer up builds the Feature in, and docker pull inside goes through the mirror", async () => {
    const up = await devcontainer(["up", "--workspace-folder", project, "--log-format", "json"], true);
    const result = up.stdout.trim().split("\n").pop() ?? "";
    expect(result, `devcontainer up:\n${up.stderr.slice(-4000)}`).toContain('"outcome":"success"');
    // The Feature's install.sh wrote daemon.json at build time; dockerd (started by the image's
    // entrypoint) read it. Wait for the engine, then pull by a plain Docker Hub name.
    const pull = await devcontainer([
      "exec", "--workspace-folder", project, "sh", "-c",
      "for i in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done; docker info --format '{{json .RegistryConfig.Mirrors}}'; docker pull team/app:1 && docker run --rm --network none team/app:1",
    ], true);
    const out = pull.stdout + pull.stderr;
    expect(pull.code, out).toBe(0);
    expect(out).toContain(`http://host.docker.internal:${mirror.publishedPort}/`);
    expect(out).toContain(`Digest: ${app.image.manifest.digest}`);
    expect(out).toContain(app.marker);
    await hub.settle();
    for (const blob of blobsOf(app.image)) {
      expect(await hub.count({ method: "GET", pathIncludes: `/blobs/${blob.digest}` }), await hub.describe({ method: "GET" })).toBe(1);
    }
  }, 400_000);

  it("after init --ca, devcontainer up installs the CA in certs.d and docker pull inside goes through the mirror over https", async () => {
    const up = await devcontainer(["up", "--workspace-folder", tlsProject, "--log-format", "json"], true);
    expect(up.stdout.trim().split("\n").pop() ?? "", `devcontainer up:\n${up.stderr.slice(-4000)}`).toContain('"outcome":"success"');
    const hostPort = `host.docker.internal:${tlsMirror.publishedPort}`;
    const exec = (script: string) => devcontainer(["exec", "--workspace-folder", tlsProject, "sh", "-c", script], true);
    const files = await exec(`cat /etc/docker/daemon.json; cat /etc/docker/certs.d/${hostPort}/ca.crt`);
    expect(files.code, files.stdout + files.stderr).toBe(0);
    // The Feature wrote the https mirror and nothing insecure, and the CA where this dockerd looks for that mirror.
    expect(files.stdout).toContain(`"https://${hostPort}"`);
    expect(files.stdout).not.toContain("insecure-registries");
    expect(files.stdout).toContain(await readFile(join(tlsDir, "ca.crt"), "utf8"));

    const pull = await exec(
      "for i in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done; docker info --format '{{json .RegistryConfig.Mirrors}}'; docker pull team/secure:1 && docker run --rm --network none team/secure:1",
    );
    const out = pull.stdout + pull.stderr;
    expect(pull.code, out).toBe(0);
    expect(out).toContain(`https://${hostPort}/`);
    expect(out).toContain(`Digest: ${secureApp.image.manifest.digest}`);
    expect(out).toContain(secureApp.marker);
    await hub.settle();
    const seen = await tlsMirror.logLines();
    // A layer the first test's image shares (same bytes) was fetched once more by that test's own mirror.
    const pulledByPlainMirror = new Set(blobsOf(app.image).map((b) => b.digest));
    for (const blob of blobsOf(secureApp.image)) {
      expect(mirrorRequests(seen, `/v2/team/secure/blobs/${blob.digest}`).filter((r) => r.method === "GET" && r.status === 200)).toHaveLength(1);
      const expected = pulledByPlainMirror.has(blob.digest) ? 2 : 1;
      expect(await hub.count({ method: "GET", pathIncludes: `/blobs/${blob.digest}` }), await hub.describe({ method: "GET" })).toBe(expected);
    }
  }, 400_000);

  it("devcontainer features test passes for plugins/devcontainer-feature on the local base image", async () => {
    const collection = await h.tempDir("feature-collection");
    await cp(join(REPO_ROOT, "plugins", "devcontainer-feature"), collection, { recursive: true });
    await expectNoInstallsAfter(join(collection, "src", "mirror-kit", "devcontainer-feature.json"));
    const test = await devcontainer(["features", "test", "--project-folder", collection, "-f", "mirror-kit", "-i", base, "--skip-scenarios"], true);
    const out = test.stdout + test.stderr;
    expect(test.code, out.slice(-6000)).toBe(0);
    expect(out).toMatch(/✅ Passed:\s+'mirror-kit'/);
  }, 400_000);
});
