// Which upstream a request is for: containerd's ?ns=, a host path prefix (podman, skopeo), or the
// default upstream. Only configured upstreams resolve: the mirror is never an open proxy.
import type { MirrorConfig, UpstreamConfig } from "../config/resolve.js";
import { MirrorError } from "../oci/errors.js";
import { looksLikeRegistryHost, parseRegistryHost } from "../oci/hosts.js";
import { validateName } from "../oci/names.js";

export interface Target {
  upstream: UpstreamConfig;
  /** The repository name as the upstream knows it (library/ added for Docker Hub one-segment names). */
  name: string;
  /** The name as the client wrote it (for responses such as tags/list Link headers). */
  clientName: string;
}

export function resolveTarget(rawName: string, ns: string | null, config: MirrorConfig): Target {
  let upstream: UpstreamConfig;
  let name = rawName;
  if (ns !== null) {
    validateName(rawName);
    const found = config.upstreams.get(ns.toLowerCase());
    if (!found) throw notConfigured(ns);
    upstream = found;
  } else {
    const slash = rawName.indexOf("/");
    const first = slash > 0 ? rawName.slice(0, slash) : "";
    // Docker Hub namespaces cannot contain dots or ports, so such a first component is a registry
    // host (registry.local:5000/team/app); the rest is validated as the repository name. Hosts are
    // case-insensitive, as ?ns= is: GHCR.io/o/i is ghcr.io/o/i.
    const host = parseRegistryHost(first);
    if (host !== undefined && looksLikeRegistryHost(host)) {
      const found = config.upstreams.get(host);
      if (!found) throw notConfigured(first);
      upstream = found;
      name = rawName.slice(slash + 1);
    } else {
      validateName(rawName);
      upstream = config.defaultUpstream;
    }
  }
  if (upstream.officialImages && !name.includes("/")) name = `library/${name}`;
  return { upstream, name: validateName(name), clientName: rawName };
}

function notConfigured(host: string): MirrorError {
  return new MirrorError("DENIED", `upstream ${JSON.stringify(host.slice(0, 100))} is not configured on this mirror`);
}
