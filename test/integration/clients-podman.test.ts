// podman (containers/image, which never sends ?ns=) pulling through registries.conf mirrors
// that select the upstream with a path prefix: 127.0.0.1:PORT/docker.io and 127.0.0.1:PORT/ghcr.io.
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { podmanPull, writeRegistriesConf } from "../support/clients.js";
import { blobsOf, type Image } from "../support/fixtures/image.js";
import { pushImage } from "../support/fixtures/push.js";
import { buildFixtureSet, uniqueImage, type FixtureSet } from "../support/fixtures/sets.js";
import { startTestMirror, type TestMirror } from "../support/mirror.js";
import { requireTools } from "../support/preflight.js";
import { UpstreamRegistry } from "../support/registry.js";
import { makeTempDir, removeTempDir } from "../support/scratch.js";

describe("podman pulls through the mirror with registries.conf path prefixes", () => {
  let fx: FixtureSet;
  let ghcrImage: Image;
  let hub: UpstreamRegistry;
  let ghcr: UpstreamRegistry;
  let mirror: TestMirror;
  let work: string;

  const expectEachBlobFetchedOnce = (upstream: UpstreamRegistry, repo: string, image: Image): void => {
    for (const blob of blobsOf(image)) {
      const got = upstream.count({ method: "GET", pathIncludes: `/v2/${repo}/blobs/${blob.digest}` });
      expect(got, `GET ${repo} blob ${blob.digest} on ${upstream.name}:\n${upstream.log.describe()}`).toBe(1);
    }
  };

  beforeAll(async () => {
    requireTools(["podman", "docker-registry", "busybox", "tar"], { root: true });
    work = await makeTempDir("podman");
    fx = await buildFixtureSet();
    ghcrImage = await uniqueImage("oci");
    hub = await UpstreamRegistry.start({ name: "upstream docker.io" });
    ghcr = await UpstreamRegistry.start({ name: "upstream ghcr.io" });
    await pushImage(hub, "library/mk-fixture", fx.runnable, "1");
    await pushImage(ghcr, "owner/pod", ghcrImage, "1");
    mirror = await startTestMirror({ "docker.io": hub.url, "ghcr.io": ghcr.url });
    hub.reset();
    ghcr.reset();
  });

  afterAll(async () => {
    await mirror?.close();
    await hub?.close();
    await ghcr?.close();
    if (work) await removeTempDir(work);
  });

  it("pulls a docker.io and a ghcr.io image, each blob once from its own upstream", async () => {
    const conf = await writeRegistriesConf(join(work, "registries.conf"), [
      { prefix: "docker.io", location: `${mirror.host}/docker.io` },
      { prefix: "ghcr.io", location: `${mirror.host}/ghcr.io` },
    ]);
    const podman = { dir: join(work, "storage"), registriesConf: conf };

    // podman's image id is the config digest: the config arrived unchanged.
    expect(`sha256:${await podmanPull(podman, "docker.io/library/mk-fixture:1")}`).toBe(fx.runnable.config.digest);
    expect(`sha256:${await podmanPull(podman, "ghcr.io/owner/pod:1")}`).toBe(ghcrImage.config.digest);
    await hub.settle();
    await ghcr.settle();
    expectEachBlobFetchedOnce(hub, "library/mk-fixture", fx.runnable);
    expectEachBlobFetchedOnce(ghcr, "owner/pod", ghcrImage);
    expect(hub.count({ pathIncludes: "owner/" })).toBe(0);
    expect(ghcr.count({ pathIncludes: "library/" })).toBe(0);
  });
});
