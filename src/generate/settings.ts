// Validated generator settings: the mirror's image, port, storage, upstreams and the URL each kind of
// client uses to reach it. Flags are checked here, eagerly, with "expected X, got Y" messages.
import { BUILTIN_UPSTREAMS } from "../config/builtin.js";
import { parseUpstreamSpec } from "../oci/hosts.js";
import { GenerateError } from "./errors.js";
import { packageVersion } from "./render.js";
import { readCa, type CaMaterial } from "./tls-material.js";

/** Where the release workflow (.github/workflows/release.yml) pushes the image, as the package version. */
export const IMAGE_REPOSITORY = "ghcr.io/mirror-kit/mirror-kit";
/** The Node base the Dockerfile builds on unless --base-image names another (any image with node >= 20.19). */
export const DEFAULT_BASE_IMAGE = "node:22-alpine";
/** The image this version runs: what its release publishes (or `mirror-kit image` builds here). */
export const DEFAULT_IMAGE = `${IMAGE_REPOSITORY}:${packageVersion()}`;
export const DEFAULT_PORT = 5000;
/** The port the mirror listens on inside its container (EXPOSE 5000 in the image). */
export const CONTAINER_PORT = 5000;
export const DEFAULT_VOLUME = "mirror-kit-data";
export const CONTAINER_STORAGE = "/var/lib/mirror-kit";
/** How a container on a Linux host reaches the host: needs --add-host=host.docker.internal:host-gateway. */
export const DOCKER_HOST_ALIAS = "host.docker.internal";

export interface Upstream {
  /** The registry host clients name in image references (containerd's ns=, podman's path prefix). */
  name: string;
  /** Where the mirror fetches from. */
  url: string;
  /** True when given with --upstream (the mirror must be told about it). */
  custom: boolean;
}

export type Storage = { kind: "volume"; name: string } | { kind: "bind"; path: string };

export interface Settings {
  image: string;
  /** Host port the mirror is published on. */
  port: number;
  storage: Storage;
  upstreams: Upstream[];
  /** --mirror-url: used verbatim by every client when given. */
  mirrorUrl?: string;
  /** --host: the address VMs and containers use to reach the host. */
  host?: string;
  /** --ca: the CA that signed the mirror's certificate (PEM), installed where each client looks. Implies https. */
  ca?: CaMaterial;
  /** --build: the Compose service builds the image from this package's Dockerfile, on this Node base. */
  build?: { baseImage: string };
}

export interface SettingsInput {
  image?: string;
  port?: number | string;
  storage?: string;
  upstream?: string[];
  mirrorUrl?: string;
  host?: string;
  /** A CA certificate file, or the folder `mirror-kit cert` wrote (its ca.crt). */
  ca?: string;
  /** The Compose service builds the image here instead of pulling it. */
  build?: boolean;
  /** The Node base of that build (NODE_IMAGE); only with build. */
  baseImage?: string;
}

export function resolveSettings(input: SettingsInput): Settings {
  if (input.mirrorUrl !== undefined && input.host !== undefined) {
    throw new GenerateError("BAD_OPTION", "--mirror-url and --host both set the mirror's address; give one");
  }
  const port = parsePort(input.port ?? DEFAULT_PORT);
  const settings: Settings = {
    image: parseImage(input.image ?? DEFAULT_IMAGE),
    port,
    storage: parseStorage(input.storage),
    upstreams: parseUpstreams(input.upstream ?? []),
  };
  if (input.mirrorUrl !== undefined) settings.mirrorUrl = validateMirrorUrl(input.mirrorUrl, "--mirror-url");
  if (input.host !== undefined) settings.host = parseHost(input.host);
  if (input.baseImage !== undefined && !input.build) {
    throw new GenerateError("BAD_OPTION", `--base-image: only used with --build (the Compose service then builds the image on that base); add --build or drop --base-image ${input.baseImage}`);
  }
  if (input.build) settings.build = { baseImage: parseImage(input.baseImage ?? DEFAULT_BASE_IMAGE, "--base-image") };
  if (input.ca !== undefined) {
    settings.ca = readCa(input.ca);
    if (settings.mirrorUrl?.startsWith("http://")) {
      throw new GenerateError("BAD_OPTION", `--ca: the mirror is served over TLS, so --mirror-url must be https://, got "${settings.mirrorUrl}"`);
    }
  }
  return settings;
}

/** https when the mirror has a certificate (--ca), else http; an explicit --mirror-url keeps its own. */
export function mirrorScheme(s: Settings): "http" | "https" {
  return s.ca ? "https" : "http";
}

/**
 * Docker's ValidateMirror rules (moby daemon/pkg/registry): a scheme is required, no query, fragment
 * or credentials. Returned without a trailing slash so every file spells it the same way.
 */
export function validateMirrorUrl(raw: string, where: string): string {
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(raw)) {
    throw new GenerateError("BAD_OPTION", `${where}: expected a URL with a scheme like http://${raw}, got "${raw}"`);
  }
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new GenerateError("BAD_OPTION", `${where}: "${raw}" is not a valid URL`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new GenerateError("BAD_OPTION", `${where}: expected an http:// or https:// URL, got "${raw}"`);
  }
  if (url.search || url.hash || url.username || url.password) {
    throw new GenerateError("BAD_OPTION", `${where}: a mirror URL may not carry a query, fragment or credentials: "${raw}"`);
  }
  return `${url.protocol}//${url.host}${url.pathname.replace(/\/+$/, "")}`;
}

function parsePort(raw: number | string): number {
  const port = typeof raw === "number" ? raw : /^\d+$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new GenerateError("BAD_OPTION", `--port: expected an integer from 1 to 65535, got "${raw}"`);
  }
  return port;
}

function parseImage(raw: string, flag = "--image"): string {
  if (!/^[a-z0-9][a-z0-9._\-/:@]*$/i.test(raw)) {
    throw new GenerateError("BAD_OPTION", `${flag}: expected an image reference like ${flag === "--image" ? DEFAULT_IMAGE : DEFAULT_BASE_IMAGE}, got "${raw}"`);
  }
  return raw;
}

function parseHost(raw: string): string {
  if (!/^(\[[0-9a-f:.]+\]|[a-z0-9]([a-z0-9.-]*[a-z0-9])?)$/i.test(raw)) {
    throw new GenerateError("BAD_OPTION", `--host: expected a host name or IP address without scheme or port, got "${raw}"`);
  }
  return raw;
}

/** A bare name is a Docker named volume; anything path-like is a host directory (bind mount). */
function parseStorage(raw: string | undefined): Storage {
  if (raw === undefined || raw === "") return { kind: "volume", name: DEFAULT_VOLUME };
  if (/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(raw)) return { kind: "volume", name: raw };
  if (raw.startsWith("/") || raw.startsWith("./") || raw.startsWith("../") || raw.startsWith("~/")) {
    return { kind: "bind", path: raw };
  }
  throw new GenerateError("BAD_OPTION", `--storage: expected a volume name or a path starting with / or ./, got "${raw}"`);
}

function parseUpstreams(flags: string[]): Upstream[] {
  const result: Upstream[] = Object.entries(BUILTIN_UPSTREAMS).map(([name, u]) => ({ name, url: u.url, custom: false }));
  for (const flag of flags) {
    // The same NAME=URL rules as `serve --upstream`, so init never writes what serve would refuse.
    const spec = parseUpstreamSpec(flag);
    if (!spec.ok) throw new GenerateError("BAD_OPTION", `--upstream: ${spec.reason}`);
    const { name } = spec;
    const upstream: Upstream = { name, url: spec.url, custom: true };
    const existing = result.findIndex((u) => u.name === name);
    if (existing >= 0) result[existing] = upstream;
    else result.push(upstream);
  }
  return result;
}

/** "host:port[/path]" of a mirror URL: the form insecure-registries, buildkit and podman want. */
export function mirrorLocation(mirrorUrl: string): string {
  return mirrorUrl.replace(/^https?:\/\//, "");
}

export function mirrorHostPort(mirrorUrl: string): string {
  return new URL(mirrorUrl).host;
}

/** The URL a container on the host's Docker (devcontainer, dind service) uses. */
export function containerMirrorUrl(s: Settings): string {
  return s.mirrorUrl ?? `${mirrorScheme(s)}://${s.host ?? DOCKER_HOST_ALIAS}:${s.port}`;
}

/** The URL clients running directly on the host use (wire). */
export function hostMirrorUrl(s: Settings): string {
  return s.mirrorUrl ?? `${mirrorScheme(s)}://${s.host ?? "127.0.0.1"}:${s.port}`;
}

/** The URL baked into a VM's provisioning; empty means "detect the host inside the guest". */
export function vmMirrorUrl(s: Settings): string {
  return s.mirrorUrl ?? (s.host ? `${mirrorScheme(s)}://${s.host}:${s.port}` : "");
}
