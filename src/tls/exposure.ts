// What the listener exposes, said at startup: plain HTTP without client authentication on an address
// other machines reach, and upstream credentials served that way, each get a clear warning.
import type { MirrorConfig } from "../config/resolve.js";

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/i;

export function exposureWarnings(config: MirrorConfig): string[] {
  if (config.tls || LOOPBACK.test(config.host)) return [];
  const authOn = Boolean(config.auth.htpasswd);
  const where = `${config.host.includes(":") ? `[${config.host}]` : config.host}:${config.port}`;
  const warnings: string[] = [];
  if (!authOn) {
    warnings.push(
      `serving plain HTTP without client authentication on ${where}: anyone who can reach this address can use the mirror, and traffic is not encrypted; ` +
        "give it a certificate (mirror-kit cert, then --tls-cert/--tls-key), or listen on 127.0.0.1",
    );
  }
  const credentialed = [...new Set([...config.upstreams.values()].filter((u) => u.username !== undefined).map((u) => u.name))];
  if (credentialed.length > 0) {
    warnings.push(
      `upstream ${credentialed.join(", ")} has credentials and is served over plain HTTP on ${where}` +
        (authOn ? ": client passwords and private images cross the network unencrypted" : ": its private images are readable by anyone who can reach this address") +
        "; serve TLS (--tls-cert/--tls-key)" + (authOn ? "" : " with client authentication"),
    );
  }
  return warnings;
}
