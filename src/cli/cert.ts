// `mirror-kit cert`: a local CA and a server certificate for this host, then what to do with them.
// runCert is what tests call; the files themselves are made in src/tls/ca.ts.
import { relative } from "node:path";
import type { CommandModule } from "yargs";
import { VIRTUALBOX_HOST } from "../generate/tls-material.js";
import type { CertResult } from "../tls/ca.js";

export interface CertArgs {
  dir: string;
  san?: string[];
  days?: number;
}

export async function runCert(args: CertArgs, out: { write(s: string): unknown }): Promise<CertResult> {
  // Loaded here, not at startup: serve never needs the X.509 library.
  const { issueCertificates } = await import("../tls/ca.js");
  const result = await issueCertificates({ dir: args.dir, sans: args.san ?? [], ...(args.days !== undefined ? { days: args.days } : {}) });
  const f = result.files;
  const show = (p: string) => (relative(process.cwd(), p).startsWith("..") ? p : relative(process.cwd(), p) || p);
  const lines = [
    result.caCreated ? `created a local CA:       ${show(f.caCert)}` : `reused the local CA:      ${show(f.caCert)} (clients that trust it need nothing new)`,
    `  its private key (0600):  ${show(f.caKey)}  keep it here, private; it signs what clients will trust`,
    `server certificate:       ${show(f.serverCert)} (valid until ${result.notAfter.toISOString().slice(0, 10)})`,
    `  its private key (0600):  ${show(f.serverKey)}`,
    `  names:     ${result.dnsNames.join(", ")}`,
    `  addresses: ${result.ipAddresses.join(", ")}`,
    "",
    "next steps:",
    `  1. serve with it:   mirror-kit serve --tls-cert ${show(f.serverCert)} --tls-key ${show(f.serverKey)}`,
    "     (a running mirror picks up a re-issued certificate by itself, or on SIGHUP)",
    `  2. trust the CA on each client machine: mirror-kit wire docker --mirror-url https://HOST:5000 --ca ${show(f.caCert)} --apply`,
    "     (or copy ca.crt to /etc/docker/certs.d/HOST:5000/ca.crt, /etc/containers/certs.d/HOST:5000/ca.crt)",
    `  or wire a project's VMs, dev containers and Compose stack: mirror-kit init --ca ${show(f.dir)}`,
    `     (Compose needs --san mirror-kit, dev containers --san host.docker.internal, VirtualBox VMs --san ${VIRTUALBOX_HOST})`,
    "  3. another name or address later: run this again with --san NAME; the CA is kept",
  ];
  out.write(`${lines.join("\n")}\n`);
  return result;
}

export const certCommand: CommandModule<object, CertArgs> = {
  command: "cert",
  describe: "Create a local CA and a TLS certificate for this host (re-run: same CA, new certificate)",
  builder: (y) =>
    y
      .option("dir", { type: "string", default: "mirror-kit-tls", describe: "folder for ca.crt, ca.key, server.crt, server.key" })
      .option("san", { type: "string", array: true, describe: "another DNS name or IP address for the certificate, repeatable (this host's name and addresses are always in)" })
      .option("days", { type: "number", describe: "server certificate lifetime in days (default 825)" })
      .example("$0 cert --san mirror.lan --san 10.0.0.5", "a certificate that also covers mirror.lan and 10.0.0.5"),
  handler: async (args) => {
    await runCert(args, process.stdout);
  },
};
