import { describe, expect, it } from "vitest";
import { sharedRateLimit } from "./budget-share.js";

describe("what another replica says about a rate limit", () => {
  it.each([
    [{ hold: { kind: "manifest", ms: 5000 } }, { hold: { kind: "manifest", ms: 5000 } }],
    [{ budget: { limit: 100, remaining: 3, windowSeconds: 60 } }, { budget: { limit: 100, remaining: 3, windowSeconds: 60 } }],
    [{ budget: { limit: 100, remaining: 3 } }, { budget: { limit: 100, remaining: 3 } }],
    [{ hold: { kind: "everything", ms: 5000 } }, undefined],
    [{ hold: { kind: "all", ms: -1 } }, undefined],
    [{ hold: { kind: "all", ms: "5000" } }, undefined],
    [{ budget: { limit: 1.5, remaining: 3 } }, undefined],
    [{}, undefined],
    ["hold", undefined],
    [null, undefined],
  ])("%j is taken as %j", (message, expected) => {
    expect(sharedRateLimit(message)).toEqual(expected);
  });
});
