// `mirror-kit cert` as a user runs it, its output checked by openssl (chain, SANs, key usage),
// its key modes, CA reuse on re-run, and a mirror serving the certificate to curl trusting only ca.crt.
import { readFile, rm, stat, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestMirror } from "../support/mirror.js";
import { requireTools } from "../support/preflight.js";
import { run } from "../support/process.js";
import { makeTempDir, removeTempDir } from "../support/scratch.js";

const BIN = join(import.meta.dirname, "..", "..", "dist", "cli", "main.js");
let dir: string;
beforeAll(async () => {
  requireTools(["openssl", "curl", "sh"]);
  dir = await makeTempDir("cert");
});
afterAll(async () => {
  await removeTempDir(dir);
});

/** Runs `mirror-kit cert` under umask 000, so only the modes the command asks for protect the keys. */
function cert(out: string, ...args: string[]) {
  return run("sh", ["-c", `umask 000; exec "$0" "$@"`, process.execPath, BIN, "cert", "--dir", out, ...args], { allowFailure: true });
}

async function openssl(...args: string[]): Promise<string> {
  return (await run("openssl", args)).stdout;
}

describe("mirror-kit cert", () => {
  it("makes a CA and a server certificate openssl verifies, for this host's names and addresses plus --san", async () => {
    const out = join(dir, "first");
    // Other suites start and stop Docker engines (bridges come and go) while this one runs: the
    // addresses checked are those present both before and after the certificate was made.
    const { networkInterfaces } = await import("node:os");
    const ipv4 = () => new Set(Object.values(networkInterfaces()).flatMap((l) => l ?? []).filter((a) => a.family === "IPv4").map((a) => a.address));
    const before = ipv4();
    const r = await cert(out, "--san", "mirror.lan", "--san", "10.99.0.7", "--san", "fd00::99");
    const stable = [...ipv4()].filter((a) => before.has(a));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("created a local CA");
    expect(r.stdout).toContain(join(out, "server.crt"));
    expect(r.stdout).toContain("mirror-kit serve --tls-cert");

    expect(await openssl("verify", "-CAfile", join(out, "ca.crt"), join(out, "server.crt"))).toContain(": OK");
    expect(await openssl("verify", "-x509_strict", "-purpose", "sslserver", "-CAfile", join(out, "ca.crt"), join(out, "server.crt"))).toContain(": OK");
    const ext = await openssl("x509", "-in", join(out, "server.crt"), "-noout", "-ext", "subjectAltName,extendedKeyUsage,basicConstraints");
    for (const want of ["DNS:localhost", `DNS:${hostname().toLowerCase()}`, "DNS:mirror.lan", "IP Address:127.0.0.1", "IP Address:0:0:0:0:0:0:0:1", "IP Address:10.99.0.7", "IP Address:FD00:0:0:0:0:0:0:99", "TLS Web Server Authentication", "CA:FALSE"]) {
      expect(ext).toContain(want);
    }
    // Every interface address of this host is covered (at least loopback is always there).
    expect(stable).toContain("127.0.0.1");
    for (const a of stable) expect(ext).toContain(`IP Address:${a}`);
    const caText = await openssl("x509", "-in", join(out, "ca.crt"), "-noout", "-text");
    expect(caText).toContain("CA:TRUE, pathlen:0");
    expect(caText).toContain("Certificate Sign");
    // The keys are the certificates' own.
    const keyPub = (file: string) => openssl("pkey", "-in", file, "-pubout");
    const certPub = (file: string) => openssl("x509", "-in", file, "-pubkey", "-noout");
    expect(await keyPub(join(out, "server.key"))).toBe(await certPub(join(out, "server.crt")));
    expect(await keyPub(join(out, "ca.key"))).toBe(await certPub(join(out, "ca.crt")));
  });

  it("creates key files 0600 even under umask 000; certificates are 0644", async () => {
    const out = join(dir, "modes");
    expect((await cert(out)).code).toBe(0);
    const mode = async (f: string) => (await stat(join(out, f))).mode & 0o777;
    expect(await mode("ca.key")).toBe(0o600);
    expect(await mode("server.key")).toBe(0o600);
    expect(await mode("ca.crt")).toBe(0o644);
    expect(await mode("server.crt")).toBe(0o644);
  });

  it("re-running keeps the CA and issues a new server certificate it signs", async () => {
    const out = join(dir, "rerun");
    expect((await cert(out)).code).toBe(0);
    const ca1 = await readFile(join(out, "ca.crt"), "utf8");
    const caKey1 = await readFile(join(out, "ca.key"), "utf8");
    const serial1 = await openssl("x509", "-in", join(out, "server.crt"), "-noout", "-serial");
    const again = await cert(out, "--san", "later.lan");
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain("reused the local CA");
    expect(await readFile(join(out, "ca.crt"), "utf8")).toBe(ca1);
    expect(await readFile(join(out, "ca.key"), "utf8")).toBe(caKey1);
    expect(await openssl("x509", "-in", join(out, "server.crt"), "-noout", "-serial")).not.toBe(serial1);
    expect(await openssl("verify", "-CAfile", join(out, "ca.crt"), join(out, "server.crt"))).toContain(": OK");
    expect(await openssl("x509", "-in", join(out, "server.crt"), "-noout", "-ext", "subjectAltName")).toContain("DNS:later.lan");
  });

  it("refuses a CA certificate without its key (exit 1), and a bad --san (exit 2), without touching the files", async () => {
    const out = join(dir, "broken");
    expect((await cert(out)).code).toBe(0);
    const ca = await readFile(join(out, "ca.crt"), "utf8");
    await rm(join(out, "ca.key"));
    // A broken CA on disk is a runtime failure (exit 1); a bad flag is a usage error (exit 2).
    const r = await cert(out);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${join(out, "ca.key")} is missing`);
    expect(await readFile(join(out, "ca.crt"), "utf8")).toBe(ca);

    const bad = await cert(join(dir, "badsan"), "--san", "not a name");
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--san "not a name": expected a DNS name');

    await writeFile(join(out, "ca.key"), "-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n", { mode: 0o600 });
    const garbled = await cert(out);
    expect(garbled.code).toBe(1);
    expect(garbled.stderr).toContain("cannot reuse this CA");
    expect(await readFile(join(out, "ca.crt"), "utf8")).toBe(ca);
  });

  it("the mirror serves the certificate and curl, trusting only ca.crt, verifies it", async () => {
    const out = join(dir, "serve");
    expect((await cert(out)).code).toBe(0);
    const mirror = await startTestMirror({ "docker.io": "http://127.0.0.1:9" }, { tls: { certificate: join(out, "server.crt"), key: join(out, "server.key") } });
    try {
      const port = new URL(mirror.url).port;
      // The test mirror listens on 127.0.0.1; --resolve makes curl check the certificate for each name there.
      for (const host of ["127.0.0.1", "localhost", hostname().toLowerCase()]) {
        const r = await run("curl", ["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--resolve", `${host}:${port}:127.0.0.1`, "--cacert", join(out, "ca.crt"), `https://${host}:${port}/v2/`]);
        expect(r.stdout, host).toBe("200");
      }
      const stranger = await run("curl", ["-sS", "-o", "/dev/null", "--resolve", `elsewhere.example:${port}:127.0.0.1`, "--cacert", join(out, "ca.crt"), `https://elsewhere.example:${port}/v2/`], { allowFailure: true });
      expect(stranger.stderr).toMatch(/SSL: no alternative certificate subject name matches|does not match/);
    } finally {
      await mirror.close();
    }
  });
});
