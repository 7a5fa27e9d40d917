// Hostile or odd referrers answers, from a scripted upstream (a real registry cannot be made to send
// them): malformed lists are refused with a 502 and never cached, pages are followed only while they
// stay on the same list, and an upstream that pages forever is cut off. test/integration/referrers.test.ts
// proves the real-registry path.
import { describe, expect, it } from "vitest";
import { cleanUpAfterEach, digestOf, fake, get, mirrorFor, within } from "../support/fault-harness.js";

const INDEX = "application/vnd.oci.image.index.v1+json";
const SUBJECT = digestOf(Buffer.from("subject"));
const PATH = `/v2/library/app/referrers/${SUBJECT}`;

function entry(n: number) {
  return { mediaType: "application/vnd.oci.image.manifest.v1+json", digest: digestOf(Buffer.from(`referrer ${n}`)), size: 100 + n, artifactType: "application/vnd.example+json" };
}

describe("referrers from a hostile upstream", () => {
  cleanUpAfterEach();

  const malformed: [string, string][] = [
    ["not JSON", "<html>captive portal</html>"],
    ["manifests is not a list", JSON.stringify({ schemaVersion: 2, manifests: "all of them" })],
    ["a descriptor without a digest", JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: "application/vnd.oci.image.manifest.v1+json", size: 3 }] })],
    ["a descriptor whose media type could split a header", JSON.stringify({ schemaVersion: 2, manifests: [{ ...entry(1), mediaType: "text/html\r\nx: y" }] })],
  ];
  for (const [what, body] of malformed) {
    it(`refuses ${what} with a 502 and caches nothing`, async () => {
      const up = await fake();
      up.on(/\/referrers\//, (_req, res) => {
        res.setHeader("content-type", INDEX);
        res.end(body);
      });
      const { mirror } = await mirrorFor(up.url);
      for (let i = 0; i < 2; i++) {
        const r = within(await get(`${mirror.url}${PATH}`));
        expect(r.status).toBe(502);
      }
      // Nothing was cached: the second request asked upstream again.
      expect(up.count("GET", "/referrers/")).toBe(2);
    });
  }

  it("follows the upstream's pages of one list and merges them", async () => {
    const up = await fake();
    up.on(/\/referrers\//, (req, res) => {
      res.setHeader("content-type", INDEX);
      if (!req.url?.includes("last=")) res.setHeader("link", `<${PATH}?n=1&last=a>; rel="next"`);
      res.end(JSON.stringify({ schemaVersion: 2, mediaType: INDEX, manifests: [entry(req.url?.includes("last=") ? 2 : 1)] }));
    });
    const { mirror } = await mirrorFor(up.url);
    const r = within(await get(`${mirror.url}${PATH}`));
    expect(r.status).toBe(200);
    expect(r.headers["x-mirror-referrers-source"]).toBe("api");
    expect((JSON.parse(r.body.toString()) as { manifests: unknown[] }).manifests).toEqual([entry(1), entry(2)]);
  });

  it("never follows a next link that leaves the list (another repository, another host)", async () => {
    const up = await fake();
    up.on(/\/referrers\//, (_req, res) => {
      res.setHeader("content-type", INDEX);
      res.setHeader("link", `<http://127.0.0.1:9/v2/library/other/referrers/${SUBJECT}?last=a>; rel="next"`);
      res.end(JSON.stringify({ schemaVersion: 2, mediaType: INDEX, manifests: [entry(1)] }));
    });
    const { mirror } = await mirrorFor(up.url);
    const r = within(await get(`${mirror.url}${PATH}`));
    expect(r.status).toBe(200);
    expect((JSON.parse(r.body.toString()) as { manifests: unknown[] }).manifests).toEqual([entry(1)]);
    expect(up.seen.filter((s) => s.url.includes("/other/"))).toHaveLength(0);
  });

  it("cuts off an upstream that pages forever", async () => {
    const up = await fake();
    up.on(/\/referrers\//, (_req, res) => {
      res.setHeader("content-type", INDEX);
      res.setHeader("link", `<${PATH}?last=again>; rel="next"`);
      res.end(JSON.stringify({ schemaVersion: 2, mediaType: INDEX, manifests: [entry(1)] }));
    });
    const { mirror } = await mirrorFor(up.url);
    const r = within(await get(`${mirror.url}${PATH}`));
    expect(r.status).toBe(502);
    expect(up.count("GET", "/referrers/")).toBe(16);
  });

  it("passes an upstream's refusal on as the client's error, not an empty list", async () => {
    const up = await fake();
    up.on(/\/referrers\//, (_req, res) => {
      res.statusCode = 403;
      res.setHeader("content-type", "application/json");
      res.end('{"errors":[{"code":"DENIED","message":"no"}]}');
    });
    const { mirror } = await mirrorFor(up.url);
    const r = within(await get(`${mirror.url}${PATH}`));
    expect(r.status).toBe(403);
  });
});
