// Manifest media types and Accept negotiation.
// Docker sends one Accept header per type; containerd sends one comma-separated list.

export const MediaType = {
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  dockerManifestList: "application/vnd.docker.distribution.manifest.list.v2+json",
  dockerSchema1Signed: "application/vnd.docker.distribution.manifest.v1+prettyjws",
  dockerSchema1: "application/vnd.docker.distribution.manifest.v1+json",
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  ociIndex: "application/vnd.oci.image.index.v1+json",
} as const;

/** The manifest types served as Content-Type without being configured: OCI and Docker's. */
export const MANIFEST_MEDIA_TYPES: ReadonlySet<string> = new Set([...Object.values(MediaType), "application/vnd.oci.artifact.manifest.v1+json"]);

/** type/subtype as RFC 9110 tokens: no spaces, no control characters, nothing a header could be split on. */
const MEDIA_TYPE = /^[a-z0-9!#$&^_.+-]{1,127}\/[a-z0-9!#$&^_.+-]{1,127}$/;

export function isMediaType(value: string): boolean {
  return MEDIA_TYPE.test(value);
}

/**
 * The Content-Type a manifest is served with: the upstream's declared type when it is a manifest type
 * (built-in or allowed by cache.manifestMediaTypes), else the body's own mediaType (or its shape)
 * under the same rule; undefined when neither is, and the manifest must be refused. An upstream's
 * text/html never reaches a client as text/html, whatever the body holds.
 */
export function servedManifestType(declared: string | undefined, body: Uint8Array, allowed: ReadonlySet<string> = new Set()): string | undefined {
  const ok = (t: string | undefined): t is string => t !== undefined && (MANIFEST_MEDIA_TYPES.has(t) || allowed.has(t));
  const type = declared?.split(";")[0]?.trim().toLowerCase();
  if (ok(type)) return type;
  const sniffed = sniffManifestType(body);
  return ok(sniffed) ? sniffed : undefined;
}

/** What the mirror asks upstream for: every manifest type, so one cached copy serves every client. */
export const UPSTREAM_ACCEPT = [
  MediaType.ociIndex,
  MediaType.dockerManifestList,
  MediaType.ociManifest,
  MediaType.dockerManifest,
  "*/*;q=0.1",
].join(", ");

export function isIndexType(mediaType: string): boolean {
  return mediaType === MediaType.ociIndex || mediaType === MediaType.dockerManifestList;
}

/** Parse all Accept header values (array or comma list) into bare media types, lower-cased. */
export function parseAccept(header: string | string[] | undefined): string[] {
  if (header === undefined) return [];
  const values = Array.isArray(header) ? header : [header];
  const types: string[] = [];
  for (const value of values) {
    for (const part of value.split(",")) {
      const type = part.split(";")[0]?.trim().toLowerCase();
      if (type) types.push(type);
    }
  }
  return types;
}

/**
 * Whether a client that sent `accepted` can take a manifest of `mediaType`.
 * No Accept header, or a wildcard, accepts anything: that is what registries do.
 */
export function accepts(accepted: readonly string[], mediaType: string): boolean {
  if (accepted.length === 0) return true;
  const type = mediaType.toLowerCase();
  return accepted.some((a) => a === type || a === "*/*" || a === "application/*");
}

/**
 * The media type of a manifest body when upstream did not say: the mediaType field, else
 * inferred from its shape (OCI manifests and indexes may omit mediaType).
 */
export function sniffManifestType(body: Uint8Array): string | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(body).toString("utf8"));
  } catch {
    return undefined;
  }
  if (typeof doc !== "object" || doc === null) return undefined;
  const m = doc as { mediaType?: unknown; manifests?: unknown; layers?: unknown; schemaVersion?: unknown; signatures?: unknown };
  if (typeof m.mediaType === "string") return m.mediaType;
  if (m.schemaVersion === 1) return m.signatures ? MediaType.dockerSchema1Signed : MediaType.dockerSchema1;
  if (Array.isArray(m.manifests)) return MediaType.ociIndex;
  if (Array.isArray(m.layers)) return MediaType.ociManifest;
  return undefined;
}

export interface PlatformEntry {
  digest: string;
  mediaType?: string;
  platform?: { os?: string; architecture?: string; variant?: string };
}

/** Child manifests of an index / manifest list, or [] if the body is not one. */
export function indexEntries(body: Uint8Array): PlatformEntry[] {
  try {
    const doc = JSON.parse(Buffer.from(body).toString("utf8")) as { manifests?: unknown };
    return Array.isArray(doc.manifests) ? (doc.manifests as PlatformEntry[]) : [];
  } catch {
    return [];
  }
}
