// Where each client looks for the CA of a TLS mirror (the --ca of wire/init), keyed by the mirror's
// HOST:PORT, and the file change that puts it there. Plain-HTTP mirrors get none.
import { join } from "node:path";
import { readIfExists, type FileChange } from "./files.js";
import { mirrorHostPort, type Settings } from "./settings.js";

export type CaClient = "docker" | "containerd" | "podman" | "buildkit" | "k3s";

/** dockerd and containers/image read HOST:PORT/ca.crt themselves; the others are pointed at the file. */
const CA_DIRS: Record<CaClient, string> = {
  docker: "/etc/docker/certs.d",
  containerd: "/etc/containerd/certs.d",
  podman: "/etc/containers/certs.d",
  buildkit: "/etc/buildkit/certs.d",
  k3s: "/etc/rancher/k3s/certs.d",
};

/** The CA's path on the client machine, or "" when the mirror is not TLS with a CA of ours. */
export function caPath(client: CaClient, s: Settings, url: string): string {
  if (!s.ca || !url.startsWith("https://")) return "";
  return `${CA_DIRS[client]}/${mirrorHostPort(url)}/ca.crt`;
}

export function caChanges(client: CaClient, s: Settings, url: string, root: string): FileChange[] {
  const display = caPath(client, s, url);
  if (!display || !s.ca) return [];
  const path = join(root, display);
  return [{ path, display, before: readIfExists(path, display), after: s.ca.pem }];
}
