// `mirror-kit import --mirror URL`: an archive (or an OCI layout folder, packed on the fly) streamed
// to a running mirror's PUT /api/v1/import, which verifies and caches it as a folder import would.
import { createReadStream } from "node:fs";
import { readdir, stat } from "node:fs/promises";
import { join, relative } from "node:path";
import type { Readable } from "node:stream";
import tar from "tar-stream";
import { Agent, request } from "undici";
import { MirrorKitError } from "../errors.js";
import type { Mirror } from "../prefetch/mirror-client.js";
import type { ImportResult } from "./import.js";

export async function importIntoMirror(input: string, mirror: Mirror): Promise<ImportResult> {
  const s = await stat(input).catch(() => undefined);
  if (!s) throw new MirrorKitError("MK_IMPORT_BAD_INPUT", `${input}: no such file or folder`);
  const body = s.isDirectory() ? packFolder(input) : createReadStream(input);
  // An archive can take long to verify: no response deadline, only the connection's.
  const agent = new Agent({ connect: { timeout: 10_000, ...(mirror.ca ? { ca: mirror.ca } : {}) }, headersTimeout: 0, bodyTimeout: 0 });
  try {
    let res;
    try {
      res = await request(new URL("/api/v1/import", mirror.url), {
        method: "PUT",
        dispatcher: agent,
        headers: { "content-type": "application/x-tar", ...(mirror.authorization ? { authorization: mirror.authorization } : {}) },
        body,
      });
    } catch (err) {
      const code = (err as { code?: string }).code ?? (err as Error).message;
      throw new MirrorKitError("MK_MIRROR_API", `cannot reach the mirror at ${mirror.url}: ${code} (is it running?)`, { cause: err });
    }
    const text = await res.body.text();
    if (res.statusCode === 200) return JSON.parse(text) as ImportResult;
    let message = `status ${res.statusCode}`;
    try {
      message = (JSON.parse(text) as { errors?: { message?: string }[] }).errors?.[0]?.message ?? message;
    } catch {
      // Not an OCI error body.
    }
    if (res.statusCode === 404) message = "this mirror takes no imports (a mirror-kit older than this command?)";
    if (res.statusCode === 401) message = `${message}: pass --mirror with user:password@`;
    throw new MirrorKitError(res.statusCode === 400 ? "MK_IMPORT_BAD_INPUT" : "MK_MIRROR_API", `the mirror at ${mirror.url} refused ${input}: ${message}`);
  } finally {
    body.destroy();
    await agent.close();
  }
}

/** An OCI layout folder as a tar stream: regular files only, paths relative to the folder. */
function packFolder(dir: string): Readable {
  const pack = tar.pack();
  const walk = async (path: string): Promise<void> => {
    for (const entry of await readdir(path, { withFileTypes: true })) {
      const full = join(path, entry.name);
      if (entry.isDirectory()) await walk(full);
      else if (entry.isFile()) {
        const { size } = await stat(full);
        const sink = pack.entry({ name: relative(dir, full), size, type: "file" });
        const done = new Promise<void>((resolve, reject) => {
          sink.once("finish", resolve);
          sink.once("error", reject);
        });
        for await (const chunk of createReadStream(full)) {
          if (!sink.write(chunk as Buffer)) await new Promise<void>((r) => sink.once("drain", () => r()));
        }
        // tar-stream's entries are streamx writables: end() takes no callback (finish is awaited instead).
        (sink as unknown as { end(): void }).end();
        await done;
      }
    }
  };
  walk(dir).then(
    () => pack.finalize(),
    (err: Error) => pack.destroy(err),
  );
  return pack as unknown as Readable;
}
