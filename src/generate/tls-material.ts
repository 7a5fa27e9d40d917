// The TLS files `init --ca` works from: the CA every client is given, and, beside it where `mirror-kit
// cert` writes them, the server certificate and key the generated Compose service serves with.
import { X509Certificate } from "node:crypto";
import { existsSync, readFileSync, statSync } from "node:fs";
import { isIP } from "node:net";
import { dirname, join } from "node:path";
import { GenerateError } from "./errors.js";

export interface ServerPair {
  certFile: string;
  keyFile: string;
  cert: X509Certificate;
}

export interface CaMaterial {
  pem: string;
  file: string;
  /** server.crt and server.key beside the CA, when both are there; absent for a CA of a mirror elsewhere. */
  server?: ServerPair;
}

/** The CA PEM (a file, or the folder `mirror-kit cert` wrote), read and checked now so a wrong file fails here and not on every client later. */
export function readCa(raw: string): CaMaterial {
  let file = raw;
  let pem: string;
  try {
    if (statSync(raw).isDirectory()) file = join(raw, "ca.crt");
    pem = readFileSync(file, "utf8");
  } catch (err) {
    throw new GenerateError("BAD_OPTION", `--ca: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(pem);
  } catch {
    throw new GenerateError("BAD_OPTION", `--ca: ${file} is not a PEM certificate (expected the ca.crt that \`mirror-kit cert\` wrote)`);
  }
  if (!cert.ca) throw new GenerateError("BAD_OPTION", `--ca: ${file} is not a CA certificate; give the CA (ca.crt), not the server certificate`);
  if (/PRIVATE KEY/.test(pem)) throw new GenerateError("BAD_OPTION", `--ca: ${file} contains a private key; give the CA certificate only`);
  const server = readServerPair(file, cert);
  return { pem: pem.endsWith("\n") ? pem : `${pem}\n`, file, ...(server ? { server } : {}) };
}

/**
 * `mirror-kit cert`'s layout: server.crt and server.key next to ca.crt. The key is only checked to be
 * there (it stays where it is, mounted into the mirror's container; init never copies or prints it).
 */
function readServerPair(caFile: string, ca: X509Certificate): ServerPair | undefined {
  const dir = dirname(caFile);
  const certFile = join(dir, "server.crt");
  const keyFile = join(dir, "server.key");
  if (!existsSync(certFile) || !existsSync(keyFile)) return undefined;
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(readFileSync(certFile));
  } catch (err) {
    throw new GenerateError("BAD_OPTION", `--ca: ${certFile} beside the CA is not a PEM certificate: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) {
    throw new GenerateError("BAD_OPTION", `--ca: ${certFile} was not signed by ${caFile}; re-issue it with \`mirror-kit cert --dir ${dir}\``);
  }
  return { certFile, keyFile, cert };
}

/** The server pair the Compose service needs to serve TLS; refused by name when `--ca` has none beside it. */
export function requireServerPair(ca: CaMaterial): ServerPair {
  if (ca.server) return ca.server;
  const dir = dirname(ca.file);
  throw new GenerateError(
    "BAD_OPTION",
    `--ca: the Compose service mirror-kit serves the mirror, so it needs the server certificate and key beside the CA (${join(dir, "server.crt")}, ${join(dir, "server.key")}); create them with \`mirror-kit cert --dir ${dir} --san mirror-kit\``,
  );
}

/** Whether the server certificate names `host` (a DNS name, or an IP address, bracketed or not). */
export function covers(server: ServerPair, host: string): boolean {
  const bare = host.replace(/^\[(.*)\]$/, "$1");
  return isIP(bare) ? server.cert.checkIP(bare) !== undefined : server.cert.checkHost(bare) !== undefined;
}

/** VirtualBox's NAT shows the host to a VM as this address, which is none of the host's own interfaces. */
export const VIRTUALBOX_HOST = "10.0.2.2";

/**
 * A client that reaches the mirror as `host` fails every pull when the certificate does not name it;
 * say so at init, with the command that fixes it, rather than as an x509 error inside a container.
 */
export function requireCoverage(ca: CaMaterial | undefined, host: string, who: string): void {
  const server = ca?.server;
  if (!server || covers(server, host)) return;
  const bare = host.replace(/^\[(.*)\]$/, "$1");
  throw new GenerateError(
    "BAD_OPTION",
    `--ca: ${server.certFile} does not cover "${bare}", the name ${who} use to reach the mirror; add it with \`mirror-kit cert --dir ${dirname(server.certFile)} --san ${bare}\` (the CA is kept) and run init again`,
  );
}
