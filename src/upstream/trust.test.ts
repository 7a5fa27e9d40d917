import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadConfig } from "../config/load.js";
import { loadUpstreamTrust } from "./trust.js";

const dir = await mkdtemp(join(tmpdir(), "mk-trust-"));
afterAll(() => rm(dir, { recursive: true, force: true }));

async function withCa(ca: string) {
  const { config } = await loadConfig({ flags: { builtinUpstreams: false, defaultUpstream: "r.example", upstreams: { "r.example": { url: "https://r.example", ca } } } });
  return config;
}

describe("CA files for upstream TLS", () => {
  it("refuses a ca file that cannot be read, naming the setting", async () => {
    await expect(loadUpstreamTrust(await withCa(join(dir, "missing.pem")), {})).rejects.toThrow(/upstreams\.r\.example\.ca: cannot read .*missing\.pem: ENOENT/);
  });

  it("refuses a ca file without a certificate, and one whose certificate does not parse", async () => {
    await writeFile(join(dir, "empty.pem"), "not a certificate\n");
    await expect(loadUpstreamTrust(await withCa(join(dir, "empty.pem")), {})).rejects.toThrow(/upstreams\.r\.example\.ca: .*holds no PEM certificate/);
    await writeFile(join(dir, "broken.pem"), "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
    await expect(loadUpstreamTrust(await withCa(join(dir, "broken.pem")), {})).rejects.toThrow(/certificate 1 in .*broken\.pem cannot be parsed/);
  });

  it("refuses an unreadable NODE_EXTRA_CA_CERTS (Node itself only prints a warning)", async () => {
    const { config } = await loadConfig({});
    await expect(loadUpstreamTrust(config, { NODE_EXTRA_CA_CERTS: join(dir, "nope.pem") })).rejects.toThrow(/NODE_EXTRA_CA_CERTS: cannot read/);
    expect((await loadUpstreamTrust(config, {})).loaded).toEqual([]);
  });
});
