// `wire CLIENT --ca`: the mirror's CA lands where each client looks for HOST:PORT, the client's config
// points at it where it must, the URL is https and nothing is marked insecure.
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { beforeAll, describe, expect, test } from "vitest";
import { parse } from "yaml";
import { runWire } from "../../src/cli/wire.js";
import { GenerateError } from "../../src/generate/errors.js";
import type { WireClient } from "../../src/generate/wire.js";
import { issueCertificates } from "../../src/tls/ca.js";
import { readTree, Sink, tempDir } from "./support.js";

let certDir: string;
let caPem: string;
beforeAll(async () => {
  certDir = tempDir("mk-wire-ca-");
  await issueCertificates({ dir: certDir, host: { name: "mirror-host", addresses: ["10.0.0.5"] } });
  caPem = readFileSync(join(certDir, "ca.crt"), "utf8");
});

async function wire(client: WireClient, root: string, extra: Record<string, unknown> = {}): Promise<Record<string, string>> {
  await runWire({ client, root, host: "10.0.0.5", ca: certDir, apply: true, ...extra }, { stdout: new Sink() });
  return readTree(root);
}

describe("wire --ca", () => {
  test.each([
    ["docker", "etc/docker/certs.d/10.0.0.5:5000/ca.crt"],
    ["containerd", "etc/containerd/certs.d/10.0.0.5:5000/ca.crt"],
    ["podman", "etc/containers/certs.d/10.0.0.5:5000/ca.crt"],
    ["buildkit", "etc/buildkit/certs.d/10.0.0.5:5000/ca.crt"],
    ["k3s", "etc/rancher/k3s/certs.d/10.0.0.5:5000/ca.crt"],
  ] as const)("%s: the CA is written to /%s and no config says insecure or http", async (client, caFile) => {
    const tree = await wire(client, tempDir("mk-wire-ca-root-"));
    expect(tree[caFile]).toBe(caPem);
    const configs = Object.entries(tree).filter(([p]) => p !== caFile).map(([, c]) => c).join("\n");
    expect(configs).not.toMatch(/insecure-registries|insecure = true|http = true|http:\/\//);
  });

  test("docker: daemon.json lists the https mirror only", async () => {
    const tree = await wire("docker", tempDir("mk-wire-ca-root-"));
    expect(JSON.parse(tree["etc/docker/daemon.json"]!)).toEqual({ "registry-mirrors": ["https://10.0.0.5:5000"] });
  });

  test("containerd: every hosts.toml points its https host at the CA", async () => {
    const tree = await wire("containerd", tempDir("mk-wire-ca-root-"));
    const hosts = Object.entries(tree).filter(([p]) => p.endsWith("hosts.toml"));
    expect(hosts.length).toBeGreaterThan(3);
    for (const [, text] of hosts) {
      expect(text).toContain('[host."https://10.0.0.5:5000"]');
      expect(text).toContain('ca = "/etc/containerd/certs.d/10.0.0.5:5000/ca.crt"');
    }
  });

  test("buildkit: the mirror's section has http = false and the CA", async () => {
    const tree = await wire("buildkit", tempDir("mk-wire-ca-root-"));
    expect(tree["etc/buildkit/buildkitd.toml"]).toContain('[registry."10.0.0.5:5000"]\n  http = false\n  ca = ["/etc/buildkit/certs.d/10.0.0.5:5000/ca.crt"]');
  });

  test("k3s: configs.HOST:PORT.tls.ca_file, in a fresh file and merged into an existing one", async () => {
    const fresh = parse((await wire("k3s", tempDir("mk-wire-ca-root-")))["etc/rancher/k3s/registries.yaml"]!);
    expect(fresh.configs["10.0.0.5:5000"].tls.ca_file).toBe("/etc/rancher/k3s/certs.d/10.0.0.5:5000/ca.crt");
    expect(fresh.mirrors["docker.io"].endpoint).toEqual(["https://10.0.0.5:5000"]);
    const root = tempDir("mk-wire-ca-root-");
    mkdirSync(join(root, "etc/rancher/k3s"), { recursive: true });
    writeFileSync(join(root, "etc/rancher/k3s/registries.yaml"), 'configs:\n  "other:443":\n    auth:\n      username: u\n');
    const merged = parse((await wire("k3s", root))["etc/rancher/k3s/registries.yaml"]!);
    expect(merged.configs["other:443"]).toEqual({ auth: { username: "u" } });
    expect(merged.configs["10.0.0.5:5000"].tls.ca_file).toBe("/etc/rancher/k3s/certs.d/10.0.0.5:5000/ca.crt");
  });

  test("a second --apply changes nothing", async () => {
    const root = tempDir("mk-wire-ca-root-");
    const first = await wire("containerd", root);
    expect(await wire("containerd", root)).toEqual(first);
  });

  test.each([
    ["the server certificate", () => join(certDir, "server.crt"), "is not a CA certificate"],
    ["a private key", () => join(certDir, "ca.key"), "is not a PEM certificate"],
    ["a missing file", () => join(certDir, "nope.crt"), "cannot read"],
  ])("refuses %s as --ca, naming it", async (_what, file, message) => {
    const root = tempDir("mk-wire-ca-root-");
    await expect(runWire({ client: "docker", root, host: "10.0.0.5", ca: file(), apply: true }, { stdout: new Sink() })).rejects.toThrow(message);
    expect(readTree(root)).toEqual({});
  });

  test("refuses --ca with an http:// --mirror-url", async () => {
    const err = await runWire({ client: "docker", root: tempDir(), mirrorUrl: "http://10.0.0.5:5000", ca: certDir }, { stdout: new Sink() }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GenerateError);
    expect((err as GenerateError).message).toContain("--mirror-url must be https://");
  });
});
