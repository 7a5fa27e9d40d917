import { describe, expect, it } from "vitest";
import { CircuitBreaker } from "./breaker.js";
import { parseChallenge } from "./challenge.js";
import { isNetworkFailure } from "./client.js";
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
    b.recordFailure("network");
    expect(b.isOpen()).toBe(true);
    now += 29_999;
    expect(b.isOpen()).toBe(true);
    now += 2;
    expect(b.isOpen()).toBe(false);
  });
  it("opens after three 5xx answers in a row, not after one; any other answer resets the count", () => {
    const b = new CircuitBreaker(30_000);
    b.recordFailure("5xx");
    b.recordFailure("5xx");
    b.recordSuccess();
    b.recordFailure("5xx");
    b.recordFailure("5xx");
    expect(b.isOpen()).toBe(false);
    b.recordFailure("5xx");
    expect(b.isOpen()).toBe(true);
  });
  it("is disabled by a zero cooldown", () => {
    const b = new CircuitBreaker(0);
    b.recordFailure("network");
    expect(b.isOpen()).toBe(false);
  });
});

describe("upstream errors", () => {
  it.each([
    ["no answer", new UpstreamError("u", "unreachable", "ECONNREFUSED"), "UNAVAILABLE", 503, true],
    ["503", new UpstreamError("u", "status", "x", 503), "UNAVAILABLE", 503, true],
    ["500 is a bad gateway answer", new UpstreamError("u", "status", "x", 500), "UNAVAILABLE", 502, true],
    ["502", new UpstreamError("u", "status", "x", 502), "UNAVAILABLE", 502, true],
    ["an unexpected 302", new UpstreamError("u", "status", "x", 302), "UNAVAILABLE", 502, false],
    ["a 400 without a code to pass on", new UpstreamError("u", "status", "x", 400), "UNAVAILABLE", 502, false],
    ["an answer that cannot be used", new UpstreamError("u", "invalid", "UND_ERR_INVALID_ARG"), "UNAVAILABLE", 502, true],
    ["429", new UpstreamError("u", "status", "x", 429), "TOOMANYREQUESTS", 429, true],
    ["404", new UpstreamError("u", "status", "x", 404), "MANIFEST_UNKNOWN", 404, false],
    ["404 NAME_UNKNOWN", new UpstreamError("u", "status", "x", 404, "NAME_UNKNOWN"), "NAME_UNKNOWN", 404, false],
    ["401", new UpstreamError("u", "status", "x", 401), "UNAUTHORIZED", 401, false],
    ["403", new UpstreamError("u", "status", "x", 403), "DENIED", 403, false],
  ] as const)("%s maps to %s, HTTP %i (temporary: %s)", (_what, err, code, status, temporary) => {
    const out = err.toMirrorError("MANIFEST_UNKNOWN");
    expect([out.code, out.status]).toEqual([code, status]);
    expect(err.temporary()).toBe(temporary);
  });
  it.each([
    ["ECONNREFUSED", true],
    ["ECONNRESET", true],
    ["ENOTFOUND", true],
    ["ETIMEDOUT", true],
    ["UND_ERR_CONNECT_TIMEOUT", true],
    ["UND_ERR_HEADERS_TIMEOUT", true],
    ["UND_ERR_BODY_TIMEOUT", true],
    ["UND_ERR_SOCKET", true],
    ["ERR_TLS_CERT_ALTNAME_INVALID", true],
    ["DEPTH_ZERO_SELF_SIGNED_CERT", true],
    ["UND_ERR_INVALID_ARG", false],
    ["ERR_INVALID_ARG_TYPE", false],
    ["ERR_INVALID_CHAR", false],
    [undefined, false],
  ])("%s is a network failure: %s", (code, network) => {
    expect(isNetworkFailure(Object.assign(new Error("x"), code === undefined ? {} : { code }))).toBe(network);
  });
  it("redacts credentials and query strings from URLs", () => {
    expect(redactUrl("https://user:pw@auth.example/token?account=me&scope=x")).toBe("https://auth.example/token");
  });
});
