// The S3 store against a real S3 server (Ceph RGW): the shared store suite, with path-style and
// virtual-hosted addressing and a root directory; uploads stream as parts while a blob is written.
import { ListMultipartUploadsCommand, ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3";
import { rm } from "node:fs/promises";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { S3Spec } from "../../src/config/resolve.js";
import { openStore } from "../../src/store/open.js";
import { S3Store } from "../../src/store/s3/s3-store.js";
import { CephRgw, virtualHostHandler } from "../support/ceph-rgw.js";
import { makeTempDir } from "../support/scratch.js";
import { storeSuite } from "../support/store-suite.js";

let rgw: CephRgw;
let bucketSeq = 0;

beforeAll(async () => {
  rgw = await CephRgw.start();
}, 240_000);

afterAll(async () => {
  await rgw?.close();
});

function spec(over: Partial<S3Spec> & { spool: string }): S3Spec {
  return {
    driver: "s3",
    bucket: `mk-${process.pid}-${++bucketSeq}`,
    region: "us-east-1",
    endpoint: rgw.endpoint,
    accessKey: rgw.accessKey,
    secretKey: rgw.secretKey,
    forcePathStyle: true,
    rootDirectory: "",
    secure: false,
    // S3's smallest part: a 3 MiB blob is one PUT, the suite's larger ones span parts.
    chunkSize: 5 * 1024 * 1024,
    createBucket: true,
    ...over,
  };
}

function adminClient(): S3Client {
  return new S3Client({ endpoint: rgw.endpoint, region: "us-east-1", forcePathStyle: true, credentials: { accessKeyId: rgw.accessKey, secretAccessKey: rgw.secretKey } });
}

/** Objects under ingest/, multipart uploads in progress, and spool files: all a store may leave behind. */
async function leftovers(s: S3Spec): Promise<string[]> {
  const admin = adminClient();
  try {
    const prefix = s.rootDirectory ? `${s.rootDirectory}/` : "";
    const objects = await admin.send(new ListObjectsV2Command({ Bucket: s.bucket, Prefix: `${prefix}ingest/` }));
    const uploads = await admin.send(new ListMultipartUploadsCommand({ Bucket: s.bucket }));
    const spool = await readdir(join(s.spool, "ingest")).catch(() => [] as string[]);
    return [...(objects.Contents ?? []).map((o) => `object ${o.Key}`), ...(uploads.Uploads ?? []).map((u) => `upload ${u.Key}`), ...spool.map((f) => `spool ${f}`)];
  } finally {
    admin.destroy();
  }
}

for (const [name, addressing] of [
  ["path-style", { forcePathStyle: true }],
  ["virtual-hosted, under a root directory", { forcePathStyle: false, rootDirectory: "mirror/cache" }],
] as const) {
  storeSuite(
    `s3 on Ceph RGW (${name})`,
    async () => {
      const spool = await makeTempDir("s3-spool");
      const s = spec({ spool, ...addressing, ...(addressing.forcePathStyle ? {} : { endpoint: rgw.namedEndpoint }) });
      const vhost = addressing.forcePathStyle ? undefined : virtualHostHandler();
      return {
        open: (replica) => openStore(s, { replica, ...(vhost ? { s3: { requestHandler: vhost.handler } } : {}) }),
        // An object deleted under a reader could vanish between its ranged GETs: eviction keeps it.
        openBlobs: "kept",
        shareUses: (store) => (store as S3Store).flushUses(),
        leftovers: async () => {
          // Virtual-hosted really means the bucket in the host name (radosgw resolved it from Host:).
          if (vhost) expect([...vhost.hosts]).toContain(`${s.bucket}.s3.mk.test`);
          return leftovers(s);
        },
        cleanup: () => rm(spool, { recursive: true, force: true }),
      };
    },
    // Big enough for three parts of 5 MiB: the multipart path, not only the single PUT.
    { evictable: true, blobSize: 11 * 1024 * 1024 + 3 },
  );
}
