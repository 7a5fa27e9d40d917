// Manifests, authentication and reachability of upstreams that misbehave: lying digests, 429s,
// 5xx, token flows and realms, an upstream that vanishes. Cached tags keep being served.
import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import type { FakeUpstream } from "../support/fake-upstream.js";
import { cleanUpAfterEach, cleanups, digestOf, fake, get, MANIFEST_TYPE, mirrorFor, published, within } from "../support/fault-harness.js";

cleanUpAfterEach();

describe("manifests from a misbehaving upstream", () => {
  it("rejects a manifest whose content does not match the digest upstream announced, as a bad gateway (502), not the client's fault", async () => {
    const up = await fake();
    const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MANIFEST_TYPE, config: {}, layers: [] }));
    const wrong = digestOf(Buffer.from("something else"));
    up.on(/\/manifests\//, (req, res) => {
      res.setHeader("content-type", MANIFEST_TYPE);
      res.setHeader("docker-content-digest", wrong);
      res.setHeader("content-length", String(body.byteLength));
      res.end(req.method === "HEAD" ? undefined : body);
    });
    const { mirror, storage } = await mirrorFor(up.url);
    const res = within(await get(`${mirror.url}/v2/library/x/manifests/latest`));
    expect(res.status).toBe(502);
    expect(JSON.parse(res.body.toString()).errors[0].code).toBe("DIGEST_INVALID");
    expect(await published(storage)).toEqual([]);
  });

  it("serves a cached tag when upstream rate-limits (429) and passes 429 on when nothing is cached", async () => {
    const up = await fake();
    const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MANIFEST_TYPE, config: {}, layers: [] }));
    let limited = false;
    up.on(/\/manifests\//, (req, res) => {
      if (limited) {
        res.statusCode = 429;
        res.setHeader("content-type", "application/json");
        res.end('{"errors":[{"code":"TOOMANYREQUESTS","message":"You have reached your pull rate limit"}]}');
        return;
      }
      res.setHeader("content-type", MANIFEST_TYPE);
      res.setHeader("docker-content-digest", digestOf(body));
      res.setHeader("content-length", String(body.byteLength));
      res.end(req.method === "HEAD" ? undefined : body);
    });
    const { mirror } = await mirrorFor(up.url, { cache: { tagFreshness: "0s" } });
    expect(within(await get(`${mirror.url}/v2/library/x/manifests/1`)).headers["x-mirror-cache"]).toBe("MISS");
    limited = true;
    const stale = within(await get(`${mirror.url}/v2/library/x/manifests/1`));
    expect([stale.status, stale.headers["x-mirror-cache"]]).toEqual([200, "STALE"]);
    expect(stale.body.equals(body)).toBe(true);
    const uncached = within(await get(`${mirror.url}/v2/library/x/manifests/2`));
    expect(uncached.status).toBe(429);
    expect(JSON.parse(uncached.body.toString()).errors[0].code).toBe("TOOMANYREQUESTS");
  });

  it("serves a cached tag when upstream answers 5xx", async () => {
    const up = await fake();
    const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MANIFEST_TYPE, config: {}, layers: [] }));
    let broken = false;
    up.on(/\/manifests\//, (req, res) => {
      if (broken) {
        res.statusCode = 502;
        res.end("bad gateway");
        return;
      }
      res.setHeader("content-type", MANIFEST_TYPE);
      res.setHeader("docker-content-digest", digestOf(body));
      res.end(req.method === "HEAD" ? undefined : body);
    });
    const { mirror } = await mirrorFor(up.url, { cache: { tagFreshness: "0s" } });
    within(await get(`${mirror.url}/v2/library/x/manifests/1`));
    broken = true;
    const res = within(await get(`${mirror.url}/v2/library/x/manifests/1`));
    expect([res.status, res.headers["x-mirror-cache"]]).toEqual([200, "STALE"]);
  });
});

describe("upstream authentication", () => {
  function tokenUpstream(up: FakeUpstream, realm: string, body: Buffer, tokens: { issued: number }) {
    up.on(/\/manifests\//, (req, res) => {
      if (req.headers.authorization !== "Bearer good-token") {
        res.statusCode = 401;
        res.setHeader("www-authenticate", `Bearer realm="${realm}",service="fake-registry",scope="repository:library/x:pull"`);
        res.end('{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}');
        return;
      }
      res.setHeader("content-type", MANIFEST_TYPE);
      res.setHeader("docker-content-digest", digestOf(body));
      res.end(req.method === "HEAD" ? undefined : body);
    });
    up.on(/^\/token/, (_req, res) => {
      tokens.issued++;
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ token: "good-token", expires_in: 300 }));
    });
  }

  it("gets a bearer token with the upstream's credentials, caches it per scope, and never shows secrets", async () => {
    const up = await fake();
    const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MANIFEST_TYPE, config: {}, layers: [] }));
    const tokens = { issued: 0 };
    tokenUpstream(up, `${up.url}/token`, body, tokens);
    const { mirror, logs } = await mirrorFor(up.url, { cache: { tagFreshness: "0s" } }, { username: "robot", password: "hunter2-secret" });
    const first = within(await get(`${mirror.url}/v2/library/x/manifests/1`));
    expect(first.status).toBe(200);
    const second = within(await get(`${mirror.url}/v2/library/x/manifests/1`));
    expect(second.headers["x-mirror-cache"]).toBe("REVALIDATED");
    expect(tokens.issued).toBe(1);
    const tokenRequest = up.seen.find((r) => r.url.startsWith("/token"));
    expect(tokenRequest?.headers.authorization).toBe(`Basic ${Buffer.from("robot:hunter2-secret").toString("base64")}`);
    expect(tokenRequest?.url).toContain("scope=repository%3Alibrary%2Fx%3Apull");
    const metrics = await get(`${mirror.url}/metrics`);
    for (const text of [logs.join(""), metrics.body.toString(), first.body.toString(), JSON.stringify(first.headers)]) {
      expect(text).not.toContain("hunter2-secret");
      expect(text).not.toContain("good-token");
      expect(text).not.toContain(Buffer.from("robot:hunter2-secret").toString("base64"));
    }
  });

  it("never sends credentials to a token realm on a host the upstream does not trust", async () => {
    const up = await fake();
    const stranger = await fake();
    const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MANIFEST_TYPE, config: {}, layers: [] }));
    const tokens = { issued: 0 };
    tokenUpstream(up, `${stranger.url.replace("127.0.0.1", "localhost")}/token`, body, tokens);
    stranger.on(/^\/token/, (_req, res) => {
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ token: "good-token" }));
    });
    const { mirror } = await mirrorFor(up.url, {}, { username: "robot", password: "hunter2-secret" });
    const res = within(await get(`${mirror.url}/v2/library/x/manifests/1`));
    expect(res.status).toBe(200);
    const asked = stranger.seen.filter((r) => r.url.startsWith("/token"));
    expect(asked.length).toBe(1);
    expect(asked[0]?.headers.authorization).toBeUndefined();
  });

  it("follows a blob redirect to a CDN without sending it the upstream's token", async () => {
    const up = await fake();
    const cdn = await fake();
    const blob = randomBytes(200_000);
    const digest = digestOf(blob);
    up.on(/\/blobs\//, (req, res) => {
      if (req.headers.authorization !== "Bearer good-token") {
        res.statusCode = 401;
        res.setHeader("www-authenticate", `Bearer realm="${up.url}/token",service="fake"`);
        res.end();
        return;
      }
      res.statusCode = 307;
      res.setHeader("location", `${cdn.url.replace("127.0.0.1", "localhost")}/cdn/${digest}?sig=abc`);
      res.end();
    });
    up.on(/^\/token/, (_req, res) => {
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ token: "good-token" }));
    });
    cdn.on(/^\/cdn\//, (_req, res) => {
      res.setHeader("content-length", String(blob.byteLength));
      res.end(blob);
    });
    const { mirror } = await mirrorFor(up.url, {}, { username: "robot", password: "hunter2-secret" });
    const res = within(await get(`${mirror.url}/v2/library/x/blobs/${digest}`));
    expect(res.body.equals(blob)).toBe(true);
    expect(cdn.seen.length).toBe(1);
    expect(cdn.seen[0]?.headers.authorization).toBeUndefined();
  });

  it("uses basic auth when the upstream asks for it", async () => {
    const up = await fake();
    const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MANIFEST_TYPE, config: {}, layers: [] }));
    const expected = `Basic ${Buffer.from("u:p").toString("base64")}`;
    up.on(/\/manifests\//, (req, res) => {
      if (req.headers.authorization !== expected) {
        res.statusCode = 401;
        res.setHeader("www-authenticate", 'Basic realm="fake"');
        res.end();
        return;
      }
      res.setHeader("content-type", MANIFEST_TYPE);
      res.setHeader("docker-content-digest", digestOf(body));
      res.end(req.method === "HEAD" ? undefined : body);
    });
    const { mirror } = await mirrorFor(up.url, {}, { username: "u", password: "p" });
    expect(within(await get(`${mirror.url}/v2/library/x/manifests/1`)).status).toBe(200);
  });

  it("answers UNAUTHORIZED when upstream refuses and the mirror has no credentials", async () => {
    const up = await fake();
    up.on(/\/manifests\//, (_req, res) => {
      res.statusCode = 401;
      res.setHeader("www-authenticate", 'Basic realm="fake"');
      res.end();
    });
    const { mirror } = await mirrorFor(up.url);
    const res = within(await get(`${mirror.url}/v2/library/x/manifests/1`));
    expect([res.status, JSON.parse(res.body.toString()).errors[0].code]).toEqual([401, "UNAUTHORIZED"]);
  });
});

describe("an unreachable upstream", () => {
  it("costs one connection attempt per cooldown, not one per request", async () => {
    const up = await fake();
    const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MANIFEST_TYPE, config: {}, layers: [] }));
    up.on(/\/manifests\//, (req, res) => {
      res.setHeader("content-type", MANIFEST_TYPE);
      res.setHeader("docker-content-digest", digestOf(body));
      res.end(req.method === "HEAD" ? undefined : body);
    });
    const url = up.url;
    const { mirror } = await mirrorFor(url, { cache: { tagFreshness: "0s" } });
    within(await get(`${mirror.url}/v2/library/x/manifests/1`));
    await up.close();
    cleanups.splice(cleanups.indexOf(cleanups[0] as () => Promise<void>), 1);
    for (let i = 0; i < 5; i++) {
      const res = within(await get(`${mirror.url}/v2/library/x/manifests/1`));
      expect([res.status, res.headers["x-mirror-cache"]]).toEqual([200, "STALE"]);
    }
    const text = (await get(`${mirror.url}/metrics`)).body.toString();
    const errors = /mirrorkit_upstream_requests_total\{[^}]*method="HEAD"[^}]*status="error"\} (\d+)/.exec(text);
    const skipped = /mirrorkit_upstream_requests_total\{[^}]*method="HEAD"[^}]*status="skipped"\} (\d+)/.exec(text);
    expect(Number(errors?.[1])).toBe(1);
    expect(Number(skipped?.[1] ?? 0)).toBe(0);
  });
});
