// `mirror-kit cert`'s work: a local CA (kept and reused) and a server certificate it signs for this
// host's names and addresses, made with @peculiar/x509; key files are created 0600, never wider.
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { createPrivateKey, webcrypto, X509Certificate as NodeCertificate } from "node:crypto";
import { mkdir, open, readFile, rename, rm } from "node:fs/promises";
import { isIP } from "node:net";
import { hostname, networkInterfaces } from "node:os";
import { join } from "node:path";
import { MirrorKitError } from "../errors.js";

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

export type CertErrorCode = "MK_CERT_BAD_SAN" | "MK_CERT_BAD_CA" | "MK_CERT_WRITE_FAILED";

export class CertError extends MirrorKitError {
  override readonly name = "CertError";
  constructor(code: CertErrorCode, message: string) {
    super(code, message);
  }
}

export interface CertFiles {
  readonly dir: string;
  readonly caCert: string;
  readonly caKey: string;
  readonly serverCert: string;
  readonly serverKey: string;
}

export interface CertResult {
  readonly files: CertFiles;
  /** false: an existing CA was reused (clients that trust it need nothing new). */
  readonly caCreated: boolean;
  readonly dnsNames: readonly string[];
  readonly ipAddresses: readonly string[];
  readonly notAfter: Date;
}

export interface CertOptions {
  dir: string;
  /** Extra DNS names or IP addresses. */
  sans?: readonly string[];
  /** Server certificate lifetime. Default 825 days (the longest Apple platforms accept from a local CA). */
  days?: number;
  /** For tests: this host's names and addresses instead of os.hostname()/os.networkInterfaces(). */
  host?: { name: string; addresses: readonly string[] };
}

const EC = { name: "ECDSA", namedCurve: "P-256" } as const;
const SIGN = { name: "ECDSA", hash: "SHA-256" } as const;
const CA_YEARS = 10;
const DNS_NAME = /^(?:\*\.)?(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/i;

export function certFiles(dir: string): CertFiles {
  return { dir, caCert: join(dir, "ca.crt"), caKey: join(dir, "ca.key"), serverCert: join(dir, "server.crt"), serverKey: join(dir, "server.key") };
}

/** This host's names and every address of its interfaces, plus the loopback names. */
export function hostSans(host: { name: string; addresses: readonly string[] } = { name: hostname(), addresses: Object.values(networkInterfaces()).flatMap((l) => (l ?? []).map((a) => a.address)) }): { dns: string[]; ips: string[] } {
  // IPv6 link-local addresses (fe80::/10) are left out: without a zone id no client can put one in a URL.
  const usable = host.addresses.filter((a) => !/^fe[89ab][0-9a-f]:/i.test(a));
  return { dns: unique(["localhost", host.name].filter((n) => DNS_NAME.test(n))), ips: unique(["127.0.0.1", "::1", ...usable]) };
}

export async function issueCertificates(o: CertOptions): Promise<CertResult> {
  const files = certFiles(o.dir);
  const base = hostSans(o.host);
  const dns = [...base.dns];
  const ips = [...base.ips];
  for (const san of o.sans ?? []) {
    if (isIP(san)) ips.push(san);
    else if (DNS_NAME.test(san)) dns.push(san.toLowerCase());
    else throw new CertError("MK_CERT_BAD_SAN", `--san ${JSON.stringify(san)}: expected a DNS name (e.g. mirror.lan) or an IP address`);
  }
  await mkdir(o.dir, { recursive: true });
  const existing = await loadCa(files);
  const ca = existing ?? (await createCa());
  const keys = (await webcrypto.subtle.generateKey(EC, true, ["sign", "verify"])) as CryptoKeyPair;
  const notBefore = new Date(Date.now() - 5 * 60_000); // a little slack for clients whose clock is behind
  const notAfter = new Date(notBefore.getTime() + (o.days ?? 825) * 86_400_000);
  const server = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: [{ CN: [unique(dns).find((d) => d !== "localhost") ?? "localhost"] }, { O: ["mirror-kit"] }],
    issuer: ca.cert.subject,
    notBefore,
    notAfter,
    publicKey: keys.publicKey,
    signingKey: ca.key,
    signingAlgorithm: SIGN,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([...unique(dns).map((value) => ({ type: "dns" as const, value })), ...unique(ips).map((value) => ({ type: "ip" as const, value }))]),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(ca.cert),
    ],
  });
  if (!existing) {
    // The CA key first: a CA certificate without its key could never sign again.
    await writeKey(files.caKey, await pemKey(ca.key));
    await writeAtomically(files.caCert, ca.cert.toString("pem") + "\n", 0o644);
  }
  // Key before certificate, each replaced by rename: a mirror watching the folder sees whole files.
  await writeKey(files.serverKey, await pemKey(keys.privateKey));
  await writeAtomically(files.serverCert, server.toString("pem") + "\n", 0o644);
  return { files, caCreated: !existing, dnsNames: unique(dns), ipAddresses: unique(ips), notAfter };
}

interface Ca {
  cert: x509.X509Certificate;
  key: CryptoKey;
}

async function createCa(): Promise<Ca> {
  const keys = (await webcrypto.subtle.generateKey(EC, true, ["sign", "verify"])) as CryptoKeyPair;
  const notBefore = new Date(Date.now() - 5 * 60_000);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: [{ CN: [`mirror-kit local CA (${hostname()})`] }, { O: ["mirror-kit"] }],
    notBefore,
    notAfter: new Date(notBefore.getTime() + CA_YEARS * 365 * 86_400_000),
    keys,
    signingAlgorithm: SIGN,
    extensions: [
      // pathLength 0: the CA signs server certificates only, never another CA.
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { cert, key: keys.privateKey };
}

/** The CA from an earlier run, or undefined when there is none; a half or broken CA is an error, never overwritten. */
async function loadCa(files: CertFiles): Promise<Ca | undefined> {
  const [certPem, keyPem] = await Promise.all([readIfExists(files.caCert), readIfExists(files.caKey)]);
  if (certPem === undefined && keyPem === undefined) return undefined;
  if (certPem === undefined || keyPem === undefined) {
    throw new CertError("MK_CERT_BAD_CA", `${certPem === undefined ? files.caCert : files.caKey} is missing but ${certPem === undefined ? files.caKey : files.caCert} exists: restore it, or remove both to make a new CA (clients must then trust the new one)`);
  }
  try {
    const nodeKey = createPrivateKey(keyPem);
    const nodeCert = new NodeCertificate(certPem);
    if (!nodeCert.checkPrivateKey(nodeKey)) throw new CertError("MK_CERT_BAD_CA", `${files.caKey} is not the key of ${files.caCert}: restore the matching pair, or remove both to make a new CA`);
    if (!nodeCert.ca) throw new CertError("MK_CERT_BAD_CA", `${files.caCert} is not a CA certificate`);
    const der = nodeKey.export({ format: "der", type: "pkcs8" });
    const algorithm = nodeKey.asymmetricKeyType === "ec" ? { name: "ECDSA", namedCurve: nodeKey.asymmetricKeyDetails?.namedCurve === "prime256v1" ? "P-256" : nodeKey.asymmetricKeyDetails?.namedCurve === "secp384r1" ? "P-384" : "unsupported" } : { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" };
    const key = await webcrypto.subtle.importKey("pkcs8", der, algorithm, false, ["sign"]);
    return { cert: new x509.X509Certificate(certPem), key };
  } catch (err) {
    if (err instanceof CertError) throw err;
    throw new CertError("MK_CERT_BAD_CA", `${files.caCert} / ${files.caKey}: cannot reuse this CA: ${(err as Error).message}`);
  }
}

async function pemKey(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey("pkcs8", key));
  return x509.PemConverter.encode(der, "PRIVATE KEY") + "\n";
}

function writeKey(path: string, pem: string): Promise<void> {
  return writeAtomically(path, pem, 0o600);
}

/**
 * Written beside the target with its final mode from the first byte (open with the mode, exclusive),
 * then renamed over it: a key is never readable by others, and no reader sees half a file.
 */
async function writeAtomically(path: string, content: string, mode: number): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
  try {
    const fh = await open(tmp, "wx", mode);
    try {
      await fh.writeFile(content);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw new CertError("MK_CERT_WRITE_FAILED", `cannot write ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
}

async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new CertError("MK_CERT_BAD_CA", `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
}

/** 16 random bytes with the top bit clear: positive, as RFC 5280 requires, and unguessable. */
function randomSerial(): string {
  const bytes = webcrypto.getRandomValues(new Uint8Array(16));
  bytes[0]! &= 0x7f;
  bytes[0]! |= 0x01;
  return Buffer.from(bytes).toString("hex");
}

function unique(list: readonly string[]): string[] {
  return [...new Set(list)];
}
