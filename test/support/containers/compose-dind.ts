// A generated Compose project's Docker-in-Docker service on this machine: the override only this host
// needs, and the proof that the service's own dockerd pulls through the mirror service (counted at both ends).
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { expect } from "vitest";
import { stringify } from "yaml";
import type { ComposeProject } from "./compose-project.js";
import type { RunnableImage } from "./e2e-fixtures.js";
import { RUN_LABEL, type E2eHarness } from "./harness.js";
import { expectPulledOnceThroughMirror } from "./mirror-container.js";
import type { RegistryContainer } from "./registry-container.js";
import { machineCapabilities } from "./vm-container.js";

/**
 * What only this machine needs, kept out of the user's file: `privileged` is refused here (the
 * host's bounding set lacks a capability it asks for; see vm-container.ts), so the daemon service gets
 * the capabilities the host has; the mirror joins the network of the stand-in upstream registry.
 * Written to a file of its own; returns its path (the second `-f` of the project).
 */
export async function hostOverride(h: E2eHarness, daemon: string): Promise<string> {
  const labels = { [RUN_LABEL]: h.labels[RUN_LABEL] };
  const file = join(await h.tempDir("compose-host"), "host.yaml");
  await writeFile(
    file,
    stringify({
      services: {
        [daemon]: { privileged: false, cap_add: machineCapabilities(), security_opt: ["seccomp=unconfined", "apparmor=unconfined"], labels },
        "mirror-kit": { networks: ["default", "upstream"], labels },
      },
      networks: { upstream: { external: true, name: h.network.getName() } },
    }),
  );
  return file;
}

/**
 * `daemon`'s dockerd lists `mirrorUrl`, pulls `ref` (the probe image) through it and runs it; it never
 * falls back; the mirror served each blob once and the upstream was asked for each blob once.
 */
export async function expectDaemonPullsThroughMirror(project: ComposeProject, daemon: string, mirrorUrl: string, ref: string, probe: RunnableImage, hub: RegistryContainer): Promise<void> {
  // The project's mirror starts empty: count only what this pull asks of an upstream other tests may share.
  await hub.settle();
  await hub.reset();
  await project.waitHealthy("mirror-kit");
  // dockerd inside the service lists the mirror once it is up.
  let mirrors = "";
  for (const deadline = Date.now() + 60_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 500))) {
    mirrors = await project.exec(daemon, ["docker", "info", "--format", "{{json .RegistryConfig.Mirrors}}"]).catch(() => "");
    if (mirrors) break;
  }
  expect(JSON.parse(mirrors)).toEqual([`${mirrorUrl}/`]);

  const pull = await project.exec(daemon, ["docker", "pull", ref]);
  expect(/Digest: (sha256:[0-9a-f]{64})/.exec(pull)?.[1]).toBe(probe.image.manifest.digest);
  expect((await project.exec(daemon, ["docker", "run", "--rm", "--network", "none", ref])).trim()).toBe(probe.marker);
  // dockerd never gave up on the mirror (Docker Hub itself is unreachable here anyway).
  expect((await project.logLines(daemon)).filter((l) => /Attempting next endpoint|Not continuing with pull/.test(l))).toEqual([]);

  const repo = ref.includes("/") ? ref.split(":")[0]! : `library/${ref.split(":")[0]!}`;
  await expectPulledOnceThroughMirror(() => project.logLines("mirror-kit"), repo, ref.split(":")[1]!, probe.image, hub);
}
