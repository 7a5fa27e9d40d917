// Real clients pull through the mirror over TLS, trusting only the CA `mirror-kit cert` made, with
// no insecure-registries / insecure flags: dockerd (certs.d; registry-mirrors and HOST:PORT/...),
// containerd's ctr (hosts.toml `ca`), podman and skopeo (--cert-dir). Each is first shown failing without the CA.
import { copyFile, mkdir, rm } from "node:fs/promises";
import { networkInterfaces } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ctrImageDigest, ctrPull, dockerPull, dockerRun, engineFallbackLines, podmanPull, skopeoCopy, writeHostsToml, writeRegistriesConf } from "../support/clients.js";
import { DockerEngine } from "../support/docker-engine.js";
import { pushImage } from "../support/fixtures/push.js";
import { buildFixtureSet, type FixtureSet } from "../support/fixtures/sets.js";
import { requireTools } from "../support/preflight.js";
import { run } from "../support/process.js";
import { UpstreamRegistry } from "../support/registry.js";
import { makeTempDir, removeTempDir } from "../support/scratch.js";
import { startMirror, type RunningMirror } from "../../src/server.js";
import { issueCertificates, type CertFiles } from "../../src/tls/ca.js";

/**
 * A non-loopback address of this machine: dockerd treats 127.0.0.0/8 as an insecure registry by
 * default (no certificate check at all), so a pull from 127.0.0.1 would prove nothing about the CA.
 */
function lanAddress(): string {
  const found = Object.values(networkInterfaces())
    .flatMap((l) => l ?? [])
    .find((a) => a.family === "IPv4" && !a.internal && !a.address.startsWith("10.217."));
  if (!found) throw new Error("this machine has no non-loopback IPv4 address; the TLS client suite needs one");
  return found.address;
}

describe("real clients over TLS with the mirror-kit CA", () => {
  let fx: FixtureSet;
  let hub: UpstreamRegistry;
  let mirror: RunningMirror;
  let work: string;
  let certs: CertFiles;
  let hostPort: string;
  let engine: DockerEngine;
  let dockerCertsDir: string;

  beforeAll(async () => {
    requireTools(["dockerd", "docker", "ctr", "docker-registry", "skopeo", "podman", "busybox", "tar"], { root: true });
    work = await makeTempDir("tls-clients");
    fx = await buildFixtureSet();
    hub = await UpstreamRegistry.start({ name: "upstream docker.io" });
    await pushImage(hub, "library/busybox", fx.runnable, "tls");
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
    });
    hostPort = `${ip}:${mirror.port}`;
    expect(mirror.url).toBe(`https://${hostPort}`);
    // dockerd has no flag for its certs.d: it reads /etc/docker/certs.d/HOST:PORT. The port is this
    // run's own, so nothing else on the machine uses the folder; it is removed afterwards.
    dockerCertsDir = join("/etc/docker/certs.d", hostPort);
    engine = await DockerEngine.start({ registryMirrors: [mirror.url] });
  });

  afterAll(async () => {
    await engine?.stop();
    if (dockerCertsDir) await rm(dockerCertsDir, { recursive: true, force: true });
    await mirror?.close(2_000);
    await hub?.close();
    if (work) await removeTempDir(work);
  });

  it("dockerd: refuses the mirror without the CA, pulls through registry-mirrors and as HOST:PORT/library/busybox with ca.crt in certs.d", async () => {
    const daemonJson = JSON.parse(await (await import("node:fs/promises")).readFile(join(engine.dir, "daemon.json"), "utf8")) as Record<string, unknown>;
    expect(daemonJson["insecure-registries"]).toEqual([]);

    const untrusted = await engine.docker(["pull", `${hostPort}/library/busybox:tls`], { allowFailure: true, timeoutMs: 100_000 });
    expect(untrusted.code).not.toBe(0);
    expect(untrusted.stderr).toMatch(/x509: certificate signed by unknown authority/);

    await mkdir(dockerCertsDir, { recursive: true });
    await copyFile(certs.caCert, join(dockerCertsDir, "ca.crt"));
    // The refused pull above left its own "next endpoint" line; none may follow it.
    const refusedLines = engineFallbackLines(engine).length;
    hub.reset();
    expect(await dockerPull(engine, "busybox:tls")).toBe(fx.runnable.manifest.digest);
    expect((await dockerRun(engine, "busybox:tls", [])).trim()).toBe(fx.marker);
    expect(engineFallbackLines(engine).slice(refusedLines)).toEqual([]);
    await hub.settle();
    expect(hub.count({ method: "GET", pathIncludes: "/v2/library/busybox/manifests/" })).toBeGreaterThan(0);

    expect(await dockerPull(engine, `${hostPort}/library/busybox:tls`)).toBe(fx.runnable.manifest.digest);
    expect((await dockerRun(engine, `${hostPort}/library/busybox:tls`, [])).trim()).toBe(fx.marker);
  });

  it("containerd ctr: hosts.toml `ca` makes the pull verify the mirror; without it the pull fails", async () => {
    const ctr = { socket: engine.containerdSocket, namespace: `tls-${process.pid}` };
    const bare = join(work, "hosts-bare");
    await writeHostsToml(bare, "docker.io", mirror.url);
    const refused = await run("ctr", ["-a", ctr.socket, "-n", ctr.namespace, "images", "pull", "--hosts-dir", bare, "docker.io/library/busybox:tls"], { allowFailure: true, timeoutMs: 100_000 });
    expect(refused.code).not.toBe(0);
    expect(refused.stderr + refused.stdout).toMatch(/x509|certificate/);

    const withCa = join(work, "hosts-ca");
    await writeHostsToml(withCa, "docker.io", mirror.url, { ca: certs.caCert });
    expect(await ctrPull({ ...ctr, hostsDir: withCa }, "docker.io/library/busybox:tls")).toBe(fx.runnable.manifest.digest);
    expect(await ctrImageDigest(ctr, "docker.io/library/busybox:tls")).toBe(fx.runnable.manifest.digest);
  });

  it("skopeo and podman: --cert-dir with ca.crt verifies the mirror (directly and as a registries.conf mirror); without it they refuse", async () => {
    const certDir = join(work, "cert-dir");
    await mkdir(certDir);
    await copyFile(certs.caCert, join(certDir, "ca.crt"));
    const empty = join(work, "cert-dir-empty");
    await mkdir(empty);

    await expect(skopeoCopy(`${hostPort}/library/busybox:tls`, join(work, "oci-refused"), { certDir: empty })).rejects.toThrow(/x509|certificate/);
    await skopeoCopy(`${hostPort}/library/busybox:tls`, join(work, "oci"), { certDir });
    const { stdout } = await run("skopeo", ["inspect", "--raw", `oci:${join(work, "oci")}`]);
    // skopeo rewrites the manifest as OCI; the layers it copied are the upstream's, byte for byte.
    for (const layer of fx.runnable.layers) expect(stdout).toContain(layer.digest);

    // podman: the mirror as registries.conf lists it (secure, no insecure = true), CA from --cert-dir.
    const conf = await writeRegistriesConf(join(work, "registries.conf"), [{ prefix: "docker.io", location: hostPort, secure: true }]);
    await expect(podmanPull({ dir: join(work, "podman-refused"), registriesConf: conf, certDir: empty }, "docker.io/library/busybox:tls")).rejects.toThrow(/x509|certificate/);
    const id = await podmanPull({ dir: join(work, "podman"), registriesConf: conf, certDir }, "docker.io/library/busybox:tls");
    expect(`sha256:${id}`).toBe(fx.runnable.config.digest);
  });
});
