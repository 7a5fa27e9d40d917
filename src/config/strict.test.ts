// Strict configuration: each rule a table, each row one spelling a user could write.
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseRegistryHost, parseUpstreamSpec, redactUserinfo } from "../oci/hosts.js";
import { resolveTarget } from "../proxy/route.js";
import { loadConfig } from "./load.js";
import { ConfigError, parseConfig } from "./schema.js";
import { describeSize, parseSize } from "./sizes.js";

const GiB = 1024 ** 3;

async function file(content: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "mk-strict-"));
  const path = join(dir, "config.yml");
  await writeFile(path, content);
  return path;
}

async function refusal(run: () => Promise<unknown>): Promise<ConfigError> {
  const err = await run().then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ConfigError);
  expect((err as ConfigError).code).toBe("MK_CONFIG_INVALID");
  return err as ConfigError;
}

describe("sizes mean exactly one thing", () => {
  it.each([
    ["20GB", 20 * GiB],
    ["20G", 20 * GiB],
    ["20GiB", 20 * GiB],
    ["20gb", 20 * GiB],
    ["20 GB", 20 * GiB],
    ["1.5GB", 1.5 * GiB],
    ["500MB", 500 * 1024 ** 2],
    ["512KiB", 512 * 1024],
    ["2T", 2 * 1024 ** 4],
    ["1048576", 1048576],
    [1048576, 1048576],
    ["0", 0],
    ["10B", 10],
  ])("%j is %i bytes", (input, bytes) => {
    expect(parseSize(input)).toEqual({ ok: true, bytes });
  });

  it.each([["1.5"], ["20X"], ["GB"], ["-1GB"], ["1e9"], ["twenty"], [""], [1.5], [-1], ["1.3B"], ["20constructor"]])("%j is refused", (input) => {
    expect(parseSize(input).ok).toBe(false);
  });

  it.each([
    ["MIRROR_KIT_MAX_SIZE=1.5", "1.5", /whole/],
    ["MIRROR_KIT_MAX_SIZE=20X", "20X", /unknown unit/],
  ])("%s is refused at load time, naming cache.maxSize", async (_what, value, why) => {
    const err = await refusal(() => loadConfig({ env: { MIRROR_KIT_MAX_SIZE: value } }));
    expect(err.message).toContain("cache.maxSize");
    expect(err.message).toMatch(why);
  });

  it.each([["20G"], ["20GiB"], ["20GB"]])("MIRROR_KIT_MAX_SIZE=%s caps the cache at 20 GiB", async (value) => {
    const { config } = await loadConfig({ env: { MIRROR_KIT_MAX_SIZE: value } });
    expect(config.cacheMaxBytes).toBe(20 * GiB);
  });

  it("describes a cap as the program understood it, for the startup log", () => {
    expect(describeSize(20 * GiB)).toBe("20 GiB (21474836480 bytes)");
    expect(describeSize(1536 * 1024 ** 2)).toBe("1.5 GiB (1610612736 bytes)");
  });
});

describe("timeouts", () => {
  it.each([
    ["upstream:\n  connectTimeout: 0s", "upstream.connectTimeout"],
    ["upstream:\n  responseTimeout: 0s", "upstream.responseTimeout"],
    ["upstream:\n  responseTimeout: 0ms", "upstream.responseTimeout"],
  ])("%j is refused: undici would read 0 as no timeout", async (content, field) => {
    const err = await refusal(async () => loadConfig({ file: await file(content) }));
    expect(err.message).toContain(field);
    expect(err.message).toContain("more than 0");
  });

  it("still takes 0s where it is documented to mean off or always", async () => {
    const { config } = await loadConfig({ file: await file("cache:\n  tagFreshness: 0s\nupstream:\n  breakerCooldown: 0s\n") });
    expect([config.defaultUpstream.tagFreshnessMs, config.breakerCooldownMs]).toEqual([0, 0]);
  });
});

describe("secrets are never echoed", () => {
  it.each([
    ["REGISTRY_PROXY_REMOTEURL with a password", { REGISTRY_PROXY_REMOTEURL: "https://bob:hunter2@registry.example" }, /proxy.remoteurl: must not carry credentials; set the proxy username and password \(REGISTRY_PROXY_USERNAME/],
    ["an unparsable REGISTRY_PROXY_REMOTEURL with a password", { REGISTRY_PROXY_REMOTEURL: "https://bob:hun ter2@@registry example" }, /proxy.remoteurl: expected an http/],
    ["MIRROR_KIT_UPSTREAMS with a password", { MIRROR_KIT_UPSTREAMS: "ghcr.io=https://bob:hunter2@ghcr.io" }, /MIRROR_KIT_UPSTREAMS: ghcr.io: the URL must not carry credentials/],
    ["a MIRROR_KIT_UPSTREAMS entry without NAME= holding a password", { MIRROR_KIT_UPSTREAMS: "https://bob:hunter2@ghcr.io" }, /MIRROR_KIT_UPSTREAMS: expected NAME=URL/],
    ["a MIRROR_KIT_UPSTREAMS entry whose NAME holds a password", { MIRROR_KIT_UPSTREAMS: "https://bob:hunter2@ghcr.io=https://ghcr.io" }, /MIRROR_KIT_UPSTREAMS: NAME must be a registry host/],
  ])("%s", async (_what, env, message) => {
    const err = await refusal(() => loadConfig({ env }));
    expect(err.message).toMatch(message);
    expect(err.message).not.toContain("hunter2");
    expect(err.message).not.toContain("hun ter2");
  });

  it.each([
    ["https://bob:hunter2@host/x", "https://***@host/x"],
    ["https://bob:p@ss word@host", "https://***@host"],
    ["http://host/path@x", "http://host/path@x"],
    ["no url here", "no url here"],
  ])("redacts %j as %j", (input, output) => {
    expect(redactUserinfo(input)).toBe(output);
  });
});

describe("prototype keys are refused", () => {
  it.each([
    ["upstreams:\n  __proto__:\n    url: http://x.example\n", "upstreams.__proto__"],
    ["upstreams:\n  constructor:\n    url: http://x.example\n", "upstreams.constructor"],
    ["cache:\n  prototype: 1\n", "cache.prototype"],
    ["__proto__:\n  listen: 1.2.3.4:5\n", "__proto__"],
  ])("%j names %s", async (content, path) => {
    const err = await refusal(async () => loadConfig({ file: await file(content) }));
    expect(err.message).toContain(`${path}: "`);
    expect(({} as Record<string, unknown>).url).toBeUndefined();
  });

  it("refuses them in NAME=URL too, and in a config object given to the server directly", async () => {
    await refusal(() => loadConfig({ env: { MIRROR_KIT_UPSTREAMS: "constructor=http://x.example" } }));
    const input = JSON.parse('{"upstreams":{"__proto__":{"url":"http://x.example"}}}') as unknown;
    expect(() => parseConfig(input)).toThrowError(ConfigError);
  });
});

describe("one parser for registry hosts and NAME=URL (serve and init)", () => {
  it.each([
    ["ghcr.io", "ghcr.io"],
    ["GHCR.io", "ghcr.io"],
    ["Registry.Local:5000", "registry.local:5000"],
    ["localhost", "localhost"],
    ["-bad.io", undefined],
    ["under_score.io", undefined],
    ["__proto__", undefined],
    ["constructor", undefined],
    ["host:123456", undefined],
  ])("host %j is %j", (raw, host) => {
    expect(parseRegistryHost(raw)).toBe(host);
  });

  it.each([
    ["ghcr.io=https://ghcr.io", { ok: true, name: "ghcr.io", url: "https://ghcr.io" }],
    ["Harbor.Example.com=https://harbor.example.com/", { ok: true, name: "harbor.example.com", url: "https://harbor.example.com" }],
    ["registry.local:5000=http://10.0.0.5:5000/v2-root/", { ok: true, name: "registry.local:5000", url: "http://10.0.0.5:5000/v2-root" }],
    ["harbor", { ok: false }],
    ["=https://x.example", { ok: false }],
    ["x.example=", { ok: false }],
    ["x.example=ftp://x.example", { ok: false }],
    ["x.example=https://x.example/?a=b", { ok: false }],
  ])("%j", (raw, expected) => {
    const spec = parseUpstreamSpec(raw);
    if (expected.ok) expect(spec).toEqual(expected);
    else expect(spec.ok).toBe(false);
  });
});

describe("registry-host path prefixes match case-insensitively, as ?ns= does", async () => {
  const { config } = await loadConfig({ env: { MIRROR_KIT_UPSTREAMS: "registry.local:5000=http://127.0.0.1:1" } });
  it.each([["registry.local:5000/team/app"], ["Registry.Local:5000/team/app"], ["REGISTRY.LOCAL:5000/team/app"]])("%s", (name) => {
    const viaPrefix = resolveTarget(name, null, config);
    const viaNs = resolveTarget("team/app", name.split("/")[0] as string, config);
    expect([viaPrefix.upstream.name, viaPrefix.name]).toEqual(["registry.local:5000", "team/app"]);
    expect(viaNs.upstream).toBe(viaPrefix.upstream);
  });

  it("aliases are hosts too, lower-cased", async () => {
    const { config: withAlias } = await loadConfig({ file: await file("upstreams:\n  ghcr.io:\n    aliases: [GHCR.Mirror.Example]\n") });
    expect(resolveTarget("ghcr.mirror.example/o/i", null, withAlias).upstream.name).toBe("ghcr.io");
    await refusal(async () => loadConfig({ file: await file("upstreams:\n  ghcr.io:\n    aliases: [not_a_host]\n") }));
  });
});
