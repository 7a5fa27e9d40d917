// How the mirror listens: plain HTTP, or HTTPS (optionally mutual TLS) whose certificate, key and
// client CAs are re-read on demand (SIGHUP) and when their files change, keeping the old pair on error.
import { createHash, X509Certificate } from "node:crypto";
import { watch, type FSWatcher } from "node:fs";
import { readFile } from "node:fs/promises";
import { createServer as createHttpServer, type RequestListener, type Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { dirname, resolve } from "node:path";
import { createSecureContext, type SecureContextOptions } from "node:tls";
import { ConfigError } from "../config/schema.js";
import { MirrorKitError } from "../errors.js";
import type { TlsConfig } from "../config/resolve.js";
import type { Logger } from "../observe/log.js";

/** A server and, when it speaks TLS, what reloads its certificate. */
export interface Listener {
  readonly server: Server;
  readonly scheme: "http" | "https";
  /** Re-read the TLS files now; resolves false (and logs why) when the new files are unusable. */
  reloadTls(reason: string): Promise<boolean>;
  close(): void;
}

const WATCH_SETTLE_MS = 300;

/** The bytes of the TLS files, as read by a process that may lose the right to read them (serve's privilege drop). */
export interface TlsFiles {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly clientCAs: readonly Buffer[];
}

/**
 * `preloaded`: the files as read before the process dropped to its service user (the image starts as
 * root), like nginx's master reads keys only root can read. Later reloads read the files again, and a
 * file the service user cannot read then fails that reload, logged, with the running pair kept.
 */
export async function createListener(tls: TlsConfig | undefined, handler: RequestListener, log: Logger, preloaded?: TlsFiles): Promise<Listener> {
  if (!tls) {
    const server = createHttpServer({ keepAliveTimeout: 65_000 }, handler);
    return { server, scheme: "http", reloadTls: async () => false, close: () => undefined };
  }
  // At startup a bad file is a configuration error: refuse to start rather than serve without TLS.
  const first = material(tls, preloaded ?? (await readTlsFiles(tls)));
  checkPair(first, tls, (msg) => new ConfigError(msg));
  const mutual = tls.clientCAFiles.length > 0;
  const server = createHttpsServer({ keepAliveTimeout: 65_000, ...first.options, requestCert: mutual, rejectUnauthorized: mutual }, handler);
  server.on("tlsClientError", (err: NodeJS.ErrnoException, socket) => {
    log.debug({ err: err.code ?? err.message, remote: socket.remoteAddress }, "TLS handshake failed");
  });
  let current = first.fingerprint;
  logCertificate(log, first, "TLS certificate loaded");

  let reloading = Promise.resolve(true);
  const reloadTls = (reason: string): Promise<boolean> => {
    reloading = reloading.then(async () => {
      let next: Material;
      try {
        next = await readMaterial(tls);
        checkPair(next, tls, (msg) => new MirrorKitError("MK_TLS_RELOAD_FAILED", msg));
      } catch (err) {
        log.error({ reason, err: (err as Error).message }, "TLS reload failed: the previous certificate stays in use");
        return false;
      }
      if (next.fingerprint === current) return true;
      server.setSecureContext(next.options);
      current = next.fingerprint;
      logCertificate(log, next, `TLS certificate reloaded (${reason})`);
      return true;
    });
    return reloading;
  };

  const stopWatching = watchFiles([tls.certFile, tls.keyFile, ...tls.clientCAFiles], () => void reloadTls("file changed"), log);
  return { server, scheme: "https", reloadTls, close: stopWatching };
}

interface Material {
  readonly options: SecureContextOptions;
  /** Over every file's bytes: an unchanged set is not reloaded or logged. */
  readonly fingerprint: string;
  readonly cert: Buffer;
}

export async function readTlsFiles(tls: TlsConfig): Promise<TlsFiles> {
  const read = async (file: string, setting: string): Promise<Buffer> => {
    try {
      return await readFile(file);
    } catch (err) {
      throw new ConfigError(`${setting}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
  };
  const cert = await read(tls.certFile, "tls.certificate");
  const key = await read(tls.keyFile, "tls.key");
  const clientCAs = await Promise.all(tls.clientCAFiles.map((f) => read(f, "tls.clientCAs")));
  return { cert, key, clientCAs };
}

async function readMaterial(tls: TlsConfig): Promise<Material> {
  return material(tls, await readTlsFiles(tls));
}

function material(tls: TlsConfig, files: TlsFiles): Material {
  const { cert, key } = files;
  const ca = [...files.clientCAs];
  const hash = createHash("sha256");
  for (const b of [cert, key, ...ca]) hash.update(createHash("sha256").update(b).digest());
  const options: SecureContextOptions = {
    cert,
    key,
    minVersion: tls.minVersion,
    ...(ca.length > 0 ? { ca } : {}),
    // OpenSSL 3 refuses TLS 1.0/1.1 at its default security level; an operator who asked for them gets them.
    ...(tls.minVersion === "TLSv1" || tls.minVersion === "TLSv1.1" ? { ciphers: "DEFAULT@SECLEVEL=0" } : {}),
  };
  return { options, fingerprint: hash.digest("hex"), cert };
}

/** The pair must parse and match (OpenSSL checks it), and the certificate must not have expired. */
function checkPair(m: Material, tls: TlsConfig, fail: (msg: string) => Error): void {
  try {
    createSecureContext(m.options);
  } catch (err) {
    throw fail(`tls: ${tls.certFile} and ${tls.keyFile} are not a usable certificate and key: ${(err as Error).message}`);
  }
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(m.cert);
  } catch (err) {
    throw fail(`tls.certificate: ${tls.certFile} is not a PEM certificate: ${(err as Error).message}`);
  }
  if (new Date(cert.validTo).getTime() < Date.now()) throw fail(`tls.certificate: ${tls.certFile} expired on ${cert.validTo}`);
}

function logCertificate(log: Logger, m: Material, msg: string): void {
  const cert = new X509Certificate(m.cert);
  log.info({ subject: cert.subject.replace(/\n/g, ", "), subjectAltName: cert.subjectAltName, validTo: cert.validTo, sha256: cert.fingerprint256 }, msg);
}

/**
 * Watches the folders holding the files, not the files: renewals usually replace a file (rename,
 * a certbot or Kubernetes symlink swap), and a watch on the old inode would never fire again.
 */
function watchFiles(files: readonly string[], onChange: () => void, log: Logger): () => void {
  let timer: NodeJS.Timeout | undefined;
  const settle = () => {
    // Tools write the certificate and the key one after the other: reload once both have landed.
    clearTimeout(timer);
    timer = setTimeout(onChange, WATCH_SETTLE_MS);
    timer.unref();
  };
  const watchers: FSWatcher[] = [];
  for (const dir of new Set(files.map((f) => dirname(resolve(f))))) {
    try {
      const w = watch(dir, { persistent: false }, settle);
      w.on("error", (err) => log.warn({ dir, err: err.message }, "TLS file watch stopped; SIGHUP still reloads the certificate"));
      watchers.push(w);
    } catch (err) {
      log.warn({ dir, err: (err as Error).message }, "cannot watch TLS files for changes; SIGHUP reloads the certificate");
    }
  }
  return () => {
    clearTimeout(timer);
    for (const w of watchers) w.close();
  };
}
