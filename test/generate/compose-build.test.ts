// `init --build`: the Compose service builds the mirror image from the Dockerfile in the package, on
// the context init copies into the project; the flags it needs are checked, and reruns copy nothing.
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { BUILD_CONTEXT, planBuildContext, writeBuildContext } from "../../src/generate/compose-build.js";
import { GenerateError } from "../../src/generate/errors.js";
import { runInit, type InitOptions } from "../../src/generate/init.js";
import { packageVersion } from "../../src/generate/render.js";
import { DEFAULT_BASE_IMAGE, DEFAULT_IMAGE } from "../../src/generate/settings.js";
import { readTree, REPO, Sink, tempDir } from "./support.js";

const COMPOSE = "services:\n  app:\n    image: busybox\n";

function project(files: Record<string, string>): string {
  const dir = tempDir("mk-build-");
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

async function init(dir: string, options: InitOptions) {
  const out = new Sink();
  const result = await runInit({ yes: true, ...options }, { cwd: dir, stdout: out, isTTY: false });
  return { out: out.text, result };
}

describe("init --build", () => {
  test("copies the package's Dockerfile, build and production dependencies to .mirror-kit/image, out of git", async () => {
    const dir = project({ "compose.yaml": COMPOSE });
    const { out } = await init(dir, { build: true });
    const ctx = join(dir, BUILD_CONTEXT);
    expect(readFileSync(join(ctx, "Dockerfile"), "utf8")).toBe(readFileSync(join(REPO, "Dockerfile"), "utf8"));
    expect(readFileSync(join(ctx, ".dockerignore"), "utf8")).toBe(readFileSync(join(REPO, ".dockerignore"), "utf8"));
    expect(existsSync(join(ctx, "dist/cli/main.js"))).toBe(true);
    expect(existsSync(join(ctx, "templates/compose/compose.mirror-kit.yaml.hbs"))).toBe(true);
    // Production dependencies only, laid out as Node resolves them; nothing the build never uses.
    expect(existsSync(join(ctx, "node_modules/yaml/package.json"))).toBe(true);
    expect(existsSync(join(ctx, "node_modules/vitest"))).toBe(false);
    expect(existsSync(join(ctx, "src"))).toBe(false);
    expect(readFileSync(join(ctx, ".gitignore"), "utf8").split("\n")).toContain("*");
    expect(out).toMatch(/^wrote {6}\.mirror-kit\/image\/ \(the mirror image's build context: \d+ files, \d+\.\d MB\)$/m);
    expect(out).toContain(`image: the mirror runs ${DEFAULT_IMAGE}, built on this machine by Compose from the Dockerfile in this mirror-kit ${packageVersion()} package on the Node base ${DEFAULT_BASE_IMAGE}`);
    expect(out).toContain("`docker compose build mirror-kit` rebuilds it");
    expect(out).toContain("on another machine run `mirror-kit init --build` there first");
  });

  test("a second run with the same package copies nothing and reports everything up to date", async () => {
    const dir = project({ "compose.yaml": COMPOSE });
    await init(dir, { build: true, baseImage: "registry.corp/node:22" });
    const before = readTree(dir);
    const again = await init(dir, { build: true, baseImage: "registry.corp/node:22" });
    expect(again.result.written).toBe(false);
    expect(again.out).toContain("everything is up to date");
    expect(readTree(dir)).toEqual(before);
  });

  test("--dry-run names the context it would write and writes nothing", async () => {
    const dir = project({ "compose.yaml": COMPOSE });
    const { out } = await init(dir, { build: true, dryRun: true });
    expect(out).toMatch(/^would write \.mirror-kit\/image\/ \(the mirror image's build context: \d+ files/m);
    expect(out).toContain("+    build:");
    expect(readdirSync(dir)).toEqual(["compose.yaml"]);
  });

  test.each([
    ["--base-image without --build", { "compose.yaml": COMPOSE }, { baseImage: "node:22" }, /^--base-image: only used with --build .* drop --base-image node:22$/],
    ["--build with no Compose file to wire", { Vagrantfile: 'Vagrant.configure("2") do |config|\nend\n' }, { build: true }, /^--build: the image is built by the Compose service init writes/],
    ["a malformed --base-image", { "compose.yaml": COMPOSE }, { build: true, baseImage: "node 22" }, /^--base-image: expected an image reference like node:22-alpine, got "node 22"$/],
  ])("%s is refused, naming the flag, and nothing is written", async (_name, files, options, message) => {
    const dir = project(files);
    const before = readTree(dir);
    const err = await init(dir, options).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GenerateError);
    expect((err as GenerateError).code).toBe("BAD_OPTION");
    expect((err as GenerateError).message).toMatch(message);
    expect(readTree(dir)).toEqual(before);
  });
});

describe("the copied context", () => {
  /** A package with a Dockerfile, one shipped folder and no dependencies. */
  function fakePackage(): string {
    const dir = tempDir("mk-build-pkg-");
    writeFileSync(join(dir, "package.json"), JSON.stringify({ name: "mirror-kit", version: "9.9.9", files: ["Dockerfile", "dist"] }));
    writeFileSync(join(dir, "Dockerfile"), "FROM scratch\n");
    mkdirSync(join(dir, "dist"));
    writeFileSync(join(dir, "dist", "main.js"), "one\n");
    return dir;
  }

  test("is replaced whole when the package changes, leaving no half-written or old folder", async () => {
    const pkg = fakePackage();
    const dir = tempDir("mk-build-proj-");
    const first = planBuildContext(dir, pkg);
    expect(first.upToDate).toBe(false);
    await writeBuildContext(first);
    expect(planBuildContext(dir, pkg).upToDate).toBe(true);

    writeFileSync(join(pkg, "dist", "main.js"), "two\n");
    const second = planBuildContext(dir, pkg);
    expect(second.upToDate).toBe(false);
    await writeBuildContext(second);
    expect(readFileSync(join(dir, BUILD_CONTEXT, "dist", "main.js"), "utf8")).toBe("two\n");
    expect(readdirSync(join(dir, ".mirror-kit"))).toEqual(["image"]);
    expect(readdirSync(join(dir, BUILD_CONTEXT)).sort()).toEqual([".gitignore", ".mirror-kit-context", "Dockerfile", "dist", "package.json"]);
  });
});
