// Referrers made by a real tool: sigstore-js's OCI support (@sigstore/oci, the code GitHub's
// attest actions push attestations with) attaches a Sigstore bundle to an image in a real
// distribution 2.8 upstream, as an artifact whose `subject` is the image; distribution has no
// referrers API, so the tool keeps the tag-schema index (sha256-<hex>) itself. Through the mirror
// (with client auth, as the tool signs in before any read), the same tool reads the image's digest,
// the referrers API lists the bundle with its artifactType, skopeo reads the artifact's manifest,
// and all of it is still served with the upstream stopped. A second mirror with this one as its
// parent reads the list through this one's referrers API: an upstream that has the API, for an
// artifact a real tool pushed with a subject (no third-party registry with the API installs here).
import { createHash } from "node:crypto";
import { join } from "node:path";
import { attachArtifactToImage, getImageDigest } from "@sigstore/oci";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildImage, type Image } from "../support/fixtures/image.js";
import { randomLayer } from "../support/fixtures/layers.js";
import { pushImage } from "../support/fixtures/push.js";
import { startTestMirror, type TestMirror } from "../support/mirror.js";
import { requireTools } from "../support/preflight.js";
import { run } from "../support/process.js";
import { writeHtpasswd } from "../support/htpasswd.js";
import { makeTempDir, removeTempDir } from "../support/scratch.js";
import { UpstreamRegistry } from "../support/registry.js";

const BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json";
const PUSHER = { username: "robot", password: "robot-pass" };
const READER = { username: "alice", password: "alice-pass" };
const basic = (c: { username: string; password: string }) => ({ authorization: `Basic ${Buffer.from(`${c.username}:${c.password}`).toString("base64")}` });

interface Index {
  manifests: { digest: string; artifactType?: string; mediaType: string }[];
}

describe("a Sigstore bundle attached by @sigstore/oci, read through the mirror", () => {
  let hub: UpstreamRegistry;
  let pushable: UpstreamRegistry;
  let mirror: TestMirror;
  let laptop: TestMirror;
  let dir: string;
  let image: Image;
  let attached: { digest: string; size: number };
  const bundle = Buffer.from(JSON.stringify({ mediaType: BUNDLE, verificationMaterial: {}, messageSignature: { messageDigest: { algorithm: "SHA2_256", digest: "" }, signature: "" } }));

  beforeAll(async () => {
    requireTools(["docker-registry", "skopeo", "perl"]);
    dir = await makeTempDir("referrers-sigstore");
    hub = await UpstreamRegistry.start({ name: "upstream docker.io" });
    // The tool signs in before it pushes (it needs a challenge): the same storage behind htpasswd.
    pushable = await UpstreamRegistry.start({ name: "upstream for pushes", basicAuth: PUSHER, shareStorageWith: hub });
    image = buildImage({ format: "oci", layers: [await randomLayer("signed.bin", 32 * 1024)] });
    await pushImage(hub, "library/mk-signed", image, "1");
    // The tool pushes to the registry itself: a pull-through mirror takes no pushes.
    attached = await attachArtifactToImage({ imageName: `${new URL(pushable.url).host}/library/mk-signed`, imageDigest: image.manifest.digest, artifact: bundle, mediaType: BUNDLE, credentials: PUSHER });
    await writeHtpasswd(join(dir, "htpasswd"), { [READER.username]: READER.password });
    mirror = await startTestMirror({ "docker.io": hub.url }, { auth: { htpasswd: { realm: "team", path: join(dir, "htpasswd") } }, cache: { tagFreshness: "1s" } });
    laptop = await startTestMirror({ "docker.io": hub.url }, { parent: { url: mirror.url, username: READER.username, password: READER.password, fallback: false }, cache: { tagFreshness: "10m" } });
  });

  afterAll(async () => {
    await laptop?.close();
    await mirror?.close();
    await pushable?.close();
    await hub?.close();
    if (dir) await removeTempDir(dir);
  });

  it("the tool kept the tag-schema index on distribution 2.8 (no referrers API there)", async () => {
    await hub.settle();
    const tag = image.manifest.digest.replace(":", "-");
    const index = (await (await fetch(`${hub.url}/v2/library/mk-signed/manifests/${tag}`, { headers: { accept: "application/vnd.oci.image.index.v1+json" } })).json()) as Index;
    expect(index.manifests.map((m) => m.digest)).toEqual([attached.digest]);
  });

  it("through the mirror: the tool reads the image's digest, the referrers API lists the bundle, skopeo reads the artifact", async () => {
    const digest = await getImageDigest({ imageName: `${mirror.host}/library/mk-signed`, imageTag: "1", credentials: READER });
    expect(digest).toBe(image.manifest.digest);

    const res = await fetch(`${mirror.url}/v2/library/mk-signed/referrers/${image.manifest.digest}`, { headers: basic(READER) });
    expect(res.status).toBe(200);
    expect(res.headers.get("x-mirror-referrers-source")).toBe("tag-schema");
    const list = (await res.json()) as Index;
    expect(list.manifests).toEqual([expect.objectContaining({ digest: attached.digest, artifactType: BUNDLE })]);
    const filtered = (await (await fetch(`${mirror.url}/v2/library/mk-signed/referrers/${image.manifest.digest}?artifactType=${encodeURIComponent(BUNDLE)}`, { headers: basic(READER) })).json()) as Index;
    expect(filtered.manifests.map((m) => m.digest)).toEqual([attached.digest]);

    // The artifact as a registry client reads it, through the mirror: its subject is the image, its
    // one layer the bundle, byte for byte.
    const { stdout } = await run("skopeo", ["inspect", "--raw", "--tls-verify=false", "--creds", `${READER.username}:${READER.password}`, `docker://${mirror.host}/library/mk-signed@${attached.digest}`]);
    expect(`sha256:${createHash("sha256").update(stdout).digest("hex")}`).toBe(attached.digest);
    const manifest = JSON.parse(stdout) as { artifactType: string; subject: { digest: string }; layers: { digest: string }[] };
    expect(manifest.artifactType).toBe(BUNDLE);
    expect(manifest.subject.digest).toBe(image.manifest.digest);
    const blob = Buffer.from(await (await fetch(`${mirror.url}/v2/library/mk-signed/blobs/${manifest.layers[0]!.digest}`, { headers: basic(READER) })).arrayBuffer());
    expect(blob.equals(bundle)).toBe(true);
  });

  it("a mirror whose parent is this one reads the list through the parent's referrers API", async () => {
    const digest = await getImageDigest({ imageName: `${laptop.host}/library/mk-signed`, imageTag: "1" });
    expect(digest).toBe(image.manifest.digest);
    const res = await fetch(`${laptop.url}/v2/library/mk-signed/referrers/${image.manifest.digest}?artifactType=${encodeURIComponent(BUNDLE)}`);
    expect(res.status).toBe(200);
    expect(res.headers.get("x-mirror-referrers-source")).toBe("api");
    // "api": the parent's referrers API answered (with fallback: false the laptop never reads the
    // upstream's tag-schema index itself).
    expect(((await res.json()) as Index).manifests).toEqual([expect.objectContaining({ digest: attached.digest, artifactType: BUNDLE })]);
  });

  it("with the upstream stopped, the same reads are served from the cache", async () => {
    await hub.stop();
    // Past the freshness window: the mirror asks the upstream, finds it gone, serves what it cached.
    await new Promise((r) => setTimeout(r, 1_500));
    const res = await fetch(`${mirror.url}/v2/library/mk-signed/referrers/${image.manifest.digest}`, { headers: basic(READER) });
    expect(res.status).toBe(200);
    expect(res.headers.get("x-mirror-cache")).toBe("STALE");
    expect(((await res.json()) as Index).manifests.map((m) => m.digest)).toEqual([attached.digest]);
    const { stdout } = await run("skopeo", ["inspect", "--raw", "--tls-verify=false", "--creds", `${READER.username}:${READER.password}`, `docker://${mirror.host}/library/mk-signed@${attached.digest}`]);
    expect(`sha256:${createHash("sha256").update(stdout).digest("hex")}`).toBe(attached.digest);
  });
});
