// TLS on the listener, seen from real TLS clients (Node's OpenSSL, curl, openssl s_client):
// HTTPS with certificates made by the openssl CLI, reload on file change and on SIGHUP, mutual TLS, minimum version.
import { spawn } from "node:child_process";
import { copyFile, mkdir, rename, rm, symlink, writeFile } from "node:fs/promises";
import { readFileSync } from "node:fs";
import { request } from "node:https";
import { join } from "node:path";
import { connect, type PeerCertificate } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventually } from "../support/eventually.js";
import { startTestMirror, type TestMirror } from "../support/mirror.js";
import { openSslCa, openSslIssue, type IssuedCert, type TestCa } from "../support/openssl-certs.js";
import { requireTools } from "../support/preflight.js";
import { run } from "../support/process.js";
import { makeTempDir, removeTempDir } from "../support/scratch.js";

const BIN = join(import.meta.dirname, "..", "..", "dist", "cli", "main.js");
const LOOPBACK = ["IP:127.0.0.1", "DNS:localhost"];

let dir: string;
let ca: TestCa;
let otherCa: TestCa;
beforeAll(async () => {
  requireTools(["openssl", "curl"]);
  dir = await makeTempDir("tls");
  ca = await openSslCa(dir, "test-ca");
  otherCa = await openSslCa(dir, "other-ca");
});
afterAll(async () => {
  await removeTempDir(dir);
});

interface Handshake {
  fingerprint?: string;
  error?: string;
}

/** One TLS handshake to `port`, trusting `ca`; what certificate the server presented, or why it failed. */
function handshake(port: number, opts: { ca?: string; cert?: string; key?: string; maxVersion?: "TLSv1.2" | "TLSv1.1"; get?: boolean } = {}): Promise<Handshake & { status?: number }> {
  return new Promise((resolve) => {
    const options = {
      host: "127.0.0.1",
      port,
      servername: "localhost",
      ca: readFileSync(opts.ca ?? ca.cert),
      ...(opts.cert ? { cert: readFileSync(opts.cert), key: readFileSync(opts.key!) } : {}),
      ...(opts.maxVersion ? { maxVersion: opts.maxVersion, minVersion: "TLSv1" as const, ciphers: "DEFAULT@SECLEVEL=0" } : {}),
    };
    if (opts.get) {
      const req = request({ ...options, path: "/v2/", agent: false }, (res) => {
        const peer = (res.socket as import("node:tls").TLSSocket).getPeerCertificate();
        res.resume();
        res.on("end", () => resolve({ status: res.statusCode, fingerprint: peer.fingerprint256 }));
      });
      req.on("error", (err: NodeJS.ErrnoException) => resolve({ error: err.code ?? err.message }));
      req.end();
      return;
    }
    const socket = connect(options, () => {
      const peer: PeerCertificate = socket.getPeerCertificate();
      socket.end();
      resolve({ fingerprint: peer.fingerprint256 });
    });
    socket.on("error", (err: NodeJS.ErrnoException) => resolve({ error: err.code ?? err.message }));
  });
}

async function served(mirror: TestMirror): Promise<string | undefined> {
  return (await handshake(Number(new URL(mirror.url).port))).fingerprint;
}

async function place(cert: IssuedCert, into: string): Promise<{ cert: string; key: string }> {
  await mkdir(into, { recursive: true });
  const paths = { cert: join(into, "server.crt"), key: join(into, "server.key") };
  await copyFile(cert.cert, paths.cert);
  await copyFile(cert.key, paths.key);
  return paths;
}

describe("TLS on the listener", () => {
  it("serves HTTPS with the configured certificate: /v2/ answers 200 to a client trusting the CA", async () => {
    const issued = await openSslIssue(ca, "serve", { sans: LOOPBACK });
    const mirror = await startTestMirror({ "docker.io": "http://127.0.0.1:9" }, { tls: { certificate: issued.cert, key: issued.key } });
    try {
      expect(mirror.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      const port = Number(new URL(mirror.url).port);
      expect(await handshake(port, { get: true })).toEqual({ status: 200, fingerprint: issued.fingerprint });
      // curl, a client of its own, verifies the chain and the 127.0.0.1 SAN.
      const curl = await run("curl", ["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", ca.cert, `${mirror.url}/v2/`]);
      expect(curl.stdout).toBe("200");
      // A client that does not trust the CA is refused by its own verification.
      expect((await handshake(port, { ca: otherCa.cert })).error).toBe("UNABLE_TO_VERIFY_LEAF_SIGNATURE");
    } finally {
      await mirror.close();
    }
  });

  it("picks up a renewed certificate when its files are replaced, and keeps the old one when the new files are bad", async () => {
    const live = join(dir, "renew");
    const first = await openSslIssue(ca, "renew-1", { sans: LOOPBACK });
    const paths = await place(first, live);
    const mirror = await startTestMirror({ "docker.io": "http://127.0.0.1:9" }, { tls: { certificate: paths.cert, key: paths.key } });
    try {
      expect(await served(mirror)).toBe(first.fingerprint);
      // Renewal as certbot-like tools do it: write beside, rename over (key first, then certificate).
      const second = await openSslIssue(ca, "renew-2", { sans: LOOPBACK });
      await copyFile(second.key, `${paths.key}.tmp`);
      await rename(`${paths.key}.tmp`, paths.key);
      await copyFile(second.cert, `${paths.cert}.tmp`);
      await rename(`${paths.cert}.tmp`, paths.cert);
      expect(await eventually(() => served(mirror), (f) => f === second.fingerprint, 10_000)).toBe(second.fingerprint);

      // A truncated certificate, then a key that does not match: the running certificate stays.
      await writeFile(paths.cert, "-----BEGIN CERTIFICATE-----\nnot base64\n");
      await new Promise((r) => setTimeout(r, 1_500));
      expect(await served(mirror)).toBe(second.fingerprint);
      await copyFile(first.cert, paths.cert); // first's certificate with second's key
      await new Promise((r) => setTimeout(r, 1_500));
      expect(await served(mirror)).toBe(second.fingerprint);

      // Written in place (cp over the old file) this time.
      const third = await openSslIssue(ca, "renew-3", { sans: LOOPBACK });
      await copyFile(third.key, paths.key);
      await copyFile(third.cert, paths.cert);
      expect(await eventually(() => served(mirror), (f) => f === third.fingerprint, 10_000)).toBe(third.fingerprint);
    } finally {
      await mirror.close();
    }
  });

  it("mutual TLS (clientCAs): refuses a client without a certificate or with one from another CA, serves one the CA signed", async () => {
    const server = await openSslIssue(ca, "mtls", { sans: LOOPBACK });
    const clientCa = await openSslCa(dir, "client-ca");
    const good = await openSslIssue(clientCa, "good-client", { client: true });
    const stranger = await openSslIssue(otherCa, "stranger", { client: true });
    const mirror = await startTestMirror({ "docker.io": "http://127.0.0.1:9" }, { tls: { certificate: server.cert, key: server.key, clientCAs: [clientCa.cert] } });
    try {
      const port = Number(new URL(mirror.url).port);
      expect(await handshake(port, { cert: good.cert, key: good.key, get: true })).toEqual({ status: 200, fingerprint: server.fingerprint });
      // With TLS 1.3 the server's refusal arrives as an alert after the client's handshake: the request fails.
      expect((await handshake(port, { get: true })).status).toBeUndefined();
      expect((await handshake(port, { cert: stranger.cert, key: stranger.key, get: true })).status).toBeUndefined();
      const noCert = await run("curl", ["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", ca.cert, `${mirror.url}/v2/`], { allowFailure: true });
      expect(noCert.code).not.toBe(0);
      expect(noCert.stdout).toBe("000");
      const withCert = await run("curl", ["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", ca.cert, "--cert", good.cert, "--key", good.key, `${mirror.url}/v2/`]);
      expect(withCert.stdout).toBe("200");
    } finally {
      await mirror.close();
    }
  });

  it("minimumVersion: tls1.2 by default refuses TLS 1.1; tls1.3 refuses TLS 1.2 (Node's client and openssl s_client)", async () => {
    const issued = await openSslIssue(ca, "minver", { sans: LOOPBACK });
    const byDefault = await startTestMirror({ "docker.io": "http://127.0.0.1:9" }, { tls: { certificate: issued.cert, key: issued.key } });
    const strict = await startTestMirror({ "docker.io": "http://127.0.0.1:9" }, { tls: { certificate: issued.cert, key: issued.key, minimumVersion: "tls1.3" } });
    try {
      const defaultPort = Number(new URL(byDefault.url).port);
      const strictPort = Number(new URL(strict.url).port);
      expect(await handshake(defaultPort, { maxVersion: "TLSv1.2" })).toEqual({ fingerprint: issued.fingerprint });
      expect((await handshake(defaultPort, { maxVersion: "TLSv1.1" })).error).toBeDefined();
      expect((await handshake(strictPort, { maxVersion: "TLSv1.2" })).error).toBeDefined();
      expect(await handshake(strictPort)).toEqual({ fingerprint: issued.fingerprint });
      const s12 = await run("openssl", ["s_client", "-connect", `127.0.0.1:${strictPort}`, "-tls1_2", "-CAfile", ca.cert], { input: "", allowFailure: true });
      expect(s12.code).not.toBe(0);
      expect(s12.stdout + s12.stderr).toMatch(/alert protocol version|no protocols available|wrong version/i);
      const s13 = await run("openssl", ["s_client", "-connect", `127.0.0.1:${strictPort}`, "-tls1_3", "-CAfile", ca.cert], { input: "", allowFailure: true });
      expect(s13.stdout).toContain("Verify return code: 0 (ok)");
    } finally {
      await byDefault.close();
      await strict.close();
    }
  });
});

describe("mirror-kit serve with TLS (the binary)", () => {
  it("re-reads the certificate on SIGHUP, even when a folder swap hides the change from the file watch", async () => {
    // certs -> a/ holds the first pair; b/ the second. Swapping the `certs` symlink changes what the
    // configured paths point to without touching the folder being watched, so only SIGHUP can see it.
    const base = join(dir, "sighup");
    const first = await openSslIssue(ca, "hup-1", { sans: LOOPBACK });
    const second = await openSslIssue(ca, "hup-2", { sans: LOOPBACK });
    await place(first, join(base, "a"));
    await place(second, join(base, "b"));
    await symlink(join(base, "a"), join(base, "certs"));
    const storage = join(base, "storage");
    const child = spawn(process.execPath, [BIN, "serve", "--listen", "127.0.0.1:0", "--storage", storage, "--upstream", "docker.io=http://127.0.0.1:9", "--tls-cert", join(base, "certs", "server.crt"), "--tls-key", join(base, "certs", "server.key")], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { PATH: process.env.PATH ?? "" },
    });
    const lines: string[] = [];
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let buf = "";
        child.stdout.on("data", (c: Buffer) => {
          buf += c.toString();
          const parts = buf.split("\n");
          buf = parts.pop() ?? "";
          for (const line of parts) {
            lines.push(line);
            const entry = JSON.parse(line) as { msg?: string; url?: string };
            if (entry.msg === "mirror-kit listening" && entry.url) resolve(entry.url);
          }
        });
        child.on("exit", (code) => reject(new Error(`exited ${code} before listening`)));
      });
      expect(url).toMatch(/^https:/);
      const port = Number(new URL(url).port);
      expect((await handshake(port)).fingerprint).toBe(first.fingerprint);
      await rm(join(base, "certs"));
      await symlink(join(base, "b"), join(base, "certs"));
      await new Promise((r) => setTimeout(r, 1_500));
      expect((await handshake(port)).fingerprint).toBe(first.fingerprint);
      child.kill("SIGHUP");
      expect(await eventually(async () => (await handshake(port)).fingerprint, (f) => f === second.fingerprint, 10_000)).toBe(second.fingerprint);
      // The log line is written before the new certificate can be seen, but reaches this process
      // through a pipe read asynchronously: a handshake can come back first on a loaded machine.
      expect(await eventually(async () => lines.some((l) => l.includes("TLS certificate reloaded (SIGHUP)")), (seen) => seen, 5_000)).toBe(true);
    } finally {
      const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
      child.kill("SIGTERM");
      expect(await exited).toBe(0);
    }
  });

  it("refuses to start, naming the setting, when the certificate cannot be read", async () => {
    const storage = join(dir, "refuse-storage");
    const issued = await openSslIssue(ca, "refuse", { sans: LOOPBACK });
    const r = await run(process.execPath, [BIN, "serve", "--listen", "127.0.0.1:0", "--storage", storage, "--tls-cert", join(dir, "missing.crt"), "--tls-key", issued.key], { allowFailure: true });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("tls.certificate: cannot read");
    expect(r.stdout).not.toContain("listening");
  });
});
