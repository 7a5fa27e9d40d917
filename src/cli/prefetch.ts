// `mirror-kit prefetch`: warm a running mirror with the images a project uses (src/prefetch/), with
// progress bars on a terminal and one line per image otherwise. runPrefetch is what tests call.
import { readFileSync } from "node:fs";
import cliProgress from "cli-progress";
import bytes from "bytes";
import type { CommandModule } from "yargs";
import { MirrorKitError } from "../errors.js";
import { discover } from "../prefetch/discover.js";
import { platformsFromFlags } from "../oci/platform.js";
import { prefetch, type ImageResult, type Mirror, type PrefetchEvent } from "../prefetch/fetch.js";

export interface PrefetchArgs {
  targets: string[];
  mirror: string;
  platform: string[];
  concurrency: number;
  ca?: string;
  cwd: string;
}

export interface PrefetchDeps {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
  env: Readonly<Record<string, string | undefined>>;
}

/** A mirror URL may carry user:password (a mirror behind client auth); they become a header, never output. */
export function mirrorFromUrl(value: string, ca?: string): Mirror {
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    throw new MirrorKitError("MK_USAGE", `--mirror: expected a URL such as http://127.0.0.1:5000, got ${JSON.stringify(value.replace(/\/\/[^@/]*@/, "//…@"))}`);
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") throw new MirrorKitError("MK_USAGE", "--mirror: expected an http:// or https:// URL");
  const authorization = u.username ? `Basic ${Buffer.from(`${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`).toString("base64")}` : undefined;
  u.username = "";
  u.password = "";
  return { url: u.origin, ...(authorization ? { authorization } : {}), ...(ca ? { ca } : {}) };
}

export async function runPrefetch(a: PrefetchArgs, deps: PrefetchDeps): Promise<ImageResult[]> {
  const platforms = platformsFromFlags(a.platform);
  let ca: string | undefined;
  if (a.ca) {
    try {
      ca = readFileSync(a.ca, "utf8");
    } catch (err) {
      throw new MirrorKitError("MK_USAGE", `--ca: cannot read ${a.ca}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
  }
  const mirror = mirrorFromUrl(a.mirror, ca);
  const found = discover(a.targets, a.cwd, deps.env);
  const say = (line: string) => deps.stderr.write(`${line}\n`);
  for (const w of found.warnings) say(`warning: ${w}`);
  if (found.images.length === 0) throw new MirrorKitError("MK_PREFETCH_NOTHING", "no images found to prefetch");
  say(`prefetching ${found.images.length} image(s) through ${mirror.url} for ${platforms.length ? platforms.map((p) => [p.os, p.architecture, p.variant].filter(Boolean).join("/")).join(", ") : "every platform"}`);

  const bars = deps.stderr.isTTY ? new Bars(deps.stderr) : undefined;
  const results = await prefetch(
    found.images.map((i) => i.ref),
    {
      mirror,
      platforms,
      concurrency: a.concurrency,
      onEvent: (e) => {
        bars?.update(e);
        if (!bars && e.kind === "image-done") say(describe(e.result));
      },
    },
  );
  bars?.stop();
  if (bars) for (const r of results) say(describe(r));
  const failed = results.filter((r) => !r.ok);
  const fetched = results.reduce((n, r) => n + r.fetchedBytes, 0);
  deps.stdout.write(`${results.length - failed.length} of ${results.length} image(s) cached in the mirror (${bytes(fetched) ?? "0B"} fetched now)\n`);
  if (failed.length > 0) throw new MirrorKitError("MK_PREFETCH_FAILED", `${failed.length} image(s) could not be prefetched: ${failed.map((f) => f.ref).join(", ")}`);
  return results;
}

function describe(r: ImageResult): string {
  if (!r.ok) return `✗ ${r.ref}: ${r.error}`;
  return `✓ ${r.ref} (${r.platforms.join(", ")}): ${r.blobs} blob(s), ${r.cachedBlobs} already cached, ${bytes(r.fetchedBytes) ?? "0B"} fetched`;
}

/** One bar per image and one for all bytes (cli-progress), redrawn on stderr. */
class Bars {
  private readonly multi: cliProgress.MultiBar;
  private readonly perImage = new Map<string, { bar: cliProgress.SingleBar; done: number }>();
  private readonly total: { bar: cliProgress.SingleBar; done: number; size: number };

  constructor(stream: NodeJS.WritableStream) {
    this.multi = new cliProgress.MultiBar({ stream, format: " {bar} {percentage}% | {name} | {done} of {size}", hideCursor: true, clearOnComplete: false }, cliProgress.Presets.shades_classic);
    this.total = { bar: this.multi.create(1, 0, { name: "all images", done: "0B", size: "?" }), done: 0, size: 0 };
  }

  update(e: PrefetchEvent): void {
    if (e.kind === "image-sized") {
      this.perImage.set(e.ref, { bar: this.multi.create(Math.max(1, e.bytes), 0, { name: e.ref, done: "0B", size: bytes(e.bytes) ?? "0B" }), done: 0 });
      this.total.size += e.bytes;
      this.total.bar.setTotal(Math.max(1, this.total.size));
      this.total.bar.update({ size: bytes(this.total.size) ?? "0B" });
    } else if (e.kind === "bytes") {
      for (const b of [this.perImage.get(e.ref), this.total]) {
        if (!b) continue;
        b.done += e.bytes;
        b.bar.update(b.done, { done: bytes(b.done) ?? "0B" });
      }
    }
  }

  stop(): void {
    this.multi.stop();
  }
}

export const prefetchCommand: CommandModule = {
  command: "prefetch [targets..]",
  describe: "Warm a running mirror with the images of this project (Compose, Dockerfiles, devcontainer.json, Kubernetes YAML) or of named images",
  builder: (y) =>
    y
      .positional("targets", { type: "string", array: true, describe: "files, folders or image references (default: the current folder)" })
      .option("mirror", { type: "string", describe: "the mirror's URL (user:password@ for a mirror behind auth); env MIRROR_KIT_URL, default http://127.0.0.1:5000" })
      .option("platform", { type: "string", array: true, nargs: 1, describe: "OS/ARCH[/VARIANT] to fetch from multi-arch images, repeatable or comma-separated; 'all' for every one (default: this host's)" })
      .option("concurrency", { type: "number", default: 4, describe: "blob downloads at once" })
      .option("ca", { type: "string", describe: "CA certificate (PEM) of an https mirror" })
      .example("$0 prefetch", "every image of the project in the current folder")
      .example("$0 prefetch compose.yaml busybox:1.36 --platform linux/amd64,linux/arm64", "a Compose project and one more image, for two platforms"),
  handler: async (argv) => {
    const a = argv as Record<string, unknown>;
    const concurrency = a.concurrency as number;
    if (!Number.isInteger(concurrency) || concurrency < 1) throw new MirrorKitError("MK_USAGE", `--concurrency: expected a whole number of at least 1, got ${String(a.concurrency)}`);
    await runPrefetch(
      {
        targets: (a.targets as string[] | undefined) ?? [],
        mirror: (a.mirror as string | undefined) ?? process.env.MIRROR_KIT_URL ?? "http://127.0.0.1:5000",
        platform: (a.platform as string[] | undefined) ?? [],
        concurrency,
        ...(a.ca ? { ca: a.ca as string } : {}),
        cwd: process.cwd(),
      },
      { stdout: process.stdout, stderr: process.stderr, env: process.env },
    );
  },
};
