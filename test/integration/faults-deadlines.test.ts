// Upstreams that answer, then trickle or stall: every exchange (manifest, tag list, token, HEAD,
// blob headers) ends at its total deadline. Clients get the cached copy (STALE) or a 504 with an
// OCI error body within a bounded wait, and every client waiting on the same flight is released.
import type { ServerResponse } from "node:http";
import { describe, expect, it } from "vitest";
import { cleanUpAfterEach, digestOf, fake, get, MANIFEST_TYPE, mirrorFor, timedWithin, within } from "../support/fault-harness.js";

cleanUpAfterEach();

// The mirror's deadline in these tests, and the bound on what a client may wait: the deadline plus
// generous slack for a loaded 2-core CI machine (today, without deadlines, these waits are unbounded).
const DEADLINE = "1s";
const BOUND_MS = 6_000;

/** Send headers, then one byte every 200 ms, forever (until the connection closes). */
function trickle(res: ServerResponse, headers: Record<string, string> = {}): void {
  res.writeHead(200, headers);
  const t = setInterval(() => res.write(" "), 200);
  res.on("close", () => clearInterval(t));
}

function manifest(tag: string): Buffer {
  return Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MANIFEST_TYPE, config: {}, layers: [], annotations: { tag } }));
}


function ociCode(body: Buffer): string | undefined {
  return (JSON.parse(body.toString()) as { errors?: { code?: string }[] }).errors?.[0]?.code;
}

describe("total deadlines on upstream exchanges", () => {
  it("a trickling manifest body answers 504 UNAVAILABLE to every waiting client within the bound, one upstream GET", async () => {
    const up = await fake();
    up.on(/\/manifests\//, (req, res) => {
      if (req.method === "HEAD") return void res.writeHead(405).end();
      trickle(res, { "content-type": MANIFEST_TYPE });
    });
    const { mirror } = await mirrorFor(up.url, { upstream: { deadline: DEADLINE } });
    const answers = await timedWithin(Promise.all([1, 2, 3, 4, 5].map(() => get(`${mirror.url}/v2/library/x/manifests/latest`))), BOUND_MS);
    for (const a of answers) {
      expect(a.status).toBe(504);
      expect(ociCode(a.body)).toBe("UNAVAILABLE");
      expect(a.body.toString()).toContain("no complete answer within 1s");
    }
    // The five clients shared one flight: one GET upstream, and it was released for all of them.
    expect(up.count("GET", "/manifests/latest")).toBe(1);
  });

  it("serves the cached tag (STALE) when HEAD reports a new digest and the GET then trickles past the deadline", async () => {
    const up = await fake();
    const v1 = manifest("v1");
    const v2 = manifest("v2");
    let current = v1;
    up.on(/\/manifests\//, (req, res) => {
      const headers = { "content-type": MANIFEST_TYPE, "docker-content-digest": digestOf(current) };
      if (req.method === "HEAD") return void res.writeHead(200, headers).end();
      if (current === v2) return trickle(res, headers);
      res.writeHead(200, headers).end(current);
    });
    const { mirror } = await mirrorFor(up.url, { upstream: { deadline: DEADLINE }, cache: { tagFreshness: "0s" } });
    expect(within(await get(`${mirror.url}/v2/library/x/manifests/1`)).body.equals(v1)).toBe(true);
    current = v2;
    const answers = await timedWithin(Promise.all([1, 2, 3].map(() => get(`${mirror.url}/v2/library/x/manifests/1`))), BOUND_MS);
    for (const a of answers) {
      expect([a.status, a.headers["x-mirror-cache"]]).toEqual([200, "STALE"]);
      expect(a.body.equals(v1)).toBe(true);
    }
  });

  it("a HEAD that never answers: the cached tag is served STALE, an uncached one answers 504, both within the bound", async () => {
    const up = await fake();
    const body = manifest("h");
    let hang = false;
    up.on(/\/manifests\//, (req, res) => {
      if (hang) return; // headers never come
      res.writeHead(200, { "content-type": MANIFEST_TYPE, "docker-content-digest": digestOf(body) }).end(req.method === "HEAD" ? undefined : body);
    });
    const { mirror } = await mirrorFor(up.url, { upstream: { deadline: DEADLINE }, cache: { tagFreshness: "0s" } });
    expect(within(await get(`${mirror.url}/v2/library/x/manifests/1`)).status).toBe(200);
    hang = true;
    const stale = within(await get(`${mirror.url}/v2/library/x/manifests/1`), BOUND_MS);
    expect([stale.status, stale.headers["x-mirror-cache"]]).toEqual([200, "STALE"]);
    const uncached = within(await get(`${mirror.url}/v2/library/x/manifests/2`), BOUND_MS);
    expect(uncached.status).toBe(504);
    expect(ociCode(uncached.body)).toBe("UNAVAILABLE");
  });

  it("a trickling tag list answers the cached tags (STALE), or 504 for a repository with none, within the bound", async () => {
    const up = await fake();
    const body = manifest("t");
    up.on(/\/tags\/list/, (_req, res) => trickle(res, { "content-type": "application/json" }));
    up.on(/\/manifests\//, (req, res) => {
      res.writeHead(200, { "content-type": MANIFEST_TYPE, "docker-content-digest": digestOf(body) }).end(req.method === "HEAD" ? undefined : body);
    });
    const { mirror } = await mirrorFor(up.url, { upstream: { deadline: DEADLINE } });
    expect(within(await get(`${mirror.url}/v2/library/x/manifests/cached-tag`)).status).toBe(200);
    const stale = within(await get(`${mirror.url}/v2/library/x/tags/list`), BOUND_MS);
    expect([stale.status, stale.headers["x-mirror-cache"]]).toEqual([200, "STALE"]);
    expect(JSON.parse(stale.body.toString())).toEqual({ name: "library/x", tags: ["cached-tag"] });
    const none = within(await get(`${mirror.url}/v2/library/empty/tags/list`), BOUND_MS);
    expect(none.status).toBe(504);
  });

  it("a trickling token realm releases every client waiting on the token flight; a cached tag is served STALE", async () => {
    const up = await fake();
    const body = manifest("tok");
    let realmTrickles = false;
    up.on(/\/manifests\//, (req, res) => {
      if (req.headers.authorization !== "Bearer t") {
        res.writeHead(401, { "www-authenticate": `Bearer realm="${up.url}/token",service="fake"` }).end();
        return;
      }
      res.writeHead(200, { "content-type": MANIFEST_TYPE, "docker-content-digest": digestOf(body) }).end(req.method === "HEAD" ? undefined : body);
    });
    up.on(/^\/token/, (_req, res) => {
      if (realmTrickles) return trickle(res, { "content-type": "application/json" });
      // Expires at once, so every later pull needs a new token.
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ token: "t", expires_in: 1 }));
    });
    const { mirror } = await mirrorFor(up.url, { upstream: { deadline: DEADLINE }, cache: { tagFreshness: "0s" } });
    expect(within(await get(`${mirror.url}/v2/library/x/manifests/1`)).status).toBe(200);
    realmTrickles = true;
    await new Promise((r) => setTimeout(r, 1_100)); // the token is expired now
    const tokensBefore = up.count("GET", "/token");
    // Different tags, one scope: separate manifest flights, one shared token flight.
    const answers = await timedWithin(Promise.all(["1", "2", "3", "4"].map((t) => get(`${mirror.url}/v2/library/x/manifests/${t}`))), BOUND_MS);
    expect([answers[0]?.status, answers[0]?.headers["x-mirror-cache"]]).toEqual([200, "STALE"]);
    for (const a of answers.slice(1)) {
      expect(a.status).toBe(504);
      expect(ociCode(a.body)).toBe("UNAVAILABLE");
    }
    expect(up.count("GET", "/token") - tokensBefore).toBe(1);
  });

  it("a blob HEAD, and a blob GET whose headers never come, answer 504 within the bound", async () => {
    const up = await fake();
    up.on(/\/blobs\//, () => undefined); // accepts the request, never answers
    const { mirror } = await mirrorFor(up.url, { upstream: { deadline: DEADLINE } });
    const digest = digestOf(Buffer.from("never sent"));
    const head = await timedWithin(fetch(`${mirror.url}/v2/library/x/blobs/${digest}`, { method: "HEAD" }), BOUND_MS);
    expect(head.status).toBe(504);
    const blob = within(await get(`${mirror.url}/v2/library/x/blobs/${digest}`), BOUND_MS);
    expect(blob.status).toBe(504);
    expect(ociCode(blob.body)).toBe("UNAVAILABLE");
  });
});
