// Shared by the fault-injection suites: a scriptable upstream per test, a mirror in front of it
// whose log lines are captured, and cleanup after every test even when it fails.
import { createHash } from "node:crypto";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { Writable } from "node:stream";
import { request } from "undici";
import { afterEach, expect } from "vitest";
import type { ConfigInput } from "../../src/config/schema.js";
import { createLogger } from "../../src/observe/log.js";
import { startMirror, type RunningMirror } from "../../src/server.js";
import { FakeUpstream } from "./fake-upstream.js";
import { makeTempDir, removeTempDir } from "./scratch.js";

export const MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json";

export function digestOf(b: Buffer): string {
  return `sha256:${createHash("sha256").update(b).digest("hex")}`;
}

/** Registered by the helpers below; a suite runs them with cleanUpAfterEach(). */
export const cleanups: (() => Promise<void>)[] = [];

export function cleanUpAfterEach(): void {
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
}

export async function fake(): Promise<FakeUpstream> {
  const f = await FakeUpstream.start();
  cleanups.push(() => f.close());
  return f;
}

export interface Started {
  mirror: RunningMirror;
  storage: string;
  logs: string[];
}

export async function mirrorFor(upstream: string, extra: ConfigInput = {}, upstreamExtra: Record<string, unknown> = {}): Promise<Started> {
  const storage = await makeTempDir("faults");
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      logs.push(chunk.toString());
      cb();
    },
  });
  const mirror = await startMirror(
    { listen: "127.0.0.1:0", storage, builtinUpstreams: false, upstreams: { "docker.io": { url: upstream, access: "anonymous", ...upstreamExtra } }, logLevel: "debug", ...extra },
    { logger: createLogger("debug", sink) },
  );
  cleanups.push(async () => {
    await mirror.close(500);
    await removeTempDir(storage);
  });
  return { mirror, storage, logs };
}

/**
 * What a client of the fault suites may wait for one answer, whatever the fault: generous for a
 * loaded 2-core CI machine, far below a hang (undici's own timeouts are 5 minutes).
 */
export const CLIENT_BOUND_MS = 8_000;

/** A GET to the end of its body (or its failure), with how long the client waited: `ms`. */
export async function get(url: string, headers: Record<string, string> = {}, method: "GET" | "HEAD" = "GET") {
  const started = Date.now();
  let res: Awaited<ReturnType<typeof request>>;
  try {
    res = await request(url, { headers, method });
  } catch (error) {
    // The connection was cut before the response headers went out: also a failed download.
    return { status: 0, headers: {} as Record<string, string>, body: Buffer.alloc(0), error: error as Error, ms: Date.now() - started };
  }
  try {
    const body = Buffer.from(await res.body.arrayBuffer());
    return { status: res.statusCode, headers: res.headers, body, error: undefined as Error | undefined, ms: Date.now() - started };
  } catch (error) {
    return { status: res.statusCode, headers: res.headers, body: Buffer.alloc(0), error: error as Error, ms: Date.now() - started };
  }
}

/** Asserts the client's wait was under `bound` (CLIENT_BOUND_MS unless said); returns the answer. */
export function within<T extends { ms: number }>(answer: T, bound = CLIENT_BOUND_MS): T {
  expect(answer.ms, "how long the client waited (ms)").toBeLessThan(bound);
  return answer;
}

/** Runs `work` and asserts it took less than `bound` (CLIENT_BOUND_MS unless said). */
export async function timedWithin<T>(work: Promise<T>, bound = CLIENT_BOUND_MS): Promise<T> {
  const started = Date.now();
  const value = await work;
  expect(Date.now() - started, "how long the client waited (ms)").toBeLessThan(bound);
  return value;
}

export async function published(storage: string): Promise<string[]> {
  const out: string[] = [];
  const root = join(storage, "blobs", "sha256");
  for (const prefix of await readdir(root).catch(() => [] as string[])) out.push(...(await readdir(join(root, prefix))));
  return out;
}
