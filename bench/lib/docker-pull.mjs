// `docker pull` end to end through each target, with a private Docker engine (the test harness's
// test/support/docker-engine.ts, transpiled on the fly so the bench and the tests share one copy).
// The image has one real tar.gz layer of random data, so the engine really unpacks it.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import ts from "typescript";
import { TAG } from "./fixture.mjs";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const SUPPORT = ["docker-engine", "preflight", "process", "scratch"];

/** The test harness's DockerEngine class, compiled into the bench's scratch folder. */
export async function loadDockerEngine(scratchDir) {
  const out = join(scratchDir, "support");
  await mkdir(out, { recursive: true });
  for (const name of SUPPORT) {
    const source = await readFile(join(root, "test/support", `${name}.ts`), "utf8");
    const { outputText } = ts.transpileModule(source, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } });
    await writeFile(join(out, `${name}.js`), outputText);
  }
  await writeFile(join(out, "package.json"), '{"type":"module"}\n');
  return (await import(pathToFileURL(join(out, "docker-engine.js")).href)).DockerEngine;
}

async function sha256File(path) {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk);
  return `sha256:${hash.digest("hex")}`;
}

/** A tar holding one file of random bytes, gzipped fast (random data does not compress anyway). */
export async function buildLayer(scratchDir, mib) {
  const dir = join(scratchDir, "pull-layer");
  await mkdir(dir, { recursive: true });
  execFileSync("bash", ["-c", `head -c ${mib}M /dev/urandom > "${dir}/random.bin" && tar -C "${dir}" -cf "${dir}/layer.tar" random.bin && rm "${dir}/random.bin"`]);
  const diffId = await sha256File(join(dir, "layer.tar"));
  execFileSync("bash", ["-c", `gzip -1 -c "${dir}/layer.tar" > "${dir}/layer.tar.gz" && rm "${dir}/layer.tar"`]);
  const path = join(dir, "layer.tar.gz");
  return { path, digest: await sha256File(path), diffId, size: (await stat(path)).size };
}

/**
 * Pull the fixture through `baseUrl` (a loopback registry: the engine treats 127.0.0.0/8 as
 * insecure, so plain HTTP is allowed), then remove it so the next pull unpacks again. Seconds.
 */
export async function dockerPull(engine, baseUrl, fixture) {
  const ref = `${new URL(baseUrl).host}/${fixture.repository}:${TAG}`;
  const started = performance.now();
  await engine.docker(["pull", "-q", ref], { timeoutMs: 600_000 });
  const seconds = (performance.now() - started) / 1000;
  await engine.docker(["rmi", "-f", ref]);
  return seconds;
}
