// `mirror-kit init`: plans every target's edits first (so bad input writes nothing), then shows a diff
// (--dry-run), asks on a terminal unless --yes, and writes each file atomically.
import { join, relative } from "node:path";
import { mergeCompose } from "./compose.js";
import { renderComposeFragment } from "./compose-view.js";
import { detect } from "./detect.js";
import { planDevcontainer } from "./devcontainer.js";
import { GenerateError } from "./errors.js";
import { isNoop, readIfExists, unifiedDiff, writeChanges, type FileChange } from "./files.js";
import { resolveSettings, type Settings, type SettingsInput } from "./settings.js";
import { planVagrant } from "./vagrant.js";

export interface InitOptions extends SettingsInput {
  compose?: boolean;
  vagrant?: boolean;
  devcontainer?: boolean;
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
  const settings = resolveSettings(options);
  const { changes, notes, composeTarget } = plan(deps.cwd, settings, options);
  const out = (line: string) => deps.stdout.write(`${line}\n`);
  const pending = changes.filter((c) => !isNoop(c));

  if (pending.length === 0) {
    out("mirror-kit: everything is up to date");
    notes.forEach(out);
    return { changes, written: false };
  }
  if (options.dryRun) {
    deps.stdout.write(unifiedDiff(changes));
    out(`mirror-kit: --dry-run: ${pending.length} file(s) would change; nothing written`);
    return { changes, written: false };
  }
  if (deps.isTTY && !options.yes && deps.confirm) {
    deps.stdout.write(unifiedDiff(changes));
    if (!(await deps.confirm(`Write ${pending.length} file(s)? [y/N] `))) {
      out("mirror-kit: nothing written");
      return { changes, written: false };
    }
  }
  await writeChanges(changes);
  for (const c of changes) out(`${isNoop(c) ? "up to date" : c.before === null ? "created   " : "updated   "} ${c.display}`);
  notes.forEach(out);
  if (!composeTarget) out("next: start the mirror on this machine with `mirror-kit up`");
  return { changes, written: true };
}

function plan(cwd: string, s: Settings, o: InitOptions): { changes: FileChange[]; notes: string[]; composeTarget: boolean } {
  const found = detect(cwd);
  const explicit = !!(o.compose || o.vagrant || o.devcontainer);
  const want = {
    compose: explicit ? !!o.compose : found.compose !== null,
    vagrant: explicit ? !!o.vagrant : found.vagrantfile !== null,
    devcontainer: explicit ? !!o.devcontainer : found.devcontainers.length > 0,
  };
  if (!want.compose && !want.vagrant && !want.devcontainer) {
    throw new GenerateError(
      "NOT_FOUND",
      `nothing to wire in ${cwd}: no compose.yaml (or compose.yml, docker-compose.y[a]ml), Vagrantfile or .devcontainer/devcontainer.json; pass --compose to create compose.yaml with the mirror`,
    );
  }
  const force = !!o.force;
  const changes: FileChange[] = [];
  const notes: string[] = [];
  if (want.compose) {
    // With --compose and no Compose file, the project gets one holding just the mirror.
    const file = found.compose ?? join(cwd, "compose.yaml");
    const display = relative(cwd, file);
    const before = readIfExists(file, display);
    const after = before === null ? renderComposeFragment(s) : mergeCompose(before, display, s, force);
    changes.push({ path: file, display, before, after });
  }
  if (want.vagrant) {
    if (!found.vagrantfile) throw new GenerateError("NOT_FOUND", `not found in ${cwd}; create one (vagrant init) or drop --vagrant`, "Vagrantfile");
    changes.push(...planVagrant(cwd, found.vagrantfile, s, force));
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
  return { changes, notes, composeTarget: want.compose };
}
