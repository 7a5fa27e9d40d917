// Image references as users write them (`busybox`, `ghcr.io/o/i:1`, `x@sha256:…`), normalised the
// way Docker does: a first component with a dot, a port or "localhost" is a registry, else docker.io.
import { MirrorError } from "./errors.js";
import { isDigest } from "./digest.js";
import { looksLikeRegistryHost, parseRegistryHost } from "./hosts.js";
import { isValidTag, validateName } from "./names.js";

export interface ImageReference {
  /** Registry host as clients name it: docker.io, ghcr.io, registry.local:5000. */
  registry: string;
  /** Repository inside the registry, with library/ for Docker Hub official images. */
  repository: string;
  tag?: string;
  digest?: string;
}

const DOCKER_HUB = new Set(["docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"]);

export function parseImageReference(input: string): ImageReference {
  const raw = input.trim();
  const bad = (why: string) => new MirrorError("NAME_INVALID", `invalid image reference ${JSON.stringify(raw.slice(0, 200))}: ${why}`);
  if (raw === "" || /\s/.test(raw)) throw bad("empty or contains spaces");
  let rest = raw;
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!isDigest(digest)) throw bad("the digest is not algorithm:hex");
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(":");
  if (colon > rest.lastIndexOf("/")) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!isValidTag(tag)) throw bad("the tag is not valid");
  }
  const slash = rest.indexOf("/");
  const first = slash > 0 ? rest.slice(0, slash) : "";
  let registry = "docker.io";
  let repository = rest;
  const host = parseRegistryHost(first);
  if (host !== undefined && looksLikeRegistryHost(host)) {
    registry = host;
    repository = rest.slice(slash + 1);
  }
  if (DOCKER_HUB.has(registry)) {
    registry = "docker.io";
    if (!repository.includes("/")) repository = `library/${repository}`;
  }
  try {
    validateName(repository);
  } catch {
    throw bad("the repository name is not valid (lower case, digits, separators)");
  }
  return { registry, repository, ...(tag !== undefined ? { tag } : {}), ...(digest !== undefined ? { digest } : {}) };
}

/** What to ask the registry for: the digest when pinned, else the tag (latest when none). */
export function referenceOf(ref: ImageReference): string {
  return ref.digest ?? ref.tag ?? "latest";
}

/** The canonical long form: docker.io/library/busybox:latest, ghcr.io/o/i@sha256:… */
export function formatImageReference(ref: ImageReference): string {
  const base = `${ref.registry}/${ref.repository}`;
  if (ref.digest) return `${base}${ref.tag ? `:${ref.tag}` : ""}@${ref.digest}`;
  return `${base}:${ref.tag ?? "latest"}`;
}
