import { describe, expect, it } from "vitest";
import { CircuitBreaker } from "./breaker.js";
import { parseChallenge } from "./challenge.js";
import { redactUrl, UpstreamError } from "./errors.js";

describe("WWW-Authenticate", () => {
  it("reads Docker Hub's bearer challenge", () => {
    expect(parseChallenge('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"')).toEqual({
      scheme: "bearer",
      params: { realm: "https://auth.docker.io/token", service: "registry.docker.io", scope: "repository:library/busybox:pull" },
    });
  });
  it("reads a basic challenge and escaped quotes", () => {
    expect(parseChallenge('Basic realm="a \\"quoted\\" realm"')).toEqual({ scheme: "basic", params: { realm: 'a "quoted" realm' } });
  });
  it("returns undefined for nothing", () => {
    expect(parseChallenge(undefined)).toBeUndefined();
  });
});

describe("circuit breaker", () => {
  it("opens for the cooldown after a failure and closes after it", () => {
    let now = 1_000;
    const b = new CircuitBreaker(30_000, () => now);
    expect(b.isOpen()).toBe(false);
    b.recordFailure();
    expect(b.isOpen()).toBe(true);
    now += 29_999;
    expect(b.isOpen()).toBe(true);
    now += 2;
    expect(b.isOpen()).toBe(false);
  });
  it("is disabled by a zero cooldown", () => {
    const b = new CircuitBreaker(0);
    b.recordFailure();
    expect(b.isOpen()).toBe(false);
  });
});

describe("upstream errors", () => {
  it.each([
    [new UpstreamError("u", "unreachable", "ECONNREFUSED"), "UNAVAILABLE", true],
    [new UpstreamError("u", "status", "x", 503), "UNAVAILABLE", true],
    [new UpstreamError("u", "status", "x", 429), "TOOMANYREQUESTS", true],
    [new UpstreamError("u", "status", "x", 404), "MANIFEST_UNKNOWN", false],
    [new UpstreamError("u", "status", "x", 404, "NAME_UNKNOWN"), "NAME_UNKNOWN", false],
    [new UpstreamError("u", "status", "x", 401), "UNAUTHORIZED", false],
    [new UpstreamError("u", "status", "x", 403), "DENIED", false],
  ])("%s maps to %s (temporary: %s)", (err, code, temporary) => {
    expect(err.toMirrorError("MANIFEST_UNKNOWN").code).toBe(code);
    expect(err.temporary()).toBe(temporary);
  });
  it("redacts credentials and query strings from URLs", () => {
    expect(redactUrl("https://user:pw@auth.example/token?account=me&scope=x")).toBe("https://auth.example/token");
  });
});
