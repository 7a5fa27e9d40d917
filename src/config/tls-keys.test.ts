import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadConfig } from "./load.js";

async function file(content: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "mk-tls-config-"));
  const path = join(dir, "config.yml");
  await writeFile(path, content);
  return path;
}

const DIST = (tls: string) => `version: 0.1\nhttp:\n  addr: :5000\n  tls:\n${tls}\nproxy:\n  remoteurl: https://registry-1.docker.io\n`;

describe("TLS settings", () => {
  it("plain HTTP when no certificate is given", async () => {
    expect((await loadConfig()).config.tls).toBeUndefined();
  });

  it("reads distribution's http.tls: certificate, key, clientcas, minimumtls", async () => {
    const path = await file(DIST("    certificate: /certs/domain.crt\n    key: /certs/domain.key\n    clientcas:\n      - /certs/ca-a.pem\n      - /certs/ca-b.pem\n    minimumtls: tls1.3"));
    const { config } = await loadConfig({ file: path });
    expect(config.tls).toEqual({ certFile: "/certs/domain.crt", keyFile: "/certs/domain.key", clientCAFiles: ["/certs/ca-a.pem", "/certs/ca-b.pem"], minVersion: "TLSv1.3" });
  });

  it("defaults the minimum version to TLS 1.2, as distribution does", async () => {
    const { config } = await loadConfig({ flags: { tls: { certificate: "/c.crt", key: "/c.key" } } });
    expect(config.tls?.minVersion).toBe("TLSv1.2");
    expect(config.tls?.clientCAFiles).toEqual([]);
  });

  it.each([
    ["letsencrypt", "    letsencrypt:\n      cachefile: /le/cache\n      email: ops@example.com", "http.tls.letsencrypt is not supported"],
    ["ciphersuites", "    certificate: /c\n    key: /k\n    ciphersuites: [TLS_AES_128_GCM_SHA256]", "http.tls.ciphersuites is not supported"],
    ["an unknown minimumtls", "    certificate: /c\n    key: /k\n    minimumtls: tls1.4", "http.tls.minimumtls: expected one of tls1.0, tls1.1, tls1.2, tls1.3"],
    ["clientcas of the wrong type", "    certificate: /c\n    key: /k\n    clientcas: 5", "http.tls.clientcas: expected a list"],
    ["a key without a certificate", "    key: /k", "tls.certificate: required with tls.key"],
  ])("refuses %s in a distribution config, naming it", async (_name, tls, message) => {
    const path = await file(DIST(tls));
    await expect(loadConfig({ file: path })).rejects.toThrow(message);
  });

  it("reads REGISTRY_HTTP_TLS_* as registry:2 does (YAML values) and MIRROR_KIT_TLS_* over them", async () => {
    const { config } = await loadConfig({
      env: {
        REGISTRY_HTTP_TLS_CERTIFICATE: "/r/cert.pem",
        REGISTRY_HTTP_TLS_KEY: "/r/key.pem",
        REGISTRY_HTTP_TLS_CLIENTCAS: "[/r/ca1.pem, /r/ca2.pem]",
        REGISTRY_HTTP_TLS_MINIMUMTLS: "tls1.3",
      },
    });
    expect(config.tls).toEqual({ certFile: "/r/cert.pem", keyFile: "/r/key.pem", clientCAFiles: ["/r/ca1.pem", "/r/ca2.pem"], minVersion: "TLSv1.3" });
    const over = await loadConfig({
      env: { REGISTRY_HTTP_TLS_CERTIFICATE: "/r/cert.pem", REGISTRY_HTTP_TLS_KEY: "/r/key.pem", MIRROR_KIT_TLS_CERT: "/m/c.pem", MIRROR_KIT_TLS_KEY: "/m/k.pem", MIRROR_KIT_TLS_CLIENT_CAS: "/m/a.pem,/m/b.pem", MIRROR_KIT_TLS_MIN_VERSION: "tls1.2" },
    });
    expect(over.config.tls).toEqual({ certFile: "/m/c.pem", keyFile: "/m/k.pem", clientCAFiles: ["/m/a.pem", "/m/b.pem"], minVersion: "TLSv1.2" });
  });

  it.each([
    [{ REGISTRY_HTTP_TLS_LETSENCRYPT_CACHEFILE: "/le/cache" }, "REGISTRY_HTTP_TLS_LETSENCRYPT_CACHEFILE is not supported"],
    [{ REGISTRY_HTTP_TLS_MINIMUMTLS: "tls9" }, "REGISTRY_HTTP_TLS_MINIMUMTLS: expected one of"],
    [{ MIRROR_KIT_TLS_CERT: "/c.pem" }, "tls.key: required with tls.certificate"],
    [{ MIRROR_KIT_TLS_CLIENT_CAS: "/ca.pem" }, "tls.clientCAs: mutual TLS needs tls.certificate and tls.key"],
    [{ MIRROR_KIT_TLS_CERT: "/c", MIRROR_KIT_TLS_KEY: "/k", MIRROR_KIT_TLS_MIN_VERSION: "1.3" }, "tls.minimumVersion"],
  ])("refuses %j, naming the setting", async (env, message) => {
    await expect(loadConfig({ env })).rejects.toThrow(message);
  });

  it("flags win over the environment and the file", async () => {
    const path = await file("tls:\n  certificate: /file/c.pem\n  key: /file/k.pem\n  minimumVersion: tls1.3\n");
    const { config } = await loadConfig({ file: path, env: { MIRROR_KIT_TLS_CERT: "/env/c.pem" }, flags: { tls: { key: "/flag/k.pem" } } });
    expect(config.tls).toMatchObject({ certFile: "/env/c.pem", keyFile: "/flag/k.pem", minVersion: "TLSv1.3" });
  });
});
