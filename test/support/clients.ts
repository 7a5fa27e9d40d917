// Real clients pulling through a mirror, each configured the way its users configure it:
// dockerd (registry-mirrors), containerd ctr (hosts.toml, ?ns=), skopeo and podman (path prefix).
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { DockerEngine } from "./docker-engine.js";
import { requireTools } from "./preflight.js";
import { run } from "./process.js";
import { makeTempDir, removeTempDir } from "./scratch.js";

// ---------------------------------------------------------------- docker

/** `docker pull REF` on a private engine; returns the digest the engine reports. */
export async function dockerPull(engine: DockerEngine, ref: string): Promise<string> {
  const { stdout } = await engine.docker(["pull", ref], { timeoutMs: 100_000 }).catch((err: Error) => {
    throw new Error(`${err.message}\n--- dockerd log ---\n${engine.logTail()}`);
  });
  const digest = /Digest: (sha256:[0-9a-f]{64})/.exec(stdout)?.[1];
  if (!digest) throw new Error(`docker pull ${ref}: no digest in output:\n${stdout}`);
  return digest;
}

/**
 * dockerd's own log lines saying it gave up on a mirror and tried the next endpoint (in the end
 * registry-1.docker.io). None after a pull means the mirror answered everything the first time.
 */
export function engineFallbackLines(engine: DockerEngine): string[] {
  return engine.logLines.filter((l) => /Attempting next endpoint|Not continuing with pull|registry-1\.docker\.io/.test(l));
}

/** Runs IMAGE without network and returns its stdout: proof that the pulled layers form a working rootfs. */
export async function dockerRun(engine: DockerEngine, image: string, cmd: readonly string[]): Promise<string> {
  const { stdout } = await engine.docker(["run", "--rm", "--network", "none", image, ...cmd]);
  return stdout;
}

// ---------------------------------------------------------------- containerd

/**
 * Writes DIR/<registry>/hosts.toml sending pulls for `registry` to `mirrorUrl`.
 * No `server` line, on purpose: `server = "https://docker.io"` would be taken literally
 * (INTEGRATIONS.md §2); omitted, the fallback is the registry's real host, which is
 * unreachable offline, so a passing pull can only have come through the mirror.
 */
export async function writeHostsToml(hostsDir: string, registry: string, mirrorUrl: string, opts: { ca?: string } = {}): Promise<string> {
  const dir = join(hostsDir, registry);
  await mkdir(dir, { recursive: true });
  const path = join(dir, "hosts.toml");
  await writeFile(path, `[host."${mirrorUrl}"]\n  capabilities = ["pull", "resolve"]\n${opts.ca ? `  ca = "${opts.ca}"\n` : ""}`);
  return path;
}

export interface CtrOptions {
  socket: string;
  namespace: string;
  hostsDir: string;
}

/** `ctr images pull` (fetch + unpack into a snapshot); returns the image's target digest. */
export async function ctrPull(opts: CtrOptions, ref: string): Promise<string> {
  requireTools(["ctr"]);
  await run("ctr", ["-a", opts.socket, "-n", opts.namespace, "images", "pull", "--hosts-dir", opts.hostsDir, ref], { timeoutMs: 100_000 });
  return ctrImageDigest(opts, ref);
}

/** The target digest of REF in the namespace, read from `ctr images ls`. */
export async function ctrImageDigest(opts: Pick<CtrOptions, "socket" | "namespace">, ref: string): Promise<string> {
  const { stdout } = await run("ctr", ["-a", opts.socket, "-n", opts.namespace, "images", "ls"]);
  for (const line of stdout.split("\n").slice(1)) {
    const [name, , digest] = line.trim().split(/\s+/);
    if (name === ref && digest) return digest;
  }
  throw new Error(`ctr: ${ref} not in namespace ${opts.namespace}:\n${stdout}`);
}

// ---------------------------------------------------------------- containers/image (skopeo, podman)

/** A policy that accepts any image: the system policy.json may be absent or stricter. */
async function writePolicy(dir: string): Promise<string> {
  const path = join(dir, "policy.json");
  await writeFile(path, JSON.stringify({ default: [{ type: "insecureAcceptAnything" }] }));
  return path;
}

export interface MirrorEntry {
  /** The registry whose pulls go to the mirror, e.g. "docker.io". */
  prefix: string;
  /** The mirror location, host:port[/path], e.g. "127.0.0.1:5000/docker.io". */
  location: string;
  /** TLS-verified (no `insecure = true`): the mirror serves HTTPS with a certificate the client trusts. */
  secure?: boolean;
}

/** registries.conf (v2) with one mirror per registry: insecure (plain HTTP) unless `secure`. */
export async function writeRegistriesConf(path: string, mirrors: readonly MirrorEntry[]): Promise<string> {
  const blocks = mirrors.map(
    (m) => `[[registry]]\nprefix = "${m.prefix}"\nlocation = "${m.prefix}"\n\n[[registry.mirror]]\nlocation = "${m.location}"\n${m.secure ? "" : "insecure = true\n"}`,
  );
  await writeFile(path, `unqualified-search-registries = []\n\n${blocks.join("\n")}`);
  return path;
}

/**
 * `skopeo copy docker://SRC oci:DEST` over plain HTTP, isolated from the machine's
 * registries.conf, policy and stored credentials.
 */
export async function skopeoCopy(src: string, destDir: string, opts: { certDir?: string; creds?: string } = {}): Promise<void> {
  requireTools(["skopeo"]);
  const work = await makeTempDir("skopeo");
  try {
    const policy = await writePolicy(work);
    const conf = await writeRegistriesConf(join(work, "registries.conf"), []);
    await run(
      "skopeo",
      ["--policy", policy, "--override-os", "linux", "--override-arch", "amd64", "copy", ...(opts.certDir ? ["--src-tls-verify=true", "--src-cert-dir", opts.certDir] : ["--src-tls-verify=false"]), ...(opts.creds === undefined ? ["--src-no-creds"] : ["--src-creds", opts.creds]), `docker://${src}`, `oci:${destDir}`],
      { env: { ...process.env, CONTAINERS_REGISTRIES_CONF: conf }, timeoutMs: 100_000 },
    );
  } finally {
    await removeTempDir(work);
  }
}

export interface PodmanOptions {
  /** Private storage: root, runroot and tmp dirs go below it. */
  dir: string;
  registriesConf: string;
  /** Verify TLS against the ca.crt in this folder (podman's --cert-dir) instead of the system roots. */
  certDir?: string;
  /** user:password for the registry (podman's --creds); none: no credentials at all. */
  creds?: string;
  /** An auth.json (podman login --authfile); default: an empty one in `dir`, so no stored login is used. */
  authfile?: string;
}

/** `podman pull REF` with private vfs storage and the given registries.conf; returns the image id. */
export async function podmanPull(opts: PodmanOptions, ref: string): Promise<string> {
  requireTools(["podman"], { root: true });
  await mkdir(join(opts.dir, "tmp"), { recursive: true });
  const policy = await writePolicy(opts.dir);
  const authfile = opts.authfile ?? join(opts.dir, "no-auth.json");
  if (!opts.authfile) await writeFile(authfile, "{}");
  const { stdout } = await run(
    "podman",
    [
      "--root", join(opts.dir, "root"),
      "--runroot", join(opts.dir, "run"),
      "--tmpdir", join(opts.dir, "tmp"),
      "--storage-driver", "vfs",
      "--cgroup-manager", "cgroupfs",
      "--events-backend", "file",
      "pull", "--quiet", "--signature-policy", policy, ...(opts.certDir ? ["--tls-verify=true", "--cert-dir", opts.certDir] : []), ...(opts.creds ? ["--creds", opts.creds] : []), "--authfile", authfile, ref,
    ],
    { env: { ...process.env, CONTAINERS_REGISTRIES_CONF: opts.registriesConf }, timeoutMs: 100_000 },
  );
  return stdout.trim();
}
