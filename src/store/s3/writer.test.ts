import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CompleteMultipartUploadCommand, CreateMultipartUploadCommand, HeadObjectCommand, PutObjectCommand, type S3Client, UploadPartCommand, UploadPartCopyCommand } from "@aws-sdk/client-s3";
import { afterAll, describe, expect, it } from "vitest";
import { digestOf } from "../../oci/digest.js";
import { Keys } from "./keys.js";
import { refusesPartCopy, S3BlobWriter } from "./writer.js";

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const MiB = 1024 * 1024;

/** An S3 server that will not copy parts (as some S3-compatible ones), recording what it was sent. */
function serverWithoutPartCopy(): { client: S3Client; sent: string[]; completed: { PartNumber?: number; ETag?: string }[] } {
  const sent: string[] = [];
  const completed: { PartNumber?: number; ETag?: string }[] = [];
  const send = async (cmd: object) => {
    sent.push(cmd.constructor.name);
    if (cmd instanceof UploadPartCopyCommand) throw Object.assign(new Error("not implemented"), { name: "NotImplemented", $metadata: { httpStatusCode: 501 } });
    if (cmd instanceof HeadObjectCommand) throw Object.assign(new Error("not found"), { name: "NotFound", $metadata: { httpStatusCode: 404 } });
    if (cmd instanceof CreateMultipartUploadCommand) return { UploadId: "u1" };
    if (cmd instanceof UploadPartCommand) return { ETag: `"part-${cmd.input.PartNumber}"` };
    if (cmd instanceof CompleteMultipartUploadCommand) completed.push(...(cmd.input.MultipartUpload?.Parts ?? []));
    if (cmd instanceof PutObjectCommand) return {};
    return {};
  };
  return { client: { send } as unknown as S3Client, sent, completed };
}

describe("the S3 writer on a server without UploadPartCopy", () => {
  it("uploads each part into the blob's upload instead, says so once, and publishes", async () => {
    const spoolDir = await mkdtemp(join(tmpdir(), "mk-s3w-"));
    dirs.push(spoolDir);
    const server = serverWithoutPartCopy();
    const notices: string[] = [];
    const noPartCopy = { value: false };
    const data = randomBytes(11 * MiB);
    const d = digestOf(data);
    const w = await S3BlobWriter.create(
      { client: server.client, bucket: "b", keys: new Keys(""), area: "a~", replica: "a", chunkSize: 5 * MiB, spoolDir, onPublish: () => undefined, noPartCopy, onNoPartCopy: (why) => notices.push(why) },
      d,
    );
    await w.write([data]);
    await w.verify(data.byteLength);
    await w.publish();
    await w.close();
    expect(server.sent.filter((c) => c === "UploadPartCopyCommand")).toHaveLength(1);
    expect(server.sent.filter((c) => c === "UploadPartCommand")).toHaveLength(3);
    expect(server.completed).toEqual([1, 2, 3].map((n) => ({ PartNumber: n, ETag: `"part-${n}"` })));
    expect(notices).toEqual(["NotImplemented (HTTP 501)"]);
    expect(noPartCopy.value).toBe(true);
  });

  it.each([
    [501, true],
    [400, true],
    [403, true],
    [404, false],
    [500, false],
    [503, false],
    [undefined, false],
  ])("takes a copy answered %s as a refusal: %s", (status, refused) => {
    expect(refusesPartCopy({ $metadata: { httpStatusCode: status } })).toBe(refused);
  });
});

describe("the S3 writer's shared mark", () => {
  it("counts the part that the last write started, even when asked at once", async () => {
    const spoolDir = await mkdtemp(join(tmpdir(), "mk-s3w-"));
    dirs.push(spoolDir);
    const puts: string[] = [];
    const send = async (cmd: object) => {
      if (cmd instanceof PutObjectCommand) puts.push(cmd.input.Key as string);
      if (cmd instanceof CreateMultipartUploadCommand) return { UploadId: "u1" };
      if (cmd instanceof UploadPartCopyCommand) return { CopyPartResult: { ETag: '"c"' } };
      return {};
    };
    const data = randomBytes(6 * MiB);
    const w = await S3BlobWriter.create(
      { client: { send } as unknown as S3Client, bucket: "b", keys: new Keys(""), area: "a~", replica: "a", chunkSize: 5 * MiB, spoolDir, onPublish: () => undefined },
      digestOf(data),
    );
    // The write returns once the spool has the bytes; the first part's upload has only started.
    await w.write([data]);
    expect(await w.share()).toBe(5 * MiB);
    expect(puts.filter((k) => k.endsWith("/00001"))).toHaveLength(1);
    await w.cancel();
    await w.close();
  });
});
