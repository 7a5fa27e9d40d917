// Owning the cache as a file: `mirror-kit export` writes an OCI image layout that real tools read
// (skopeo oci-archive, ctr images import); `mirror-kit import` takes it — or a `docker save` tarball —
// into an EMPTY cache, verified, and a mirror with no reachable upstream then serves the images to a
// real Docker engine. A hostile or corrupt archive is refused with nothing cached.
import { createHash } from "node:crypto";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import tar from "tar-stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ctrImageDigest, dockerPull, dockerRun, engineFallbackLines } from "../support/clients.js";
import { DockerEngine } from "../support/docker-engine.js";
import { blobsOf } from "../support/fixtures/image.js";
import { pushImage, pushIndex } from "../support/fixtures/push.js";
import { buildFixtureSet, uniqueImage, type FixtureSet } from "../support/fixtures/sets.js";
import { buildImage, type Image } from "../support/fixtures/image.js";
import { randomLayer } from "../support/fixtures/layers.js";
import { startTestMirror, type TestMirror } from "../support/mirror.js";
import { requireTools } from "../support/preflight.js";
import { run } from "../support/process.js";
import { UpstreamRegistry } from "../support/registry.js";
import { makeTempDir, removeTempDir } from "../support/scratch.js";
import { startMirror } from "../../src/server.js";

const BIN = join(import.meta.dirname, "..", "..", "dist", "cli", "main.js");
const DEAD_UPSTREAM = "http://127.0.0.1:9";

function cli(args: string[]) {
  return run(process.execPath, [BIN, ...args], { timeoutMs: 100_000, allowFailure: true, env: { PATH: process.env.PATH ?? "" } });
}

async function tarOf(entries: Record<string, Buffer | string>): Promise<Buffer> {
  const pack = tar.pack();
  for (const [name, body] of Object.entries(entries)) pack.entry({ name }, typeof body === "string" ? Buffer.from(body) : body);
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** A mirror on `storage` whose only upstream cannot be reached: whatever it serves comes from the cache. */
async function offlineMirror(storage: string) {
  return startMirror({ listen: "127.0.0.1:0", storage, builtinUpstreams: false, defaultUpstream: "docker.io", upstreams: { "docker.io": { url: DEAD_UPSTREAM } }, logLevel: "silent" });
}

describe("export and import of the cache", () => {
  let fx: FixtureSet;
  let oci: Image;
  let hub: UpstreamRegistry;
  let mirror: TestMirror;
  let work: string;
  const engines: DockerEngine[] = [];
  const closers: (() => Promise<void>)[] = [];

  const engine = async (mirrorUrl: string) => {
    const e = await DockerEngine.start({ registryMirrors: [mirrorUrl], insecureRegistries: [new URL(mirrorUrl).host] });
    engines.push(e);
    return e;
  };

  beforeAll(async () => {
    requireTools(["dockerd", "docker", "ctr", "skopeo", "docker-registry", "busybox", "tar"], { root: true });
    work = await makeTempDir("bundle");
    fx = await buildFixtureSet();
    hub = await UpstreamRegistry.start({ name: "upstream docker.io" });
    await pushImage(hub, "library/mk-exp", fx.runnable, "1");
    await pushIndex(hub, "library/mk-exp-multi", fx.multiArch, "1");
    oci = await uniqueImage("oci");
    await pushImage(hub, "library/mk-exp-oci", oci, "1");
    mirror = await startTestMirror({ "docker.io": hub.url });
  });

  afterAll(async () => {
    for (const e of engines) await e.stop();
    for (const c of closers) await c();
    await mirror?.close();
    await hub?.close();
    if (work) await removeTempDir(work);
  });

  it("exports through a mirror to an OCI layout that skopeo and ctr read by full reference", async () => {
    const out = join(work, "images.tar");
    const r = await cli(["export", "--mirror", mirror.url, "-o", out, "mk-exp:1", "mk-exp-multi:1", "mk-exp-oci:1"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("3 image(s)");

    // Debian's skopeo 1.9 looks up only OCI-typed index.json entries (the Docker-typed mk-exp:1 is
    // kept byte-exact, digest and all, for ctr and for import).
    const inspected = JSON.parse((await run("skopeo", ["inspect", `oci-archive:${out}:docker.io/library/mk-exp-oci:1`])).stdout) as { Digest: string };
    expect(inspected.Digest).toBe(oci.manifest.digest);
    const raw = JSON.parse((await run("skopeo", ["inspect", "--raw", `oci-archive:${out}:docker.io/library/mk-exp-multi:1`])).stdout) as { manifests: unknown[] };
    expect(raw.manifests).toHaveLength(2);

    const e = await engine(mirror.url);
    const ctr = { socket: e.containerdSocket, namespace: "mk-import" };
    await run("ctr", ["-a", ctr.socket, "-n", ctr.namespace, "images", "import", out]);
    expect(await ctrImageDigest(ctr, "docker.io/library/mk-exp:1")).toBe(fx.runnable.manifest.digest);
    expect(await ctrImageDigest(ctr, "docker.io/library/mk-exp-multi:1")).toBe(fx.multiArch.manifest.digest);
    expect(await ctrImageDigest(ctr, "docker.io/library/mk-exp-oci:1")).toBe(oci.manifest.digest);
  });

  it("imports an export of a cache folder into an empty cache, which then serves a Docker engine with no upstream", async () => {
    const out = join(work, "cache.tar");
    const exported = await cli(["export", "--storage", mirror.storage, "-o", out]);
    expect(exported.code, exported.stderr).toBe(0);
    // Only the host's platform of the index was ever cached: the other one is not in the archive.
    const listing = (await run("tar", ["-tf", out])).stdout;
    for (const b of blobsOf(fx.multiArch.images[1]!)) expect(listing).not.toContain(b.digest.slice(7));

    const empty = join(work, "air-gapped");
    const imported = await cli(["import", "--storage", empty, out]);
    expect(imported.code, imported.stderr).toBe(0);
    expect(imported.stdout).toContain("cached docker.io/library/mk-exp:1");

    const offline = await offlineMirror(empty);
    closers.push(() => offline.close(1_000));
    const e = await engine(offline.url);
    expect(await dockerPull(e, "mk-exp:1")).toBe(fx.runnable.manifest.digest);
    expect((await dockerRun(e, "mk-exp:1", [])).trim()).toBe(fx.marker);
    expect(await dockerPull(e, "mk-exp-multi:1")).toBe(fx.multiArch.manifest.digest);
    expect(engineFallbackLines(e)).toEqual([]);
  });

  it("imports a docker save tarball, and the image runs after a pull through a mirror with no upstream", async () => {
    const source = await engine(mirror.url);
    await dockerPull(source, "mk-exp:1");
    const saved = join(work, "saved.tar");
    await source.docker(["save", "-o", saved, "mk-exp:1"]);

    const empty = join(work, "from-docker-save");
    const imported = await cli(["import", "--storage", empty, saved]);
    expect(imported.code, imported.stderr).toBe(0);
    expect(imported.stdout).toContain("cached docker.io/library/mk-exp:1");

    const offline = await offlineMirror(empty);
    closers.push(() => offline.close(1_000));
    const e = await engine(offline.url);
    // Converted to an OCI manifest over the same config and layers: another digest, the same image.
    await dockerPull(e, "mk-exp:1");
    expect((await dockerRun(e, "mk-exp:1", [])).trim()).toBe(fx.marker);
  });

  it("a delta export leaves out what an earlier export holds; imported after it, the image is served whole", async () => {
    const delta = buildImage({ layers: [fx.runnable.layers[0]!, await randomLayer("delta.bin", 64 * 1024)] });
    await pushImage(hub, "library/mk-delta", delta, "1");
    const base = join(work, "base.tar");
    const small = join(work, "delta.tar");
    expect((await cli(["export", "--mirror", mirror.url, "-o", base, "mk-exp:1"])).code).toBe(0);
    const r = await cli(["export", "--mirror", mirror.url, "-o", small, "--exclude-from", base, "mk-delta:1"]);
    expect(r.code, r.stderr).toBe(0);
    const listing = (await run("tar", ["-tf", small])).stdout;
    expect(listing).not.toContain(fx.runnable.layers[0]!.digest.slice(7));
    expect(listing).toContain(delta.layers[1]!.digest.slice(7));

    // Alone, the delta is incomplete: refused, nothing of it tagged.
    const alone = join(work, "delta-alone");
    const refused = await cli(["import", "--storage", alone, small]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/missing from the archive/);
    expect(await readdir(join(alone, "repositories")).catch(() => [])).toEqual([]);

    const site = join(work, "delta-site");
    for (const f of [base, small]) expect((await cli(["import", "--storage", site, f])).code).toBe(0);
    const offline = await offlineMirror(site);
    closers.push(() => offline.close(1_000));
    const e = await engine(offline.url);
    expect(await dockerPull(e, "mk-delta:1")).toBe(delta.manifest.digest);
  });

  it.each([
    ["an entry that climbs out of the folder", { "oci-layout": "{}", "../evil": "x", "index.json": '{"manifests":[]}' }, /not a plain relative path/],
    ["a blob whose bytes do not match its digest", "corrupt", /does not match its digest/],
    ["an entry with only a tag for a name", "bare-tag", /no full image reference/],
  ])("refuses %s and caches nothing", async (_label, spec, message) => {
    let entries: Record<string, Buffer | string>;
    if (typeof spec !== "string") entries = spec;
    else {
      const config = Buffer.from('{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}');
      const configDigest = createHash("sha256").update(config).digest("hex");
      const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json", config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: `sha256:${configDigest}`, size: config.byteLength }, layers: [] }));
      const md = createHash("sha256").update(manifest).digest("hex");
      const name = spec === "bare-tag" ? "latest" : "docker.io/library/evil:1";
      entries = {
        "oci-layout": '{"imageLayoutVersion":"1.0.0"}',
        "index.json": JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: "application/vnd.oci.image.manifest.v1+json", digest: `sha256:${md}`, size: manifest.byteLength, annotations: { "org.opencontainers.image.ref.name": name } }] }),
        [`blobs/sha256/${md}`]: manifest,
        [`blobs/sha256/${configDigest}`]: spec === "corrupt" ? Buffer.from('{"tampered":true}') : config,
      };
    }
    const file = join(work, `hostile-${Math.random().toString(36).slice(2)}.tar`);
    await writeFile(file, await tarOf(entries));
    const storage = join(work, `hostile-${Math.random().toString(36).slice(2)}`);
    const r = await cli(["import", "--storage", storage, file]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(message);
    expect(await readdir(join(storage, "blobs")).catch(() => [])).toEqual([]);
    expect(await readdir(join(storage, "repositories")).catch(() => [])).toEqual([]);
    expect(await readFile(join(work, "evil")).catch(() => "absent")).toBe("absent");
  });
});
