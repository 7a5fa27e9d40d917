// createListener with files read before serve drops privileges: it serves them, and a reload that cannot
// read the files (the service user's view of a 0600 key) keeps the running pair.
import { X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "node:tls";
import { afterAll, describe, expect, it } from "vitest";
import type { TlsConfig } from "../config/resolve.js";
import { createLogger } from "../observe/log.js";
import { issueCertificates } from "./ca.js";
import { createListener, readTlsFiles } from "./listener.js";

const dir = mkdtempSync(join(tmpdir(), "mk-listener-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// What serve does in the image: read the files as root, then lose the right to read them.
describe("a listener started from TLS files read before the privilege drop", () => {
  it("serves that pair though the files are gone, and a reload that cannot read them keeps it", async () => {
    await issueCertificates({ dir, host: { name: "mirror-host", addresses: [] } });
    const tls: TlsConfig = { certFile: join(dir, "server.crt"), keyFile: join(dir, "server.key"), clientCAFiles: [], minVersion: "TLSv1.2" };
    const preloaded = await readTlsFiles(tls);
    const lines: string[] = [];
    const log = createLogger("info", { write: (l: string) => void lines.push(l) });
    // Unreadable from now on, as a 0600 key of another user is for uid 10001.
    rmSync(tls.keyFile);
    const listener = await createListener(tls, (_req, res) => res.end("ok"), log, preloaded);
    await new Promise<void>((ok) => listener.server.listen(0, "127.0.0.1", ok));
    try {
      const { port } = listener.server.address() as AddressInfo;
      const served = await new Promise<string>((resolve, reject) => {
        const socket = connect({ host: "127.0.0.1", port, servername: "localhost", ca: readFileSync(join(dir, "ca.crt")) }, () => {
          resolve(socket.getPeerX509Certificate()?.fingerprint256 ?? "");
          socket.end();
        });
        socket.on("error", reject);
      });
      expect(served).toBe(new X509Certificate(preloaded.cert).fingerprint256);
      expect(await listener.reloadTls("SIGHUP")).toBe(false);
      expect(lines.some((l) => l.includes("TLS reload failed") && l.includes("tls.key: cannot read"))).toBe(true);
      writeFileSync(tls.keyFile, preloaded.key, { mode: 0o600 });
      expect(await listener.reloadTls("SIGHUP")).toBe(true);
    } finally {
      listener.close();
      await new Promise((ok) => listener.server.close(ok));
    }
  });
});
