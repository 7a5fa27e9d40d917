// The generator's one error type: every failure names the file (or flag) at fault and a stable code,
// so the CLI prints one clear line and tests can assert on the code instead of the wording.
import { MirrorKitError } from "../errors.js";

export type GenerateErrorCode =
  | "BAD_OPTION" // a flag value is unusable (mirror URL without scheme, bad port, bad upstream)
  | "BAD_INPUT" // a user file cannot be parsed or has a shape we cannot edit safely
  | "USER_EDITED" // a generated file or block was edited by hand; refusing without --force
  | "NOT_FOUND" // a selected target has no file to edit
  | "CONFLICT" // an existing setting would make the daemon fail (e.g. mirrors + config_path)
  | "PORT_IN_USE"
  | "NOT_CONFIRMED" // init without a terminal and without --yes: the plan was printed, nothing written
  | "DOCKER"; // the Docker API refused or is unreachable

export class GenerateError extends MirrorKitError {
  override readonly name = "GenerateError";
  declare readonly code: GenerateErrorCode;
  constructor(
    code: GenerateErrorCode,
    message: string,
    /** The file the problem is in, relative to the project (or absolute outside it). */
    readonly file?: string,
  ) {
    super(code, file ? `${file}: ${message}` : message);
  }
}

/** 1-based line and column of a character offset, for messages a user can jump to. */
export function lineCol(text: string, offset: number): { line: number; col: number } {
  const before = text.slice(0, Math.max(0, offset));
  const line = before.split("\n").length;
  const col = offset - before.lastIndexOf("\n");
  return { line, col };
}
