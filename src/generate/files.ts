// Planned file changes: read what is there, decide (never overwrite hand edits silently), show a diff,
// and write every file atomically only after the whole plan was built, so bad input writes nothing.
import { readFileSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { dirname } from "node:path";
import { createTwoFilesPatch } from "diff";
import writeFileAtomic from "write-file-atomic";
import { GenerateError } from "./errors.js";
import { stampState } from "./render.js";

export interface FileChange {
  path: string;
  /** How the file is named in messages and diffs (relative to the project). */
  display: string;
  before: string | null;
  after: string;
  mode?: number;
  /** Set when the file was edited by hand and is left alone: why, for the report. */
  skipped?: string;
}

export function isNoop(change: FileChange): boolean {
  return change.before === change.after;
}

/**
 * Plans one file; a hand edit (USER_EDITED) becomes a skipped, unchanged entry instead of an error,
 * so one edited file does not stop the others. Every other error still aborts the whole plan.
 */
export function unlessEdited(path: string, display: string, plan: () => FileChange): FileChange {
  try {
    return plan();
  } catch (err) {
    if (!(err instanceof GenerateError) || err.code !== "USER_EDITED") throw err;
    const before = readIfExists(path, display) ?? "";
    return { path, display, before, after: before, skipped: err.message };
  }
}

/** Reads a user file; null when it does not exist. Any other failure names the file. */
export function readIfExists(path: string, display: string): string | null {
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return null;
    throw new GenerateError("BAD_INPUT", `cannot read the file (${code ?? String(err)})`, display);
  }
}

export interface GeneratedFileOptions {
  force: boolean;
  mode?: number;
  /** For formats without comments: recognises an unedited earlier generation some other way. */
  isOurs?: (existing: string) => boolean;
}

/**
 * A file mirror-kit owns outright. It is replaced only when it is missing, still exactly as some
 * earlier run generated it (its stamp verifies), or --force is given.
 */
export function planGeneratedFile(path: string, display: string, content: string, opts: GeneratedFileOptions): FileChange {
  const before = readIfExists(path, display);
  const change: FileChange = { path, display, before, after: content };
  if (opts.mode !== undefined) change.mode = opts.mode;
  if (before === null || before === content || opts.force) return change;
  const ours = opts.isOurs ? opts.isOurs(before) : stampState(before) === "intact";
  if (!ours) {
    throw new GenerateError(
      "USER_EDITED",
      "was changed since mirror-kit generated it; move your changes elsewhere or rerun with --force to replace it",
      display,
    );
  }
  return change;
}

export function unifiedDiff(changes: FileChange[]): string {
  return changes
    .filter((c) => !isNoop(c))
    .map((c) =>
      createTwoFilesPatch(c.before === null ? "/dev/null" : `a/${c.display}`, `b/${c.display}`, c.before ?? "", c.after, "", "", {
        context: 3,
      }),
    )
    .join("");
}

/** Writes every changed file via temp file + rename; a crash never leaves half a file behind. */
export async function writeChanges(changes: FileChange[]): Promise<void> {
  for (const change of changes) {
    if (isNoop(change) || change.skipped) continue;
    await mkdir(dirname(change.path), { recursive: true });
    const options: writeFileAtomic.Options = { encoding: "utf8" };
    if (change.mode !== undefined) options.mode = change.mode;
    await writeFileAtomic(change.path, change.after, options);
  }
}
