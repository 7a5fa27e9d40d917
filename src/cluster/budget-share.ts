// Rate-limit state shared by the replicas of one cluster: a Retry-After or a budget at the reserve
// that one replica learned from an upstream is broadcast, so the others hold and back off too.
import type { Logger } from "../observe/log.js";
import type { RateLimitBudget, SharedRateLimit } from "../upstream/budget.js";
import type { Coordinator } from "./coordinator.js";

/**
 * Wire one upstream's budget to the other replicas'. A budget at the reserve is also kept in Redis
 * for its window, so a replica that starts meanwhile backs off from its first request; a hold is
 * only broadcast (it is short, and a replica that missed it meets the upstream's 429 once itself).
 */
export function shareBudget(budget: RateLimitBudget, upstream: string, coordinator: Coordinator, log: Logger, keepMs: number): void {
  const topic = `ratelimit:${upstream}`;
  const key = `ratelimit-budget:${upstream}`;
  budget.share = (learned) => {
    void coordinator.broadcast(topic, learned);
    if (learned.budget) void coordinator.put(key, JSON.stringify(learned.budget), learned.budget.windowSeconds ? learned.budget.windowSeconds * 1000 : keepMs);
  };
  coordinator.onBroadcast(topic, (message) => {
    const learned = sharedRateLimit(message);
    if (!learned) return;
    if (learned.hold) log.warn({ upstream, holdMs: learned.hold.ms, requests: learned.hold.kind }, "another replica was told to wait by this upstream (Retry-After): holding its requests here too");
    budget.learn(learned);
  });
  void coordinator.get(key).then((text) => {
    const learned = text ? sharedRateLimit({ budget: parseJson(text) }) : undefined;
    if (learned) budget.learn(learned);
  });
}

/** What another replica sent, checked field by field (it came over the network); undefined when malformed. */
export function sharedRateLimit(message: unknown): SharedRateLimit | undefined {
  if (typeof message !== "object" || message === null) return undefined;
  const m = message as { hold?: { kind?: unknown; ms?: unknown }; budget?: { limit?: unknown; remaining?: unknown; windowSeconds?: unknown } };
  const out: SharedRateLimit = {};
  if (m.hold) {
    const { kind, ms } = m.hold;
    if ((kind !== "manifest" && kind !== "all") || !isCount(ms)) return undefined;
    out.hold = { kind, ms };
  }
  if (m.budget) {
    const { limit, remaining, windowSeconds } = m.budget;
    if (!isCount(limit) || !isCount(remaining) || (windowSeconds !== undefined && !isCount(windowSeconds))) return undefined;
    out.budget = { limit, remaining, ...(windowSeconds !== undefined ? { windowSeconds } : {}) };
  }
  return out.hold || out.budget ? out : undefined;
}

function isCount(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
