// The client side of every measurement: streamed blob GETs (bytes counted, sha256 checked) and
// manifest GETs, timed with performance.now(). A wrong answer throws: a fast wrong answer is no result.
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { Writable } from "node:stream";
import { Agent, request, stream } from "undici";
import { MANIFEST_TYPE, REPOSITORY, TAG } from "./fixture.mjs";

/** What `docker pull` sends when it asks for a tag. */
export const MANIFEST_ACCEPT = `${MANIFEST_TYPE}, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.index.v1+json`;

export function blobUrl(baseUrl, fixture) {
  return `${baseUrl}/v2/${fixture.repository ?? REPOSITORY}/blobs/${fixture.layerDigest}`;
}

export function manifestUrl(baseUrl, fixture) {
  return `${baseUrl}/v2/${fixture.repository ?? REPOSITORY}/manifests/${TAG}`;
}

/** One pool for the whole bench: enough sockets per origin that 16 clients really run at once. */
export function createAgent() {
  return new Agent({ connections: 64, headersTimeout: 300_000, bodyTimeout: 300_000 });
}

/**
 * Which program downloads blobs. curl by default: a Node client tops out near 1 GB/s on these
 * machines and would measure itself, not the servers. BENCH_CLIENT=node uses undici instead.
 */
export const BLOB_CLIENT = process.env.BENCH_CLIENT || (existsSync("/usr/bin/curl") ? "curl" : "node");

export function getBlob(dispatcher, baseUrl, fixture, options = {}) {
  return BLOB_CLIENT === "curl" ? getBlobCurl(baseUrl, fixture, options) : getBlobNode(dispatcher, baseUrl, fixture, options);
}

/**
 * curl writes the body to sha256sum (verify: the digest is checked) or to /dev/null (bytes are
 * only counted, so the client costs next to nothing) and its own timings to stderr; those timings
 * are the transfer as the client saw it, from connect to the last byte.
 */
async function getBlobCurl(baseUrl, fixture, { verify = true } = {}) {
  const url = blobUrl(baseUrl, fixture);
  const format = "%{stderr}bench-curl %{http_code} %{size_download} %{time_starttransfer} %{time_total} %header{x-mirror-cache}\n";
  const curl = `curl -sS -g -o ${verify ? "-" : "/dev/null"} -w '${format}' '${url}'`;
  const { stdout, stderr } = await sh(verify ? `set -o pipefail; ${curl} | sha256sum` : curl);
  // Our line is marked: curl's own messages (a reset connection, ...) may come before it.
  const line = stderr.split("\n").find((l) => l.startsWith("bench-curl "));
  if (!line) throw new Error(`GET ${url}: curl printed no result: ${stderr.slice(0, 500)}`);
  const [, status, bytes, ttfb, total, cache] = line.trim().split(/\s+/);
  if (status !== "200") throw new Error(`GET ${url} answered ${status}: ${stderr.slice(0, 500)}`);
  if (Number(bytes) !== fixture.layerSize) throw new Error(`GET ${url}: got ${bytes} bytes, expected ${fixture.layerSize}`);
  if (verify && `sha256:${stdout.split(" ")[0]}` !== fixture.layerDigest) throw new Error(`GET ${url}: digest mismatch: body is sha256:${stdout.split(" ")[0]}`);
  return { seconds: Number(total), ttfbMs: Number(ttfb) * 1000, bytes: Number(bytes), cache: cache || undefined };
}

function sh(script) {
  return new Promise((resolve, reject) => {
    execFile("bash", ["-c", script], { maxBuffer: 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${script}: ${stderr || err.message}`));
      else resolve({ stdout, stderr });
    });
  });
}

/**
 * GET the fixture layer and stream it to nowhere. `verify` hashes the body; it costs client CPU on
 * the same cores the servers use, which is why warm throughput samples only spot-check it.
 */
async function getBlobNode(dispatcher, baseUrl, fixture, { verify = true } = {}) {
  const url = blobUrl(baseUrl, fixture);
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
  const url = manifestUrl(baseUrl, fixture);
  const started = performance.now();
  const res = await request(url, { dispatcher, headers: { accept: MANIFEST_ACCEPT } });
  const body = Buffer.from(await res.body.arrayBuffer());
  const ms = performance.now() - started;
  if (res.statusCode !== 200) throw new Error(`GET ${url} answered ${res.statusCode}: ${body.toString("utf8", 0, 300)}`);
  const digest = `sha256:${createHash("sha256").update(body).digest("hex")}`;
  if (digest !== fixture.manifestDigest) throw new Error(`GET ${url}: manifest digest ${digest}, expected ${fixture.manifestDigest}`);
  return ms;
}
