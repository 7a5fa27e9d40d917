// The mirror under test, started in-process on a free loopback port with its own cache folder,
// plus what tests read from it from the outside: X-Mirror-Cache headers and /metrics.
import type { ConfigInput } from "../../src/config/schema.js";
import { startMirror, type RunningMirror } from "../../src/server.js";
import { makeTempDir, removeTempDir } from "./scratch.js";

export interface TestMirror {
  readonly url: string;
  /** 127.0.0.1:PORT, as written in image references and registries.conf. */
  readonly host: string;
  readonly storage: string;
  close(): Promise<void>;
}

/**
 * Starts a mirror whose only upstreams are `upstreams` (name → URL); nothing built in,
 * so a request can reach no registry the test did not start.
 */
export async function startTestMirror(
  upstreams: Record<string, string>,
  extra: Omit<ConfigInput, "listen" | "storage" | "upstreams" | "builtinUpstreams"> = {},
): Promise<TestMirror> {
  const storage = await makeTempDir("mirror");
  let running: RunningMirror;
  try {
    running = await startMirror({
      listen: "127.0.0.1:0",
      storage,
      builtinUpstreams: false,
      defaultUpstream: "docker.io",
      upstreams: Object.fromEntries(Object.entries(upstreams).map(([name, url]) => [name, { url }])),
      logLevel: "silent",
      ...extra,
    });
  } catch (err) {
    await removeTempDir(storage);
    throw err;
  }
  return {
    url: running.url,
    host: new URL(running.url).host,
    storage,
    async close() {
      await running.close(2_000);
      await removeTempDir(storage);
    },
  };
}

/** The X-Mirror-Cache answer for a HEAD on `path` (e.g. /v2/library/x/manifests/1). */
export async function cacheHeader(mirrorUrl: string, path: string, accept?: string): Promise<string | null> {
  const res = await fetch(`${mirrorUrl}${path}`, { method: "HEAD", headers: accept ? { accept } : {} });
  if (res.status !== 200) throw new Error(`HEAD ${path}: expected 200, got ${res.status}`);
  return res.headers.get("x-mirror-cache");
}

/** Sum of the samples of `name` whose labels include `labels`, read from GET /metrics. */
export async function metricValue(mirrorUrl: string, name: string, labels: Record<string, string> = {}): Promise<number> {
  const res = await fetch(`${mirrorUrl}/metrics`);
  if (res.status !== 200) throw new Error(`GET /metrics: expected 200, got ${res.status}`);
  let sum = 0;
  for (const line of (await res.text()).split("\n")) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})? (\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const sample = Object.fromEntries([...(m[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1], l[2]]));
    if (Object.entries(labels).every(([k, v]) => sample[k] === v)) sum += Number(m[3]);
  }
  return sum;
}
