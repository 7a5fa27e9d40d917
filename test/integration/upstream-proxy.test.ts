// Upstream traffic through a real corporate forward proxy (Debian's tinyproxy, with Basic auth): its
// log proves every upstream request crossed it, NO_PROXY bypasses it, HTTPS upstreams go through
// CONNECT; HTTPS upstreams are real distribution registries with a test CA (per-upstream `ca`).
import { spawn } from "node:child_process";
import { join } from "node:path";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig, type Env } from "../../src/config/load.js";
import type { ConfigInput } from "../../src/config/schema.js";
import { createLogger } from "../../src/observe/log.js";
import { startMirror, type RunningMirror } from "../../src/server.js";
import { skopeoCopy } from "../support/clients.js";
import { pushImage } from "../support/fixtures/push.js";
import { uniqueImage } from "../support/fixtures/sets.js";
import type { Image } from "../support/fixtures/image.js";
import { ForwardProxy } from "../support/forward-proxy.js";
import { openSslCa, openSslIssue } from "../support/openssl-certs.js";
import { requireTools } from "../support/preflight.js";
import { UpstreamRegistry } from "../support/registry.js";
import { makeTempDir, removeTempDir } from "../support/scratch.js";

const PROXY_USER = "corp-user";
const PROXY_PASSWORD = "proxy-pw-9f3a1c";
/** A port nothing listens on: a proxy variable that must not be used points here. */
const DEAD_PROXY = "http://127.0.0.1:9";

describe("upstream requests through a corporate forward proxy (tinyproxy)", () => {
  let work: string;
  let proxy: ForwardProxy;
  let plain: UpstreamRegistry;
  let bypass: UpstreamRegistry;
  let secure: UpstreamRegistry;
  let caFile: string;
  let image: Image;
  const logLines: string[] = [];
  const mirrors: RunningMirror[] = [];

  /** A mirror configured the way `serve` is: environment + config input, logs kept for the credential check. */
  async function mirror(env: Env, upstreams: ConfigInput["upstreams"], extra: ConfigInput = {}): Promise<{ m: RunningMirror; warnings: string[] }> {
    const { config, warnings } = await loadConfig({
      env,
      flags: { listen: "127.0.0.1:0", storage: await makeTempDir("proxy-mirror"), builtinUpstreams: false, defaultUpstream: Object.keys(upstreams ?? {})[0], upstreams, ...extra },
    });
    const logger = createLogger("debug", { write: (s: string) => void logLines.push(s) });
    for (const w of warnings) logger.warn(w);
    const m = await startMirror(config, { logger });
    mirrors.push(m);
    return { m, warnings };
  }

  /** What a client pull asks for: the manifest by tag, then every blob. */
  async function pull(m: RunningMirror, ns: string, repo: string, tag: string): Promise<number[]> {
    const statuses: number[] = [];
    const manifest = await request(`${m.url}/v2/${repo}/manifests/${tag}?ns=${ns}`, { headers: { accept: image.manifest.mediaType } });
    statuses.push(manifest.statusCode);
    await manifest.body.text();
    for (const blob of [image.config, ...image.layers]) {
      const res = await request(`${m.url}/v2/${repo}/blobs/${blob.digest}?ns=${ns}`);
      statuses.push(res.statusCode);
      await res.body.arrayBuffer();
    }
    return statuses;
  }

  /** The requests the mirror sent to an upstream, as the upstream logged them ("GET /v2/...?..."). */
  async function mirrorRequestsAt(registry: UpstreamRegistry): Promise<string[]> {
    await registry.settle();
    return registry.log.entries.filter((e) => e.userAgent === "mirror-kit").map((e) => `${e.method} ${e.path}${e.query ? `?${e.query}` : ""}`).sort();
  }

  beforeAll(async () => {
    requireTools(["tinyproxy", "docker-registry", "openssl", "skopeo"]);
    work = await makeTempDir("upstream-proxy");
    const ca = await openSslCa(work, "corp-ca");
    caFile = ca.cert;
    const server = await openSslIssue(ca, "registry", { sans: ["IP:127.0.0.1", "DNS:localhost"] });
    proxy = await ForwardProxy.start({ basicAuth: { username: PROXY_USER, password: PROXY_PASSWORD } });
    plain = await UpstreamRegistry.start({ name: "upstream over http" });
    bypass = await UpstreamRegistry.start({ name: "upstream in NO_PROXY", shareStorageWith: plain });
    secure = await UpstreamRegistry.start({ name: "upstream over https", shareStorageWith: plain, tls: { cert: server.cert, key: server.key, ca: ca.cert } });
    image = await uniqueImage("docker");
    await pushImage(plain, "corp/app", image, "1");
  });

  afterAll(async () => {
    for (const m of mirrors) await m.close(1_000);
    await proxy?.close();
    await plain?.close();
    await bypass?.close();
    await secure?.close();
    if (work) await removeTempDir(work);
  });

  it("HTTP_PROXY: every request of a pull crosses the proxy, loopback upstream included, as absolute-form requests", async () => {
    plain.reset();
    const before = proxy.requests().length;
    const { m } = await mirror({ HTTP_PROXY: proxy.urlWithCredentials }, { "plain.test": { url: plain.url } });
    // skopeo as the client: the manifest, the config and every layer through the mirror.
    await skopeoCopy(`${new URL(m.url).host}/corp/app:1`, join(work, "oci-http"));
    const atUpstream = await mirrorRequestsAt(plain);
    expect(atUpstream.length).toBeGreaterThanOrEqual(1 + 1 + image.layers.length);
    const crossed = proxy.requests().slice(before).filter((r) => r.target.startsWith(plain.url)).map((r) => `${r.method} ${r.target.slice(plain.url.length)}`).sort();
    expect(crossed).toEqual(atUpstream);
    expect(proxy.requests().slice(before).filter((r) => r.method === "CONNECT")).toEqual([]);
  });

  it("NO_PROXY (lower case wins, as undici and curl read it): listed hosts go direct, the others still cross the proxy", async () => {
    plain.reset();
    bypass.reset();
    const before = proxy.requests().length;
    const localhostUrl = `http://localhost:${bypass.port}`;
    const { m, warnings } = await mirror(
      { http_proxy: proxy.urlWithCredentials, HTTP_PROXY: DEAD_PROXY, no_proxy: "localhost" },
      { "plain.test": { url: plain.url }, "bypass.test": { url: localhostUrl } },
    );
    expect(warnings.join("\n")).toMatch(/http_proxy and HTTP_PROXY differ; http_proxy is used/);
    expect(await pull(m, "bypass.test", "corp/app", "1")).toEqual(new Array(2 + image.layers.length).fill(200));
    expect(await pull(m, "plain.test", "corp/app", "1")).toEqual(new Array(2 + image.layers.length).fill(200));
    const seen = proxy.requests().slice(before);
    expect((await mirrorRequestsAt(bypass)).length).toBeGreaterThanOrEqual(2 + image.layers.length);
    expect(seen.filter((r) => r.target.includes(`:${bypass.port}`))).toEqual([]);
    expect(seen.filter((r) => r.target.startsWith(plain.url)).length).toBe((await mirrorRequestsAt(plain)).length);
  });

  it("NO_PROXY with a CIDR range (as curl and Go read it) and with host:port sends those upstreams direct", async () => {
    for (const noProxy of ["127.0.0.0/8", `127.0.0.1:${plain.port}`]) {
      plain.reset();
      const before = proxy.requests().length;
      const { m } = await mirror({ HTTP_PROXY: proxy.urlWithCredentials, NO_PROXY: noProxy }, { "plain.test": { url: plain.url } });
      expect(await pull(m, "plain.test", "corp/app", "1")).toEqual(new Array(2 + image.layers.length).fill(200));
      expect((await mirrorRequestsAt(plain)).length, noProxy).toBeGreaterThanOrEqual(2 + image.layers.length);
      expect(proxy.requests().slice(before), noProxy).toEqual([]);
    }
  });

  it("HTTPS_PROXY: an HTTPS upstream is reached through CONNECT and verified with its `ca` file", async () => {
    secure.reset();
    const before = proxy.requests().length;
    const { m } = await mirror({ HTTPS_PROXY: proxy.urlWithCredentials, HTTP_PROXY: DEAD_PROXY }, { "secure.test": { url: secure.url, ca: caFile } });
    expect(await pull(m, "secure.test", "corp/app", "1")).toEqual(new Array(2 + image.layers.length).fill(200));
    expect((await mirrorRequestsAt(secure)).length).toBeGreaterThanOrEqual(2 + image.layers.length);
    const seen = proxy.requests().slice(before);
    expect(seen.length).toBeGreaterThanOrEqual(1);
    // Only tunnels, each to the upstream's host:port: the proxy never saw a request inside them.
    expect(seen.every((r) => r.method === "CONNECT" && r.target === `127.0.0.1:${secure.port}`)).toBe(true);
  });

  it("an HTTPS upstream whose CA is not trusted fails with a clear certificate error; with its `ca` file it serves", async () => {
    const { m } = await mirror({}, { "secure.test": { url: secure.url } });
    const res = await request(`${m.url}/v2/corp/app/manifests/1?ns=secure.test`);
    const body = await res.body.text();
    expect(res.statusCode, body).toBe(503);
    expect(body).toContain("UNABLE_TO_VERIFY_LEAF_SIGNATURE: TLS certificate not trusted (give its CA in upstreams.secure.test.ca or NODE_EXTRA_CA_CERTS)");
    const { m: trusting } = await mirror({}, { "secure.test": { url: secure.url, ca: caFile } });
    expect(await pull(trusting, "secure.test", "corp/app", "1")).toEqual(new Array(2 + image.layers.length).fill(200));
  });

  it("upstream.proxy in the config does the same job and wins over the environment, which the warnings name", async () => {
    plain.reset();
    const before = proxy.requests().length;
    const { m, warnings } = await mirror({ HTTP_PROXY: DEAD_PROXY }, { "plain.test": { url: plain.url } }, { upstream: { proxy: { http: proxy.urlWithCredentials } } });
    expect(warnings.join("\n")).toContain(`upstream.proxy.http (http://***@127.0.0.1:${proxy.port}) is used instead of HTTP_PROXY (${DEAD_PROXY})`);
    expect(await pull(m, "plain.test", "corp/app", "1")).toEqual(new Array(2 + image.layers.length).fill(200));
    const crossed = proxy.requests().slice(before).filter((r) => r.target.startsWith(plain.url)).length;
    expect(crossed).toBe((await mirrorRequestsAt(plain)).length);
    expect(crossed).toBeGreaterThanOrEqual(2 + image.layers.length);
  });

  it("a proxy that asks for credentials (407) gives a clear error, for http and CONNECT alike; proxy credentials never reach a log line or a response", async () => {
    const { m } = await mirror({ HTTP_PROXY: proxy.url }, { "plain.test": { url: plain.url }, "secure.test": { url: secure.url, ca: caFile } });
    for (const ns of ["plain.test", "secure.test"]) {
      const res = await request(`${m.url}/v2/corp/app/manifests/1?ns=${ns}`);
      const body = await res.body.text();
      expect(res.statusCode, `${ns}: ${body}`).toBe(503);
      expect(body, ns).toContain("forward proxy answered 407");
    }
    const logs = logLines.join("");
    expect(logs).toContain("upstream requests go through a forward proxy");
    expect(logs).toContain(`http://127.0.0.1:${proxy.port}`);
    expect(logs).not.toContain(PROXY_PASSWORD);
    expect(logs).not.toContain(encodeURIComponent(PROXY_PASSWORD));
  });

  it("NODE_EXTRA_CA_CERTS: the mirror binary trusts that bundle for HTTPS upstreams, and refuses to start when it cannot read it", async () => {
    const storage = await makeTempDir("proxy-cli");
    const before = proxy.requests().length;
    const args = ["serve", "--listen", "127.0.0.1:0", "--storage", storage, "--upstream", `secure.test=${secure.url}`];
    const env = { PATH: process.env.PATH ?? "", HTTPS_PROXY: proxy.urlWithCredentials, NODE_EXTRA_CA_CERTS: caFile };
    const served = spawnCli(args, env);
    try {
      const url = await served.listening;
      const res = await request(`${url}/v2/corp/app/manifests/1?ns=secure.test`, { headers: { accept: image.manifest.mediaType } });
      expect(res.statusCode, await res.body.text()).toBe(200);
      expect(res.headers["docker-content-digest"]).toBe(image.manifest.digest);
      expect(proxy.requests().slice(before).filter((r) => r.method === "CONNECT" && r.target === `127.0.0.1:${secure.port}`).length).toBeGreaterThanOrEqual(1);
    } finally {
      served.child.kill("SIGTERM");
      await served.exited;
    }
    expect(served.output()).toContain("NODE_EXTRA_CA_CERTS");
    expect(served.output()).not.toContain(PROXY_PASSWORD);

    const missing = spawnCli(args, { ...env, NODE_EXTRA_CA_CERTS: join(work, "no-such-bundle.pem") });
    const code = await missing.exited;
    expect(code).not.toBe(0);
    expect(missing.output()).toMatch(/NODE_EXTRA_CA_CERTS: cannot read .*no-such-bundle\.pem: ENOENT/);
    expect(missing.output()).not.toContain("mirror-kit listening");
    await removeTempDir(storage);
  });
});

const BIN = join(import.meta.dirname, "..", "..", "dist", "cli", "main.js");

/** The built binary as a user runs it; `listening` resolves with the URL from its startup log line. */
function spawnCli(args: string[], env: Record<string, string>) {
  const child = spawn(process.execPath, [BIN, ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  const listening = new Promise<string>((resolve, reject) => {
    const onData = (c: Buffer) => {
      out += c.toString();
      const m = /"url":"([^"]+)"[^\n]*"msg":"mirror-kit listening"|"msg":"mirror-kit listening"[^\n]*"url":"([^"]+)"/.exec(out);
      if (m) resolve((m[1] ?? m[2]) as string);
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    void exited.then((code) => reject(new Error(`mirror-kit exited ${code} before listening:\n${out}`)));
  });
  listening.catch(() => undefined);
  return { child, exited, listening, output: () => out };
}
