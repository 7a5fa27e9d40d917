import { describe, expect, it } from "vitest";
import { batchOf, idleSlabs, SLAB_SIZE, takeSlab } from "./slabs.js";

describe("slab pool", () => {
  it("reuses a slab only once its last holder let it go", () => {
    const a = takeSlab();
    expect(a.buf.byteLength).toBe(SLAB_SIZE);
    a.ref(); // a socket write in flight
    a.unref(); // the window trimmed it
    const b = takeSlab();
    expect(b).not.toBe(a);
    a.unref(); // the write callback
    const before = idleSlabs();
    const c = takeSlab();
    expect(c).toBe(a);
    expect(idleSlabs()).toBe(before - 1);
    b.unref();
    c.unref();
  });

  it("refuses a release more than it was taken: reuse in flight would send wrong bytes", () => {
    const s = takeSlab();
    s.unref();
    expect(() => s.unref()).toThrow(/released more often/);
  });

  it("a batch releases its slabs once, however often it is told", () => {
    const s = takeSlab();
    const batch = batchOf([s.buf.subarray(0, 10)], [s.ref()]);
    batch.release();
    batch.release();
    s.unref();
    expect(() => s.unref()).toThrow();
  });
});
