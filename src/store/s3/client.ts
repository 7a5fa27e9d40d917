// The S3 client the store uses, built from storage settings (AWS S3, Ceph RGW, MinIO, R2, GCS
// interoperability): endpoint, addressing style, credentials; and the bucket created when missing.
import { Agent as HttpAgent } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import { CreateBucketCommand, HeadBucketCommand, S3Client, S3ServiceException } from "@aws-sdk/client-s3";
import { NodeHttpHandler } from "@smithy/node-http-handler";
import type { S3Spec } from "../../config/resolve.js";
import { MirrorError } from "../../oci/errors.js";
import { StoreError } from "../errors.js";
import { describeTarget, endpointUrl } from "./target.js";

export { describeTarget, endpointUrl };

export interface S3ClientOptions {
  /** Replaces the HTTP handler (tests: a resolver for virtual-hosted bucket names). */
  requestHandler?: NodeHttpHandler;
}


export function createS3Client(spec: S3Spec, options: S3ClientOptions = {}): S3Client {
  const endpoint = endpointUrl(spec);
  return new S3Client({
    region: spec.region,
    ...(endpoint ? { endpoint } : {}),
    tls: spec.secure,
    forcePathStyle: spec.forcePathStyle,
    // Static keys when configured; otherwise the SDK's chain (AWS_* variables, profiles, instance roles).
    ...(spec.accessKey !== undefined ? { credentials: { accessKeyId: spec.accessKey, secretAccessKey: spec.secretKey ?? "" } } : {}),
    // Checksums only where S3 demands them: Ceph RGW, MinIO, R2 and GCS do not all take the newer
    // trailing-checksum uploads. Content is verified by digest anyway.
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
    maxAttempts: 3,
    requestHandler:
      options.requestHandler ??
      new NodeHttpHandler({
        connectionTimeout: 5_000,
        requestTimeout: 60_000,
        httpAgent: new HttpAgent({ keepAlive: true, maxSockets: 64 }),
        httpsAgent: new HttpsAgent({ keepAlive: true, maxSockets: 64 }),
      }),
  });
}


/** HeadBucket; create it when missing unless createBucket is false. Refuses to start on anything else. */
export async function ensureBucket(client: S3Client, spec: S3Spec): Promise<void> {
  const where = describeTarget(spec);
  try {
    await client.send(new HeadBucketCommand({ Bucket: spec.bucket }));
    return;
  } catch (err) {
    if (!isNotFound(err)) throw new StoreError(`cannot use S3 storage, ${where}: ${reason(err)}`, undefined, { cause: err });
  }
  if (!spec.createBucket) throw new StoreError(`cannot use S3 storage: ${where} does not exist (storage.createBucket is false)`);
  try {
    await client.send(new CreateBucketCommand({ Bucket: spec.bucket, ...(spec.region !== "us-east-1" ? { CreateBucketConfiguration: { LocationConstraint: spec.region as never } } : {}) }));
  } catch (err) {
    // Another replica created it first.
    if (err instanceof S3ServiceException && (err.name === "BucketAlreadyOwnedByYou" || err.name === "BucketAlreadyExists")) return;
    throw new StoreError(`cannot create S3 ${where}: ${reason(err)}`, undefined, { cause: err });
  }
}

export function isNotFound(err: unknown): boolean {
  const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  const name = (err as { name?: string }).name;
  return status === 404 || name === "NotFound" || name === "NoSuchKey" || name === "NoSuchBucket";
}

export function isPreconditionFailed(err: unknown): boolean {
  const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  return status === 412 || (err as { name?: string }).name === "PreconditionFailed";
}

const STATUS_MEANING: Readonly<Record<number, string>> = {
  301: "wrong region or endpoint for this bucket",
  400: "bad request",
  403: "access denied: check accessKey/secretKey and the bucket's policy",
  404: "not found",
  503: "the object store is busy or unavailable",
};

/** A short cause for messages: the S3 error name and status, or the network error code. */
export function reason(err: unknown): string {
  const e = err as { name?: string; code?: string; message?: string; $metadata?: { httpStatusCode?: number } };
  const status = e.$metadata?.httpStatusCode;
  if (status) {
    // A HEAD answer has no body, so the SDK names it "Unknown": say what the status means.
    const name = e.name && e.name !== "Unknown" ? e.name : (STATUS_MEANING[status] ?? "error");
    return `${name} (HTTP ${status})`;
  }
  return e.code ?? e.name ?? String(e.message ?? err);
}

/** A failed request as the client's 503: the object store is unreachable or refusing. */
export function unavailable(err: unknown, what: string): MirrorError {
  return new MirrorError("UNAVAILABLE", `the mirror's object storage failed while ${what}: ${reason(err)}`, undefined, { cause: err });
}
