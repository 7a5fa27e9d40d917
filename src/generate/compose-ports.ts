// Host ports a Compose file already publishes (short and long `ports:` syntax, ranges, ${VAR:-default}),
// so init can tell when the mirror's port would clash with another service and propose a free one.
import type { Document } from "yaml";
import { SERVICE_NAME } from "./compose-view.js";

/** Host TCP port -> the service publishing it; the mirror-kit service itself is left out. */
export function publishedHostPorts(doc: Document.Parsed): Map<number, string> {
  const result = new Map<number, string>();
  const services = (doc.toJS() as { services?: unknown } | null)?.services;
  if (!services || typeof services !== "object") return result;
  for (const [name, svc] of Object.entries(services as Record<string, { ports?: unknown } | null>)) {
    if (name === SERVICE_NAME || !svc || !Array.isArray(svc.ports)) continue;
    for (const entry of svc.ports) for (const port of hostPorts(entry)) if (!result.has(port)) result.set(port, name);
  }
  return result;
}

function hostPorts(entry: unknown): number[] {
  if (entry && typeof entry === "object") {
    const long = entry as { published?: unknown; protocol?: unknown };
    if (long.protocol !== undefined && long.protocol !== "tcp") return [];
    return long.published === undefined ? [] : range(interpolate(String(long.published)));
  }
  if (typeof entry !== "string") return []; // a bare number is a container port on a random host port
  const [spec = "", protocol = "tcp"] = interpolate(entry).split("/");
  if (protocol !== "tcp") return [];
  // [HOST_IP:]HOST:CONTAINER, the IP possibly a bracketed IPv6 address; one part only = container port.
  const parts = spec.replace(/^\[[^\]]*\]:/, "").split(":");
  return parts.length < 2 ? [] : range(parts[parts.length - 2]!);
}

/** ${VAR:-default} / ${VAR-default} count as their default (the .env file and shell are not read). */
function interpolate(text: string): string {
  return text.replace(/\$\{[A-Za-z_][A-Za-z0-9_]*(?::?-([^}]*))?\}/g, (_m, fallback: string | undefined) => fallback ?? "");
}

function range(text: string): number[] {
  const m = /^(\d+)(?:-(\d+))?$/.exec(text.trim());
  if (!m) return [];
  const from = Number(m[1]);
  const to = m[2] ? Number(m[2]) : from;
  if (to < from || to - from > 1000) return [from];
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

/** The first port from `wanted` up that no other service publishes. */
export function freeHostPort(wanted: number, taken: Map<number, string>): number {
  let port = wanted;
  while (taken.has(port) && port < 65535) port++;
  return port;
}
