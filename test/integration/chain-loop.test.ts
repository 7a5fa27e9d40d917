// Chaining loops, with real mirror processes (the built binary) in front of a real distribution
// upstream: two mirrors that name each other as parent, and a ring of three. A request that comes
// back to a mirror it passed (X-Mirror-Kit-Via) is refused with 508 naming the loop: with fallback the
// mirror before it fetches from the upstream itself (one GET per blob at the upstream's log), without
// fallback the client gets that error, within a bound, and the upstream sees nothing.
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { skopeoCopy } from "../support/clients.js";
import { buildImage, type Image } from "../support/fixtures/image.js";
import { randomLayer } from "../support/fixtures/layers.js";
import { pushImage } from "../support/fixtures/push.js";
import { requireTools } from "../support/preflight.js";
import { freePort } from "../support/redis-server.js";
import { UpstreamRegistry } from "../support/registry.js";
import { Replica } from "../support/replica.js";
import { makeTempDir, removeTempDir } from "../support/scratch.js";

describe("a chaining loop is detected, never followed", () => {
  let hub: UpstreamRegistry;
  let dir: string;
  let image: Image;
  const started: Replica[] = [];

  /** Mirrors listening on ports chosen up front, each with the next one as its parent (the last's is the first). */
  async function ring(names: string[], fallback: boolean): Promise<Replica[]> {
    const ports = await Promise.all(names.map(() => freePort()));
    const out: Replica[] = [];
    for (const [i, name] of names.entries()) {
      const r = await Replica.start(name, dir, {
        listen: `127.0.0.1:${ports[i]}`,
        storage: join(dir, name),
        defaultUpstream: "docker.io",
        upstreams: { "docker.io": { url: hub.url } },
        parent: { url: `http://127.0.0.1:${ports[(i + 1) % names.length]}`, fallback },
      });
      started.push(r);
      out.push(r);
    }
    return out;
  }

  const idOf = (r: Replica) => String(r.logged(/mirror-kit listening/)[0]?.mirrorId);
  const requests = (r: Replica) => r.logged(/^request$/) as { path?: string; status?: number }[];

  beforeAll(async () => {
    requireTools(["docker-registry", "skopeo"]);
    dir = await makeTempDir("chain-loop");
    hub = await UpstreamRegistry.start({ name: "upstream docker.io" });
    image = buildImage({ format: "oci", layers: [await randomLayer("loop-a.bin", 256 * 1024), await randomLayer("loop-b.bin", 64 * 1024)] });
    await pushImage(hub, "library/mk-loop", image, "1");
  });

  afterAll(async () => {
    for (const r of started) await r.stop();
    await hub?.close();
    if (dir) await removeTempDir(dir);
  });

  it("two mirrors each other's parent: the loop is refused where it closes, and the pull completes from the upstream with one GET per blob", async () => {
    const [a, b] = await ring(["loop-a", "loop-b"], true);
    await hub.settle();
    hub.reset();
    const begun = Date.now();
    await skopeoCopy(`${a!.url.replace(/^http:\/\//, "")}/library/mk-loop:1`, join(dir, "pulled"));
    // An upper bound on the client's wait (about 1 s on a quiet machine, 6 s at load 29); without
    // detection the request bounces between the two until upstream.deadline and the pull fails.
    expect(Date.now() - begun).toBeLessThan(30_000);
    await hub.settle();
    for (const blob of [image.config, ...image.layers]) expect(hub.count({ method: "GET", pathIncludes: blob.digest }), blob.digest).toBe(1);
    // a asked b, b asked a: a saw its own id come back and refused with 508 naming both mirrors.
    const refused = requests(a!).filter((l) => l.status === 508);
    expect(refused.length).toBeGreaterThan(0);
    expect(b!.logged(/^chaining loop: the parent mirror leads back/).length).toBeGreaterThan(0);
    // What a saw: a request that had passed a, then b (its hop header), back at a.
    const res = await fetch(`${a!.url}/v2/library/mk-loop/manifests/1`, { headers: { "x-mirror-kit-via": `${idOf(a!)}, ${idOf(b!)}` } });
    expect(res.status).toBe(508);
    const body = (await res.json()) as { errors: { message: string }[] };
    expect(body.errors[0]!.message).toBe(`chaining loop: this mirror (${idOf(a!)}) is its own parent through ${idOf(a!)} -> ${idOf(b!)} -> ${idOf(a!)}; one of these mirrors must not name the next as its parent`);
  });

  it("a ring of three without fallback: the client gets the 508 and its reason, quickly, and the upstream sees nothing", async () => {
    const [c, d, e] = await ring(["loop-c", "loop-d", "loop-e"], false);
    await hub.settle();
    hub.reset();
    const begun = Date.now();
    const res = await fetch(`${c!.url}/v2/library/mk-loop/manifests/1`);
    expect(Date.now() - begun).toBeLessThan(15_000);
    expect(res.status).toBe(508);
    const message = ((await res.json()) as { errors: { message: string }[] }).errors[0]!.message;
    // Passed back along the ring, as a HEAD answer carries it (no body): the loop and what to change.
    expect(message).toContain(`chaining loop: ${[c, d, e, c].map((r) => idOf(r!)).join(" -> ")} (one of these mirrors must not name the next as its parent)`);
    // A real client is told (skopeo shows the status, not the body).
    const copy = await skopeoCopy(`${c!.url.replace(/^http:\/\//, "")}/library/mk-loop:1`, join(dir, "never")).then(
      () => "copied",
      (err: Error) => err.message,
    );
    expect(copy).toContain("508 Loop Detected");
    await hub.settle();
    expect(hub.count({ pathIncludes: "mk-loop" })).toBe(0);
  });
});
