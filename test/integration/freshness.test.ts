// Freshness rules against a real distribution upstream, counted in its access log: with every tag
// revalidated on each pull (tagFreshness 0s), a full-semver tag, a tag an `immutable` rule matches
// and a tag with its own 10m window are served with no upstream request; a plain tag is revalidated;
// `mirror-kit refresh` still revalidates an immutable tag when asked.
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pushImage } from "../support/fixtures/push.js";
import { buildFixtureSet, type FixtureSet } from "../support/fixtures/sets.js";
import { cacheHeader, startTestMirror, type TestMirror } from "../support/mirror.js";
import { requireTools } from "../support/preflight.js";
import { run } from "../support/process.js";
import { UpstreamRegistry } from "../support/registry.js";

const BIN = join(import.meta.dirname, "..", "..", "dist", "cli", "main.js");
const TAGS = [
  ["library/mk-sem", "1.2.3", "HIT"],
  ["library/mk-imm", "edge", "HIT"],
  ["library/mk-ten", "latest", "HIT"],
  ["library/mk-plain", "latest", "REVALIDATED"],
] as const;

describe("freshness rules and immutable tags", () => {
  let fx: FixtureSet;
  let hub: UpstreamRegistry;
  let mirror: TestMirror;
  const head = (repo: string, tag: string) => cacheHeader(mirror.url, `/v2/${repo}/manifests/${tag}`, fx.runnable.manifest.mediaType);

  beforeAll(async () => {
    requireTools(["docker-registry"]);
    fx = await buildFixtureSet();
    hub = await UpstreamRegistry.start({ name: "upstream docker.io" });
    for (const [repo, tag] of TAGS) await pushImage(hub, repo, fx.runnable, tag);
    mirror = await startTestMirror(
      { "docker.io": hub.url },
      { cache: { tagFreshness: "0s", rules: [{ match: "docker.io/library/mk-imm:*", immutable: true }, { match: "docker.io/library/mk-ten:*", freshness: "10m" }] } },
    );
    // The first pulls cache the tags (the four share one image, so only the first is a MISS).
    for (const [repo, tag] of TAGS) await head(repo, tag);
  });

  afterAll(async () => {
    await mirror?.close();
    await hub?.close();
  });

  it.each(TAGS)("%s:%s is answered %s on the next pull", async (repo, tag, expected) => {
    await hub.settle();
    hub.reset();
    expect(await head(repo, tag)).toBe(expected);
    await hub.settle();
    expect(hub.count({ kind: "manifest", pathIncludes: `/v2/${repo}/` })).toBe(expected === "HIT" ? 0 : 1);
  });

  it("refresh revalidates an immutable tag when asked, and it is immutable again afterwards", async () => {
    await hub.settle();
    hub.reset();
    const r = await run(process.execPath, [BIN, "refresh", "--storage", mirror.storage, "--mirror", mirror.url, "mk-imm:edge"], { allowFailure: true, env: { PATH: process.env.PATH ?? "" } });
    expect(r.code, r.stderr).toBe(0);
    await hub.settle();
    expect(hub.count({ method: "HEAD", kind: "manifest", pathIncludes: "/v2/library/mk-imm/manifests/edge" })).toBe(1);
    expect(await head("library/mk-imm", "edge")).toBe("HIT");
  });
});
