// Certificates made by the openssl CLI, independent of mirror-kit's own `cert` code: a CA and
// server/client certificates it signs, for the TLS listener suites.
import { X509Certificate } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { requireTools } from "./preflight.js";
import { run } from "./process.js";

export interface TestCa {
  readonly cert: string;
  readonly key: string;
  readonly dir: string;
}

export interface IssuedCert {
  readonly cert: string;
  readonly key: string;
  /** SHA-256 fingerprint as node prints it (AA:BB:...). */
  readonly fingerprint: string;
}

let serial = 0;

/** A P-256 CA valid for two days, files under `dir` named after `name`. */
export async function openSslCa(dir: string, name: string): Promise<TestCa> {
  requireTools(["openssl"]);
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  await run("openssl", [
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert,
    "-days", "2", "-subj", `/CN=${name}`,
    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
  ]);
  return { cert, key, dir };
}

/** A certificate signed by `ca` for `sans` (e.g. ["IP:127.0.0.1", "DNS:localhost"]); client certificates get clientAuth. */
export async function openSslIssue(ca: TestCa, name: string, opts: { sans?: string[]; client?: boolean; into?: string } = {}): Promise<IssuedCert> {
  const dir = opts.into ?? ca.dir;
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const ext = join(dir, `${name}.ext`);
  await run("openssl", ["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", csr, "-subj", `/CN=${name}`]);
  const lines = [
    `extendedKeyUsage=${opts.client ? "clientAuth" : "serverAuth"}`,
    "basicConstraints=CA:FALSE",
    ...(opts.sans?.length ? [`subjectAltName=${opts.sans.join(",")}`] : []),
  ];
  await writeFile(ext, `${lines.join("\n")}\n`);
  serial += 1;
  await run("openssl", [
    "x509", "-req", "-in", csr, "-CA", ca.cert, "-CAkey", ca.key, "-set_serial", String(Date.now() * 1000 + serial),
    "-days", "2", "-extfile", ext, "-out", cert,
  ]);
  return { cert, key, fingerprint: new X509Certificate(await readFile(cert)).fingerprint256 };
}
