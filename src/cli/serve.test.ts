import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { runServe } from "./serve.js";

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function tmp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), "mk-serve-"));
  dirs.push(d);
  return d;
}

describe("mirror-kit serve", () => {
  it("starts from flags on a free port and answers /v2/ and /healthz", async () => {
    const storage = await tmp();
    const mirror = await runServe({ listen: "127.0.0.1:0", storage, "log-level": "silent", upstream: ["docker.io=http://127.0.0.1:9"] }, {});
    try {
      const base = await fetch(`${mirror.url}/v2/`);
      expect(base.status).toBe(200);
      expect(base.headers.get("docker-distribution-api-version")).toBe("registry/2.0");
      expect(await (await fetch(`${mirror.url}/healthz`)).json()).toEqual({ status: "ok" });
      expect(mirror.config.defaultUpstream.url.href).toBe("http://127.0.0.1:9/");
    } finally {
      await mirror.close(100);
    }
  });

  it("takes a registry:2 style environment", async () => {
    const storage = await tmp();
    const mirror = await runServe({ storage, "log-level": "silent" }, { REGISTRY_HTTP_ADDR: "127.0.0.1:0", REGISTRY_PROXY_REMOTEURL: "http://127.0.0.1:9" });
    try {
      expect(mirror.config.defaultUpstream.name).toBe("127.0.0.1:9");
      expect((await fetch(`${mirror.url}/v2/`)).status).toBe(200);
    } finally {
      await mirror.close(100);
    }
  });

  it("refuses a malformed --upstream with a message saying what is expected", async () => {
    await expect(runServe({ upstream: ["ghcr.io"] }, {})).rejects.toThrow("--upstream: expected NAME=URL");
  });

  it("refuses a config file with a bad field, naming it", async () => {
    const dir = await tmp();
    const file = join(dir, "c.yml");
    await writeFile(file, "cache:\n  tagFreshness: often\n");
    await expect(runServe({ config: file }, {})).rejects.toThrow(/cache\.tagFreshness: expected a duration/);
  });

  it("says clearly when the port is taken", async () => {
    const storage = await tmp();
    const first = await runServe({ listen: "127.0.0.1:0", storage, "log-level": "silent" }, {});
    try {
      const port = new URL(first.url).port;
      await expect(runServe({ listen: `127.0.0.1:${port}`, storage: await tmp(), "log-level": "silent" }, {})).rejects.toThrow(
        `cannot listen on 127.0.0.1:${port}: the port is already in use`,
      );
    } finally {
      await first.close(100);
    }
  });

  it("says clearly when the storage folder cannot be used", async () => {
    const dir = await tmp();
    const file = join(dir, "a-file");
    await writeFile(file, "");
    await expect(runServe({ listen: "127.0.0.1:0", storage: file, "log-level": "silent" }, {})).rejects.toThrow(`cannot use storage folder ${file}`);
  });
});
