import { describe, expect, it } from "vitest";
import { loadConfig } from "./load.js";

const proxyOf = async (env: Record<string, string>, flags: Record<string, unknown> = {}) => {
  const { config, warnings } = await loadConfig({ env, flags });
  return { proxy: config.proxy, warnings };
};

describe("upstream proxy settings", () => {
  it.each([
    ["nothing set: direct", {}, { noProxy: [] }],
    ["HTTP_PROXY covers https too (undici's rule)", { HTTP_PROXY: "http://p:3128" }, { http: "http://p:3128", https: "http://p:3128", noProxy: [] }],
    ["HTTPS_PROXY alone leaves http direct", { HTTPS_PROXY: "http://p:3128" }, { https: "http://p:3128", noProxy: [] }],
    ["lower case wins over upper case", { http_proxy: "http://low:1", HTTP_PROXY: "http://up:2" }, { http: "http://low:1", https: "http://low:1", noProxy: [] }],
    ["an empty lower-case value wins too (no proxy)", { http_proxy: "", HTTP_PROXY: "http://up:2" }, { noProxy: [] }],
    ["ALL_PROXY is the fallback for both (curl's)", { ALL_PROXY: "http://all:8080", HTTPS_PROXY: "http://s:1" }, { http: "http://all:8080", https: "http://s:1", noProxy: [] }],
    ["a scheme-less proxy means http:// (curl, Go)", { HTTPS_PROXY: "proxy.corp:3128" }, { https: "http://proxy.corp:3128", noProxy: [] }],
    ["NO_PROXY splits on commas and spaces", { HTTP_PROXY: "http://p:1", NO_PROXY: "localhost, .corp.example 10.0.0.0/8,registry:5000" }, { http: "http://p:1", https: "http://p:1", noProxy: ["localhost", ".corp.example", "10.0.0.0/8", "registry:5000"] }],
    ["no_proxy wins over NO_PROXY", { no_proxy: "a", NO_PROXY: "b" }, { noProxy: ["a"] }],
  ])("%s", async (_name, env, expected) => {
    expect((await proxyOf(env)).proxy).toEqual(expected);
  });

  it("warns when the two cases of a variable differ, naming both without their credentials", async () => {
    const { warnings } = await proxyOf({ https_proxy: "http://u:secret1@low:1", HTTPS_PROXY: "http://u:secret2@up:2" });
    expect(warnings.join("\n")).toContain("https_proxy and HTTPS_PROXY differ; https_proxy is used (http://***@low:1), HTTPS_PROXY is not (http://***@up:2)");
    expect(warnings.join("\n")).not.toMatch(/secret/);
  });

  it("upstream.proxy wins over the environment, field by field, and says so", async () => {
    const { proxy, warnings } = await proxyOf({ HTTP_PROXY: "http://env:1", NO_PROXY: "a" }, { upstream: { proxy: { https: "http://cfg:2", noProxy: ["b"] } } });
    expect(proxy).toEqual({ http: "http://env:1", https: "http://cfg:2", noProxy: ["b"] });
    expect(warnings).toContain("upstream.proxy.noProxy (b) is used instead of NO_PROXY (a)");
  });

  it.each([
    ["HTTPS_PROXY", { HTTPS_PROXY: "socks5://p:1080" }, /HTTPS_PROXY: SOCKS proxies are not supported/],
    ["HTTP_PROXY", { HTTP_PROXY: "ftp://p:21" }, /HTTP_PROXY: expected an http:\/\/ or https:\/\/ proxy URL/],
    ["ALL_PROXY", { ALL_PROXY: "http://u:pw@" }, /ALL_PROXY: expected a proxy URL/],
    ["NO_PROXY", { NO_PROXY: "10.0.0.0/33" }, /NO_PROXY: expected a host, host:port, IP address or CIDR range/],
  ])("refuses a malformed %s, naming it", async (_name, env, message) => {
    await expect(loadConfig({ env })).rejects.toThrow(message);
  });

  it("refuses a malformed upstream.proxy field, naming it and masking credentials", async () => {
    await expect(loadConfig({ flags: { upstream: { proxy: { https: "socks5://u:topsecret@p:1" } } } })).rejects.toThrow(/upstream\.proxy\.https: SOCKS proxies are not supported.*\*\*\*@p:1/);
    await expect(loadConfig({ flags: { upstream: { proxy: { https: "socks5://u:topsecret@p:1" } } } })).rejects.not.toThrow(/topsecret/);
  });

  it("keeps an upstream's ca file", async () => {
    const { config } = await loadConfig({ flags: { builtinUpstreams: false, defaultUpstream: "r.example", upstreams: { "r.example": { url: "https://r.example", ca: "/etc/corp-ca.pem" } } } });
    expect(config.upstreams.get("r.example")?.caFile).toBe("/etc/corp-ca.pem");
  });
});
