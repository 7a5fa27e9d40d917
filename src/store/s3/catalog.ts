// The S3 store's ContentCatalog listings: published content from blobs/ and manifests/ (last use:
// the latest of LastModified and the replicas' use logs), repository links, and the tags and links
// to drop after content was deleted. Each is a paginated listing, not a request per object.
import { DeleteObjectCommand, GetObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { parseDigest } from "../../oci/digest.js";
import type { ContentEntry, LinkKind } from "../store.js";
import { isNotFound, unavailable } from "./client.js";
import type { Keys } from "./keys.js";
import { listObjects } from "./list.js";
import type { UseLog } from "./use-log.js";

export interface CatalogContext {
  client: S3Client;
  bucket: string;
  keys: Keys;
  /** Last uses recorded by the replicas (merged with LastModified); without it, LastModified alone. */
  uses?: UseLog;
}

/** "<algorithm>/<2 hex>/<hex>" (or "<algorithm>/<hex>") at the end of a key, as a digest; undefined when not one. */
function digestAt(rest: string, suffix = ""): string | undefined {
  const parts = rest.split("/");
  const algorithm = parts[0];
  const last = parts[parts.length - 1];
  if (!algorithm || !last?.endsWith(suffix)) return undefined;
  const value = `${algorithm}:${last.slice(0, last.length - suffix.length)}`;
  try {
    return parseDigest(value).value;
  } catch {
    return undefined; // not ours: never listed, so never deleted
  }
}

export async function listContent(ctx: CatalogContext): Promise<ContentEntry[]> {
  const { keys } = ctx;
  const [blobs, meta, uses] = await Promise.all([
    listObjects(ctx.client, ctx.bucket, keys.blobs),
    listObjects(ctx.client, ctx.bucket, keys.manifests),
    ctx.uses ? ctx.uses.lastUses() : Promise.resolve(new Map<string, number>()),
  ]);
  const manifests = new Set(meta.keys.map((o) => digestAt(o.key.slice(keys.manifests.length), ".json")).filter((d): d is string => d !== undefined));
  const out: ContentEntry[] = [];
  for (const o of blobs.keys) {
    const digest = digestAt(o.key.slice(keys.blobs.length));
    if (!digest) continue;
    out.push({ digest, size: o.size, usedAt: Math.max(o.modified, uses.get(digest) ?? 0), manifest: manifests.has(digest) });
  }
  return out;
}

export async function listLinks(ctx: CatalogContext, upstream: string, name: string, kind: LinkKind): Promise<string[]> {
  const prefix = `${ctx.keys.repository(upstream, name)}${kind === "manifest" ? "_manifests" : "_layers"}/`;
  const { keys } = await listObjects(ctx.client, ctx.bucket, prefix);
  return keys.map((o) => digestAt(o.key.slice(prefix.length))).filter((d): d is string => d !== undefined);
}

/** Remove every tag that points at, and every repository link to, content in `gone`: one listing of repositories/. */
export async function forgetRemoved(ctx: CatalogContext, gone: ReadonlySet<string>): Promise<void> {
  if (gone.size === 0) return;
  const del = async (Key: string) => {
    try {
      await ctx.client.send(new DeleteObjectCommand({ Bucket: ctx.bucket, Key }));
    } catch (err) {
      if (!isNotFound(err)) throw unavailable(err, `removing ${Key}`);
    }
  };
  for (const o of (await listObjects(ctx.client, ctx.bucket, ctx.keys.repositories)).keys) {
    const link = /\/(_manifests|_layers)\/(.+)$/.exec(o.key);
    if (link) {
      const d = digestAt(link[2] as string);
      if (d && gone.has(d)) await del(o.key);
      continue;
    }
    if (!/\/_tags\/[^/]+\.json$/.test(o.key)) continue;
    const digest = await tagDigest(ctx, o.key);
    if (digest && gone.has(digest)) await del(o.key);
  }
}

async function tagDigest(ctx: CatalogContext, Key: string): Promise<string | undefined> {
  try {
    const res = await ctx.client.send(new GetObjectCommand({ Bucket: ctx.bucket, Key }));
    const rec = JSON.parse(await (res.Body as { transformToString(): Promise<string> }).transformToString()) as { digest?: unknown };
    return typeof rec.digest === "string" ? rec.digest : undefined;
  } catch (err) {
    if (isNotFound(err) || err instanceof SyntaxError) return undefined;
    throw unavailable(err, `reading ${Key}`);
  }
}
