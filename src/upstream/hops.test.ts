// Chaining loops: a request that comes back to a mirror it passed is refused with 508 naming the
// chain, and a request carries every mirror it passed on to the parent requests it causes.
import { describe, expect, it } from "vitest";
import { MAX_HOPS, parseVia, viaForParent, withHops } from "./hops.js";

const A = "aaaaaaaaaaaa";
const B = "bbbbbbbbbbbb";
const C = "cccccccccccc";

describe("the via header", () => {
  it.each([
    [undefined, []],
    [`${A}, ${B}`, [A, B]],
    [[A, B], [A, B]],
    [`${A}, not-an-id, ${"x".repeat(12)}, ${B}`, [A, B]],
  ])("%j reads as %j", (header, ids) => {
    expect(parseVia(header)).toEqual(ids);
  });
});

describe("withHops", () => {
  it("passes every mirror so far, then this one, to the parent, also across awaits", async () => {
    const sent = await withHops(C, [A, B], async () => {
      await new Promise((r) => setTimeout(r, 5));
      return viaForParent(C);
    });
    expect(sent).toBe(`${A}, ${B}, ${C}`);
    expect(viaForParent(C)).toBe(C); // outside any request: this mirror alone
  });

  it("refuses a request that passed this mirror already: 508, naming the loop", () => {
    let thrown: unknown;
    try {
      withHops(A, [A, B], () => "served");
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toMatchObject({ code: "UNAVAILABLE", status: 508, message: expect.stringContaining(`this mirror (${A}) is its own parent through ${A} -> ${B} -> ${A}`) });
  });

  it("refuses a chain longer than the limit even without a repeated id", () => {
    const hops = Array.from({ length: MAX_HOPS }, (_, i) => i.toString(16).padStart(12, "0"));
    expect(() => withHops(C, hops, () => "served")).toThrowError(expect.objectContaining({ status: 508, message: expect.stringContaining(`more than ${MAX_HOPS} mirrors`) }));
    expect(withHops(C, hops.slice(1), () => "served")).toBe("served");
  });
});
