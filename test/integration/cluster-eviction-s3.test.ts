// The size cap across three replica processes on one Ceph RGW bucket with one Debian redis-server
// (test/support/cluster-eviction.ts): one evictor at a time, shared usage, nothing kept or read lost.
// Last uses travel between replicas through their use logs in the bucket, not per hit.
import { ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3";
import { join } from "node:path";
import { CephRgw } from "../support/ceph-rgw.js";
import { clusterEvictionSuite } from "../support/cluster-eviction.js";

clusterEvictionSuite("one Ceph RGW bucket", async () => {
  const rgw = await CephRgw.start();
  const bucket = `mk-evict-${process.pid}`;
  const client = new S3Client({ endpoint: rgw.endpoint, region: "us-east-1", forcePathStyle: true, credentials: { accessKeyId: rgw.accessKey, secretAccessKey: rgw.secretKey } });
  return {
    // Open readers are recorded in the use log, which every evictor reads.
    openBlobs: "kept",
    storage: (replica, dir) => ({ driver: "s3", bucket, endpoint: rgw.endpoint, accessKey: rgw.accessKey, secretKey: rgw.secretKey, forcePathStyle: true, secure: false, chunkSize: "5MB", spool: join(dir, `spool-${replica}`) }),
    async published() {
      const out = new Map<string, number>();
      let token: string | undefined;
      do {
        const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: "blobs/", ...(token ? { ContinuationToken: token } : {}) }));
        for (const o of page.Contents ?? []) {
          const [, algorithm, , hex] = (o.Key as string).split("/");
          out.set(`${algorithm}:${hex}`, o.Size ?? 0);
        }
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
      return out;
    },
    async close() {
      client.destroy();
      await rgw.close();
    },
  };
});
