// PUT /api/v1/import: `mirror-kit import --mirror URL` hands a running mirror an OCI layout or
// `docker save` tar, which it verifies and publishes into its own cache (the importer of src/bundle).
import { randomBytes } from "node:crypto";
import { createWriteStream } from "node:fs";
import { rm } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import type { Principal } from "../auth/guard.js";
import type { ImportResult } from "../bundle/import.js";
import { isMirrorKitError } from "../errors.js";
import { MirrorError } from "../oci/errors.js";
import { makeDir } from "../store/faults.js";

export interface Importer {
  /** Where the upload is kept while it is read (the store's ingest area: same filesystem). */
  readonly ingestDir: string;
  run(file: string): Promise<ImportResult>;
}

/** Loopback peers: 127.0.0.0/8, ::1 and IPv4-mapped loopback. */
function isLoopback(address: string | undefined): boolean {
  return address !== undefined && (/^(?:::ffff:)?127\./.test(address) || address === "::1");
}

/**
 * Importing writes tags into the cache, which every client is then served: only an authenticated
 * client may, or, on a mirror without client authentication, a process on the mirror's own host.
 */
export async function serveImport(req: IncomingMessage, res: ServerResponse, principal: Principal, authEnabled: boolean, importer: Importer): Promise<void> {
  if (req.method !== "PUT") throw new MirrorError("UNSUPPORTED", "import takes PUT with an OCI layout or docker save tar as the body");
  if (authEnabled && principal === null) throw new MirrorError("UNAUTHORIZED", "import needs an authenticated client");
  if (!authEnabled && !isLoopback(req.socket.remoteAddress)) {
    throw new MirrorError("DENIED", "import is accepted from this host only (loopback) on a mirror without client authentication");
  }
  await makeDir(importer.ingestDir);
  const file = join(importer.ingestDir, `import-${randomBytes(8).toString("hex")}.tar`);
  try {
    try {
      await pipeline(req, createWriteStream(file, { flags: "wx" }));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ENOSPC" || code === "EROFS" || code === "EDQUOT") throw new MirrorError("UNAVAILABLE", `the cache cannot take the archive: ${code}`);
      throw err;
    }
    let result: ImportResult;
    try {
      result = await importer.run(file);
    } catch (err) {
      // The archive's fault (not a tar, a hostile entry, a digest that lies, an incomplete delta): the client's error.
      if (isMirrorKitError(err) && err.code.startsWith("MK_IMPORT_")) throw new MirrorError("BLOB_UPLOAD_INVALID", err.message.replace(file, "the uploaded archive"));
      throw err;
    }
    const text = JSON.stringify(result);
    res.statusCode = 200;
    res.setHeader("content-type", "application/json; charset=utf-8");
    res.setHeader("content-length", String(Buffer.byteLength(text)));
    res.end(text);
  } finally {
    await rm(file, { force: true });
  }
}
