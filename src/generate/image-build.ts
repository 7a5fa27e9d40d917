// Building the mirror image on this machine, with no registry: the Dockerfile that ships in the npm
// package and a context made from the installed package (image-context.ts), sent to the Docker API.
import type Dockerode from "dockerode";
import tar from "tar-stream";
import { readFile } from "node:fs/promises";
import { GenerateError } from "./errors.js";
import { contextFiles, type ContextFile } from "./image-context.js";
import { PACKAGE_DIR } from "./render.js";
import { DEFAULT_BASE_IMAGE } from "./settings.js";

export interface BuildOptions {
  /** The tag the image gets (the one `up` and the generated Compose service run). */
  tag: string;
  baseImage?: string;
  /** The package whose Dockerfile and files are built; default the running one. */
  packageDir?: string;
}

interface BuildEvent {
  stream?: string;
  status?: string;
  error?: string;
  errorDetail?: { message?: string };
  aux?: { ID?: string };
}

/** The context as a tar stream: entries in a fixed order with fixed times, so equal inputs build alike. */
function packContext(files: ContextFile[]): NodeJS.ReadableStream {
  const pack = tar.pack();
  const sorted = [...files].sort((a, b) => (a.name < b.name ? -1 : 1));
  void (async () => {
    try {
      for (const f of sorted) {
        const bytes = await readFile(f.source);
        await new Promise<void>((resolve, reject) => pack.entry({ name: f.name, size: bytes.length, mode: f.mode, mtime: new Date(0) }, bytes, (err) => (err ? reject(err) : resolve())));
      }
      pack.finalize();
    } catch (err) {
      pack.destroy(err as Error);
    }
  })();
  // tar-stream's pack is a streamx Readable; dockerode only pipes it into the request.
  return pack as unknown as NodeJS.ReadableStream;
}

/**
 * Builds and tags the mirror image through the Docker API, printing the build's progress. The base
 * must be on this machine or pullable; a missing one is named with the flag that picks another.
 */
export async function buildMirrorImage(docker: Dockerode, o: BuildOptions, out: (line: string) => void): Promise<void> {
  const dir = o.packageDir ?? PACKAGE_DIR;
  const base = o.baseImage ?? DEFAULT_BASE_IMAGE;
  const files = contextFiles(dir);
  const mb = files.reduce((n, f) => n + f.size, 0) / 1e6;
  out(`mirror-kit: building ${o.tag} from the Dockerfile in ${dir} on ${base} (context: ${files.length} files, ${mb.toFixed(1)} MB)`);
  let stream: NodeJS.ReadableStream;
  try {
    stream = await docker.buildImage(packContext(files), { t: o.tag, buildargs: { NODE_IMAGE: base }, rm: true, forcerm: true });
  } catch (err) {
    throw new GenerateError("DOCKER", `cannot build ${o.tag}: ${(err as Error).message}`);
  }
  let failure: string | undefined;
  const layers = new Set<string>();
  await new Promise<void>((resolve, reject) => {
    docker.modem.followProgress(
      stream,
      (err: Error | null) => (err ? reject(new GenerateError("DOCKER", `building ${o.tag}: ${err.message}`)) : resolve()),
      (e: BuildEvent) => {
        if (e.error || e.errorDetail) failure ??= (e.errorDetail?.message ?? e.error ?? "").trim();
        const text = (e.stream ?? e.status ?? "").trimEnd();
        for (const m of text.matchAll(/ ---> ([0-9a-f]{12})\b/g)) layers.add(m[1]!);
        if (text) for (const line of text.split("\n")) out(`  ${line}`);
      },
    );
  });
  if (failure !== undefined) {
    // The classic builder pulls a FROM it does not have; offline that fails naming the base.
    const baseMissing = failure.includes(base) || /pull access denied|manifest unknown|no such host|failed to resolve|dial tcp/i.test(failure);
    const hint = baseMissing ? `; the base ${base} must be on this machine or pullable: pass --base-image with a local image that has node >= 20.19` : "";
    throw new GenerateError("DOCKER", `building ${o.tag} failed: ${failure}${hint}`);
  }
  await removeStages(docker, layers);
  out(`mirror-kit: built ${o.tag}`);
}

/**
 * The classic builder keeps each earlier stage's result as an untagged image (the deps stage holds a
 * copy of node_modules): remove the ones this build made, so repeated builds leave nothing behind.
 */
async function removeStages(docker: Dockerode, layers: Set<string>): Promise<void> {
  const dangling = await docker.listImages({ filters: { dangling: ["true"] } }).catch(() => []);
  for (const image of dangling) {
    const id = image.Id.replace(/^sha256:/, "");
    if (layers.has(id.slice(0, 12))) await docker.getImage(id).remove().catch(() => undefined);
  }
}
