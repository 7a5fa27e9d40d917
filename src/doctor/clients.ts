// doctor's checks of the clients configured by files: containerd (containerd.ts), podman
// registries.conf.d and BuildKit's buildkitd.toml, where "right" means `mirror-kit wire CLIENT` would
// change nothing, so the fix is exactly that command.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { isNoop } from "../generate/files.js";
import { resolveSettings } from "../generate/settings.js";
import { planWire, type WireClient } from "../generate/wire.js";
import { fail, ok, onPath, skip, type CheckResult } from "./checks.js";
import { checkContainerd } from "./containerd.js";

// `config`: present means the client is configured here, whether or not its binary is installed
// (BuildKit's usually runs in a builder container that is given this file).
const CLIENTS: { client: Exclude<WireClient, "docker" | "k3s">; label: string; binaries: string[]; config: string }[] = [
  { client: "containerd", label: "containerd certs.d", binaries: ["containerd", "nerdctl"], config: "/etc/containerd" },
  { client: "podman", label: "podman registries.conf", binaries: ["podman", "skopeo", "buildah"], config: "/etc/containers" },
  { client: "buildkit", label: "BuildKit buildkitd.toml", binaries: ["buildkitd"], config: "/etc/buildkit/buildkitd.toml" },
];

export type FileClient = (typeof CLIENTS)[number]["client"];
export const FILE_CLIENTS: readonly FileClient[] = CLIENTS.map((c) => c.client);

/**
 * root: where /etc is (tests point it at a scratch folder); ca: the CA file `wire --ca` was given,
 * so the expected files are the ones that wire would write; only: the clients to check.
 */
export function checkClientFiles(mirror: string, o: { root?: string; ca?: string; only?: readonly FileClient[] } = {}): CheckResult[] {
  const root = o.root ?? "/";
  const settings = resolveSettings({ mirrorUrl: mirror, ...(o.ca ? { ca: o.ca } : {}) });
  return CLIENTS.filter((c) => !o.only || o.only.includes(c.client)).flatMap(({ client, label, binaries, config }) => {
    const installed = binaries.some((b) => onPath(b) !== undefined) || existsSync(join(root, config));
    if (!installed) return [skip(label, `${binaries[0]} is not installed here, and there is no ${config}`)];
    if (client === "containerd") return checkContainerd(mirror, settings, root, wireCommand(client, mirror, o.ca), o.ca !== undefined);
    let pending;
    try {
      pending = planWire(client, settings, root, false).changes.filter((c) => !isNoop(c));
    } catch (err) {
      return [fail(label, (err as Error).message, `fix the file named above, then: ${wireCommand(client, mirror, o.ca)}`)];
    }
    if (pending.length === 0) return [ok(label, `pulls go through ${mirror}`)];
    const files = pending.map((c) => c.display).join(", ");
    return [fail(label, `${files} ${pending.length === 1 ? "does" : "do"} not send pulls to ${mirror}`, wireCommand(client, mirror, o.ca))];
  });
}

function wireCommand(client: FileClient, mirror: string, ca: string | undefined): string {
  return `mirror-kit wire ${client} --mirror-url ${mirror}${ca ? ` --ca ${ca}` : ""} --apply`;
}
