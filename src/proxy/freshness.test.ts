import { describe, expect, it } from "vitest";
import { resolveConfig } from "../config/resolve.js";
import { parseConfig } from "../config/schema.js";
import { FreshnessPolicy } from "./freshness.js";

const config = resolveConfig(
  parseConfig({
    builtinUpstreams: false,
    upstreams: { "docker.io": { url: "http://10.0.0.1:5000" }, "ghcr.io": { url: "http://10.0.0.2:5000", tagFreshness: "5m" } },
    cache: {
      tagFreshness: "1m",
      rules: [
        { match: "docker.io/library/node:22", pin: true },
        { match: "docker.io/library/*:latest", freshness: "10m" },
        { match: "ghcr.io/owner/**/*:stable", immutable: true },
        { match: "ghcr.io/owner/app:1.2.3", freshness: "0s" },
      ],
    },
  }),
);
const policy = new FreshnessPolicy(config.tagRules, config.semverTagsImmutable);
const up = (name: string) => config.upstreams.get(name)!;

describe("how long a cached tag is served without asking upstream", () => {
  it.each([
    ["docker.io", "library/node", "22", Number.POSITIVE_INFINITY, "pinned"],
    ["docker.io", "library/alpine", "latest", 600_000, "a freshness rule"],
    ["docker.io", "bitnami/redis", "latest", 60_000, "* stays inside one path component"],
    ["ghcr.io", "owner/team/tool", "stable", Number.POSITIVE_INFINITY, "** crosses components; immutable"],
    ["ghcr.io", "owner/app", "1.2.3", 0, "the first matching rule wins over the semver default"],
    ["docker.io", "library/nginx", "1.27.3", Number.POSITIVE_INFINITY, "full semver: immutable by default"],
    ["docker.io", "library/nginx", "v1.27.3-alpine", Number.POSITIVE_INFINITY, "v prefix and a suffix are still full semver"],
    ["docker.io", "library/nginx", "1.27", 60_000, "not a full version: the cache-wide window"],
    ["ghcr.io", "owner/other", "edge", 300_000, "the upstream's own window"],
  ])("%s/%s:%s → %s ms (%s)", (upstream, name, tag, ms) => {
    expect(policy.windowMs(up(upstream), name, tag)).toBe(ms);
  });

  it("pins only what a pin rule matches", () => {
    expect(policy.pinned("docker.io", "library/node", "22")).toBe(true);
    expect(policy.pinned("docker.io", "library/node", "20")).toBe(false);
  });

  it("with immutableTags: none, a semver tag gets the window like any other", () => {
    const c = resolveConfig(parseConfig({ builtinUpstreams: false, upstreams: { "docker.io": { url: "http://10.0.0.1:5000" } }, cache: { immutableTags: "none" } }));
    expect(new FreshnessPolicy(c.tagRules, c.semverTagsImmutable).windowMs(c.defaultUpstream, "library/nginx", "1.27.3")).toBe(60_000);
  });

  it.each([
    [{ match: "x", freshness: "1m", pin: true }],
    [{ match: "x" }],
    [{ match: "", pin: true }],
    [{ match: "x", pin: true, ttl: "1d" }],
  ])("refuses the rule %j, naming it", (rule) => {
    expect(() => parseConfig({ cache: { rules: [rule] } })).toThrowError(/cache\.rules\.0/);
  });
});
