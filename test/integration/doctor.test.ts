// `mirror-kit doctor`, the built binary, against real private Docker engines: one wired to the
// mirror (exit 0: the canary is pulled from the mirror itself and dockerd never falls back; containerd,
// podman and BuildKit wired by `mirror-kit wire` on top of Debian's own containerd config.toml), a
// stock Debian host's files (the exact fixes printed, run, then read by the real containerd and used by
// ctr), one that is not wired, one that lists an https mirror it does not trust and silently pulls
// around it (the canary catches it), and a stopped mirror.
import { spawn } from "node:child_process";
import { copyFile, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { networkInterfaces } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startMirror, type RunningMirror } from "../../src/server.js";
import { issueCertificates, type CertFiles } from "../../src/tls/ca.js";
import { parse as parseToml } from "smol-toml";
import { ctrPull, engineFallbackLines } from "../support/clients.js";
import { buildImage } from "../support/fixtures/image.js";
import { filesLayer } from "../support/fixtures/layers.js";
import { pushImage } from "../support/fixtures/push.js";
import { run } from "../support/process.js";
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

/** The config.toml Debian's containerd package ships (docker.io depends on it): a stock host's. */
const DEBIAN_CONTAINERD_CONFIG = "/etc/containerd/config.toml";

async function rootWithDebianConfig(root: string): Promise<void> {
  await mkdir(join(root, "etc", "containerd"), { recursive: true });
  await copyFile(DEBIAN_CONTAINERD_CONFIG, join(root, "etc", "containerd", "config.toml"));
}

/** The `fix:` line printed under the FAIL line of `check`. */
function fixOf(stdout: string, check: string): string {
  const lines = stdout.split("\n");
  const at = lines.findIndex((l) => l.startsWith(`FAIL  ${check}: `));
  const fix = lines[at + 1];
  if (at < 0 || !fix?.startsWith("      fix: ")) throw new Error(`no fix printed for ${check}:\n${stdout}`);
  return fix.slice("      fix: ".length);
}

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
    requireTools(["dockerd", "docker", "docker-registry", "busybox", "tar", "containerd", "ctr"], { root: true });
    hub = await UpstreamRegistry.start({ name: "upstream docker.io" });
    work = await makeTempDir("doctor");
    // All interfaces: a container on the Docker bridge reaches the host at the bridge's gateway.
    mirror = await startMirror({ listen: "0.0.0.0:0", storage: join(work, "storage"), builtinUpstreams: false, defaultUpstream: "docker.io", upstreams: { "docker.io": { url: hub.url } }, logLevel: "silent" });
    // Plain HTTP on a LAN address, and no insecure-registries anywhere: dockerd uses an http://
    // mirror as given, so doctor must not ask for more.
    url = `http://${lanAddress()}:${mirror.port}`;
    wiredRoot = join(work, "wired");
    bareRoot = join(work, "bare");
    // A Debian host as installed (its containerd config.toml), then wired.
    await rootWithDebianConfig(wiredRoot);
    for (const client of ["containerd", "podman", "buildkit"]) {
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

  it("exits 0 for an engine wired to the mirror: config, bridge reachability, and a canary pulled from the mirror with no fallback", async () => {
    const e = await engine({ registryMirrors: [url] });
    const r = await runCli(["doctor", "--mirror", url, "--root", wiredRoot], { DOCKER_HOST: e.host });
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(r.stdout).toMatch(/^ok {4}mirror reachable from this machine: /m);
    expect(r.stdout).toMatch(new RegExp(`^ok {4}dockerd registry mirrors: dockerd lists ${esc(url)}$`, "m"));
    expect(r.stdout).toMatch(/^ok {4}mirror reachable from a container \(default bridge, host-gateway\): a container reached http:\/\/host\.docker\.internal:\d+/m);
    const canary = /^ok {4}canary pull went through the mirror: dockerd pulled (mirror-kit-canary-[0-9a-f]{16}) from the mirror \(\d+ ms\), and removed it again$/m.exec(r.stdout)?.[1];
    expect(canary, r.stdout).toBeDefined();
    expect(r.stdout).toMatch(/^ok {4}containerd CRI \(config\.toml\): CRI reads hosts\.toml from \/etc\/containerd\/certs\.d \(config_path, version 2\)$/m);
    expect(r.stdout).toMatch(/^ok {4}containerd certs\.d: /m);
    expect(r.stdout).toMatch(/^ok {4}podman registries\.conf: /m);
    expect(r.stdout).toMatch(/^ok {4}BuildKit buildkitd\.toml: /m);
    expect(r.stdout).not.toContain("FAIL");
    expect(r.stdout).toMatch(/^everything holds$/m);
    // dockerd got the whole canary from the mirror: it never tried the next endpoint (Docker Hub).
    expect(engineFallbackLines(e)).toEqual([]);
    // ...and doctor removed it afterwards.
    expect((await e.docker(["images", "--all", "--format", "{{.Repository}}"])).stdout).not.toContain("mirror-kit-canary-");
    // The canary never left the mirror.
    await hub.settle();
    expect(hub.count({ pathIncludes: "mirror-kit-canary-" })).toBe(0);
  });

  it("a stock Debian host: containerd and BuildKit fail with exact fixes; run as printed, doctor passes, containerd reads config_path and ctr pulls through the mirror", async () => {
    const root = join(work, "stock");
    await rootWithDebianConfig(root);
    // BuildKit's file is checked because it is there, even though no buildkitd is installed here.
    await mkdir(join(root, "etc", "buildkit"), { recursive: true });
    await writeFile(join(root, "etc", "buildkit", "buildkitd.toml"), 'debug = true\n\n[worker.oci]\n  max-parallelism = 4\n');
    const args = ["doctor", "--mirror", url, "--clients", "containerd,buildkit", "--root", root];
    const before = await runCli(args);
    expect(before.code, `${before.stdout}\n${before.stderr}`).toBe(1);
    expect(before.stdout).toMatch(/^FAIL {2}containerd CRI \(config\.toml\): CRI pulls \(kubelet, crictl\) read no hosts\.toml: \/etc\/containerd\/config\.toml sets no config_path in \[plugins\."io\.containerd\.grpc\.v1\.cri"\.registry\]$/m);
    const criFix = fixOf(before.stdout, "containerd CRI (config.toml)");
    expect(criFix).toBe(`mirror-kit wire containerd --mirror-url ${url} --apply && sudo systemctl restart containerd   # sets config_path = "/etc/containerd/certs.d"`);
    expect(before.stdout).toMatch(/^FAIL {2}containerd certs\.d: no hosts\.toml for docker\.io, ghcr\.io, .* in \/etc\/containerd\/certs\.d: those pulls do not go through /m);
    expect(before.stdout).toMatch(/^FAIL {2}BuildKit buildkitd\.toml: /m);
    const buildkitFix = fixOf(before.stdout, "BuildKit buildkitd.toml");
    expect(buildkitFix).toBe(`mirror-kit wire buildkit --mirror-url ${url} --apply`);

    // Each fix exactly as printed (under --root; the restart is for a real host's containerd).
    for (const fix of [criFix.split(" && ")[0]!, fixOf(before.stdout, "containerd certs.d").split("   #")[0]!, buildkitFix]) {
      const [cmd, ...rest] = fix.split(" ");
      expect(cmd).toBe("mirror-kit");
      const w = await runCli([...rest, "--root", root]);
      expect(w.code, `${fix}\n${w.stdout}\n${w.stderr}`).toBe(0);
    }
    const after = await runCli(args);
    expect(after.code, `${after.stdout}\n${after.stderr}`).toBe(0);
    expect(after.stdout).toMatch(/^ok {4}containerd CRI \(config\.toml\): CRI reads hosts\.toml from \/etc\/containerd\/certs\.d/m);
    expect(after.stdout).toMatch(/^ok {4}containerd certs\.d: pulls of docker\.io, /m);
    expect(after.stdout).toMatch(/^ok {4}BuildKit buildkitd\.toml: /m);
    expect(await readFile(join(root, "etc", "buildkit", "buildkitd.toml"), "utf8")).toMatch(/^debug = true\n\n\[worker\.oci\]\n {2}max-parallelism = 4\n/);

    // containerd itself reads the fixed file: CRI takes hosts.toml from certs.d.
    const config = join(root, "etc", "containerd", "config.toml");
    const dump = parseToml((await run("containerd", ["--config", config, "config", "dump"])).stdout) as { plugins: Record<string, { registry?: { config_path?: string } }> };
    expect(dump.plugins["io.containerd.grpc.v1.cri"]?.registry?.config_path).toBe("/etc/containerd/certs.d");
    // Debian's own settings are still there.
    expect((await readFile(config, "utf8")).startsWith(await readFile(DEBIAN_CONTAINERD_CONFIG, "utf8"))).toBe(true);

    // And a real containerd pulls through the mirror with the hosts.toml doctor judged right.
    const image = buildImage({ layers: [await filesLayer({ "doctor.txt": "pulled through the mirror by ctr" })], labels: { run: work } });
    await pushImage(hub, "library/mk-doctor-ctr", image, "1");
    const e = await engine({});
    await hub.settle();
    hub.reset();
    const digest = await ctrPull({ socket: e.containerdSocket, namespace: "doctor", hostsDir: join(root, "etc", "containerd", "certs.d") }, "docker.io/library/mk-doctor-ctr:1");
    expect(digest).toBe(image.manifest.digest);
    const seen = (await (await fetch(`http://127.0.0.1:${mirror!.port}/api/v1/status`)).json()) as { recentPulls: { image: string }[] };
    expect(seen.recentPulls.map((p) => p.image)).toContain("docker.io/library/mk-doctor-ctr:1");
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
    const fallbacks = engineFallbackLines(e).length;
    const after = await runCli(args, env);
    expect(after.code, `${after.stdout}\n${after.stderr}`).toBe(0);
    expect(after.stdout).toMatch(/^ok {4}canary pull went through the mirror: dockerd pulled mirror-kit-canary-[0-9a-f]{16} from the mirror/m);
    // This time the whole pull came from the mirror: dockerd logged no new fallback.
    expect(engineFallbackLines(e)).toHaveLength(fallbacks);
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
