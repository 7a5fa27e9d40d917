// `mirror-kit doctor`, the built binary, against real private Docker engines: one wired to the
// mirror (exit 0, with containerd/podman wired by `mirror-kit wire`), one that is not wired, one that
// lists an https mirror it does not trust and silently pulls around it (the canary catches it), and
// a stopped mirror.
import { spawn } from "node:child_process";
import { copyFile, mkdir, rm } from "node:fs/promises";
import { networkInterfaces } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startMirror, type RunningMirror } from "../../src/server.js";
import { issueCertificates, type CertFiles } from "../../src/tls/ca.js";
import { engineFallbackLines } from "../support/clients.js";
import { DockerEngine } from "../support/docker-engine.js";
import { requireTools } from "../support/preflight.js";
import { UpstreamRegistry } from "../support/registry.js";
import { makeTempDir, removeTempDir } from "../support/scratch.js";

const BIN = join(import.meta.dirname, "..", "..", "dist", "cli", "main.js");

function runCli(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { PATH: process.env.PATH ?? "", ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    child.on("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

/**
 * A non-loopback address of this machine: dockerd treats 127.0.0.0/8 as an insecure registry (no
 * certificate check at all), so only a LAN address shows what dockerd does with TLS and plain HTTP.
 */
function lanAddress(): string {
  const found = Object.values(networkInterfaces())
    .flatMap((l) => l ?? [])
    .find((a) => a.family === "IPv4" && !a.internal && !a.address.startsWith("10.217.") && !a.address.startsWith("172.17."));
  if (!found) throw new Error("this machine has no non-loopback IPv4 address; the doctor suite needs one");
  return found.address;
}

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

describe("mirror-kit doctor", () => {
  let hub: UpstreamRegistry;
  let mirror: RunningMirror | undefined;
  let tlsMirror: RunningMirror | undefined;
  let work: string;
  let wiredRoot: string;
  let bareRoot: string;
  let url: string;
  let dockerCertsDir: string | undefined;
  const engines: DockerEngine[] = [];

  async function engine(opts: Parameters<typeof DockerEngine.start>[0]): Promise<DockerEngine> {
    const e = await DockerEngine.start(opts);
    engines.push(e);
    return e;
  }

  beforeAll(async () => {
    requireTools(["dockerd", "docker", "docker-registry", "busybox", "tar"], { root: true });
    hub = await UpstreamRegistry.start({ name: "upstream docker.io" });
    work = await makeTempDir("doctor");
    // All interfaces: a container on the Docker bridge reaches the host at the bridge's gateway.
    mirror = await startMirror({ listen: "0.0.0.0:0", storage: join(work, "storage"), builtinUpstreams: false, defaultUpstream: "docker.io", upstreams: { "docker.io": { url: hub.url } }, logLevel: "silent" });
    // Plain HTTP on a LAN address, and no insecure-registries anywhere: dockerd uses an http://
    // mirror as given, so doctor must not ask for more.
    url = `http://${lanAddress()}:${mirror.port}`;
    wiredRoot = join(work, "wired");
    bareRoot = join(work, "bare");
    for (const client of ["containerd", "podman"]) {
      const r = await runCli(["wire", client, "--mirror-url", url, "--apply", "--root", wiredRoot]);
      expect(r.code, r.stderr).toBe(0);
    }
    await mkdir(join(bareRoot, "etc", "containers"), { recursive: true });
  });

  afterAll(async () => {
    for (const e of engines) await e.stop();
    if (dockerCertsDir) await rm(dockerCertsDir, { recursive: true, force: true });
    await mirror?.close(2_000);
    await tlsMirror?.close(2_000);
    await hub?.close();
    if (work) await removeTempDir(work);
  });

  it("exits 0 for an engine wired to the mirror: config, bridge reachability and a canary the mirror saw", async () => {
    const e = await engine({ registryMirrors: [url] });
    const r = await runCli(["doctor", "--mirror", url, "--root", wiredRoot], { DOCKER_HOST: e.host });
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(r.stdout).toMatch(/^ok {4}mirror reachable from this machine: /m);
    expect(r.stdout).toMatch(new RegExp(`^ok {4}dockerd registry mirrors: dockerd lists ${esc(url)}$`, "m"));
    expect(r.stdout).toMatch(/^ok {4}mirror reachable from a container \(default bridge, host-gateway\): a container reached http:\/\/host\.docker\.internal:\d+/m);
    expect(r.stdout).toMatch(/^ok {4}canary pull went through the mirror: the mirror saw dockerd's request for mirror-kit-canary-[0-9a-f]{16}/m);
    expect(r.stdout).toMatch(/^ok {4}containerd certs\.d: /m);
    expect(r.stdout).toMatch(/^ok {4}podman registries\.conf: /m);
    expect(r.stdout).not.toContain("FAIL");
    expect(r.stdout).toMatch(/^everything holds$/m);
    // The canary never left the mirror.
    await hub.settle();
    expect(hub.count({ pathIncludes: "mirror-kit-canary-" })).toBe(0);
  });

  it("exits non-zero for an engine that is not wired, naming the fix for each failure", async () => {
    const e = await engine({});
    const r = await runCli(["doctor", "--mirror", url, "--root", bareRoot], { DOCKER_HOST: e.host });
    expect(r.code, r.stderr).toBe(1);
    expect(r.stdout).toMatch(/^FAIL {2}dockerd registry mirrors: dockerd has no registry mirror/m);
    expect(r.stdout).toContain(`fix: add to /etc/docker/daemon.json: "registry-mirrors": ["${url}"] (or run: mirror-kit wire docker --mirror-url ${url} --apply)`);
    expect(r.stdout).toMatch(/^skip {2}canary pull went through the mirror: not tried: dockerd does not list the mirror/m);
    expect(r.stdout).toMatch(/^FAIL {2}podman registries\.conf: /m);
    expect(r.stdout).toContain(`fix: mirror-kit wire podman --mirror-url ${url} --apply`);
  });

  it("catches the silent fallback: dockerd lists an https mirror it does not trust and pulls around it; with ca.crt in certs.d the same engine passes", async () => {
    const ip = lanAddress();
    const certs: CertFiles = (await issueCertificates({ dir: join(work, "tls") })).files;
    tlsMirror = await startMirror({ listen: "0.0.0.0:0", storage: join(work, "tls-storage"), builtinUpstreams: false, defaultUpstream: "docker.io", upstreams: { "docker.io": { url: hub.url } }, logLevel: "silent", tls: { certificate: certs.serverCert, key: certs.serverKey } });
    const tlsUrl = `https://${ip}:${tlsMirror.port}`;
    const tlsRoot = join(work, "tls-wired");
    for (const client of ["containerd", "podman"]) {
      const w = await runCli(["wire", client, "--mirror-url", tlsUrl, "--ca", certs.caCert, "--apply", "--root", tlsRoot]);
      expect(w.code, w.stderr).toBe(0);
    }
    // dockerd reads /etc/docker/certs.d/HOST:PORT (no flag moves it); this run's own port, removed afterwards.
    dockerCertsDir = join("/etc/docker/certs.d", `${ip}:${tlsMirror.port}`);
    const e = await engine({ registryMirrors: [tlsUrl] });
    // This machine trusts the CA (as after `mirror-kit wire --ca` or update-ca-certificates); dockerd does not yet.
    const args = ["doctor", "--mirror", tlsUrl, "--ca", certs.caCert, "--root", tlsRoot];
    const env = { DOCKER_HOST: e.host, NODE_EXTRA_CA_CERTS: certs.caCert };

    const before = await runCli(args, env);
    expect(before.code, `${before.stdout}\n${before.stderr}`).toBe(1);
    expect(before.stdout).toMatch(/^ok {4}TLS trusted: /m);
    // What `docker info` shows is right, and that is exactly what misleads: only the canary tells.
    expect(before.stdout).toMatch(new RegExp(`^ok {4}dockerd registry mirrors: dockerd lists ${esc(tlsUrl)}$`, "m"));
    expect(before.stdout).toMatch(/^FAIL {2}canary pull went through the mirror: dockerd lists the mirror but pulled mirror-kit-canary-[0-9a-f]{16} without asking it: it fell back to Docker Hub silently$/m);
    expect(before.stdout).toContain(`fix: dockerd does not trust the mirror's certificate (or cannot reach ${ip}:${tlsMirror.port}): sudo mkdir -p /etc/docker/certs.d/${ip}:${tlsMirror.port}`);
    expect(before.stdout.match(/^FAIL/gm)).toHaveLength(1);
    // dockerd's own log says it tried the mirror and went on to the next endpoint.
    expect(engineFallbackLines(e).length).toBeGreaterThan(0);

    await mkdir(dockerCertsDir, { recursive: true });
    await copyFile(certs.caCert, join(dockerCertsDir, "ca.crt"));
    const after = await runCli(args, env);
    expect(after.code, `${after.stdout}\n${after.stderr}`).toBe(0);
    expect(after.stdout).toMatch(/^ok {4}canary pull went through the mirror: the mirror saw dockerd's request/m);
    expect(after.stdout).toMatch(/^ok {4}containerd certs\.d: /m);
    expect(after.stdout).toMatch(/^ok {4}podman registries\.conf: /m);
    await hub.settle();
    expect(hub.count({ pathIncludes: "mirror-kit-canary-" })).toBe(0);
  });

  it("exits non-zero for a stopped mirror, saying how to start it", async () => {
    await mirror!.close(2_000);
    mirror = undefined;
    const r = await runCli(["doctor", "--mirror", url, "--root", wiredRoot], { DOCKER_HOST: "unix:///nonexistent/docker.sock" });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(new RegExp(`^FAIL {2}mirror reachable from this machine: cannot reach ${esc(url)}: ECONNREFUSED`, "m"));
    expect(r.stdout).toContain("fix: start the mirror");
    expect(r.stdout).toMatch(/^skip {2}dockerd: not checked: the mirror must be reachable first/m);
  });

  it("refuses an unknown --clients name as a usage error", async () => {
    const r = await runCli(["doctor", "--mirror", url, "--clients", "docker,dockr"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("--clients: unknown client dockr (known: docker, containerd, podman, buildkit)");
  });
});
