import { describe, expect, it } from "vitest";
import { UpstreamError } from "./errors.js";
import { parseTokenResponse, TokenCache } from "./tokens.js";

const NOW = Date.parse("2026-12-07T12:00:00Z");

describe("a token endpoint's answer", () => {
  it.each([
    ["token", '{"token":"t1"}', "Bearer t1", NOW + 50_000],
    ["OAuth2 access_token", '{"access_token":"t2","expires_in":300}', "Bearer t2", NOW + 290_000],
    ["issued_at in the past shortens the life", '{"token":"t3","expires_in":60,"issued_at":"2026-12-07T11:59:30Z"}', "Bearer t3", NOW + 20_000],
    ["issued_at in the future (a skewed clock) does not stretch it", '{"token":"t4","issued_at":"2026-12-07T13:00:00Z"}', "Bearer t4", NOW + 50_000],
    ["a non-positive expires_in means the default 60 s", '{"token":"t5","expires_in":0}', "Bearer t5", NOW + 50_000],
  ])("%s", (_case, body, header, expiresAt) => {
    expect(parseTokenResponse("docker.io", body, NOW)).toEqual({ header, expiresAt });
  });

  it.each([
    ["not JSON", "<html>", "token endpoint sent invalid JSON"],
    ["JSON null", "null", "token endpoint sent no token"],
    ["no token field", '{"expires_in":60}', "token endpoint sent no token"],
    ["a token that is not a string", '{"token":42}', "token endpoint sent no token"],
  ])("%s is an authentication failure (401)", (_case, body, message) => {
    let caught: unknown;
    try {
      parseTokenResponse("docker.io", body, NOW);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(UpstreamError);
    expect((caught as UpstreamError).message).toContain(message);
    expect((caught as UpstreamError).status).toBe(401);
  });
});

describe("the token cache", () => {
  const token = (name: string, ttlMs = 60_000) => ({ header: `Bearer ${name}`, expiresAt: Date.now() + ttlMs });

  it("asks the endpoint once for any number of concurrent callers of one scope", async () => {
    const cache = new TokenCache();
    let requests = 0;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const request = async () => {
      requests++;
      await gate;
      return token("shared");
    };
    const callers = Array.from({ length: 10 }, () => cache.obtain("repository:a:pull", request));
    release();
    expect(await Promise.all(callers)).toEqual(Array(10).fill("Bearer shared"));
    expect(requests).toBe(1);
    expect(cache.get("repository:a:pull")).toBe("Bearer shared");
  });

  it("gives every waiter the flight's failure, and asks again afterwards", async () => {
    const cache = new TokenCache();
    let requests = 0;
    const failing = async () => {
      requests++;
      throw new UpstreamError("docker.io", "status", "token endpoint answered 500", 500);
    };
    const results = await Promise.allSettled([cache.obtain("s", failing), cache.obtain("s", failing)]);
    expect(results.map((r) => r.status)).toEqual(["rejected", "rejected"]);
    expect(requests).toBe(1);
    expect(await cache.obtain("s", async () => token("second"))).toBe("Bearer second");
  });

  it("a caller whose signal fires stops waiting; the flight still serves the others", async () => {
    const cache = new TokenCache();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const request = async () => {
      await gate;
      return token("late");
    };
    const abort = new AbortController();
    const impatient = cache.obtain("s", request, abort.signal);
    const patient = cache.obtain("s", request);
    abort.abort(new Error("caller gave up"));
    await expect(impatient).rejects.toThrow("caller gave up");
    release();
    expect(await patient).toBe("Bearer late");
  });

  it("does not hand out an expired token", async () => {
    const cache = new TokenCache();
    await cache.obtain("s", async () => ({ header: "Bearer old", expiresAt: Date.now() - 1 }));
    expect(cache.get("s")).toBeUndefined();
  });

  it("stays bounded: expired tokens go first, then the oldest", async () => {
    const cache = new TokenCache(3);
    await cache.obtain("expired", async () => ({ header: "Bearer x", expiresAt: Date.now() - 1 }));
    for (const s of ["a", "b"]) await cache.obtain(s, async () => token(s));
    await cache.obtain("c", async () => token("c"));
    expect(cache.size).toBe(3);
    expect(["a", "b", "c"].map((s) => cache.get(s))).toEqual(["Bearer a", "Bearer b", "Bearer c"]);
    await cache.obtain("d", async () => token("d"));
    expect(cache.size).toBe(3);
    expect(cache.get("a")).toBeUndefined();
    expect(cache.get("d")).toBe("Bearer d");
  });

  it("a full cache makes room once per token, however many callers waited for it", async () => {
    const cache = new TokenCache(3);
    for (const s of ["a", "b", "c"]) await cache.obtain(s, async () => token(s));
    const request = async () => token("d");
    await Promise.all(Array.from({ length: 5 }, () => cache.obtain("d", request)));
    expect(["a", "b", "c", "d"].map((s) => cache.get(s))).toEqual([undefined, "Bearer b", "Bearer c", "Bearer d"]);
  });
});
