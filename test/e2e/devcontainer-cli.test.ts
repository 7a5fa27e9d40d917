// The Dev Containers CLI (@devcontainers/cli) on a project after `mirror-kit init`: `devcontainer up`
// installs the generated local Feature on a base image with its own Docker engine, `devcontainer exec
// … docker pull` goes through the mirror; `devcontainer features test` passes for plugins/devcontainer-feature.
import { cp, mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { devcontainerBaseImage } from "../support/containers/dind-base.js";
import { buildSmallImage, type RunnableImage } from "../support/containers/e2e-fixtures.js";
import { dockerApi, REPO_ROOT } from "../support/containers/engine.js";
import { E2eHarness, RUN_LABEL } from "../support/containers/harness.js";
import { MirrorContainer } from "../support/containers/mirror-container.js";
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
  let base: string;
  let app: RunnableImage;
  let project: string;
  const imagesBefore = new Set<string>();

  const devcontainer = (args: readonly string[], allowFailure = false): Promise<RunResult> =>
    run(CLI, args, { timeoutMs: 300_000, allowFailure, env: { ...process.env } });

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
    project = await h.tempDir("devcontainer-project");
    await mkdir(join(project, ".devcontainer"));
    const config = `// a dev container with a Docker engine inside\n{\n  "name": "app",\n  "image": ${JSON.stringify(base)},\n  "runArgs": ["--label", "${RUN_LABEL}=${h.labels[RUN_LABEL]}"]\n}\n`;
    await writeFile(join(project, ".devcontainer", "devcontainer.json"), config);
    await run(process.execPath, [join(REPO_ROOT, "dist", "cli", "main.js"), "init", "--dir", project, "--yes", "--port", String(mirror.publishedPort)]);
    await expectNoInstallsAfter(join(project, ".devcontainer", "mirror-kit", "devcontainer-feature.json"));
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
