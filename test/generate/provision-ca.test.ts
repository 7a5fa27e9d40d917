// The Vagrant provisioning script generated with --ca, run with sh under a temp MIRROR_KIT_ROOT:
// the CA goes to every engine's certs.d for the mirror's HOST:PORT, and nothing is insecure.
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, test } from "vitest";
import { resolveSettings } from "../../src/generate/settings.js";
import { renderProvisionScript } from "../../src/generate/vagrant.js";
import { issueCertificates } from "../../src/tls/ca.js";
import { tempDir } from "./support.js";

let certDir: string;
let caPem: string;
beforeAll(async () => {
  certDir = tempDir("mk-prov-ca-cert-");
  await issueCertificates({ dir: certDir, host: { name: "mirror-host", addresses: ["10.0.2.2"] } });
  caPem = readFileSync(join(certDir, "ca.crt"), "utf8");
});

function provision(settings: Parameters<typeof resolveSettings>[0], env: Record<string, string>) {
  const root = tempDir("mk-prov-ca-");
  const script = join(tempDir("mk-prov-ca-script-"), "provision.sh");
  writeFileSync(script, renderProvisionScript(resolveSettings(settings)));
  const r = spawnSync("sh", [script], {
    encoding: "utf8",
    env: { PATH: process.env.PATH ?? "", MIRROR_KIT_ROOT: root, MIRROR_KIT_ENGINES: "docker containerd podman", MIRROR_KIT_DOCKER_RELOAD: "true", MIRROR_KIT_CONTAINERD_RESTART: "true", ...env },
  });
  return { code: r.status, stderr: r.stderr, read: (rel: string) => readFileSync(join(root, rel), "utf8") };
}

describe("provision.sh with --ca", () => {
  test("installs the CA for dockerd, containerd and podman and wires https with nothing insecure", () => {
    const r = provision({ ca: certDir }, { MIRROR_KIT_URL: "https://10.0.2.2:5000" });
    expect(r.code, r.stderr).toBe(0);
    for (const dir of ["etc/docker/certs.d", "etc/containerd/certs.d", "etc/containers/certs.d"]) {
      expect(r.read(`${dir}/10.0.2.2:5000/ca.crt`), dir).toBe(caPem);
    }
    expect(JSON.parse(r.read("etc/docker/daemon.json"))).toEqual({ "registry-mirrors": ["https://10.0.2.2:5000"] });
    expect(r.read("etc/containerd/certs.d/docker.io/hosts.toml")).toContain('[host."https://10.0.2.2:5000"]\n  capabilities = ["pull", "resolve"]\n  ca = "/etc/containerd/certs.d/10.0.2.2:5000/ca.crt"\n');
    expect(r.read("etc/containers/registries.conf.d/50-mirror-kit.conf")).toContain('location = "10.0.2.2:5000/docker.io"\ninsecure = false');
  });

  test("a detected host gets https when the script was generated with --ca", () => {
    // detection reads the default route; a fake `ip` answers like a VirtualBox NAT guest.
    const bin = tempDir("mk-prov-ca-bin-");
    writeFileSync(join(bin, "ip"), "#!/bin/sh\necho 'default via 10.0.2.2 dev eth0'\n", { mode: 0o755 });
    const r = provision({ ca: certDir }, { PATH: `${bin}:${process.env.PATH ?? ""}`, MIRROR_KIT_PROVIDER: "virtualbox" });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.read("etc/docker/daemon.json"))).toEqual({ "registry-mirrors": ["https://10.0.2.2:5000"] });
    expect(r.read("etc/docker/certs.d/10.0.2.2:5000/ca.crt")).toBe(caPem);
  });

  test("without --ca an https URL installs no CA file (a publicly trusted certificate needs none)", () => {
    const r = provision({}, { MIRROR_KIT_URL: "https://mirror.example.com" });
    expect(r.code, r.stderr).toBe(0);
    expect(() => r.read("etc/docker/certs.d/mirror.example.com/ca.crt")).toThrow(/ENOENT/);
    expect(r.read("etc/containerd/certs.d/docker.io/hosts.toml")).not.toContain("ca =");
  });
});
