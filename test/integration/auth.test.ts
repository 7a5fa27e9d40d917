// Client authentication against real parts: an htpasswd file made by Debian's `htpasswd -B`
// (apache2-utils), a real distribution upstream, skopeo with right, wrong and missing credentials.
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/load.js";
import { startMirror, type RunningMirror } from "../../src/server.js";
import { skopeoCopy } from "../support/clients.js";
import { pushImage } from "../support/fixtures/push.js";
import { uniqueImage } from "../support/fixtures/sets.js";
import type { Image } from "../support/fixtures/image.js";
import { requireTools } from "../support/preflight.js";
import { run } from "../support/process.js";
import { UpstreamRegistry } from "../support/registry.js";
import { makeTempDir, removeTempDir } from "../support/scratch.js";

const basic = (user: string, pw: string) => `Basic ${Buffer.from(`${user}:${pw}`).toString("base64")}`;

async function get(url: string, authorization?: string) {
  const res = await request(url, { headers: authorization ? { authorization } : {} });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, text };
}

/** htpasswd -B as a team admin would run it (default bcrypt cost 5). */
async function htpasswd(file: string, user: string, password: string, create: boolean) {
  await run("htpasswd", [...(create ? ["-c"] : []), "-B", "-b", file, user, password]);
}

describe("client authentication (htpasswd, bcrypt)", () => {
  let upstream: UpstreamRegistry;
  let work: string;
  let file: string;
  let image: Image;
  const mirrors: RunningMirror[] = [];

  async function mirror(extra: Record<string, unknown> = {}): Promise<RunningMirror> {
    const m = await startMirror({
      listen: "127.0.0.1:0",
      storage: await makeTempDir("auth-mirror"),
      builtinUpstreams: false,
      defaultUpstream: "docker.io",
      upstreams: { "docker.io": { url: upstream.url } },
      logLevel: "silent",
      auth: { htpasswd: { realm: "team mirror", path: file } },
      ...extra,
    });
    mirrors.push(m);
    return m;
  }

  beforeAll(async () => {
    requireTools(["htpasswd", "docker-registry", "skopeo"]);
    work = await makeTempDir("auth");
    file = join(work, "htpasswd");
    await htpasswd(file, "alice", "correct horse", true);
    await htpasswd(file, "bob", "pa:ss word", false);
    upstream = await UpstreamRegistry.start({ name: "upstream" });
    image = await uniqueImage("docker");
    await pushImage(upstream, "team/app", image, "1");
  });

  afterAll(async () => {
    for (const m of mirrors) await m.close(1_000);
    await upstream?.close();
    if (work) await removeTempDir(work);
  });

  it("answers a request without credentials with 401, the Basic challenge and an OCI error body", async () => {
    const m = await mirror();
    const res = await get(`${m.url}/v2/`);
    expect(res.status).toBe(401);
    expect(res.headers["www-authenticate"]).toBe('Basic realm="team mirror"');
    expect(JSON.parse(res.text)).toEqual({ errors: [{ code: "UNAUTHORIZED", message: "authentication required" }] });
  });

  it("puts every route behind it except /healthz: catalog, metrics, manifests, blobs, unknown paths", async () => {
    const m = await mirror();
    expect((await get(`${m.url}/healthz`)).status).toBe(200);
    for (const path of ["/v2/_catalog", "/metrics", "/v2/team/app/manifests/1", `/v2/team/app/blobs/${image.layers[0]!.digest}`, "/v2/team/app/tags/list", "/", "/api/v1/status", "/nope"]) {
      const res = await get(`${m.url}${path}`);
      expect(res.status, path).toBe(401);
      expect(res.headers["www-authenticate"], path).toBe('Basic realm="team mirror"');
    }
    expect((await get(`${m.url}/metrics`, basic("alice", "correct horse"))).status).toBe(200);
    expect((await get(`${m.url}/v2/_catalog`, basic("alice", "correct horse"))).status).toBe(200);
  });

  it("serves a user with the right password (colons allowed) and refuses wrong ones and unknown users", async () => {
    const m = await mirror();
    expect((await get(`${m.url}/v2/team/app/manifests/1`, basic("alice", "correct horse"))).status).toBe(200);
    expect((await get(`${m.url}/v2/`, basic("bob", "pa:ss word"))).status).toBe(200);
    for (const auth of [basic("alice", "Correct horse"), basic("mallory", "correct horse"), basic("alice", ""), "Bearer abc"]) {
      const res = await get(`${m.url}/v2/team/app/manifests/1`, auth);
      expect(res.status, auth).toBe(401);
      expect(res.headers["www-authenticate"]).toBe('Basic realm="team mirror"');
    }
  });

  it("skopeo --src-creds pulls with the right credentials and fails with wrong or missing ones", async () => {
    const m = await mirror();
    const host = new URL(m.url).host;
    const ok = join(work, "oci-ok");
    await skopeoCopy(`${host}/team/app:1`, ok, { creds: "alice:correct horse" });
    // skopeo rewrites the manifest into OCI form; the layers arrive byte for byte.
    for (const layer of image.layers) {
      const copied = await readFile(join(ok, "blobs", "sha256", layer.digest.slice("sha256:".length)));
      expect(copied.byteLength).toBe(layer.bytes.byteLength);
    }
    await expect(skopeoCopy(`${host}/team/app:1`, join(work, "oci-wrong"), { creds: "alice:nope" })).rejects.toThrow(/401|unauthorized|authentication required/i);
    await expect(skopeoCopy(`${host}/team/app:1`, join(work, "oci-none"))).rejects.toThrow(/401|unauthorized|authentication required/i);
  });

  it("slows down repeated failures from one address, and a later right password still works", async () => {
    const m = await mirror();
    for (let i = 0; i < 5; i++) expect((await get(`${m.url}/v2/`, basic("alice", `guess${i}`))).status).toBe(401);
    const started = Date.now();
    expect((await get(`${m.url}/v2/`, basic("alice", "guess5"))).status).toBe(401);
    expect((await get(`${m.url}/v2/`, basic("alice", "guess6"))).status).toBe(401);
    // The 6th and 7th attempts wait 200 + 400 ms before being checked.
    expect(Date.now() - started).toBeGreaterThanOrEqual(600);
    expect((await get(`${m.url}/v2/`, basic("alice", "correct horse"))).status).toBe(200);
  });

  it("picks up a user added to the file without a restart", async () => {
    const m = await mirror();
    expect((await get(`${m.url}/v2/`, basic("carol", "new one"))).status).toBe(401);
    await htpasswd(file, "carol", "new one", false);
    // The file is re-checked at most every 2 s.
    await new Promise((r) => setTimeout(r, 2_500));
    expect((await get(`${m.url}/v2/`, basic("carol", "new one"))).status).toBe(200);
  });

  it("anonymousPaths: [] puts /healthz behind auth too", async () => {
    const m = await mirror({ auth: { htpasswd: { realm: "r", path: file }, anonymousPaths: [] } });
    expect((await get(`${m.url}/healthz`)).status).toBe(401);
  });

  it("reads registry:2's auth.htpasswd from config.yml and REGISTRY_AUTH_HTPASSWD_* from the environment", async () => {
    const yml = join(work, "config.yml");
    await writeFile(yml, `version: 0.1\nhttp:\n  addr: 127.0.0.1:0\nauth:\n  htpasswd:\n    realm: from-yml\n    path: ${file}\nproxy:\n  remoteurl: ${upstream.url}\n`);
    const fromFile = await loadConfig({ file: yml, env: {} });
    expect(fromFile.config.auth.htpasswd).toEqual({ realm: "from-yml", path: file });
    const fromEnv = await loadConfig({ env: { REGISTRY_AUTH: "htpasswd", REGISTRY_AUTH_HTPASSWD_REALM: "from-env", REGISTRY_AUTH_HTPASSWD_PATH: file } });
    expect(fromEnv.config.auth.htpasswd).toEqual({ realm: "from-env", path: file });
    const storage = await makeTempDir("auth-yml");
    const m = await startMirror({ ...fromFile.config, storage, logLevel: "silent" });
    mirrors.push(m);
    const res = await get(`${m.url}/v2/`);
    expect(res.status).toBe(401);
    expect(res.headers["www-authenticate"]).toBe('Basic realm="from-yml"');
    await expect(loadConfig({ env: { REGISTRY_AUTH: "token" } })).rejects.toThrow(/REGISTRY_AUTH=token: token authentication .* not supported/);
    await expect(loadConfig({ env: { REGISTRY_AUTH: "htpasswd" } })).rejects.toThrow(/auth.htpasswd needs both realm and path \(REGISTRY_AUTH_HTPASSWD_REALM, REGISTRY_AUTH_HTPASSWD_PATH\)/);
  });
});
