// `mirror-kit doctor`: checks this machine and its clients against a mirror, prints each result
// with the exact fix for every failure, and exits non-zero when anything is wrong.
import type Docker from "dockerode";
import type { CommandModule } from "yargs";
import { checkReachable, type CheckResult } from "../doctor/checks.js";
import { checkClientFiles, FILE_CLIENTS, type FileClient } from "../doctor/clients.js";
import { checkDocker } from "../doctor/docker.js";
import { MirrorKitError } from "../errors.js";
import type { Output } from "../generate/init.js";
import { DEFAULT_MIRROR, mirrorEndpoint, shownMirror } from "./mirror-api.js";

export const DOCTOR_CLIENTS = ["docker", ...FILE_CLIENTS] as const;
export type DoctorClient = (typeof DOCTOR_CLIENTS)[number];

export interface DoctorArgs {
  mirror: string;
  root?: string;
  /** The CA file the clients were wired with (`wire --ca`). */
  ca?: string;
  /** Which clients to check; default every one installed here. */
  clients?: readonly DoctorClient[];
  "probe-image"?: string;
}

export async function runDoctor(args: DoctorArgs, deps: { stdout: Output; docker: Docker }): Promise<CheckResult[]> {
  mirrorEndpoint(args.mirror);
  const mirror = shownMirror(args.mirror);
  const wanted = (c: DoctorClient) => !args.clients || args.clients.includes(c);
  const results: CheckResult[] = [];
  const show = (r: CheckResult) => {
    results.push(r);
    const tag = r.outcome === "ok" ? "ok" : r.outcome === "fail" ? "FAIL" : "skip";
    deps.stdout.write(`${tag.padEnd(4)}  ${r.check}: ${r.detail}\n`);
    if (r.fix) deps.stdout.write(`      fix: ${r.fix}\n`);
  };
  deps.stdout.write(`mirror-kit doctor: ${mirror}\n`);
  const reach = await checkReachable(args.mirror);
  reach.forEach(show);
  const reachable = reach[0]?.outcome === "ok";
  if (!wanted("docker")) {
    // not asked for
  } else if (reachable) {
    (await checkDocker(deps.docker, { mirror: args.mirror, ...(args["probe-image"] ? { probeImage: args["probe-image"] } : {}) })).forEach(show);
  } else {
    show({ check: "dockerd", outcome: "skip", detail: "not checked: the mirror must be reachable first" });
  }
  const only = FILE_CLIENTS.filter((c) => wanted(c));
  checkClientFiles(mirror, { ...(args.root ? { root: args.root } : {}), ...(args.ca ? { ca: args.ca } : {}), only }).forEach(show);
  const failed = results.filter((r) => r.outcome === "fail").length;
  deps.stdout.write(failed === 0 ? "everything holds\n" : `${failed} problem${failed === 1 ? "" : "s"}; each fix is printed under it\n`);
  return results;
}

type DoctorCliArgs = Omit<DoctorArgs, "clients"> & { clients?: string[] };

export const doctorCommand: CommandModule<object, DoctorCliArgs> = {
  command: "doctor",
  describe: "Check that this machine and its clients really use the mirror (exits non-zero with the fix for each problem)",
  builder: (y) =>
    y
      .option("mirror", { type: "string", default: process.env.MIRROR_KIT_MIRROR ?? DEFAULT_MIRROR, describe: "the mirror's URL as clients use it (env MIRROR_KIT_MIRROR)" })
      .option("clients", {
        type: "string",
        array: true,
        coerce: (v: string[]) => v.flatMap((s) => s.split(",")).map((s) => s.trim()).filter(Boolean),
        describe: `which clients to check (${DOCTOR_CLIENTS.join(", ")}); default: every one installed here`,
      })
      .option("ca", { type: "string", describe: "the CA file the clients were wired with (wire --ca)" })
      .option("root", { type: "string", default: "/", describe: "where the client configuration files live (prefix of /etc)" })
      .option("probe-image", { type: "string", describe: "an image with busybox sh/nc/awk/grep for the container check (default: a local busybox or alpine, else one made from this machine's busybox)" }),
  handler: async (args) => {
    const unknown = (args.clients ?? []).filter((c) => !(DOCTOR_CLIENTS as readonly string[]).includes(c));
    if (unknown.length > 0) throw new MirrorKitError("MK_USAGE", `--clients: unknown client ${unknown.join(", ")} (known: ${DOCTOR_CLIENTS.join(", ")})`);
    const { clients, ...rest } = args;
    // dockerode (with ssh2) costs ~7 MiB of resident memory: loaded only when doctor runs, not by every serve.
    const { default: Dockerode } = await import("dockerode");
    const results = await runDoctor({ ...rest, ...(clients ? { clients: clients as DoctorClient[] } : {}) }, { stdout: process.stdout, docker: new Dockerode() });
    if (results.some((r) => r.outcome === "fail")) process.exitCode = 1;
  },
};
