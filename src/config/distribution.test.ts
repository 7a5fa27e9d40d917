import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadConfig, REGISTRY_IMAGE_CONFIG, REGISTRY_IMAGE_STORAGE } from "./load.js";

async function yml(text: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "mk-dist-"));
  const path = join(dir, "config.yml");
  await writeFile(path, text);
  return path;
}
const base = "version: 0.1\nproxy:\n  remoteurl: https://registry-1.docker.io\n";

describe("registry:2 config.yml: every setting honoured, accepted as harmless, or refused by name", () => {
  it.each([
    ["storage.gcs", "storage:\n  gcs:\n    bucket: b\n", /storage\.gcs: storage driver gcs/],
    ["storage.azure", "storage:\n  azure:\n    accountname: a\n", /storage\.azure: storage driver azure/],
    ["storage.inmemory", "storage:\n  inmemory: {}\n", /storage\.inmemory/],
    ["auth.token", "auth:\n  token:\n    realm: https://auth\n    service: s\n    issuer: i\n    rootcertbundle: /x\n", /auth\.token: token authentication/],
    ["auth.silly", "auth:\n  silly:\n    realm: r\n    service: s\n", /auth\.silly: auth\.silly accepts any credentials/],
    ["auth.htpasswd without path", "auth:\n  htpasswd:\n    realm: r\n", /auth\.htpasswd needs both realm and path/],
    ["http.tls.letsencrypt", "http:\n  tls:\n    letsencrypt:\n      cachefile: /c\n", /http\.tls\.letsencrypt is not supported/],
    ["http.addr of the wrong type", "http:\n  addr: 5000\n", /http\.addr: expected a string, got number 5000/],
    ["http.prefix", "http:\n  prefix: /registry\n", /http\.prefix: a path prefix is not supported/],
    ["http.net unix", "http:\n  net: unix\n", /http\.net: only tcp/],
    ["log.level nonsense", "log:\n  level: loud\n", /log\.level: expected one of/],
    ["log.formatter nonsense", "log:\n  formatter: xml\n", /log\.formatter: expected one of text, json, logstash, got "xml"/],
    ["a notifications endpoint", "notifications:\n  endpoints:\n    - name: hook\n      url: https://hooks.example/\n", /notifications\.endpoints: notifications would send events/],
    ["middleware", "middleware:\n  storage:\n    - name: cloudfront\n", /middleware: middleware .* would change where blobs/],
    ["reporting", "reporting:\n  bugsnag:\n    apikey: k\n", /reporting: reporting would send data/],
    ["log.hooks", "log:\n  hooks:\n    - type: mail\n", /log\.hooks: log\.hooks would send/],
    ["an unknown key (a typo)", "auht:\n  htpasswd: {}\n", /auht\.htpasswd: not a registry:2 setting mirror-kit knows/],
    ["a wrong version", "version: 0.2\nhttp:\n  addr: :5000\n", /version: expected 0\.1/],
    ["proxy credentials without a remote", "version: 0.1\nproxy:\n  username: u\n  password: p\n", /proxy\.username\/password need proxy\.remoteurl/],
  ])("refuses %s, naming it", async (_what, body, message) => {
    const text = body.startsWith("version") ? body : base + body;
    await expect(loadConfig({ file: await yml(text) })).rejects.toThrow(message);
  });

  it.each([
    ["text", "pretty"],
    ["json", "json"],
    ["logstash", "json"],
  ])("log.formatter %s gives %s log lines", async (formatter, format) => {
    const { config } = await loadConfig({ file: await yml(`${base}log:\n  formatter: ${formatter}\n`) });
    expect(config.logFormat).toBe(format);
  });

  it("honours http.headers, log.level, auth.htpasswd and the remote, and accepts the harmless rest", async () => {
    const { config, warnings } = await loadConfig({
      file: await yml(`${base}log:
  level: debug
  formatter: json
  fields: { service: registry }
storage:
  filesystem: { rootdirectory: /srv/reg, maxthreads: 100 }
  cache: { blobdescriptor: inmemory }
  delete: { enabled: true }
  maintenance: { uploadpurging: { enabled: false } }
http:
  addr: 127.0.0.1:5005
  secret: s
  headers:
    X-Content-Type-Options: [nosniff]
    Strict-Transport-Security: [max-age=1]
auth:
  htpasswd: { realm: r, path: /etc/htpasswd }
notifications:
  events: { includereferences: true }
  endpoints:
    - { name: off, url: https://x/, disabled: true }
health:
  storagedriver: { enabled: true, interval: 10s, threshold: 3 }
redis:
  addr: localhost:6379
validation:
  disabled: true
`),
    });
    expect([config.host, config.port, config.storage, config.logLevel, config.logFormat]).toEqual(["127.0.0.1", 5005, "/srv/reg", "debug", "json"]);
    expect(config.responseHeaders).toEqual({ "X-Content-Type-Options": ["nosniff"], "Strict-Transport-Security": ["max-age=1"] });
    expect(config.auth.htpasswd).toEqual({ realm: "r", path: "/etc/htpasswd" });
    expect(config.defaultUpstream.name).toBe("docker.io");
    expect(config.upstreams.get("docker.io")?.url.href).toBe("https://registry-1.docker.io/");
    expect(warnings.join("\n")).toMatch(/health: \/healthz reports/);
    expect(config.redis).toMatchObject({ host: "localhost", port: 6379, db: 0 });
  });

  it("sends ?ns=docker.io to proxy.remoteurl when that is Docker Hub", async () => {
    for (const remote of ["https://registry-1.docker.io", "https://index.docker.io/", "https://registry.hub.docker.com"]) {
      const { config } = await loadConfig({ file: await yml(`version: 0.1\nproxy:\n  remoteurl: ${remote}\n`) });
      expect(config.upstreams.get("docker.io")?.url.origin).toBe(new URL(remote).origin);
      expect(config.defaultUpstream).toBe(config.upstreams.get("docker.io"));
    }
  });
});

describe("REGISTRY_* variables: decided by the same table", () => {
  it.each([
    [{ REGISTRY_STORAGE_S3_ACCESSKEY: "k" }, /storage\.s3\.bucket is required \(REGISTRY_STORAGE_S3_BUCKET\)/],
    [{ REGISTRY_AUTH: "token", REGISTRY_AUTH_TOKEN_REALM: "https://a" }, /REGISTRY_AUTH=token: token authentication/],
    [{ REGISTRY_AUTH: "silly" }, /REGISTRY_AUTH=silly/],
    [{ REGISTRY_HTTP_TLS_LETSENCRYPT_CACHEFILE: "/c" }, /REGISTRY_HTTP_TLS_LETSENCRYPT_CACHEFILE is not supported/],
    [{ REGISTRY_AUTH_HTPASSWD_REALM: "r" }, /auth\.htpasswd needs both realm and path/],
    [{ REGISTRY_PROXY_USERNAME: "u", REGISTRY_PROXY_PASSWORD: "p" }, /proxy\.username\/password need proxy\.remoteurl/],
    [{ REGISTRY_HTTP_ADDRESS: ":5000" }, /REGISTRY_HTTP_ADDRESS: not a registry:2 setting/],
    [{ REGISTRY_NOTIFICATIONS_ENDPOINTS: "[{name: a, url: 'https://x/'}]" }, /REGISTRY_NOTIFICATIONS_ENDPOINTS: notifications would send/],
  ])("refuses %j", async (env, message) => {
    await expect(loadConfig({ env })).rejects.toThrow(message);
  });

  it("honours the ones a registry:2 mirror is run with, and ignores Kubernetes service links", async () => {
    const { config } = await loadConfig({
      env: {
        REGISTRY_HTTP_ADDR: ":5007",
        REGISTRY_PROXY_REMOTEURL: "https://registry-1.docker.io",
        REGISTRY_PROXY_USERNAME: "u",
        REGISTRY_PROXY_PASSWORD: "p",
        REGISTRY_STORAGE: "filesystem",
        REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: "/data",
        REGISTRY_LOG_LEVEL: "warning",
        REGISTRY_AUTH: "htpasswd",
        REGISTRY_AUTH_HTPASSWD_REALM: "Registry Realm",
        REGISTRY_AUTH_HTPASSWD_PATH: "/auth/htpasswd",
        REGISTRY_PROXY_TTL: "1h30m",
        REGISTRY_HTTP_HEADERS: "{X-Frame-Options: [DENY]}",
        REGISTRY_PORT: "tcp://10.0.0.1:5000",
        REGISTRY_PORT_5000_TCP_ADDR: "10.0.0.1",
        REGISTRY_SERVICE_HOST: "10.0.0.1",
      },
    });
    expect([config.port, config.storage, config.logLevel, config.defaultUpstream.username, config.defaultUpstream.access]).toEqual([5007, "/data", "warn", "u", "authenticated"]);
    expect(config.auth.htpasswd).toEqual({ realm: "Registry Realm", path: "/auth/htpasswd" });
    expect(config.responseHeaders).toEqual({ "X-Frame-Options": ["DENY"] });
    expect(config.cacheMaxAgeMs).toBe(90 * 60_000);
  });

  it("refuses upstream credentials without client authentication, naming the setting and both fixes", async () => {
    const env = { REGISTRY_PROXY_REMOTEURL: "https://registry-1.docker.io", REGISTRY_PROXY_USERNAME: "u", REGISTRY_PROXY_PASSWORD: "p" };
    const refused = loadConfig({ env });
    await expect(refused).rejects.toThrow(/upstreams\.docker\.io\.access: docker\.io has credentials/);
    await expect(loadConfig({ env })).rejects.toThrow(/auth\.htpasswd .*REGISTRY_AUTH_HTPASSWD_REALM\/PATH.*access: anonymous.*MIRROR_KIT_ANONYMOUS_UPSTREAMS=docker\.io/);
    const withAuth = await loadConfig({ env: { ...env, REGISTRY_AUTH: "htpasswd", REGISTRY_AUTH_HTPASSWD_REALM: "r", REGISTRY_AUTH_HTPASSWD_PATH: "/h" } });
    expect(withAuth.config.defaultUpstream.access).toBe("authenticated");
    const open = await loadConfig({ env: { ...env, MIRROR_KIT_ANONYMOUS_UPSTREAMS: "docker.io" } });
    expect(open.config.defaultUpstream.access).toBe("anonymous");
  });

  it.each([["168h", 168 * 3_600_000], ["30m", 1_800_000], ["0", 0], ["1h0m30s", 3_630_000]])("reads proxy.ttl %s as cache.maxAge", async (ttl, expected) => {
    const { config } = await loadConfig({ file: await yml(`${base}  ttl: ${ttl}\n`) });
    expect(config.cacheMaxAgeMs).toBe(expected);
  });

  it("refuses a proxy.ttl that is not a duration", async () => {
    await expect(loadConfig({ file: await yml(`${base}  ttl: 7days\n`) })).rejects.toThrow(/proxy\.ttl: expected a duration/);
  });

  it("overrides the config.yml, as distribution does", async () => {
    const { config } = await loadConfig({ file: await yml(`${base}http:\n  addr: :5000\n`), env: { REGISTRY_HTTP_ADDR: "127.0.0.1:6000" } });
    expect(config.port).toBe(6000);
  });
});

describe("the container image finds registry:2's files where registry:2 keeps them", () => {
  it("reads a mounted /etc/docker/registry/config.yml and caches in a mounted /var/lib/registry", async () => {
    const mounted = await yml(`${base}http:\n  addr: :5010\n`);
    const probe = { isFile: (p: string) => p === REGISTRY_IMAGE_CONFIG, isMountPoint: (p: string) => p === REGISTRY_IMAGE_STORAGE };
    // The probe says the default file exists; loadConfig then reads it, which this test redirects.
    const { config } = await loadConfig({ env: { MIRROR_KIT_IMAGE: "1", MIRROR_KIT_CONFIG: mounted }, probe });
    expect(config.port).toBe(5010);
    expect(config.storage).toBe(REGISTRY_IMAGE_STORAGE);
    const none = await loadConfig({ env: { MIRROR_KIT_IMAGE: "1" }, probe: { isFile: () => false, isMountPoint: () => false } });
    expect(none.config.storage).toBe("./mirror-kit-data");
    const outside = await loadConfig({ env: {}, probe });
    expect(outside.config.storage).toBe("./mirror-kit-data");
  });
});
