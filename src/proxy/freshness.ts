// How long a cached tag is served without asking upstream: the first matching rule of
// cache.rules (glob over upstream/name:tag), else full-semver tags never (immutable by convention),
// else the upstream's window. Pinned tags are never revalidated and never evicted (refresh asks).
import picomatch from "picomatch";
import type { TagRule, UpstreamConfig } from "../config/resolve.js";

/** 1.2.3, v1.2.3, 1.2.3-rc.1, 1.25.3-alpine: a release, which registries do not move by convention. */
const FULL_SEMVER = /^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:[-+][0-9A-Za-z.-]+)?$/;

export class FreshnessPolicy {
  private readonly rules: { test: (s: string) => boolean; rule: TagRule }[];

  constructor(
    rules: readonly TagRule[],
    private readonly semverImmutable: boolean,
  ) {
    // dot: a repository may start with one; no brace or extglob surprises in registry names.
    this.rules = rules.map((rule) => ({ test: picomatch(rule.match, { dot: true, nobrace: true, noextglob: true }), rule }));
  }

  private find(upstream: string, name: string, tag: string): TagRule | undefined {
    const key = `${upstream}/${name}:${tag}`;
    return this.rules.find((r) => r.test(key))?.rule;
  }

  /** Milliseconds a cached tag is served as is; Infinity: never revalidated unless asked. */
  windowMs(upstream: UpstreamConfig, name: string, tag: string): number {
    const rule = this.find(upstream.name, name, tag);
    if (rule?.pin || rule?.immutable) return Number.POSITIVE_INFINITY;
    if (rule?.freshnessMs !== undefined) return rule.freshnessMs;
    if (this.semverImmutable && FULL_SEMVER.test(tag)) return Number.POSITIVE_INFINITY;
    return upstream.tagFreshnessMs;
  }

  pinned(upstream: string, name: string, tag: string): boolean {
    return this.find(upstream, name, tag)?.pin === true;
  }
}
