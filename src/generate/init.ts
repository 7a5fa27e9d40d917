// `mirror-kit init`: plans every target's edits first (so bad input writes nothing), then shows a diff
// (--dry-run), asks on a terminal unless --yes (without one, prints the plan and refuses), and writes
// each file atomically; files edited by hand are reported and skipped.
import { dirname, join, relative } from "node:path";
import { daemonNotes, mergeCompose } from "./compose.js";
import { freeHostPort, publishedHostPorts } from "./compose-ports.js";
import { PREFETCH_SERVICE, renderComposeFragment } from "./compose-view.js";
import { BUILD_CONTEXT, describeBuildContext, planBuildContext, writeBuildContext, type BuildContextPlan } from "./compose-build.js";
import { detect, type Detected } from "./detect.js";
import { planDevcontainer } from "./devcontainer.js";
import { GenerateError } from "./errors.js";
import { isNoop, readIfExists, unifiedDiff, unlessEdited, writeChanges, type FileChange } from "./files.js";
import { packageVersion } from "./render.js";
import { DEFAULT_IMAGE, DEFAULT_PORT, resolveSettings, vmMirrorUrl, type Settings, type SettingsInput } from "./settings.js";
import { covers, VIRTUALBOX_HOST } from "./tls-material.js";
import { parseYaml } from "./yaml-edit.js";
import { planVagrant } from "./vagrant.js";
import { planPrefetchStep, PREFETCH_SCRIPT } from "./prefetch-step.js";

export interface InitOptions extends SettingsInput {
  compose?: boolean;
  vagrant?: boolean;
  devcontainer?: boolean;
  /** Also write the prefetch step (.mirror-kit/prefetch.sh). */
  prefetch?: boolean;
  dryRun?: boolean;
  yes?: boolean;
  force?: boolean;
}

export interface Output {
  write(text: string): unknown;
}

export interface InitDeps {
  cwd: string;
  stdout: Output;
  /** Whether a person is at the keyboard; without one we never prompt. */
  isTTY: boolean;
  confirm?: (question: string) => Promise<boolean>;
}

export interface InitResult {
  changes: FileChange[];
  written: boolean;
}

export async function runInit(options: InitOptions, deps: InitDeps): Promise<InitResult> {
  const out = (line: string) => deps.stdout.write(`${line}\n`);
  const found = detect(deps.cwd);
  const settings = resolveSettings({ ...options, port: choosePort(options, found.compose, deps.cwd, out) });
  const { changes, notes, composeTarget, context } = plan(deps.cwd, found, settings, options);
  // The build context is a folder, not a text file: it is counted and reported, never diffed.
  const contextPending = context !== null && !context.upToDate;
  const pending = [...changes.filter((c) => !isNoop(c)), ...(contextPending ? [context] : [])];
  const skipped = changes.filter((c) => c.skipped);
  const reportSkipped = () => skipped.forEach((c) => out(`skipped    ${c.skipped}`));
  const reportContext = (verb: string) => contextPending && out(`${verb} ${context.display} (${describeBuildContext(context)})`);

  if (pending.length === 0) {
    out(skipped.length ? "mirror-kit: nothing else to change" : "mirror-kit: everything is up to date");
    reportSkipped();
    notes.forEach(out);
    return { changes, written: false };
  }
  if (options.dryRun) {
    deps.stdout.write(unifiedDiff(changes));
    reportContext("would write");
    reportSkipped();
    out(`mirror-kit: --dry-run: ${pending.length} file(s) would change; nothing written`);
    return { changes, written: false };
  }
  if (!options.yes) {
    deps.stdout.write(unifiedDiff(changes));
    reportContext("would write");
    reportSkipped();
    // No one to ask: writing anyway would change files nobody agreed to; the plan above is the answer.
    if (!deps.isTTY || !deps.confirm) {
      throw new GenerateError("NOT_CONFIRMED", `no terminal to ask on: ${pending.length} file(s) would change (shown above); rerun with --yes to write them, or --dry-run to only show them`);
    }
    if (!(await deps.confirm(`Write ${pending.length} file(s)? [y/N] `))) {
      out("mirror-kit: nothing written");
      return { changes, written: false };
    }
  }
  await writeChanges(changes);
  if (contextPending) await writeBuildContext(context);
  for (const c of changes) if (!c.skipped) out(`${isNoop(c) ? "up to date" : c.before === null ? "created   " : "updated   "} ${c.display}`);
  if (context) out(context.upToDate ? `up to date ${context.display}` : `wrote      ${context.display} (${describeBuildContext(context)})`);
  reportSkipped();
  notes.forEach(out);
  nextSteps(composeTarget, settings, !!options.prefetch).forEach(out);
  return { changes, written: true };
}

/** What init cannot do from the project folder: get the image, start the mirror, and wire this machine's own daemon. */
function nextSteps(composeTarget: boolean, s: Settings, prefetch: boolean): string[] {
  const image = s.build
    ? `image: the mirror runs ${s.image}, built on this machine by Compose from the Dockerfile in this mirror-kit ${packageVersion()} package on the Node base ${s.build.baseImage} (context ${BUILD_CONTEXT}); \`docker compose up\` builds it when it is missing and \`docker compose build mirror-kit\` rebuilds it, no registry needed. ${BUILD_CONTEXT} is this machine's copy of the package and stays out of git: on another machine run \`mirror-kit init --build\` there first`
    : s.image === DEFAULT_IMAGE
      ? `image: the mirror runs ${s.image}, the image the mirror-kit ${packageVersion()} release publishes; ${composeTarget ? "`docker compose up` pulls it" : "`mirror-kit up` pulls it, or builds it here when it cannot"}. Before it is published, or offline, build it on this machine first with \`mirror-kit image\` (from the Dockerfile in this package; no registry needed)`
      : `image: the mirror runs ${s.image} (given with --image); it must be on this machine or pullable. To build it here from the Dockerfile in this package: \`mirror-kit image --tag ${s.image}\``;
  return [
    image,
    composeTarget ? "next: start the mirror with `docker compose up -d mirror-kit`" : "next: start the mirror on this machine with `mirror-kit up`",
    ...(prefetch
      ? [
          composeTarget
            ? `next: before going offline, warm it with every image of the project: \`docker compose up\` runs the service ${PREFETCH_SERVICE} once the mirror is healthy (\`docker compose up ${PREFETCH_SERVICE}\` alone), or run \`${PREFETCH_SCRIPT}\``
            : `next: before going offline, warm it with every image of the project: \`${PREFETCH_SCRIPT}\``,
        ]
      : []),
    "next: this machine's own Docker daemon is not wired by init; run `mirror-kit wire docker --apply` (as root) to pull through the mirror too",
  ];
}

/**
 * The host port for the mirror: a port another Compose service already publishes would make
 * `docker compose up` fail, so the default moves to the next free one and an explicit --port is refused.
 */
function choosePort(o: InitOptions, composeFile: string | null, cwd: string, out: (line: string) => void): number | string {
  const wanted = o.port ?? DEFAULT_PORT;
  const explicit = !!(o.compose || o.vagrant || o.devcontainer);
  if (!composeFile || (explicit && !o.compose)) return wanted;
  const display = relative(cwd, composeFile);
  const text = readIfExists(composeFile, display);
  if (text === null || text.trim() === "") return wanted;
  const taken = publishedHostPorts(parseYaml(text, display));
  const port = typeof wanted === "number" ? wanted : Number(wanted);
  const owner = taken.get(port);
  if (owner === undefined) return wanted;
  const proposal = freeHostPort(port, taken);
  if (o.port !== undefined) {
    throw new GenerateError("PORT_IN_USE", `port ${port} is already published by service "${owner}"; pick another, e.g. --port ${proposal}`, display);
  }
  out(`mirror-kit: port ${port} is already published by service "${owner}" in ${display}; the mirror uses ${proposal} (choose with --port)`);
  return proposal;
}

function plan(cwd: string, found: Detected, s: Settings, o: InitOptions): { changes: FileChange[]; notes: string[]; composeTarget: boolean; context: BuildContextPlan | null } {
  const explicit = !!(o.compose || o.vagrant || o.devcontainer);
  const want = {
    compose: explicit ? !!o.compose : found.compose !== null,
    vagrant: explicit ? !!o.vagrant : found.vagrantfile !== null,
    devcontainer: explicit ? !!o.devcontainer : found.devcontainers.length > 0,
  };
  if (!want.compose && !want.vagrant && !want.devcontainer && !o.prefetch) {
    throw new GenerateError(
      "NOT_FOUND",
      `nothing to wire in ${cwd}: no compose.yaml (or compose.yml, docker-compose.y[a]ml), Vagrantfile or .devcontainer/devcontainer.json; pass --compose to create compose.yaml with the mirror`,
    );
  }
  if (s.build && !want.compose) {
    throw new GenerateError("BAD_OPTION", "--build: the image is built by the Compose service init writes, and this run wires no Compose file; add --compose, or drop --build (`mirror-kit up` builds the image itself when it cannot pull it)");
  }
  const force = !!o.force;
  const changes: FileChange[] = [];
  const notes: string[] = [];
  if (want.compose) {
    // With --compose and no Compose file, the project gets one holding just the mirror.
    const file = found.compose ?? join(cwd, "compose.yaml");
    const display = relative(cwd, file);
    const before = readIfExists(file, display);
    const dir = dirname(file);
    // With --prefetch the Compose file also gets the prefetch step, as a service `up` starts.
    const project = o.prefetch ? cwd : undefined;
    changes.push(unlessEdited(file, display, () => ({ path: file, display, before, after: before === null ? renderComposeFragment(s, dir, project) : mergeCompose(before, display, s, force, dir, project) })));
    if (before !== null) notes.push(...daemonNotes(before, display, s));
    if (s.ca?.server) {
      const key = relative(cwd, s.ca.server.keyFile);
      notes.push(
        `${display}: service mirror-kit serves https with ${relative(cwd, s.ca.server.certFile)} and ${key} (mounted read-only); keep the keys out of version control, and after \`mirror-kit cert\` re-issues the certificate run \`docker compose restart mirror-kit\``,
      );
    }
  }
  if (want.vagrant) {
    if (!found.vagrantfile) throw new GenerateError("NOT_FOUND", `not found in ${cwd}; create one (vagrant init) or drop --vagrant`, "Vagrantfile");
    changes.push(...planVagrant(cwd, found.vagrantfile, s, force));
    // The provisioner finds the host per provider inside the VM; VirtualBox's NAT address is the one a
    // certificate made on the host does not name by itself.
    if (s.ca?.server && !vmMirrorUrl(s) && !covers(s.ca.server, VIRTUALBOX_HOST)) {
      notes.push(`Vagrantfile: VirtualBox VMs reach this host as ${VIRTUALBOX_HOST}, which ${relative(cwd, s.ca.server.certFile)} does not name; with VirtualBox, run \`mirror-kit cert --dir ${relative(cwd, dirname(s.ca.server.certFile)) || "."} --san ${VIRTUALBOX_HOST}\` (the CA is kept)`);
    }
  }
  if (want.devcontainer) {
    if (found.devcontainers.length === 0) {
      throw new GenerateError("NOT_FOUND", `not found in ${cwd} (nor .devcontainer/*/devcontainer.json); local Features must live under .devcontainer/`, ".devcontainer/devcontainer.json");
    }
    for (const file of found.devcontainers) {
      const planned = planDevcontainer(cwd, file, s, force);
      changes.push(...planned.changes);
      notes.push(...planned.notes);
    }
  }
  if (o.prefetch) changes.push(planPrefetchStep(cwd, s, force));
  return { changes, notes, composeTarget: want.compose, context: s.build ? planBuildContext(cwd) : null };
}
