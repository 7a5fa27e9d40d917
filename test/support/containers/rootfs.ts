// Images without a registry: a root filesystem assembled from the host's own binaries (plus every
// library ldd lists), imported with `docker import`, tagged by a hash of its content so reruns reuse it.
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream, existsSync, realpathSync, statSync } from "node:fs";
import { chmod, copyFile, cp, mkdir, readdir, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { run } from "../process.js";
import { makeTempDir, removeTempDir } from "../scratch.js";
import { dockerApi, dockerCli } from "./engine.js";

/** A host file the image needs, with the Debian package that provides it (for the failure message). */
export interface HostFile {
  path: string;
  pkg: string;
  /** Where it goes in the image; default: the same path as on the host. */
  dest?: string;
}

export interface RootfsSpec {
  /** Executables copied to the same path, each with the shared libraries `ldd` lists. */
  binaries: readonly HostFile[];
  /** Files or directories copied to the same path, symlinks resolved (e.g. /etc/ssl). */
  trees?: readonly HostFile[];
  /** Files written with this content (path inside the image → content). */
  files?: Readonly<Record<string, string>>;
  /** Empty directories with their mode, e.g. /tmp 0o1777. */
  dirs?: Readonly<Record<string, number>>;
  /** The host's static busybox as /bin/busybox, every applet linked beside it: a shell and coreutils. */
  busybox?: boolean;
  /** `docker import --change` lines: ENV, ENTRYPOINT, CMD, VOLUME, USER, WORKDIR, EXPOSE. */
  changes: readonly string[];
}

const BUSYBOX: HostFile = { path: "/usr/bin/busybox", pkg: "busybox-static" };

function requireHostFile(file: HostFile): void {
  if (!existsSync(file.path)) {
    throw new Error(`end-to-end suite cannot run: ${file.path} is missing (Debian package: ${file.pkg}); the offline images are made from it`);
  }
}

/** Every shared library a dynamic executable loads (nothing for static ones). */
async function sharedLibraries(binary: string): Promise<string[]> {
  const { stdout } = await run("ldd", [binary], { allowFailure: true });
  const libs: string[] = [];
  for (const line of stdout.split("\n")) {
    const m = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (m?.[1]) libs.push(m[1]);
  }
  return libs;
}

async function hashFile(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

async function listTree(root: string): Promise<string[]> {
  if (!statSync(root).isDirectory()) return [root];
  const out: string[] = [];
  for (const entry of await readdir(root, { withFileTypes: true })) out.push(...(await listTree(join(root, entry.name))));
  return out.sort();
}

interface Plan {
  /** Path inside the image → host path (symlinks resolved). */
  copies: Map<string, string>;
  trees: string[];
}

async function plan(spec: RootfsSpec): Promise<Plan> {
  const copies = new Map<string, string>();
  const binaries = spec.busybox ? [...spec.binaries, BUSYBOX] : spec.binaries;
  for (const bin of binaries) {
    requireHostFile(bin);
    copies.set(bin.dest ?? bin.path, realpathSync(bin.path));
    for (const lib of await sharedLibraries(bin.path)) copies.set(lib, realpathSync(lib));
  }
  for (const tree of spec.trees ?? []) requireHostFile(tree);
  return { copies, trees: (spec.trees ?? []).map((t) => t.path) };
}

/** A hash of everything that ends up in the image, so a changed host binary means a new tag. */
async function contentHash(spec: RootfsSpec, p: Plan): Promise<string> {
  const hash = createHash("sha256");
  hash.update(JSON.stringify({ files: spec.files, dirs: spec.dirs, busybox: spec.busybox, changes: spec.changes }));
  for (const [dest, src] of [...p.copies].sort(([a], [b]) => a.localeCompare(b))) hash.update(`${dest}\0${await hashFile(src)}\0`);
  for (const tree of p.trees) for (const file of await listTree(tree)) hash.update(`${file}\0${await hashFile(file)}\0`);
  return hash.digest("hex").slice(0, 16);
}

async function assemble(spec: RootfsSpec, p: Plan, root: string): Promise<void> {
  for (const [dest, src] of p.copies) {
    const target = join(root, dest);
    await mkdir(dirname(target), { recursive: true });
    await copyFile(src, target);
    await chmod(target, (await stat(src)).mode & 0o7777);
  }
  for (const tree of p.trees) {
    await mkdir(dirname(join(root, tree)), { recursive: true });
    await cp(tree, join(root, tree), { recursive: true, dereference: true });
  }
  if (spec.busybox) {
    const { stdout } = await run(BUSYBOX.path, ["--list-full"]);
    for (const applet of stdout.split("\n").filter((a) => a.includes("/"))) {
      const target = join(root, applet);
      // Real binaries (dockerd, node, jq, …) win over busybox's applets of the same name.
      if (existsSync(target)) continue;
      await mkdir(dirname(target), { recursive: true });
      await symlink("/usr/bin/busybox", target);
    }
  }
  for (const [path, mode] of Object.entries(spec.dirs ?? {})) {
    await mkdir(join(root, path), { recursive: true });
    await chmod(join(root, path), mode);
  }
  for (const [path, content] of Object.entries(spec.files ?? {})) {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), content);
  }
}

/** `tar -c root | docker import --change … - tag`, owned by root whatever the host uids. */
function importRootfs(root: string, tag: string, changes: readonly string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const tar = spawn("tar", ["--numeric-owner", "--owner=0", "--group=0", "-C", root, "-cf", "-", "."], { stdio: ["ignore", "pipe", "pipe"] });
    const imp = spawn("docker", ["import", ...changes.flatMap((c) => ["--change", c]), "-", tag], { stdio: ["pipe", "pipe", "pipe"] });
    tar.stdout.pipe(imp.stdin);
    let err = "";
    tar.stderr.on("data", (d: Buffer) => (err += d.toString()));
    imp.stderr.on("data", (d: Buffer) => (err += d.toString()));
    imp.on("error", reject);
    tar.on("error", reject);
    imp.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`docker import ${tag} failed (exit ${code}): ${err}`))));
  });
}

export async function imageExists(tag: string): Promise<boolean> {
  try {
    await dockerApi().getImage(tag).inspect();
    return true;
  } catch {
    return false;
  }
}

/**
 * Removes the other tags of `repo`: earlier builds of the same image. An image still used by a
 * container (another suite on the same engine) stays; that is what the refusal is for.
 */
export async function removeStaleTags(repo: string, keep: string): Promise<void> {
  const images = await dockerApi().listImages({ filters: { reference: [repo] } });
  for (const image of images) {
    for (const tag of image.RepoTags ?? []) {
      if (tag !== keep && tag.startsWith(`${repo}:`)) await dockerApi().getImage(tag).remove().catch(() => undefined);
    }
  }
}

/**
 * Serialises builds of one tag across vitest workers (each e2e file runs in its own), so two
 * files never build the same image at once. mkdir is atomic; a lock older than 10 min is stale.
 */
export async function withBuildLock<T>(tag: string, fn: () => Promise<T>): Promise<T> {
  const engine = createHash("sha256").update(process.env.DOCKER_HOST ?? "default").digest("hex").slice(0, 8);
  const lock = join(tmpdir(), `mirror-kit-e2e-${engine}-${tag.replace(/[^a-zA-Z0-9.-]/g, "_")}.lock`);
  const deadline = Date.now() + 15 * 60_000;
  for (;;) {
    try {
      await mkdir(lock);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      const age = Date.now() - (await stat(lock).catch(() => ({ mtimeMs: Date.now() }))).mtimeMs;
      if (age > 10 * 60_000) await rm(lock, { recursive: true, force: true });
      if (Date.now() > deadline) throw new Error(`waited 15 min for the build lock ${lock}`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  try {
    return await fn();
  } finally {
    await rm(lock, { recursive: true, force: true });
  }
}

/** Builds (or reuses) `repo:<content hash>` from the spec; returns the tag. */
export async function ensureRootfsImage(repo: string, spec: RootfsSpec): Promise<string> {
  const p = await plan(spec);
  const tag = `${repo}:${await contentHash(spec, p)}`;
  await withBuildLock(tag, async () => {
    if (await imageExists(tag)) return;
    const root = await makeTempDir("rootfs");
    try {
      await assemble(spec, p, root);
      await importRootfs(root, tag, spec.changes);
    } finally {
      await removeTempDir(root);
    }
  });
  await removeStaleTags(repo, tag);
  return tag;
}

/** `docker build` of a context directory, cached under a tag the caller derived from its inputs. */
export async function ensureBuiltImage(tag: string, context: string, buildArgs: Record<string, string>, dockerfile = "Dockerfile"): Promise<string> {
  await withBuildLock(tag, async () => {
    if (await imageExists(tag)) return;
    const args = ["build", "--force-rm", "-f", join(context, dockerfile), "-t", tag];
    for (const [k, v] of Object.entries(buildArgs)) args.push("--build-arg", `${k}=${v}`);
    const { stdout } = await dockerCli([...args, context], { timeoutMs: 600_000 });
    // The classic builder keeps each earlier stage's result as an untagged image (the deps stage
    // holds the whole host node_modules): remove those this build made, with their parents.
    const made = new Set([...stdout.matchAll(/ ---> ([0-9a-f]{12})\b/g)].map((m) => m[1]));
    for (const image of await dockerApi().listImages({ filters: { dangling: ["true"] } })) {
      const id = image.Id.replace(/^sha256:/, "");
      if (made.has(id.slice(0, 12))) await dockerApi().getImage(id).remove().catch(() => undefined);
    }
  });
  return tag;
}
