// doctor's checks through the Docker API (DOCKER_HOST or the default socket): dockerd's registry
// mirrors, a container on the default bridge reaching the mirror through host-gateway, and a
// canary pull that only counts when the mirror itself saw it.
import { randomBytes } from "node:crypto";
import { spawn } from "node:child_process";
import { mkdir, mkdtemp, rm, symlink, copyFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type Dockerode from "dockerode";
import { mirrorEndpoint } from "../cli/mirror-api.js";
import { CANARY_PREFIX } from "../http/canary.js";
import { fail, mirrorSawImage, ok, onPath, skip, type CheckResult } from "./checks.js";

const PROBE_REPO = "mirror-kit-doctor-probe";
const MIRRORS_CHECK = "dockerd registry mirrors";
const CANARY_CHECK = "canary pull went through the mirror";

export interface DockerCheckOptions {
  mirror: string;
  /** An image with busybox wget for the bridge check; default: a local busybox/alpine, else one built from the host's busybox. */
  probeImage?: string;
}

export async function checkDocker(docker: Dockerode, o: DockerCheckOptions): Promise<CheckResult[]> {
  let info: { RegistryConfig?: RegistryConfig };
  try {
    info = (await docker.info()) as typeof info;
  } catch (err) {
    return [skip("dockerd", `no Docker engine answers here (${(err as { code?: string }).code ?? (err as Error).message}); set DOCKER_HOST to check one`)];
  }
  const { base } = mirrorEndpoint(o.mirror);
  const config = configResult(info.RegistryConfig ?? {}, base);
  const results: CheckResult[] = [config, await probeFromBridge(docker, base, o.probeImage)];
  // A pull by an engine that does not list the mirror can only go to Docker Hub: not worth a request there.
  results.push(config.outcome === "ok" ? await canary(docker, o.mirror) : skip(CANARY_CHECK, "not tried: dockerd does not list the mirror (above), so it cannot use it"));
  return results;
}

type RegistryConfig = { Mirrors?: string[] };

// Only whether the mirror is listed: dockerd uses an http:// mirror as given, without an
// insecure-registries entry (measured with dockerd 20.10 and a mirror on a LAN address: the canary
// arrived), so doctor does not ask for one.
function configResult(reg: RegistryConfig, base: URL): CheckResult {
  const want = base.origin;
  const mirrors = (reg.Mirrors ?? []).map((m) => m.replace(/\/+$/, ""));
  const fix = `add to /etc/docker/daemon.json: "registry-mirrors": ["${want}"] (or run: mirror-kit wire docker --mirror-url ${want} --apply), then: sudo systemctl reload docker`;
  if (mirrors.length === 0) return fail(MIRRORS_CHECK, "dockerd has no registry mirror: every pull goes to Docker Hub", fix);
  if (!mirrors.includes(want)) return fail(MIRRORS_CHECK, `dockerd's mirrors are ${mirrors.join(", ")}, not ${want}`, fix);
  return ok(MIRRORS_CHECK, `dockerd lists ${want}`);
}

/** A container on the default bridge fetches /v2/ at host.docker.internal (host-gateway). */
async function probeFromBridge(docker: Dockerode, base: URL, probeImage: string | undefined): Promise<CheckResult> {
  const check = "mirror reachable from a container (default bridge, host-gateway)";
  const port = base.port || (base.protocol === "https:" ? "443" : "80");
  const image = await findProbeImage(docker, probeImage);
  if (!image) return skip(check, "no local image with busybox to probe with, and no static busybox on this machine; pass --probe-image IMAGE");
  const target = `host.docker.internal:${port}`;
  // The address host-gateway gave is read from /etc/hosts and the request sent with nc rather
  // than wget: Debian's static busybox crashes (SIGSEGV) in wget's name lookup even for a literal
  // address, while nc takes one as is. For plain HTTP the answer must be a registry's (its API
  // version header); for TLS a TCP connection is what the bridge check proves (TLS is checked above).
  const probe =
    base.protocol === "http:"
      ? `r=$(printf 'GET /v2/ HTTP/1.0\\r\\nHost: ${base.host}\\r\\n\\r\\n' | nc -w 5 "$a" ${port}) || exit 4; echo "$r" | grep -qi '^docker-distribution-api-version: *registry/2.0' || { echo "not a registry: $(echo "$r" | head -1)"; exit 5; }`
      : `nc -w 5 "$a" ${port} < /dev/null`;
  const cmd = ["sh", "-c", `a=$(awk '$2 == "host.docker.internal" { print $1; exit }' /etc/hosts); [ -n "$a" ] || { echo "host-gateway gave no address"; exit 3; }; ${probe}`];
  let container: Dockerode.Container | undefined;
  try {
    container = await docker.createContainer({ Image: image.name, Cmd: cmd, HostConfig: { NetworkMode: "bridge", ExtraHosts: ["host.docker.internal:host-gateway"] }, Labels: { "mirror-kit.doctor": "probe" } });
    await container.start();
    const result = (await Promise.race([container.wait(), new Promise((r) => setTimeout(() => r({ StatusCode: -1 }), 30_000).unref())])) as { StatusCode: number };
    if (result.StatusCode === 0) return ok(check, `a container reached ${base.protocol}//${target}`);
    const logs = String(await container.logs({ stdout: true, stderr: true })).replace(/[^\x20-\x7e\n]/g, "").trim().split("\n").pop() ?? "";
    return fail(check, `a container on the default bridge could not reach ${target} (exit ${result.StatusCode}${logs ? `: ${logs}` : ""})`, `make the mirror listen on an address the bridge reaches (mirror-kit serve --listen 0.0.0.0:${port}) and allow TCP ${port} from the Docker bridge in the host firewall`);
  } catch (err) {
    return fail(check, `could not run the probe container: ${(err as Error).message}`, "check that this user may run containers (docker run --rm busybox true)");
  } finally {
    await container?.remove({ force: true }).catch(() => undefined);
    if (image.imported) await docker.getImage(image.name).remove({ force: true }).catch(() => undefined);
  }
}

async function findProbeImage(docker: Dockerode, wanted: string | undefined): Promise<{ name: string; imported: boolean } | undefined> {
  if (wanted) return { name: wanted, imported: false };
  const images = await docker.listImages();
  for (const img of images) {
    const tag = (img.RepoTags ?? []).find((t) => /^(?:docker\.io\/)?(?:library\/)?(?:busybox|alpine)(?::|$)/.test(t));
    if (tag) return { name: tag, imported: false };
  }
  const busybox = onPath("busybox");
  if (!busybox) return undefined;
  // The host's busybox as a one-layer image; only useful when it is static (Debian's busybox-static).
  const name = `${PROBE_REPO}:${randomBytes(4).toString("hex")}`;
  const dir = await mkdtemp(join(tmpdir(), "mk-doctor-"));
  try {
    await mkdir(join(dir, "bin"));
    await copyFile(busybox, join(dir, "bin", "busybox"));
    for (const applet of ["sh", "nc", "awk", "grep", "head", "printf"]) await symlink("busybox", join(dir, "bin", applet));
    const tar = spawn("tar", ["-C", dir, "-c", "."], { stdio: ["ignore", "pipe", "ignore"] });
    const [repo, tag] = name.split(":") as [string, string];
    const stream = await docker.importImage(tar.stdout as unknown as string, { repo, tag });
    await new Promise((resolve, reject) => docker.modem.followProgress(stream as NodeJS.ReadableStream, (err) => (err ? reject(err) : resolve(undefined))));
    return { name, imported: true };
  } catch {
    return undefined;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Pull a unique name through the engine: the mirror serves it itself (a tiny synthetic image), so
 * the pull succeeds without a word to Docker Hub; the mirror must have seen it, or the engine went
 * around it. The pulled image is removed again.
 */
async function canary(docker: Dockerode, mirror: string): Promise<CheckResult> {
  const check = CANARY_CHECK;
  const name = `${CANARY_PREFIX}${randomBytes(8).toString("hex")}`;
  const started = Date.now();
  const pullError = await pull(docker, `${name}:latest`);
  await docker.getImage(`${name}:latest`).remove({ force: true }).catch(() => undefined);
  let seen: boolean;
  try {
    seen = await mirrorSawImage(mirror, `${name}:latest`);
  } catch (err) {
    return fail(check, `could not ask the mirror what it saw: ${(err as Error).message}`, "fix the mirror's reachability first");
  }
  if (seen && pullError === undefined) return ok(check, `dockerd pulled ${name} from the mirror (${Date.now() - started} ms), and removed it again`);
  if (seen) {
    return fail(check, `the mirror saw dockerd's request for ${name}, but the pull failed (${pullError}): dockerd then asks Docker Hub instead`, "a mirror older than this doctor answers the canary 'unknown': upgrade it (mirror-kit up --build, or the image of this version); otherwise the mirror's log shows which canary request failed");
  }
  const { base } = mirrorEndpoint(mirror);
  // dockerd lists the mirror yet went around it: it tried the mirror, failed, and fell back to
  // Docker Hub without a word. Over TLS the usual cause is a certificate dockerd does not trust.
  const fix =
    base.protocol === "https:"
      ? `dockerd does not trust the mirror's certificate (or cannot reach ${base.host}): sudo mkdir -p /etc/docker/certs.d/${base.host} && sudo cp ca.crt /etc/docker/certs.d/${base.host}/ca.crt (or: mirror-kit wire docker --mirror-url ${base.origin} --ca ca.crt --apply); no restart needed. The reason is in dockerd's log: journalctl -u docker | grep -i mirror`
      : `dockerd cannot reach ${base.origin} from where it runs (a VM or another network namespace, as with Docker Desktop, OrbStack, colima or Rancher Desktop): use an address the engine reaches, e.g. --mirror http://host.docker.internal:${base.port || "80"}; the reason is in dockerd's log: journalctl -u docker | grep -i mirror`;
  return fail(check, `dockerd lists the mirror but pulled ${name} without asking it: it fell back to Docker Hub silently`, fix);
}

/** docker pull through the API; the error it ended with, or undefined. Gives up after 60 s. */
function pull(docker: Dockerode, ref: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve("no answer within 60 s"), 60_000);
    timer.unref();
    const done = (err: unknown) => {
      clearTimeout(timer);
      resolve(err ? ((err as Error).message ?? String(err)) : undefined);
    };
    docker.pull(ref, (err: unknown, stream: NodeJS.ReadableStream | undefined) => {
      if (err || !stream) return done(err ?? "no progress stream");
      docker.modem.followProgress(stream, done);
    });
  });
}
