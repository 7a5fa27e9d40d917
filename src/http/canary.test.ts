// doctor's canary image: which names are reserved, and that what the mirror serves for it is a
// complete, consistent image (every descriptor matches the bytes served for it) for every platform.
import { createHash } from "node:crypto";
import { gunzipSync } from "node:zlib";
import type { ServerResponse } from "node:http";
import { describe, expect, it } from "vitest";
import { parseReference } from "../oci/names.js";
import { isCanary, serveCanaryBlob, serveCanaryManifest } from "./canary.js";

/** What a serve function wrote: status, headers and body. */
function capture(serve: (res: ServerResponse) => void): { status: number; headers: Record<string, string>; body: Buffer } {
  const headers: Record<string, string> = {};
  let body: Buffer = Buffer.alloc(0);
  const res = { statusCode: 0, setHeader: (k: string, v: string) => (headers[k] = v), end: (b?: Buffer) => (body = b ?? Buffer.alloc(0)) } as unknown as ServerResponse;
  serve(res);
  return { status: res.statusCode, headers, body };
}
const sha = (b: Buffer) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

describe("the canary's name", () => {
  it.each([
    ["library/mirror-kit-canary-0123456789abcdef", true],
    ["mirror-kit-canary-0123456789abcdef", true],
    ["someone/mirror-kit-canary-0123456789abcdef", false], // a user's repository is never shadowed
    ["library/mirror-kit-canary-0123", false],
    ["library/mirror-kit-canary-0123456789abcdeg", false],
    ["library/busybox", false],
  ])("%s reserved: %s", (name, reserved) => {
    expect(isCanary(name)).toBe(reserved);
  });
});

describe("the canary image", () => {
  it("is an index of one manifest per platform, each with a config and an empty layer that match their digests", () => {
    const index = capture((res) => serveCanaryManifest(res, parseReference("latest"), false));
    expect(index.status).toBe(200);
    expect(index.headers["docker-content-digest"]).toBe(sha(index.body));
    const doc = JSON.parse(index.body.toString()) as { mediaType: string; manifests: { digest: string; size: number; platform: { architecture: string; os: string } }[] };
    expect(doc.mediaType).toBe(index.headers["content-type"]);
    expect(doc.manifests.map((m) => m.platform.architecture)).toEqual(expect.arrayContaining(["amd64", "arm64", "arm"]));
    for (const entry of doc.manifests) {
      const m = capture((res) => serveCanaryManifest(res, parseReference(entry.digest), false));
      expect(sha(m.body)).toBe(entry.digest);
      expect(m.body.byteLength).toBe(entry.size);
      const manifest = JSON.parse(m.body.toString()) as { config: { digest: string; size: number }; layers: { digest: string; size: number }[] };
      const config = capture((res) => serveCanaryBlob(res, manifest.config.digest, false));
      expect([sha(config.body), config.body.byteLength]).toEqual([manifest.config.digest, manifest.config.size]);
      const cfg = JSON.parse(config.body.toString()) as { architecture: string; os: string; rootfs: { diff_ids: string[] } };
      expect([cfg.architecture, cfg.os]).toEqual([entry.platform.architecture, entry.platform.os]);
      const layer = capture((res) => serveCanaryBlob(res, manifest.layers[0]!.digest, false));
      expect([sha(layer.body), layer.body.byteLength]).toEqual([manifest.layers[0]!.digest, manifest.layers[0]!.size]);
      expect(sha(gunzipSync(layer.body))).toBe(cfg.rootfs.diff_ids[0]);
    }
  });

  it("answers HEAD with the headers and no body, and unknown digests as unknown", () => {
    const head = capture((res) => serveCanaryManifest(res, parseReference("any-tag"), true));
    expect(head.body.byteLength).toBe(0);
    expect(Number(head.headers["content-length"])).toBeGreaterThan(0);
    const other = `sha256:${"0".repeat(64)}`;
    expect(() => capture((res) => serveCanaryManifest(res, parseReference(other), false))).toThrowError(expect.objectContaining({ code: "MANIFEST_UNKNOWN" }));
    expect(() => capture((res) => serveCanaryBlob(res, other, false))).toThrowError(expect.objectContaining({ code: "BLOB_UNKNOWN" }));
  });
});
