import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadConfig } from "./load.js";

async function yml(text: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "mk-redis-"));
  const path = join(dir, "config.yml");
  await writeFile(path, text);
  return path;
}

describe("redis settings: mirror-kit's own, registry:2's redis.* and REGISTRY_REDIS_*", () => {
  it("has no Redis unless an address is given", async () => {
    const { config } = await loadConfig({});
    expect(config.redis).toBeUndefined();
  });

  it("reads mirror-kit's redis section with its defaults", async () => {
    const { config } = await loadConfig({ file: await yml("redis:\n  addr: redis:6379\n") });
    expect(config.redis).toEqual({ host: "redis", port: 6379, db: 0, tls: false, keyPrefix: "mirror-kit:", leaseMs: 15_000, timeoutMs: 2_000 });
  });

  it("honours registry:2's redis.addr, password, db, tls.enabled and dialtimeout", async () => {
    const { config } = await loadConfig({
      file: await yml("version: 0.1\nproxy:\n  remoteurl: https://registry-1.docker.io\nredis:\n  addr: 10.0.0.5:6380\n  password: pw\n  db: 3\n  dialtimeout: 5s\n  readtimeout: 10ms\n  pool: { maxidle: 16 }\n  tls: { enabled: true }\n"),
    });
    expect(config.redis).toMatchObject({ host: "10.0.0.5", port: 6380, password: "pw", db: 3, tls: true, timeoutMs: 5_000 });
  });

  it("honours REGISTRY_REDIS_ADDR / _PASSWORD / _DB and MIRROR_KIT_REDIS_ADDR", async () => {
    const { config } = await loadConfig({ env: { REGISTRY_REDIS_ADDR: "redis:6379", REGISTRY_REDIS_PASSWORD: "pw", REGISTRY_REDIS_DB: "2" } });
    expect(config.redis).toMatchObject({ host: "redis", port: 6379, password: "pw", db: 2 });
    const own = await loadConfig({ env: { MIRROR_KIT_REDIS_ADDR: "[::1]:7000" } });
    expect(own.config.redis).toMatchObject({ host: "::1", port: 7000 });
  });

  it.each([
    [{ REGISTRY_REDIS_ADDR: "redis" }, /redis\.addr: expected HOST:PORT/],
    [{ REGISTRY_REDIS_ADDR: "redis:99999" }, /redis\.addr: expected HOST:PORT with a port up to 65535/],
    [{ REGISTRY_REDIS_DB: "two", REGISTRY_REDIS_ADDR: "r:1" }, /REGISTRY_REDIS_DB: expected a whole number/],
    [{ REGISTRY_REDIS_PASSWORD: "pw" }, /redis\.password: needs redis\.addr/],
    [{ REGISTRY_REDIS_SENTINEL: "x" }, /REGISTRY_REDIS_SENTINEL: not a registry:2 setting/],
    [{ REGISTRY_REDIS_TLS_ENABLED: "yes", REGISTRY_REDIS_ADDR: "r:1" }, /REGISTRY_REDIS_TLS_ENABLED: expected true or false/],
  ])("refuses %o, naming it", async (env, message) => {
    await expect(loadConfig({ env })).rejects.toThrow(message);
  });

  it("never puts the password in an error message", async () => {
    const err = await loadConfig({ env: { REGISTRY_REDIS_PASSWORD: "hunter2-secret" } }).catch((e: Error) => e);
    expect(String((err as Error).message)).not.toContain("hunter2-secret");
  });

  it("refuses a lease of 0s", async () => {
    await expect(loadConfig({ file: await yml("redis:\n  addr: r:1\n  lease: 0s\n") })).rejects.toThrow(/redis\.lease: must be more than 0/);
  });
});
