// `init --ca` for Compose and devcontainers: the Compose service serves the pair beside the CA, every
// daemon service trusts the CA over https with nothing insecure, the Feature's install.sh installs the CA
// in certs.d; a certificate that does not name what a client uses, or a missing pair, is refused by name.
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, test } from "vitest";
import { parse } from "yaml";
import { daemonNotes, mergeCompose } from "../../src/generate/compose.js";
import { renderFeature } from "../../src/generate/devcontainer.js";
import { GenerateError } from "../../src/generate/errors.js";
import { runInit } from "../../src/generate/init.js";
import { resolveSettings } from "../../src/generate/settings.js";
import { issueCertificates } from "../../src/tls/ca.js";
import { REPO, Sink, tempDir } from "./support.js";

const FIXTURE = join(REPO, "test/generate/tls-fixture");
const caPem = readFileSync(join(FIXTURE, "ca.crt"), "utf8");
const s = resolveSettings({ ca: FIXTURE });
type Service = { command?: unknown; volumes?: unknown[] };
const services = (text: string) => (parse(text) as { services: Record<string, Service> }).services;
const merge = (text: string, settings = s) => mergeCompose(text, "compose.yaml", settings, false, "/project");

/** A cert folder of `mirror-kit cert` whose server certificate names only this host (no --san). */
let narrow: string;
beforeAll(async () => {
  narrow = tempDir("mk-tls-narrow-");
  await issueCertificates({ dir: narrow, host: { name: "mirror-host", addresses: ["192.0.2.10"] } });
});

describe("the Compose wiring with --ca", () => {
  const mount = (host: string) => ({ type: "bind", source: "/project/../" + FIXTURE.slice(1), target: `/etc/docker/certs.d/${host}/ca.crt`, read_only: true });

  test.each([
    ["docker:dind without a command", "  ci:\n    image: docker:27-dind\n", ["--registry-mirror=https://mirror-kit:5000"], "mirror-kit:5000"],
    ["a block list command and volumes", '  ci:\n    image: docker:dind\n    command:\n      - "--tls=false"\n    volumes:\n      - data:/var/lib/docker\n', ["--tls=false", "--registry-mirror=https://mirror-kit:5000"], "mirror-kit:5000"],
    ["on networks of its own: the host's alias", "  ci:\n    image: docker:dind\n    networks: [build]\n", ["--registry-mirror=https://host.docker.internal:5000"], "host.docker.internal:5000"],
  ])("%s: an https mirror, the CA mounted read-only at certs.d/HOST:PORT, no insecure-registry, once", (_name, service, command, hostPort) => {
    const text = `services:\n${service}`;
    const out = merge(text);
    const ci = services(out).ci!;
    expect(ci.command).toEqual(command);
    expect(JSON.stringify(out)).not.toContain("insecure");
    const expected = mount(hostPort);
    expected.source = expect.stringMatching(/tls-fixture\/ca\.crt$/) as unknown as string;
    expect(ci.volumes?.at(-1)).toEqual(expected);
    expect(merge(out)).toBe(out);
  });

  test("the mirror-kit service serves the pair beside the CA, each file mounted read-only, the CA key never", () => {
    const svc = services(merge("services:\n  app:\n    image: busybox\n"))["mirror-kit"] as { volumes: string[]; environment: Record<string, string> };
    expect(svc.environment).toEqual({ MIRROR_KIT_TLS_CERT: "/etc/mirror-kit/tls/server.crt", MIRROR_KIT_TLS_KEY: "/etc/mirror-kit/tls/server.key" });
    expect(svc.volumes.slice(1)).toEqual([expect.stringMatching(/tls-fixture\/server\.crt:\/etc\/mirror-kit\/tls\/server\.crt:ro$/), expect.stringMatching(/tls-fixture\/server\.key:\/etc\/mirror-kit\/tls\/server\.key:ro$/)]);
    expect(JSON.stringify(svc)).not.toContain("ca.key");
  });

  test("a daemon an earlier init wired over plain HTTP moves to https; flags set by hand stay", () => {
    const plain = merge("services:\n  ci:\n    image: docker:dind\n    command:\n      - --tls=false\n", resolveSettings({}));
    expect(services(plain).ci!.command).toEqual(["--tls=false", "--registry-mirror=http://mirror-kit:5000", "--insecure-registry=mirror-kit:5000"]);
    const upgraded = merge(plain);
    expect(services(upgraded).ci!.command).toEqual(["--tls=false", "--registry-mirror=https://mirror-kit:5000"]);
    expect(merge(upgraded)).toBe(upgraded);
  });

  test("a daemon whose command init cannot extend is named with the https flag and the CA mount to add by hand", () => {
    const notes = daemonNotes("services:\n  ci:\n    image: docker:dind\n    command: sh -c 'dockerd-entrypoint.sh --tls=false'\n", "compose.yaml", s);
    expect(notes).toEqual([
      `compose.yaml: service ci runs its own Docker daemon, but its command is a string with quotes or variables, which mirror-kit does not rewrite; add --registry-mirror=https://mirror-kit:5000 to its dockerd by hand, and mount ${join(FIXTURE, "ca.crt")} read-only at /etc/docker/certs.d/mirror-kit:5000/ca.crt`,
    ]);
  });

    test("a certificate that does not name mirror-kit is refused with the command that fixes it", () => {
    const err = (() => {
      try {
        merge("services:\n  ci:\n    image: docker:dind\n", resolveSettings({ ca: narrow }));
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(GenerateError);
    expect((err as Error).message).toBe(
      `--ca: ${join(narrow, "server.crt")} does not cover "mirror-kit", the name the Docker daemon of Compose service ci would use to reach the mirror; add it with \`mirror-kit cert --dir ${narrow} --san mirror-kit\` (the CA is kept) and run init again`,
    );
  });

  test("a CA without the server pair beside it cannot serve the Compose mirror: refused, naming the files", async () => {
    const dir = tempDir("mk-tls-ca-only-");
    copyFileSync(join(FIXTURE, "ca.crt"), join(dir, "ca.crt"));
    expect(() => merge("services:\n  app:\n    image: busybox\n", resolveSettings({ ca: join(dir, "ca.crt") }))).toThrow(
      `--ca: the Compose service mirror-kit serves the mirror, so it needs the server certificate and key beside the CA (${join(dir, "server.crt")}, ${join(dir, "server.key")}); create them with \`mirror-kit cert --dir ${dir} --san mirror-kit\``,
    );
  });

  test("a server certificate another CA signed is refused", () => {
    const dir = tempDir("mk-tls-mixed-");
    copyFileSync(join(FIXTURE, "ca.crt"), join(dir, "ca.crt"));
    copyFileSync(join(narrow, "server.crt"), join(dir, "server.crt"));
    writeFileSync(join(dir, "server.key"), "");
    expect(() => resolveSettings({ ca: dir })).toThrow(`--ca: ${join(dir, "server.crt")} was not signed by ${join(dir, "ca.crt")}`);
  });
});

describe("the devcontainer Feature with --ca", () => {
  const install = (env: Record<string, string>) => {
    const root = tempDir("mk-feat-ca-");
    const script = join(tempDir("mk-feat-ca-script-"), "install.sh");
    writeFileSync(script, renderFeature([], caPem).feature.find((f) => f.name === "install.sh")!.content);
    const r = spawnSync("sh", [script], { encoding: "utf8", env: { PATH: process.env.PATH ?? "", MIRROR_KIT_ROOT: root, ...env } });
    return { code: r.status, stderr: r.stderr, read: (rel: string) => readFileSync(join(root, rel), "utf8") };
  };

  test("install.sh puts the CA in /etc/docker/certs.d/HOST:PORT and lists the https mirror, nothing insecure", () => {
    // INSECURE=true is the option's default: it never applies to an https mirror.
    const r = install({ MIRRORURL: "https://host.docker.internal:5443", INSECURE: "true" });
    expect(r.code, r.stderr).toBe(0);
    expect(r.read("etc/docker/certs.d/host.docker.internal:5443/ca.crt")).toBe(caPem);
    expect(JSON.parse(r.read("etc/docker/daemon.json"))).toEqual({ "registry-mirrors": ["https://host.docker.internal:5443"] });
  });

  test("a plain-http mirrorUrl gets no CA file (and stays insecure as before)", () => {
    const r = install({ MIRRORURL: "http://host.docker.internal:5000" });
    expect(r.code, r.stderr).toBe(0);
    expect(() => r.read("etc/docker/certs.d/host.docker.internal:5000/ca.crt")).toThrow(/ENOENT/);
    expect(JSON.parse(r.read("etc/docker/daemon.json"))).toEqual({ "registry-mirrors": ["http://host.docker.internal:5000"], "insecure-registries": ["host.docker.internal:5000"] });
  });

  test("init refuses a certificate that does not name host.docker.internal, writing nothing", async () => {
    const dir = tempDir("mk-tls-dc-");
    mkdirSync(join(dir, ".devcontainer"));
    writeFileSync(join(dir, ".devcontainer/devcontainer.json"), '{ "image": "debian" }\n');
    const run = runInit({ yes: true, ca: narrow }, { cwd: dir, stdout: new Sink(), isTTY: false });
    await expect(run).rejects.toThrow(`does not cover "host.docker.internal", the name dev containers use to reach the mirror; add it with \`mirror-kit cert --dir ${narrow} --san host.docker.internal\``);
    expect(readFileSync(join(dir, ".devcontainer/devcontainer.json"), "utf8")).toBe('{ "image": "debian" }\n');
  });
});

describe("the Vagrant provisioning with --ca", () => {
  const vagrantProject = () => {
    const dir = tempDir("mk-tls-vagrant-");
    writeFileSync(join(dir, "Vagrantfile"), 'Vagrant.configure("2") do |config|\n  config.vm.box = "debian/bookworm64"\nend\n');
    return dir;
  };

  test("a certificate that does not name VirtualBox's 10.0.2.2 gets a note with the cert --san that adds it", async () => {
    const out = new Sink();
    await runInit({ yes: true, ca: FIXTURE }, { cwd: vagrantProject(), stdout: out, isTTY: false });
    expect(out.text).toContain("VirtualBox VMs reach this host as 10.0.2.2, which");
    expect(out.text).toMatch(/run `mirror-kit cert --dir \S*tls-fixture --san 10\.0\.2\.2` \(the CA is kept\)/);
  });

  test("no note when the host is given (checked instead) or the certificate names 10.0.2.2", async () => {
    const given = new Sink();
    await runInit({ yes: true, ca: FIXTURE, host: "192.0.2.10" }, { cwd: vagrantProject(), stdout: given, isTTY: false });
    expect(given.text).not.toContain("VirtualBox");
    const dir = tempDir("mk-tls-vbox-");
    await issueCertificates({ dir, sans: ["10.0.2.2"], host: { name: "mirror-host", addresses: [] } });
    const named = new Sink();
    await runInit({ yes: true, ca: dir }, { cwd: vagrantProject(), stdout: named, isTTY: false });
    expect(named.text).not.toContain("VirtualBox");
  });

  test("a --host the certificate does not name is refused", async () => {
    await expect(runInit({ yes: true, ca: narrow, host: "10.9.8.7" }, { cwd: vagrantProject(), stdout: new Sink(), isTTY: false })).rejects.toThrow(
      `does not cover "10.9.8.7", the name VMs use to reach the mirror; add it with \`mirror-kit cert --dir ${narrow} --san 10.9.8.7\``,
    );
  });
});
