// Listing keys of an S3 bucket under a prefix, every page (ListObjectsV2), for the store's catalog,
// its sweeps and its use log; a failure is the client's 503 (the object store is unreachable).
import { ListObjectsV2Command, type S3Client } from "@aws-sdk/client-s3";
import { unavailable } from "./client.js";

export interface ListedObject {
  key: string;
  size: number;
  /** LastModified, ms since epoch. */
  modified: number;
}

/** Every key under `prefix` (with `delimiter`: only the next level, as common prefixes). */
export async function listObjects(client: S3Client, bucket: string, prefix: string, delimiter?: string): Promise<{ keys: ListedObject[]; prefixes: string[] }> {
  const keys: ListedObject[] = [];
  const prefixes: string[] = [];
  let token: string | undefined;
  try {
    do {
      const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ...(delimiter ? { Delimiter: delimiter } : {}), ...(token ? { ContinuationToken: token } : {}) }));
      for (const o of page.Contents ?? []) if (o.Key) keys.push({ key: o.Key, size: o.Size ?? 0, modified: o.LastModified?.getTime() ?? 0 });
      for (const p of page.CommonPrefixes ?? []) if (p.Prefix) prefixes.push(p.Prefix);
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  } catch (err) {
    throw unavailable(err, `listing ${prefix}`);
  }
  return { keys, prefixes };
}
