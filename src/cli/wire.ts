// `mirror-kit wire CLIENT`: prints the host-side configuration for one client, or with --apply writes
// it atomically after saving the previous file as FILE.mirror-kit.bak. runWire is what tests call.
import type { CommandModule } from "yargs";
import { writeChanges, isNoop, type FileChange } from "../generate/files.js";
import type { Output } from "../generate/init.js";
import { resolveSettings, type SettingsInput } from "../generate/settings.js";
import { detectLanAddress } from "../generate/lan.js";
import { planWire, WIRE_CLIENTS, type WireClient } from "../generate/wire.js";
import { mirrorOptions } from "./init.js";

export interface WireOptions extends SettingsInput {
  client: WireClient;
  apply?: boolean;
  force?: boolean;
  /** Prefix for every path (default /): configure a mounted image or a test directory. */
  root?: string;
}

export interface WireDeps {
  stdout: Output;
  /** This machine's LAN address (default: the default route's interface); injectable for tests. */
  lanAddress?: () => string | undefined;
}

export async function runWire(o: WireOptions, deps: WireDeps): Promise<FileChange[]> {
  const plan = planWire(o.client, resolveSettings(o), o.root ?? "/", !!o.force, deps.lanAddress ?? detectLanAddress);
  const out = (line: string) => deps.stdout.write(`${line}\n`);
  const pending = plan.changes.filter((c) => !isNoop(c));
  if (!o.apply) {
    for (const c of plan.changes) {
      out(`# ${c.display}${isNoop(c) ? " (already up to date)" : c.before === null ? " (new file)" : " (merged with the existing file)"}`);
      deps.stdout.write(c.after.endsWith("\n") ? c.after : `${c.after}\n`);
      out("");
    }
    out(pending.length ? `# write with --apply (backups: FILE.mirror-kit.bak), then: ${plan.reload}` : "# nothing to change");
    return plan.changes;
  }
  if (pending.length === 0) {
    out(`mirror-kit: ${o.client} is already wired to the mirror`);
    return plan.changes;
  }
  // Backups first: if anything fails after this point, the previous content is on disk.
  const backups: FileChange[] = pending
    .filter((c) => c.before !== null)
    .map((c) => ({ path: `${c.path}.mirror-kit.bak`, display: `${c.display}.mirror-kit.bak`, before: null, after: c.before! }));
  await writeChanges(backups);
  await writeChanges(pending);
  for (const c of pending) out(`wrote ${c.path}${c.before !== null ? ` (previous: ${c.path}.mirror-kit.bak)` : ""}`);
  out(`then: ${plan.reload}`);
  return plan.changes;
}

export const wireCommand: CommandModule = {
  command: "wire <client>",
  describe: "Print (or --apply) this machine's configuration for docker, containerd, podman, buildkit or k3s",
  builder: (y) =>
    mirrorOptions(y)
      .positional("client", { choices: WIRE_CLIENTS, describe: "which client to configure" })
      .option("apply", { type: "boolean", default: false, describe: "write the files (with a .mirror-kit.bak backup)" })
      .option("root", { type: "string", default: "/", describe: "prefix for every path written" })
      .option("force", { type: "boolean", default: false, describe: "replace mirror-kit files edited by hand" }),
  handler: async (argv) => {
    const a = argv as Record<string, unknown>;
    await runWire(
      {
        client: a.client as WireClient,
        mirrorUrl: a.mirrorUrl as string | undefined,
        host: a.host as string | undefined,
        port: a.port as number | undefined,
        upstream: a.upstream as string[] | undefined,
        ca: a.ca as string | undefined,
        apply: a.apply as boolean,
        root: a.root as string,
        force: a.force as boolean,
      },
      { stdout: process.stdout },
    );
  },
};
