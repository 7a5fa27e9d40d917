import { describe, expect, it } from "vitest";
import { MirrorError } from "../oci/errors.js";
import { asUnavailable, faultReason, isDiskFull, storageFault } from "./faults.js";

function errno(code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: something, open '/cache/ingest/x'`), { code });
}

describe("storage faults", () => {
  it.each([
    ["EACCES", "permission denied"],
    ["EPERM", "operation not permitted"],
    ["EROFS", "read-only file system"],
    ["ENOSPC", "no space left on device"],
    ["EDQUOT", "disk quota exceeded"],
    ["EIO", "input/output error"],
  ])("%s answers 503 UNAVAILABLE naming the errno and what it means", (code, meaning) => {
    const err = errno(code);
    expect(storageFault(err)).toBe(code);
    const answer = asUnavailable(err);
    expect(answer).toBeInstanceOf(MirrorError);
    expect((answer as MirrorError).status).toBe(503);
    expect((answer as MirrorError).code).toBe("UNAVAILABLE");
    expect((answer as MirrorError).message).toBe(`the mirror's cache storage cannot be written: ${code} (${meaning})`);
    // The path inside the storage folder stays in the log (cause), not in the client's answer.
    expect((answer as MirrorError).message).not.toContain("/cache/");
  });

  it("only a full disk (or quota) is streamed through without storing; other faults are refused", () => {
    expect(["ENOSPC", "EDQUOT"].map((c) => isDiskFull(errno(c)))).toEqual([true, true]);
    expect(["EACCES", "EROFS", "EIO", "EPERM"].map((c) => isDiskFull(errno(c)))).toEqual([false, false, false, false]);
    expect(faultReason(errno("ENOSPC"))).toBe("cache storage cannot be written: ENOSPC (no space left on device)");
  });

  it("leaves anything else alone: a bug is not a storage fault", () => {
    for (const err of [errno("ENOENT"), errno("EISDIR"), new TypeError("x is undefined"), undefined, "text"]) {
      expect(storageFault(err)).toBeUndefined();
      expect(asUnavailable(err)).toBe(err);
    }
  });
});
