// The client side of every measurement: streamed blob GETs (bytes counted, sha256 checked) and
// manifest GETs, timed with performance.now(). A wrong answer throws: a fast wrong answer is no result.
import { createHash } from "node:crypto";
import { Writable } from "node:stream";
import { Agent, request, stream } from "undici";
import { MANIFEST_TYPE, REPOSITORY, TAG } from "./fixture.mjs";

/** One pool for the whole bench: enough sockets per origin that 16 clients really run at once. */
export function createAgent() {
  return new Agent({ connections: 64, headersTimeout: 300_000, bodyTimeout: 300_000 });
}

/**
 * GET the fixture layer and stream it to nowhere. `verify` hashes the body; it costs client CPU on
 * the same cores the servers use, which is why warm throughput samples only spot-check it.
 */
export async function getBlob(dispatcher, baseUrl, fixture, { verify = true } = {}) {
  const url = `${baseUrl}/v2/${REPOSITORY}/blobs/${fixture.layerDigest}`;
  const hash = verify ? createHash("sha256") : undefined;
  let bytes = 0;
  let firstByteAt;
  let status;
  let cache;
  let errorText = "";
  const started = performance.now();
  // undici's stream() hands chunks straight to a sink; iterating a Readable instead would copy
  // (concatenate) buffered chunks and make the client, not the server, the bottleneck.
  await stream(url, { dispatcher }, ({ statusCode, headers }) => {
    status = statusCode;
    cache = headers["x-mirror-cache"];
    return new Writable({
      write(chunk, _enc, done) {
        if (status !== 200) errorText = (errorText + chunk.toString("utf8")).slice(0, 300);
        else {
          firstByteAt ??= performance.now();
          bytes += chunk.byteLength;
          hash?.update(chunk);
        }
        done();
      },
    });
  });
  const ended = performance.now();
  if (status !== 200) throw new Error(`GET ${url} answered ${status}: ${errorText}`);
  if (bytes !== fixture.layerSize) throw new Error(`GET ${url}: got ${bytes} bytes, expected ${fixture.layerSize}`);
  if (hash) {
    const got = `sha256:${hash.digest("hex")}`;
    if (got !== fixture.layerDigest) throw new Error(`GET ${url}: digest mismatch: body is ${got}`);
  }
  return { seconds: (ended - started) / 1000, ttfbMs: (firstByteAt ?? ended) - started, bytes, cache };
}

/** GET the fixture manifest by tag, as `docker pull` asks for it; returns milliseconds. */
export async function getManifest(dispatcher, baseUrl, fixture) {
  const url = `${baseUrl}/v2/${REPOSITORY}/manifests/${TAG}`;
  const started = performance.now();
  const res = await request(url, {
    dispatcher,
    headers: { accept: `${MANIFEST_TYPE}, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.index.v1+json` },
  });
  const body = Buffer.from(await res.body.arrayBuffer());
  const ms = performance.now() - started;
  if (res.statusCode !== 200) throw new Error(`GET ${url} answered ${res.statusCode}: ${body.toString("utf8", 0, 300)}`);
  const digest = `sha256:${createHash("sha256").update(body).digest("hex")}`;
  if (digest !== fixture.manifestDigest) throw new Error(`GET ${url}: manifest digest ${digest}, expected ${fixture.manifestDigest}`);
  return ms;
}
