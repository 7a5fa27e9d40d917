// Chaining loops: the mirrors a request has passed through (X-Mirror-Kit-Via), carried from a
// client's request to the parent requests it causes, so a request that comes back around is refused.
import { AsyncLocalStorage } from "node:async_hooks";
import { randomBytes } from "node:crypto";
import { MirrorError } from "../oci/errors.js";

export const VIA_HEADER = "x-mirror-kit-via";
/** On a 508: the loop, for the mirror before this one (a HEAD answer has no body to carry it). */
export const LOOP_HEADER = "x-mirror-kit-loop";
/** Longer chains are refused too: a loop through replicas of one mirror (each its own id) still ends. */
export const MAX_HOPS = 8;

/** This mirror's id in via lists: random per running mirror, never derived from anything secret. */
export function newMirrorId(): string {
  return randomBytes(6).toString("hex");
}

const current = new AsyncLocalStorage<readonly string[]>();

/** The ids in a request's via header; anything that is not an id is ignored (a header is no proof). */
export function parseVia(value: string | string[] | undefined): string[] {
  const text = Array.isArray(value) ? value.join(",") : (value ?? "");
  return text
    .split(",")
    .map((s) => s.trim())
    .filter((s) => /^[0-9a-f]{12}$/.test(s))
    .slice(0, MAX_HOPS + 1);
}

/**
 * Refuse a request that already passed through this mirror (508 Loop Detected, RFC 5842), naming
 * the chain; otherwise run `work` with the request's hops, for the parent requests it causes.
 */
export function withHops<T>(self: string, hops: readonly string[], work: () => T): T {
  if (hops.includes(self) || hops.length >= MAX_HOPS) {
    const chain = [...hops.slice(hops.indexOf(self) >= 0 ? hops.indexOf(self) : 0), self].join(" -> ");
    throw new MirrorError(
      "UNAVAILABLE",
      hops.includes(self)
        ? `chaining loop: this mirror (${self}) is its own parent through ${chain}; one of these mirrors must not name the next as its parent`
        : `chaining loop: more than ${MAX_HOPS} mirrors in a row (${chain})`,
      { via: [...hops] },
      { status: 508, headers: { [LOOP_HEADER]: chain } },
    );
  }
  // A request with no hops (every client's) needs no context: viaForParent names this mirror alone
  // either way. Measured why: the first run() turns on Node's async hooks for the whole process
  // (every promise then pays for the context's propagation): 9% of the CPU of a manifest load.
  return hops.length === 0 ? work() : current.run(hops, work);
}

/** The via header value for a request this mirror sends to its parent. */
export function viaForParent(self: string): string {
  return [...(current.getStore() ?? []), self].join(", ");
}
