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

  it("gives the memory of a slab the pool does not keep back at once", () => {
    const taken = Array.from({ length: 17 }, takeSlab);
    for (const s of taken) s.buf.fill(1);
    expect(idleSlabs()).toBe(0);
    for (const s of taken) s.unref();
    expect(idleSlabs()).toBe(16);
    // The 17th found the pool full: its memory is unmapped, a stale view of it sees no bytes at all.
    expect(taken.map((s) => s.buf.byteLength)).toEqual([...Array<number>(16).fill(SLAB_SIZE), 0]);
  });

  it("gives idle slabs' memory back after a quiet second, and has it again when one is taken", async () => {
    const s = takeSlab();
    const takenAt = Date.now();
    s.buf.fill(7);
    s.unref();
    expect(s.buf.byteLength).toBe(SLAB_SIZE);
    // The pool's timer runs about a second after the last take; a loaded machine may run it late.
    while (s.buf.byteLength > 0 && Date.now() - takenAt < 20_000) await new Promise((r) => setTimeout(r, 50));
    expect(s.buf.byteLength).toBe(0);
    expect(Date.now() - takenAt).toBeGreaterThanOrEqual(1_000);
    const again = takeSlab();
    expect(again).toBe(s);
    expect(again.buf.byteLength).toBe(SLAB_SIZE);
    expect(again.buf.every((b) => b === 0)).toBe(true);
    again.unref();
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
