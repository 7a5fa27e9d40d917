// Chaining keeps an upstream's credentials its own: a laptop mirror (the built binary) behind a team
// mirror (the built binary) fetches a private upstream (real distribution with htpasswd) directly,
// never through the parent, even though the parent could serve it; public images still go through
// the parent. Counted at the parent's access log and at both upstreams' logs.
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { skopeoCopy } from "../support/clients.js";
import { buildImage, type Image } from "../support/fixtures/image.js";
import { randomLayer } from "../support/fixtures/layers.js";
import { pushImage } from "../support/fixtures/push.js";
import { requireTools } from "../support/preflight.js";
import { UpstreamRegistry } from "../support/registry.js";
import { Replica } from "../support/replica.js";
import { makeTempDir, removeTempDir } from "../support/scratch.js";

const PRIVATE = "registry.team.example";

describe("a chained mirror fetches an upstream with credentials directly", () => {
  let hub: UpstreamRegistry;
  let secret: UpstreamRegistry;
  let team: Replica;
  let laptop: Replica;
  let dir: string;
  let open: Image;
  let closed: Image;

  beforeAll(async () => {
    requireTools(["docker-registry", "skopeo", "perl"]);
    dir = await makeTempDir("chain-direct");
    hub = await UpstreamRegistry.start({ name: "public upstream" });
    secret = await UpstreamRegistry.start({ name: "private upstream", basicAuth: { username: "robot", password: "robot-pass" } });
    open = buildImage({ format: "oci", layers: [await randomLayer("open.bin", 64 * 1024)] });
    closed = buildImage({ format: "oci", layers: [await randomLayer("closed.bin", 64 * 1024)] });
    await pushImage(hub, "library/mk-open", open, "1");
    await pushImage({ url: secret.url, headers: secret.authHeader() }, "team/app", closed, "1");
    const upstreams = {
      "docker.io": { url: hub.url },
      // The same private upstream, with the same robot account, on both: the parent could serve it.
      [PRIVATE]: { url: secret.url, username: "robot", password: "robot-pass", access: "anonymous" as const },
    };
    team = await Replica.start("team", dir, { storage: join(dir, "team"), defaultUpstream: "docker.io", upstreams });
    laptop = await Replica.start("laptop", dir, { storage: join(dir, "laptop"), defaultUpstream: "docker.io", upstreams, parent: { url: team.url } });
  });

  afterAll(async () => {
    await laptop?.stop();
    await team?.stop();
    await secret?.close();
    await hub?.close();
    if (dir) await removeTempDir(dir);
  });

  it("pulls the private image from its upstream, with 0 requests at the parent, and the public one through the parent", async () => {
    const host = laptop.url.replace(/^http:\/\//, "");
    await skopeoCopy(`${host}/${PRIVATE}/team/app:1`, join(dir, "closed"));
    await skopeoCopy(`${host}/library/mk-open:1`, join(dir, "open"));
    await Promise.all([hub.settle(), secret.settle()]);

    // The laptop said so at start, naming the upstream it keeps direct.
    expect(laptop.logged(/^chained: /)[0]?.directWithCredentials).toEqual([PRIVATE]);
    const atParent = team.logged(/^request$/) as { path?: string; ns?: string }[];
    // Nothing about the private upstream ever reached the parent...
    expect(atParent.filter((l) => l.ns === PRIVATE || l.path?.includes("team/app"))).toEqual([]);
    // ...while the public image came through it (the chain is working).
    expect(atParent.filter((l) => l.path?.includes("mk-open")).length).toBeGreaterThan(0);
    // The private upstream served each blob once, to the laptop (the parent never asked it).
    for (const b of [closed.config, ...closed.layers]) expect(secret.count({ method: "GET", pathIncludes: b.digest }), b.digest).toBe(1);
    // The public upstream served each public blob once, to the parent.
    for (const b of [open.config, ...open.layers]) expect(hub.count({ method: "GET", pathIncludes: b.digest }), b.digest).toBe(1);
  });
});
