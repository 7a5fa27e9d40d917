// How an S3 store's settings name its endpoint and bucket, for the client and for messages. Kept
// apart from client.ts so a filesystem mirror never loads the AWS SDK just to log where it stores.
import type { S3Spec } from "../../config/resolve.js";

/** The endpoint URL: as given when it has a scheme, else https (or http with secure: false). */
export function endpointUrl(spec: S3Spec): string | undefined {
  if (spec.endpoint === undefined) return undefined;
  return /^https?:\/\//i.test(spec.endpoint) ? spec.endpoint : `${spec.secure ? "https" : "http"}://${spec.endpoint}`;
}

/** What a request against the store is about, for messages: never a credential. */
export function describeTarget(spec: S3Spec): string {
  return `bucket ${spec.bucket}${spec.endpoint ? ` at ${endpointUrl(spec)}` : ` (AWS ${spec.region})`}`;
}
