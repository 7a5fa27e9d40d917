// Every error class mirror-kit raises is a MirrorKitError with its documented, stable code.
import { describe, expect, it } from "vitest";
import { ConfigError } from "./config/schema.js";
import { MirrorKitError, isMirrorKitError } from "./errors.js";
import { GenerateError } from "./generate/errors.js";
import { MirrorError, toOciError } from "./oci/errors.js";
import { StoreError } from "./store/errors.js";
import { UpstreamError } from "./upstream/errors.js";

describe("the one error base class", () => {
  it.each([
    ["an OCI error keeps the spec's code", new MirrorError("BLOB_UNKNOWN", "x"), "BLOB_UNKNOWN", "MirrorError"],
    ["a refused setting", new ConfigError("listen: bad"), "MK_CONFIG_INVALID", "ConfigError"],
    ["a generator failure keeps its published code", new GenerateError("CONFLICT", "x", "compose.yaml"), "CONFLICT", "GenerateError"],
    ["an upstream with no answer", new UpstreamError("u", "unreachable", "ECONNREFUSED"), "MK_UPSTREAM_UNREACHABLE", "UpstreamError"],
    ["an upstream error status", new UpstreamError("u", "status", "x", 500), "MK_UPSTREAM_STATUS", "UpstreamError"],
    ["an unusable storage folder", new StoreError("cannot use storage folder /x: EACCES", "EACCES"), "MK_STORE_UNUSABLE", "StoreError"],
  ])("%s", (_what, err, code, name) => {
    expect(err).toBeInstanceOf(MirrorKitError);
    expect(err).toBeInstanceOf(Error);
    expect(isMirrorKitError(err)).toBe(true);
    expect(err.code).toBe(code);
    expect(err.name).toBe(name);
    expect(typeof err.stack).toBe("string");
  });

  it("keeps the cause and the response headers it was given", () => {
    const cause = new Error("boom");
    const err = new MirrorError("UNAUTHORIZED", "log in", undefined, { cause, headers: { "www-authenticate": 'Basic realm="mirror-kit"' } });
    expect(err.cause).toBe(cause);
    expect(err.headers).toEqual({ "www-authenticate": 'Basic realm="mirror-kit"' });
    expect(new MirrorError("UNKNOWN", "x").headers).toBeUndefined();
  });

  it("a plain Error is not one of ours and never leaks its message to a client", () => {
    expect(isMirrorKitError(new Error("secret path /etc"))).toBe(false);
    expect(toOciError(new Error("secret path /etc")).body.errors[0]?.message).toBe("internal error");
  });
});
