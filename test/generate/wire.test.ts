// `mirror-kit wire` per client under a temp --root: printed output (golden), --apply with backups,
// idempotency, and refusal of existing settings that would break the daemon.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { describe, expect, test } from "vitest";
import { parse } from "yaml";
import { runWire } from "../../src/cli/wire.js";
import { GenerateError } from "../../src/generate/errors.js";
import { WIRE_CLIENTS, type WireClient } from "../../src/generate/wire.js";
import { expectGolden, readTree, REPO, Sink, tempDir } from "./support.js";

function rootWith(files: Record<string, string> = {}): string {
  const root = tempDir("mk-wire-");
  for (const [rel, content] of Object.entries(files)) {
    mkdirSync(dirname(join(root, rel)), { recursive: true });
    writeFileSync(join(root, rel), content);
  }
  return root;
}

/** A documentation address (RFC 5737) stands in for the LAN address, so the goldens do not depend on the machine. */
const LAN = "192.0.2.10";

async function wire(client: WireClient, root: string, extra: Record<string, unknown> = {}, lanAddress: () => string | undefined = () => LAN) {
  const out = new Sink();
  await runWire({ client, root, ...extra }, { stdout: out, lanAddress });
  return out.text;
}

describe.each(WIRE_CLIENTS)("wire %s", (client) => {
  test("prints the configuration for a fresh machine (golden) and writes nothing", async () => {
    const root = rootWith();
    expectGolden(await wire(client, root), join(REPO, "test/generate/golden-wire", `${client}.txt`));
    expect(readTree(root)).toEqual({});
  });

  test("--apply writes it; a second --apply changes nothing", async () => {
    const root = rootWith();
    await wire(client, root, { apply: true });
    const first = readTree(root);
    expect(Object.keys(first).length).toBeGreaterThan(0);
    expect(await wire(client, root, { apply: true })).toContain("already wired");
    expect(readTree(root)).toEqual(first);
  });
});

describe("merging with what is there", () => {
  test("docker: keeps other keys, puts the mirror first, and backs up the old file", async () => {
    const old = '{"log-driver": "journald", "registry-mirrors": ["https://mirror.gcr.io"], "insecure-registries": ["old.example:5000"]}';
    const root = rootWith({ "etc/docker/daemon.json": old });
    await wire("docker", root, { apply: true, mirrorUrl: "http://10.0.0.5:5000" });
    expect(JSON.parse(readFileSync(join(root, "etc/docker/daemon.json"), "utf8"))).toEqual({
      "log-driver": "journald",
      "registry-mirrors": ["http://10.0.0.5:5000", "https://mirror.gcr.io"],
      "insecure-registries": ["old.example:5000", "10.0.0.5:5000"],
    });
    expect(readFileSync(join(root, "etc/docker/daemon.json.mirror-kit.bak"), "utf8")).toBe(old);
  });

  test("docker: a later wire replaces its own earlier entry and keeps everyone else's", async () => {
    const root = rootWith({ "etc/docker/daemon.json": '{"registry-mirrors": ["https://mirror.gcr.io"]}' });
    await wire("docker", root, { apply: true, host: "10.0.0.5" });
    await wire("docker", root, { apply: true, host: "10.0.0.6", port: 6000 });
    expect(JSON.parse(readFileSync(join(root, "etc/docker/daemon.json"), "utf8"))).toEqual({
      "registry-mirrors": ["http://10.0.0.6:6000", "https://mirror.gcr.io"],
      "insecure-registries": ["10.0.0.6:6000"],
    });
    // A mirror the user added by hand that happens to look like ours is theirs: only recorded entries go.
    const edited = JSON.parse(readFileSync(join(root, "etc/docker/daemon.json"), "utf8")) as { "registry-mirrors": string[] };
    edited["registry-mirrors"].push("http://10.0.0.5:5000");
    writeFileSync(join(root, "etc/docker/daemon.json"), JSON.stringify(edited));
    await wire("docker", root, { apply: true, host: "10.0.0.7" });
    expect(JSON.parse(readFileSync(join(root, "etc/docker/daemon.json"), "utf8"))["registry-mirrors"]).toEqual([
      "http://10.0.0.7:5000",
      "https://mirror.gcr.io",
      "http://10.0.0.5:5000",
    ]);
  });

  test.each(["buildkit", "k3s"] as const)("%s: uses this machine's LAN address, not 127.0.0.1", async (client) => {
    const out = await wire(client, rootWith());
    expect(out).toContain(`${LAN}:5000`);
    expect(out).not.toContain("127.0.0.1");
    expect(await wire(client, rootWith(), { host: "10.0.0.9" })).toContain("10.0.0.9:5000");
  });

  test.each(["buildkit", "k3s"] as const)("%s: without a detectable LAN address it requires --host and writes nothing", async (client) => {
    const root = rootWith();
    const err = await wire(client, root, { apply: true }, () => undefined).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GenerateError);
    expect((err as GenerateError).code).toBe("BAD_OPTION");
    expect((err as GenerateError).message).toMatch(/cannot detect this machine's LAN address .*pass --host ADDRESS/);
    expect(readTree(root)).toEqual({});
  });

  test("docker: an https mirror is not listed as insecure", async () => {
    const root = rootWith();
    await wire("docker", root, { apply: true, mirrorUrl: "https://mirror.example" });
    expect(JSON.parse(readFileSync(join(root, "etc/docker/daemon.json"), "utf8"))).toEqual({ "registry-mirrors": ["https://mirror.example"] });
  });

  test.each([
    ["docker", "etc/docker/daemon.json", "{ broken", "BAD_INPUT", /^\/etc\/docker\/daemon\.json: not valid JSON/],
    ["docker", "etc/docker/daemon.json", '{"registry-mirrors": "http://x"}', "BAD_INPUT", /"registry-mirrors" must be an array/],
    ["containerd", "etc/containerd/config.toml", 'version = 2\n[plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"]\n  endpoint = ["https://x"]\n', "CONFLICT", /registry\.mirrors/],
    ["buildkit", "etc/buildkit/buildkitd.toml", '[registry."docker.io"]\n  mirrors = ["other:5000"]\n', "CONFLICT", /\[registry\."docker\.io"\]/],
    ["k3s", "etc/rancher/k3s/registries.yaml", "mirrors:\n  docker.io:\n    endpoint: http://x\n", "BAD_INPUT", /endpoint at line 3 must be a list/],
    ["podman", "etc/containers/registries.conf.d/50-mirror-kit.conf", "# my own file\n", "USER_EDITED", /50-mirror-kit\.conf: was changed/],
  ] as const)("%s: refuses %s it cannot merge, leaving it unchanged", async (client, rel, content, code, message) => {
    const root = rootWith({ [rel]: content });
    const err = await wire(client, root, { apply: true }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GenerateError);
    expect((err as GenerateError).code).toBe(code);
    expect((err as GenerateError).message).toMatch(message);
    expect(readTree(root)).toEqual({ [rel]: content });
  });

  test("containerd: config_path is added under an existing CRI registry section", async () => {
    const root = rootWith({ "etc/containerd/config.toml": 'version = 2\n[plugins."io.containerd.grpc.v1.cri".registry]\n' });
    await wire("containerd", root, { apply: true });
    expect(readFileSync(join(root, "etc/containerd/config.toml"), "utf8")).toBe(
      'version = 2\n[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = "/etc/containerd/certs.d"\n',
    );
    expect(readFileSync(join(root, "etc/containerd/certs.d/docker.io/hosts.toml"), "utf8")).not.toContain("server =");
    expect(readFileSync(join(root, "etc/containerd/certs.d/quay.io/hosts.toml"), "utf8")).toContain('server = "https://quay.io"');
  });

  test("buildkit: the block is appended after the user's settings and replaced in place later", async () => {
    const root = rootWith({ "etc/buildkit/buildkitd.toml": 'debug = true\n[worker.oci]\n  max-parallelism = 4\n' });
    await wire("buildkit", root, { apply: true });
    await wire("buildkit", root, { apply: true, port: 6000 });
    const text = readFileSync(join(root, "etc/buildkit/buildkitd.toml"), "utf8");
    expect(text.startsWith('debug = true\n[worker.oci]\n  max-parallelism = 4\n\n# >>> mirror-kit >>>')).toBe(true);
    expect(text.match(/# >>> mirror-kit >>>/g)).toHaveLength(1);
    expect(text).toContain(`[registry."${LAN}:6000"]\n  http = true`);
  });

  test("k3s: the mirror goes first in an existing endpoint list and other settings stay", async () => {
    const root = rootWith({ "etc/rancher/k3s/registries.yaml": 'mirrors:\n  docker.io:\n    endpoint:\n      - "https://other.example"\nconfigs:\n  other.example:\n    auth: {username: u}\n' });
    await wire("k3s", root, { apply: true });
    const data = parse(readFileSync(join(root, "etc/rancher/k3s/registries.yaml"), "utf8")) as { mirrors: Record<string, { endpoint: string[] }>; configs: object };
    expect(data.mirrors["docker.io"]?.endpoint).toEqual([`http://${LAN}:5000`, "https://other.example"]);
    expect(data.mirrors["ghcr.io"]?.endpoint).toEqual([`http://${LAN}:5000`]);
    expect(data.configs).toEqual({ "other.example": { auth: { username: "u" } } });
    expect(existsSync(join(root, "etc/rancher/k3s/registries.yaml.mirror-kit.bak"))).toBe(true);
  });
});
