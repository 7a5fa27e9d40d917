import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadConfig } from "./load.js";
import { parseListen } from "./resolve.js";
import { ConfigError } from "./schema.js";

async function file(content: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "mk-config-"));
  const path = join(dir, "config.yml");
  await writeFile(path, content);
  return path;
}

describe("configuration", () => {
  it("has working defaults: all interfaces on 5000, Docker Hub and the other public registries", async () => {
    const { config } = await loadConfig();
    expect([config.host, config.port]).toEqual(["0.0.0.0", 5000]);
    expect(config.defaultUpstream.name).toBe("docker.io");
    expect(config.defaultUpstream.url.href).toBe("https://registry-1.docker.io/");
    expect(config.defaultUpstream.officialImages).toBe(true);
    for (const name of ["ghcr.io", "quay.io", "registry.k8s.io", "gcr.io", "mcr.microsoft.com", "public.ecr.aws"]) {
      expect(config.upstreams.get(name)?.officialImages, name).toBe(false);
    }
    expect(config.upstreams.get("index.docker.io")?.name).toBe("docker.io");
    expect(config.defaultUpstream.tagFreshnessMs).toBe(60_000);
  });

  it("reads mirror-kit's YAML format with durations and per-upstream credentials", async () => {
    const path = await file(`
listen: 127.0.0.1:6000
storage: /var/cache/mk
builtinUpstreams: false
upstreams:
  docker.io:
    url: http://10.1.2.3:5000
    username: bot
    password: s3cret
    access: anonymous
  registry.local:5000:
    url: https://registry.local:5000
    tagFreshness: 10m
cache:
  tagFreshness: 30s
`);
    const { config } = await loadConfig({ file: path });
    expect(config.port).toBe(6000);
    expect(config.storage).toBe("/var/cache/mk");
    expect([...new Set(config.upstreams.values())].map((u) => u.name).sort()).toEqual(["docker.io", "registry.local:5000"]);
    expect(config.defaultUpstream.username).toBe("bot");
    expect(config.defaultUpstream.tagFreshnessMs).toBe(30_000);
    expect(config.upstreams.get("registry.local:5000")?.tagFreshnessMs).toBe(600_000);
  });

  it("accepts the distribution config.yml a registry:2 mirror uses", async () => {
    const path = await file(`
version: 0.1
log:
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: /var/lib/registry
http:
  addr: :5000
  headers:
    X-Content-Type-Options: [nosniff]
proxy:
  remoteurl: https://registry-1.docker.io
  username: hubuser
  password: hubtoken
  ttl: 168h
`);
    const { config } = await loadConfig({ file: path, env: { MIRROR_KIT_ANONYMOUS_UPSTREAMS: "docker.io" } });
    expect([config.host, config.port, config.storage]).toEqual(["0.0.0.0", 5000, "/var/lib/registry"]);
    expect(config.defaultUpstream.name).toBe("docker.io");
    expect(config.defaultUpstream.username).toBe("hubuser");
    expect(config.cacheMaxAgeMs).toBe(168 * 3_600_000);
  });

  it("maps a distribution remote other than Docker Hub to a default upstream named by its host", async () => {
    const { config } = await loadConfig({ env: { REGISTRY_PROXY_REMOTEURL: "https://quay.io", REGISTRY_HTTP_ADDR: "127.0.0.1:5001" } });
    expect(config.defaultUpstream.name).toBe("quay.io");
    expect(config.defaultUpstream.officialImages).toBe(false);
    expect(config.port).toBe(5001);
  });

  it("takes REGISTRY_PROXY_* credentials from the environment", async () => {
    const { config } = await loadConfig({
      env: { REGISTRY_PROXY_REMOTEURL: "https://registry-1.docker.io", REGISTRY_PROXY_USERNAME: "u", REGISTRY_PROXY_PASSWORD: "p", MIRROR_KIT_ANONYMOUS_UPSTREAMS: "docker.io" },
    });
    expect([config.defaultUpstream.username, config.defaultUpstream.password]).toEqual(["u", "p"]);
  });

  it("lets flags override environment, and environment override the file", async () => {
    const path = await file("listen: 127.0.0.1:7000\nstorage: /from-file\n");
    const { config } = await loadConfig({
      file: path,
      env: { MIRROR_KIT_STORAGE: "/from-env", MIRROR_KIT_LISTEN: "127.0.0.1:7001" },
      flags: { listen: "127.0.0.1:7002" },
    });
    expect([config.port, config.storage]).toEqual([7002, "/from-env"]);
  });

  it("reads MIRROR_KIT_UPSTREAMS as a comma list of NAME=URL", async () => {
    const { config } = await loadConfig({ env: { MIRROR_KIT_UPSTREAMS: "docker.io=http://127.0.0.1:1, ghcr.io=http://127.0.0.1:2" } });
    expect(config.defaultUpstream.url.href).toBe("http://127.0.0.1:1/");
    expect(config.upstreams.get("ghcr.io")?.url.href).toBe("http://127.0.0.1:2/");
  });

  it.each([
    ["listen: nonsense", "listen"],
    ["cache:\n  tagFreshness: soon", "cache.tagFreshness"],
    ["upstreams:\n  ghcr.io:\n    url: ftp://x", "upstreams.ghcr.io.url"],
    ["upstreams:\n  ghcr.io:\n    url: https://user:pw@ghcr.io", "upstreams.ghcr.io.url"],
    ["upstreams:\n  example.org:\n    username: x", "upstreams.example.org"],
    ["defaultUpstream: nowhere.example", "defaultUpstream"],
    ["lisen: 1.2.3.4:5", "lisen"],
    ["logLevel: loud", "logLevel"],
    ["upstream:\n  maxResumes: -1", "upstream.maxResumes"],
  ])("rejects %j naming the field %s", async (content, field) => {
    const path = await file(content);
    const err = await loadConfig({ file: path }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toContain(field);
  });

  it("says where a YAML syntax error is", async () => {
    const path = await file("listen: [unclosed\nstorage: x\n");
    await expect(loadConfig({ file: path })).rejects.toThrow(/not valid YAML at line \d+/);
  });

  it("names a missing config file", async () => {
    await expect(loadConfig({ file: "/nonexistent/mk.yml" })).rejects.toThrow("cannot read config file /nonexistent/mk.yml: ENOENT");
  });

  it("never puts a password in an error message", async () => {
    const path = await file("upstreams:\n  docker.io:\n    password: hunter2\n    url: not-a-url\n");
    const err = (await loadConfig({ file: path }).catch((e: unknown) => e)) as Error;
    expect(err.message).not.toContain("hunter2");
  });

  it.each([
    ["0.0.0.0:5000", "0.0.0.0", 5000],
    [":5000", "0.0.0.0", 5000],
    ["[::1]:5001", "::1", 5001],
    ["localhost:0", "localhost", 0],
  ])("parses listen %s", (input, host, port) => {
    expect(parseListen(input)).toEqual({ host, port });
  });
});

describe("upstream deadlines and bounds", () => {
  it("has a total deadline of a few seconds by default", async () => {
    const { config } = await loadConfig();
    expect(config.defaultUpstream.deadlineMs).toBe(10_000);
  });

  it.each(["0s", "0ms", "soon"])("refuses upstream.deadline %j, naming the field", async (value) => {
    const path = await file(`upstream:\n  deadline: ${value}\n`);
    const err = await loadConfig({ file: path }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toContain("upstream.deadline");
  });
});

describe("blob size bound", () => {
  it("defaults upstream.maxBlobSize to 20GB and refuses zero, naming the field", async () => {
    const { config } = await loadConfig();
    expect(config.maxBlobBytes).toBe(20 * 1024 ** 3);
    const path = await file("upstream:\n  maxBlobSize: 0\n");
    const err = await loadConfig({ file: path }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toContain("upstream.maxBlobSize");
  });
});

describe("blob throughput floor", () => {
  it("defaults to 16KB a second over 30s and takes sizes and durations", async () => {
    expect((await loadConfig()).config.throughputFloor).toEqual({ bytesPerSecond: 16 * 1024, windowMs: 30_000 });
    const path = await file("upstream:\n  minThroughput: 1MB\n  throughputWindow: 5s\n");
    expect((await loadConfig({ file: path })).config.throughputFloor).toEqual({ bytesPerSecond: 1024 ** 2, windowMs: 5_000 });
  });

  it.each([
    ["minThroughput", "0"],
    ["minThroughput", "fast"],
    ["throughputWindow", "0s"],
  ])("refuses upstream.%s %j, naming the field", async (key, value) => {
    const path = await file(`upstream:\n  ${key}: ${value}\n`);
    const err = await loadConfig({ file: path }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toContain(`upstream.${key}`);
  });
});
