import { describe, expect, it } from "vitest";
import { PaceMeter } from "./pace.js";

function meter() {
  let now = 0;
  const m = new PaceMeter({ bytesPerSecond: 1000, windowMs: 1000 }, () => now);
  return { m, advance: (ms: number) => (now += ms) };
}

describe("PaceMeter (blob throughput floor)", () => {
  it("judges nothing before a window of waiting has passed", () => {
    const { m, advance } = meter();
    m.waiting();
    advance(900);
    expect(m.tick()).toBeUndefined();
    expect(m.arrived(1)).toBeUndefined();
  });

  it("calls a window below the floor slow, whether the verdict comes with a chunk or from the timer", () => {
    const a = meter();
    a.m.waiting();
    a.advance(1200);
    expect(a.m.arrived(500)).toMatch(/500 bytes in 1\.2 s .*below the floor of 1000 bytes\/s \(upstream\.minThroughput\)/);

    // Nothing arrives at all: the timer's tick judges the read still in progress.
    const b = meter();
    b.m.waiting();
    b.advance(1100);
    expect(b.m.tick()).toMatch(/0 bytes in 1\.1 s/);
  });

  it("starts a new window after a fast one, so an early burst does not excuse a later trickle", () => {
    const { m, advance } = meter();
    m.waiting();
    advance(10);
    expect(m.arrived(1_000_000)).toBeUndefined();
    m.waiting();
    advance(1000);
    expect(m.tick()).toBeUndefined(); // the burst's window closes here, fast enough
    advance(1000);
    expect(m.arrived(10)).toMatch(/10 bytes in 1\.0 s/);
  });

  it("does not count time spent outside waiting() (readers or the disk holding the download back)", () => {
    const { m, advance } = meter();
    for (let i = 0; i < 10; i++) {
      m.waiting();
      advance(5); // upstream answers at once
      expect(m.arrived(100)).toBeUndefined();
      advance(5_000); // the consumer is busy: not upstream's time
      expect(m.tick()).toBeUndefined();
    }
  });

  it("does not count a wait the process itself was held through (a timer far later than its interval)", () => {
    let now = 0;
    const m = new PaceMeter({ bytesPerSecond: 1000, windowMs: 1000 }, () => now, 300);
    m.waiting();
    for (let i = 0; i < 4; i++) {
      now += 100;
      expect(m.tick()).toBeUndefined();
    }
    now += 5_000; // the event loop was blocked: the next tick comes 5 s late
    expect(m.tick()).toBeUndefined();
    // Upstream's own silence still counts: 600 ms more of on-time ticks close the window, slow.
    let verdict: string | undefined;
    for (let i = 0; i < 6; i++) {
      now += 100;
      verdict = m.tick();
    }
    expect(verdict).toMatch(/0 bytes in 1\.0 s/);
  });
});
