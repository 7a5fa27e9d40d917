// The Redis coordinator against Debian's redis-server: leases are exclusive across replicas, a
// release wakes waiters at once (with the holder's failure), a dead holder's lease lapses, and with
// Redis down or restarted a replica goes on alone within a bounded wait, then coordinates again.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ClusterFlight } from "../../src/cluster/flight.js";
import { RedisCoordinator, type RedisCoordinatorOptions } from "../../src/cluster/redis.js";
import { createLogger } from "../../src/observe/log.js";
import { eventually } from "../support/eventually.js";
import { freePort, RedisServer } from "../support/redis-server.js";

const log = createLogger("silent");
let redis: RedisServer;
const open: RedisCoordinator[] = [];

function options(over: Partial<RedisCoordinatorOptions> = {}): RedisCoordinatorOptions {
  return { host: "127.0.0.1", port: redis.port, db: 0, tls: false, keyPrefix: `t${Date.now()}:`, leaseMs: 1_500, timeoutMs: 1_000, log, ...over };
}

async function replica(over: Partial<RedisCoordinatorOptions> = {}): Promise<RedisCoordinator> {
  const c = await RedisCoordinator.connect(options(over));
  open.push(c);
  return c;
}

beforeAll(async () => {
  redis = await RedisServer.start({ password: "s3cret pass" });
});

afterAll(async () => {
  for (const c of open) await c.close();
  await redis?.stop();
});

describe("redis coordinator", () => {
  it("grants a lease to one replica at a time and wakes a waiter as soon as it is released", async () => {
    const prefix = `a${Date.now()}:`;
    const [a, b] = [await replica({ keyPrefix: prefix, password: "s3cret pass" }), await replica({ keyPrefix: prefix, password: "s3cret pass" })];
    expect(a.health()).toEqual({ ok: true, mode: "redis" });
    const lease = await a.tryLease("blob:x");
    expect(lease?.held).toBe(true);
    expect(await b.tryLease("blob:x")).toBeUndefined();
    // Held past several lease lengths: the holder's renewals keep it.
    await new Promise((r) => setTimeout(r, 3_500));
    expect(await b.tryLease("blob:x")).toBeUndefined();
    const started = Date.now();
    const waited = b.waitRelease("blob:x", 20_000);
    await lease?.release({ source: "docker.io|library/x", code: "BLOB_UNKNOWN", status: 404, message: "upstream docker.io: blob unknown" });
    expect(await waited).toEqual({ source: "docker.io|library/x", code: "BLOB_UNKNOWN", status: 404, message: "upstream docker.io: blob unknown" });
    expect(Date.now() - started).toBeLessThan(10_000);
    const next = await b.tryLease("blob:x");
    expect(next?.held).toBe(true);
    await next?.release();
  }, 30_000);

  it("lets another replica take a lease over once its holder died without releasing it", async () => {
    const prefix = `b${Date.now()}:`;
    const holder = await replica({ keyPrefix: prefix, password: "s3cret pass", leaseMs: 600 });
    const other = await replica({ keyPrefix: prefix, password: "s3cret pass", leaseMs: 600 });
    expect(await holder.tryLease("blob:y")).toBeDefined();
    // The holder's connection goes away (its process died): nothing renews the lease any more.
    await holder.close();
    expect(await other.tryLease("blob:y")).toBeUndefined();
    const taken = await eventually(() => other.tryLease("blob:y"), (l) => l !== undefined, 10_000);
    expect(taken?.held).toBe(true);
    await taken?.release();
  }, 20_000);

  it("answers a waiter with 'published' when another replica's download lands, and with its failure for the same repository", async () => {
    const prefix = `c${Date.now()}:`;
    const a = await replica({ keyPrefix: prefix, password: "s3cret pass" });
    const b = await replica({ keyPrefix: prefix, password: "s3cret pass" });
    const flightB = new ClusterFlight({ coordinator: b, log, pollMs: 200, stallMs: 60_000 });
    const lease = await a.tryLease("blob:z");
    let published = false;
    const waiting = flightB.claim("blob:z", "docker.io|library/z", async () => published);
    await new Promise((r) => setTimeout(r, 500));
    published = true;
    await lease?.release();
    expect(await waiting).toBe("published");

    const lease2 = await a.tryLease("blob:w");
    const waiting2 = flightB.claim("blob:w", "docker.io|library/w", async () => false);
    await new Promise((r) => setTimeout(r, 300));
    await lease2?.release({ source: "docker.io|library/w", code: "BLOB_UNKNOWN", status: 404, message: "upstream docker.io: blob unknown to registry" });
    await expect(waiting2).rejects.toMatchObject({ code: "BLOB_UNKNOWN", status: 404 });
  }, 20_000);

  it("starts within a bounded wait when Redis is not there, says so, and goes on alone", async () => {
    const started = Date.now();
    const c = await replica({ port: await freePort(), timeoutMs: 500 });
    expect(Date.now() - started).toBeLessThan(5_000);
    const health = c.health();
    expect(health.ok).toBe(false);
    expect(health.ok ? "" : health.reason).toMatch(/^redis 127\.0\.0\.1:\d+ unreachable/);
    // A lease that coordinates nothing: this replica downloads by itself.
    const lease = await c.tryLease("blob:alone");
    expect(lease?.held).toBe(true);
    expect(await c.addUsage(10)).toBeUndefined();
  }, 15_000);

  it("refuses a wrong password as unhealthy, without the password in its reason", async () => {
    const c = await replica({ password: "wrong one", timeoutMs: 800 });
    const health = await eventually(async () => c.health(), (h) => !h.ok, 5_000);
    expect(health.ok).toBe(false);
    expect(JSON.stringify(health)).not.toContain("wrong one");
  }, 15_000);

  it("goes on alone while Redis restarts and coordinates again once it is back", async () => {
    const prefix = `d${Date.now()}:`;
    const a = await replica({ keyPrefix: prefix, password: "s3cret pass", timeoutMs: 500 });
    const b = await replica({ keyPrefix: prefix, password: "s3cret pass", timeoutMs: 500 });
    await redis.kill();
    await eventually(async () => a.health().ok, (ok) => !ok, 10_000);
    const started = Date.now();
    const alone = await a.tryLease("blob:r");
    expect(alone?.held).toBe(true);
    expect(Date.now() - started).toBeLessThan(2_000);
    await alone?.release();
    await redis.start();
    await eventually(async () => a.health().ok && b.health().ok, (ok) => ok, 15_000);
    const lease = await a.tryLease("blob:r2");
    expect(lease?.held).toBe(true);
    expect(await b.tryLease("blob:r2")).toBeUndefined();
    // The waiter's subscription came back too: a release wakes it long before its poll.
    const waited = b.waitRelease("blob:r2", 30_000);
    const t = Date.now();
    await lease?.release();
    await waited;
    expect(Date.now() - t).toBeLessThan(10_000);
  }, 60_000);

  it("goes on alone while Redis hangs, and coordinates again by itself once it answers", async () => {
    const prefix = `e${Date.now()}:`;
    const a = await replica({ keyPrefix: prefix, password: "s3cret pass", timeoutMs: 300 });
    const b = await replica({ keyPrefix: prefix, password: "s3cret pass", timeoutMs: 300 });
    redis.pause();
    try {
      // Commands time out on a connection that stays open: a few in a row count as an outage.
      for (let i = 0; i < 3; i++) await a.get("x");
      expect(a.health()).toMatchObject({ ok: false, reason: expect.stringContaining("took longer than 300 ms") });
      const started = Date.now();
      const alone = await a.tryLease("blob:h");
      expect(alone?.held).toBe(true);
      expect(Date.now() - started).toBeLessThan(1_000);
      await alone?.release();
    } finally {
      redis.resume();
    }
    // No reconnect happens (the connection never dropped): the replica notices by itself.
    await eventually(async () => a.health().ok, (ok) => ok, 10_000);
    const lease = await a.tryLease("blob:h2");
    expect(lease?.held).toBe(true);
    expect(await b.tryLease("blob:h2")).toBeUndefined();
    await lease?.release();
  }, 30_000);
});
