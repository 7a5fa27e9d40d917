// Real clients against a mirror with TLS (the `mirror-kit cert` CA) AND client authentication
// (htpasswd -B) on: dockerd after `docker login`, ctr with hosts.toml `ca` and --user, skopeo and
// podman with --cert-dir and --creds; each first refused (401 with the challenge) without or with
// wrong credentials. Also what dockerd sends through registry-mirrors, found by testing.
import { copyFile, mkdir, rm, writeFile } from "node:fs/promises";
import { networkInterfaces } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ctrImageDigest, dockerRun, podmanPull, skopeoCopy, writeHostsToml, writeRegistriesConf } from "../support/clients.js";
import { DockerEngine } from "../support/docker-engine.js";
import { pushImage } from "../support/fixtures/push.js";
import { buildFixtureSet, type FixtureSet } from "../support/fixtures/sets.js";
import { requireTools } from "../support/preflight.js";
import { run } from "../support/process.js";
import { UpstreamRegistry } from "../support/registry.js";
import { makeTempDir, removeTempDir } from "../support/scratch.js";
import { startMirror, type RunningMirror } from "../../src/server.js";
import { issueCertificates, type CertFiles } from "../../src/tls/ca.js";

const USER = "alice";
const PASSWORD = "correct horse";
const REALM = "team mirror";

/** dockerd treats 127.0.0.0/8 as insecure (no certificate check): the mirror listens on a LAN address. */
function lanAddress(): string {
  const found = Object.values(networkInterfaces())
    .flatMap((l) => l ?? [])
    .find((a) => a.family === "IPv4" && !a.internal && !a.address.startsWith("10.217."));
  if (!found) throw new Error("this machine has no non-loopback IPv4 address; the TLS client suite needs one");
  return found.address;
}

describe("real clients over TLS with authentication on", () => {
  let fx: FixtureSet;
  let hub: UpstreamRegistry;
  let mirror: RunningMirror;
  let work: string;
  let certs: CertFiles;
  let hostPort: string;
  let engine: DockerEngine;
  let dockerCertsDir: string;
  let certDir: string;

  /** The docker CLI with its own config folder: its logins, never the machine's. */
  const docker = (args: string[], opts: { input?: string; config: string }) =>
    engine.docker(args, { allowFailure: true, timeoutMs: 100_000, env: { DOCKER_CONFIG: opts.config }, ...(opts.input !== undefined ? { input: opts.input } : {}) });

  beforeAll(async () => {
    requireTools(["dockerd", "docker", "ctr", "docker-registry", "skopeo", "podman", "htpasswd", "busybox", "tar"], { root: true });
    work = await makeTempDir("tls-auth-clients");
    fx = await buildFixtureSet();
    hub = await UpstreamRegistry.start({ name: "upstream docker.io" });
    await pushImage(hub, "library/busybox", fx.runnable, "auth");
    const htpasswd = join(work, "htpasswd");
    await run("htpasswd", ["-c", "-B", "-b", htpasswd, USER, PASSWORD]);
    const ip = lanAddress();
    certs = (await issueCertificates({ dir: join(work, "tls") })).files;
    mirror = await startMirror({
      listen: `${ip}:0`,
      storage: join(work, "storage"),
      builtinUpstreams: false,
      defaultUpstream: "docker.io",
      upstreams: { "docker.io": { url: hub.url } },
      logLevel: "silent",
      tls: { certificate: certs.serverCert, key: certs.serverKey },
      auth: { htpasswd: { realm: REALM, path: htpasswd } },
    });
    hostPort = `${ip}:${mirror.port}`;
    dockerCertsDir = join("/etc/docker/certs.d", hostPort);
    await mkdir(dockerCertsDir, { recursive: true });
    await copyFile(certs.caCert, join(dockerCertsDir, "ca.crt"));
    certDir = join(work, "cert-dir");
    await mkdir(certDir);
    await copyFile(certs.caCert, join(certDir, "ca.crt"));
    engine = await DockerEngine.start({ registryMirrors: [mirror.url] });
  });

  afterAll(async () => {
    await engine?.stop();
    if (dockerCertsDir) await rm(dockerCertsDir, { recursive: true, force: true });
    await mirror?.close(2_000);
    await hub?.close();
    if (work) await removeTempDir(work);
  });

  it("dockerd: HOST:PORT/library/busybox is refused without a login (the Basic challenge), docker login refuses a wrong password, and after docker login the pull runs over TLS", async () => {
    const config = await makeTempDir("docker-config");
    const anonymous = await docker(["pull", `${hostPort}/library/busybox:auth`], { config });
    expect(anonymous.code).not.toBe(0);
    // The CLI's words for a 401 whose challenge is Basic while it has no credentials for the host.
    expect(anonymous.stderr).toMatch(/no basic auth credentials/);

    const wrong = await docker(["login", hostPort, "-u", USER, "--password-stdin"], { config, input: "wrong password" });
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toMatch(/unauthorized|401/i);

    const login = await docker(["login", hostPort, "-u", USER, "--password-stdin"], { config, input: PASSWORD });
    expect(login.code, login.stderr).toBe(0);
    expect(login.stdout).toContain("Login Succeeded");

    hub.reset();
    const pulled = await docker(["pull", `${hostPort}/library/busybox:auth`], { config });
    expect(pulled.code, `${pulled.stderr}\n${engine.logTail()}`).toBe(0);
    expect(/Digest: (sha256:[0-9a-f]{64})/.exec(pulled.stdout)?.[1]).toBe(fx.runnable.manifest.digest);
    expect((await dockerRun(engine, `${hostPort}/library/busybox:auth`, [])).trim()).toBe(fx.marker);
    await hub.settle();
    expect(hub.count({ method: "GET", pathIncludes: "/v2/library/busybox/manifests/" })).toBeGreaterThan(0);
    await removeTempDir(config);
  });

  it("dockerd through registry-mirrors: it sends the mirror the Docker Hub login (config.json auths for index.docker.io), nothing otherwise", async () => {
    const config = await makeTempDir("docker-config");
    const seen = engine.logLines.length;
    const anonymous = await docker(["pull", "busybox:auth"], { config });
    // Refused by the mirror (401), dockerd falls back to Docker Hub, which is unreachable offline.
    expect(anonymous.code).not.toBe(0);
    expect(engine.logLines.slice(seen).join("\n")).toMatch(/Attempting next endpoint|Not continuing with pull|registry-1\.docker\.io/);

    // `docker login` with no server would contact Docker Hub; its result is this config.json entry.
    const auth = Buffer.from(`${USER}:${PASSWORD}`).toString("base64");
    await writeFile(join(config, "config.json"), JSON.stringify({ auths: { "https://index.docker.io/v1/": { auth } } }));
    const pulled = await docker(["pull", "busybox:auth"], { config });
    expect(pulled.code, `${pulled.stderr}\n${engine.logTail()}`).toBe(0);
    expect(/Digest: (sha256:[0-9a-f]{64})/.exec(pulled.stdout)?.[1]).toBe(fx.runnable.manifest.digest);
    await removeTempDir(config);
  });

  it("containerd ctr: hosts.toml `ca` plus --user pulls; no --user or a wrong password gets the 401", async () => {
    const ctr = { socket: engine.containerdSocket, namespace: `tls-auth-${process.pid}` };
    const hostsDir = join(work, "hosts");
    await writeHostsToml(hostsDir, "docker.io", mirror.url, { ca: certs.caCert });
    const pull = (extra: string[]) =>
      run("ctr", ["-a", ctr.socket, "-n", ctr.namespace, "images", "pull", "--hosts-dir", hostsDir, ...extra, "docker.io/library/busybox:auth"], { allowFailure: true, timeoutMs: 100_000 });

    for (const extra of [[], ["--user", `${USER}:wrong`]]) {
      const refused = await pull(extra);
      expect(refused.code, extra.join(" ")).not.toBe(0);
      expect(refused.stderr + refused.stdout, extra.join(" ")).toMatch(/401 Unauthorized|unauthorized/i);
    }
    const ok = await pull(["--user", `${USER}:${PASSWORD}`]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(await ctrImageDigest(ctr, "docker.io/library/busybox:auth")).toBe(fx.runnable.manifest.digest);
  });

  it("skopeo and podman: --cert-dir with --creds pull; wrong or missing credentials are refused with 401", async () => {
    await expect(skopeoCopy(`${hostPort}/library/busybox:auth`, join(work, "oci-none"), { certDir })).rejects.toThrow(/401|unauthorized|authentication required/i);
    await expect(skopeoCopy(`${hostPort}/library/busybox:auth`, join(work, "oci-wrong"), { certDir, creds: `${USER}:nope` })).rejects.toThrow(/401|unauthorized|authentication required/i);
    await skopeoCopy(`${hostPort}/library/busybox:auth`, join(work, "oci"), { certDir, creds: `${USER}:${PASSWORD}` });
    const { stdout } = await run("skopeo", ["inspect", "--raw", `oci:${join(work, "oci")}`]);
    for (const layer of fx.runnable.layers) expect(stdout).toContain(layer.digest);

    // podman, by the mirror's own name: --creds are sent.
    const conf = await writeRegistriesConf(join(work, "registries.conf"), [{ prefix: "docker.io", location: hostPort, secure: true }]);
    await expect(podmanPull({ dir: join(work, "pn"), registriesConf: conf, certDir }, `${hostPort}/library/busybox:auth`)).rejects.toThrow(/401|unauthorized|authentication required/i);
    const direct = await podmanPull({ dir: join(work, "pd"), registriesConf: conf, certDir, creds: `${USER}:${PASSWORD}` }, `${hostPort}/library/busybox:auth`);
    expect(`sha256:${direct}`).toBe(fx.runnable.config.digest);

    // podman through a registries.conf mirror: --creds belong to docker.io and are NOT sent to the
    // mirror (podman 4.3); a `podman login` to the mirror's HOST:PORT is, from the auth file.
    await expect(podmanPull({ dir: join(work, "pcm"), registriesConf: conf, certDir, creds: `${USER}:${PASSWORD}` }, "docker.io/library/busybox:auth")).rejects.toThrow(/unauthorized/i);
    const authfile = join(work, "podman-auth.json");
    await run("podman", ["login", "--authfile", authfile, "--cert-dir", certDir, "--username", USER, "--password-stdin", hostPort], { input: PASSWORD, env: { ...process.env, CONTAINERS_REGISTRIES_CONF: conf } });
    const id = await podmanPull({ dir: join(work, "podman"), registriesConf: conf, certDir, authfile }, "docker.io/library/busybox:auth");
    expect(`sha256:${id}`).toBe(fx.runnable.config.digest);
  });
});
