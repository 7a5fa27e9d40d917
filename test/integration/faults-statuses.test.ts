// Honest statuses and safe types in front of a hostile upstream: wrong media types, control
// characters, a 40 MiB tag list, a token undici refuses to send. The mirror blames the upstream
// (502), never caches what it refuses, and one repository's trouble never closes the breaker.
import { describe, expect, it } from "vitest";
import type { FakeUpstream } from "../support/fake-upstream.js";
import { cleanUpAfterEach, digestOf, fake, get, MANIFEST_TYPE, mirrorFor, published, within } from "../support/fault-harness.js";

cleanUpAfterEach();

function manifestRoute(up: FakeUpstream, path: RegExp, body: Buffer, contentType: string): void {
  up.on(path, (req, res) => {
    res.setHeader("content-type", contentType);
    res.setHeader("docker-content-digest", digestOf(body));
    res.setHeader("content-length", String(body.byteLength));
    res.end(req.method === "HEAD" ? undefined : body);
  });
}

const errorCode = (r: { body: Buffer }) => (JSON.parse(r.body.toString()) as { errors: { code: string }[] }).errors[0]?.code;

describe("the Content-Type of a manifest", () => {
  it("serves a manifest the upstream labels text/html under the type its body names, with nosniff", async () => {
    const up = await fake();
    const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MANIFEST_TYPE, config: {}, layers: [], note: "<script>alert(1)</script>" }));
    manifestRoute(up, /\/manifests\//, body, "text/html");
    const { mirror } = await mirrorFor(up.url);
    for (const url of [`${mirror.url}/v2/library/x/manifests/1`, `${mirror.url}/v2/library/x/manifests/${digestOf(body)}`]) {
      const res = within(await get(url));
      expect([res.status, res.headers["content-type"], res.headers["x-content-type-options"]]).toEqual([200, MANIFEST_TYPE, "nosniff"]);
      expect(res.body.equals(body)).toBe(true);
    }
  });

  it("refuses (502) and never caches a manifest whose types are neither known nor allowed", async () => {
    const up = await fake();
    const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: "text/html", config: {}, layers: [] }));
    manifestRoute(up, /\/manifests\//, body, "text/html");
    const { mirror, storage } = await mirrorFor(up.url);
    const res = within(await get(`${mirror.url}/v2/library/x/manifests/1`));
    expect([res.status, errorCode(res), res.headers["content-type"]]).toEqual([502, "MANIFEST_INVALID", "application/json; charset=utf-8"]);
    expect(await published(storage)).toEqual([]);
  });

  it("serves a vendor type the configuration allows", async () => {
    const up = await fake();
    const type = "application/vnd.example.bundle.v1+json";
    const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: type, config: {}, layers: [] }));
    manifestRoute(up, /\/manifests\//, body, type);
    const { mirror } = await mirrorFor(up.url, { cache: { manifestMediaTypes: [type] } });
    const res = within(await get(`${mirror.url}/v2/library/x/manifests/1`));
    expect([res.status, res.headers["content-type"]]).toEqual([200, type]);
  });

  it("never caches a media type with a control character: every request is a clear 502, none a 500", async () => {
    const up = await fake();
    const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json\u0001", config: {}, layers: [] }));
    manifestRoute(up, /\/manifests\//, body, "application/octet-stream");
    const { mirror, storage } = await mirrorFor(up.url, { cache: { tagFreshness: "0s" } });
    for (let i = 0; i < 3; i++) {
      const res = within(await get(`${mirror.url}/v2/library/x/manifests/1`));
      expect([res.status, errorCode(res)]).toEqual([502, "MANIFEST_INVALID"]);
    }
    expect(await published(storage)).toEqual([]);
    // Refused, not remembered: each request asked upstream again.
    expect(up.count("GET", "/manifests/")).toBe(3);
  });
});

describe("statuses that say whose fault it is", () => {
  it("answers a 40 MiB tag list that the upstream will not page with a clear 502, and no stack trace", async () => {
    const up = await fake();
    const huge = Buffer.from(JSON.stringify({ name: "library/x", tags: Array.from({ length: 350_000 }, (_, i) => `${String(i).padStart(7, "0")}-${"x".repeat(110)}`) }));
    expect(huge.byteLength).toBeGreaterThan(40 * 1024 * 1024);
    up.on(/\/tags\/list/, (_req, res) => {
      res.setHeader("content-type", "application/json");
      res.end(huge);
    });
    const { mirror, logs } = await mirrorFor(up.url);
    const res = within(await get(`${mirror.url}/v2/library/x/tags/list`));
    expect([res.status, errorCode(res)]).toEqual([502, "UNAVAILABLE"]);
    expect(res.body.toString()).toContain("?n=");
    expect(logs.join("")).not.toMatch(/at .*\.(ts|js):\d+/);
  });

  it("pages a tag list too big for one answer when the upstream honours ?n=, pointing Link back at the mirror", async () => {
    const up = await fake();
    const all = Array.from({ length: 150_000 }, (_, i) => `t${String(i).padStart(7, "0")}-${"y".repeat(110)}`);
    up.on(/\/tags\/list/, (req, res) => {
      const q = new URL(req.url ?? "/", "http://x").searchParams;
      const n = q.get("n");
      res.setHeader("content-type", "application/json");
      if (n === null) return res.end(JSON.stringify({ name: "library/x", tags: all }));
      const page = all.slice(0, Number(n));
      res.setHeader("link", `</v2/library/x/tags/list?n=${n}&last=${page[page.length - 1]}>; rel="next"`);
      res.end(JSON.stringify({ name: "library/x", tags: page }));
    });
    const { mirror } = await mirrorFor(up.url);
    const res = within(await get(`${mirror.url}/v2/library/x/tags/list`));
    expect(res.status).toBe(200);
    const body = JSON.parse(res.body.toString()) as { tags: string[] };
    expect(body.tags.length).toBe(10_000);
    expect(res.headers.link).toBe(`</v2/library/x/tags/list?n=10000&last=${all[9_999]}>; rel="next"`);
  });

  it("answers an upstream 500 as 502 and an upstream 503 as 503, never as the client's fault", async () => {
    const up = await fake();
    up.on(/\/manifests\/five-hundred/, (_req, res) => {
      res.statusCode = 500;
      res.end("oops");
    });
    up.on(/\/manifests\/unavailable/, (_req, res) => {
      res.statusCode = 503;
      res.end("maintenance");
    });
    up.on(/\/manifests\/bad-request/, (_req, res) => {
      res.statusCode = 400;
      res.end("no code here");
    });
    const { mirror } = await mirrorFor(up.url);
    expect(within(await get(`${mirror.url}/v2/library/x/manifests/five-hundred`)).status).toBe(502);
    expect(within(await get(`${mirror.url}/v2/library/x/manifests/unavailable`)).status).toBe(503);
    expect(within(await get(`${mirror.url}/v2/library/x/manifests/bad-request`)).status).toBe(502);
  });

  it("gives a 401 born of an upstream refusal a WWW-Authenticate challenge", async () => {
    const up = await fake();
    up.on(/\/manifests\//, (_req, res) => {
      res.statusCode = 401;
      res.setHeader("www-authenticate", `Bearer realm="${up.url}/token",service="fake"`);
      res.end('{"errors":[{"code":"UNAUTHORIZED","message":"no"}]}');
    });
    up.on(/^\/token/, (_req, res) => {
      res.statusCode = 401;
      res.end("go away");
    });
    const { mirror } = await mirrorFor(up.url);
    const res = within(await get(`${mirror.url}/v2/library/x/manifests/1`));
    expect([res.status, errorCode(res), res.headers["www-authenticate"]]).toEqual([401, "UNAUTHORIZED", 'Basic realm="mirror-kit"']);
  });

  it("puts nosniff on every answer: errors, blobs, the base endpoint", async () => {
    const up = await fake();
    const { mirror } = await mirrorFor(up.url);
    for (const path of ["/v2/", "/v2/nothing", `/v2/library/x/blobs/sha256:${"a".repeat(64)}`, "/healthz"]) {
      const res = within(await get(`${mirror.url}${path}`));
      expect([path, res.headers["x-content-type-options"]]).toEqual([path, "nosniff"]);
    }
  });
});

describe("the circuit breaker counts only the network", () => {
  it("a token with a control character fails that request (502) but never opens the breaker for other repositories", async () => {
    const up = await fake();
    const good = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MANIFEST_TYPE, config: {}, layers: [] }));
    up.on(/\/v2\/library\/(poisoned|healthy)\/manifests\//, (req, res) => {
      if (req.url?.includes("/healthy/")) {
        res.setHeader("content-type", MANIFEST_TYPE);
        res.setHeader("docker-content-digest", digestOf(good));
        return res.end(req.method === "HEAD" ? undefined : good);
      }
      res.statusCode = 401;
      res.setHeader("www-authenticate", `Bearer realm="${up.url}/token",service="fake"`);
      res.end();
    });
    up.on(/^\/token/, (_req, res) => {
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ token: "bad\ntoken" }));
    });
    const { mirror } = await mirrorFor(up.url, { upstream: { breakerCooldown: "5m" } });
    const poisoned = within(await get(`${mirror.url}/v2/library/poisoned/manifests/1`));
    expect([poisoned.status, errorCode(poisoned)]).toEqual([502, "UNAVAILABLE"]);
    const healthy = within(await get(`${mirror.url}/v2/library/healthy/manifests/1`));
    expect(healthy.status).toBe(200);
  });

  it("one repository's 404s and 401s never open the breaker", async () => {
    const up = await fake();
    const good = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MANIFEST_TYPE, config: {}, layers: [] }));
    manifestRoute(up, /\/v2\/library\/healthy\/manifests\//, good, MANIFEST_TYPE);
    up.on(/\/v2\/library\/private\//, (_req, res) => {
      res.statusCode = 401;
      res.end('{"errors":[{"code":"UNAUTHORIZED","message":"no"}]}');
    });
    const { mirror } = await mirrorFor(up.url, { upstream: { breakerCooldown: "5m" } });
    for (let i = 0; i < 5; i++) {
      expect(within(await get(`${mirror.url}/v2/library/missing/manifests/${i}`)).status).toBe(404);
      expect(within(await get(`${mirror.url}/v2/library/private/manifests/${i}`)).status).toBe(401);
    }
    expect(within(await get(`${mirror.url}/v2/library/healthy/manifests/1`)).status).toBe(200);
  });

  it("an upstream that stops answering opens it: the next miss fails fast with 503", async () => {
    const up = await fake();
    const { mirror } = await mirrorFor(up.url, { upstream: { breakerCooldown: "5m" } });
    await up.close();
    const first = within(await get(`${mirror.url}/v2/library/x/manifests/1`));
    expect([first.status, errorCode(first)]).toEqual([503, "UNAVAILABLE"]);
    const second = within(await get(`${mirror.url}/v2/library/y/manifests/1`));
    expect([second.status, errorCode(second)]).toEqual([503, "UNAVAILABLE"]);
    expect(second.body.toString()).toContain("skipped");
  });
});
