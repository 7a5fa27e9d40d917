import { describe, expect, it } from "vitest";
import { parseConfig, type ConfigInput } from "../config/schema.js";
import { resolveConfig } from "../config/resolve.js";
import { exposureWarnings } from "./exposure.js";

const cfg = (input: ConfigInput) => resolveConfig(parseConfig({ builtinUpstreams: false, upstreams: { "docker.io": { url: "https://registry-1.docker.io" } }, ...input }));
// access: anonymous: without client auth, a credentialed upstream must say its content may be public.
const creds = { upstreams: { "docker.io": { url: "https://registry-1.docker.io", username: "bot", password: "s3cret", access: "anonymous" as const } } };
const tls = { tls: { certificate: "/c.pem", key: "/k.pem" } };

describe("exposure warnings at startup", () => {
  it.each([
    ["plain HTTP on all interfaces (the default)", {}, ["plain HTTP without client authentication on 0.0.0.0:5000"]],
    ["plain HTTP on a LAN address", { listen: "10.0.0.5:5000" }, ["on 10.0.0.5:5000"]],
    ["plain HTTP on IPv6 any", { listen: "[::]:5000" }, ["on [::]:5000"]],
    ["a credentialed upstream over plain HTTP", { ...creds }, ["plain HTTP without client authentication", "upstream docker.io has credentials and is served over plain HTTP on 0.0.0.0:5000: its private images are readable by anyone"]],
    ["loopback only", { listen: "127.0.0.1:5000", ...creds }, []],
    ["::1 only", { listen: "[::1]:5000" }, []],
    ["TLS on all interfaces", { ...tls, ...creds }, []],
  ] as [string, ConfigInput, string[]][])("%s", (_name, input, expected) => {
    const warnings = exposureWarnings(cfg(input));
    expect(warnings).toHaveLength(expected.length);
    expected.forEach((text, i) => expect(warnings[i]).toContain(text));
  });

  it("never names the credentials themselves", () => {
    expect(exposureWarnings(cfg(creds)).join("\n")).not.toMatch(/s3cret|bot/);
  });
});
