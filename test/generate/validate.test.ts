// The generated files checked by the real consumers: Compose v1 (`docker-compose config`) and the
// Compose Specification schema, Ruby and `vagrant validate`, the Dev Container schemas, and JSONC.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Ajv, type ValidateFunction } from "ajv";
import { Ajv2019 } from "ajv/dist/2019.js";
import addFormats from "ajv-formats";
import { parse as parseJsonc, type ParseError } from "jsonc-parser";
import { parse as parseYaml } from "yaml";
import { describe, expect, test } from "vitest";
import { mergeCompose } from "../../src/generate/compose.js";
import { resolveSettings } from "../../src/generate/settings.js";
import { copyTree, readTree, REPO, tempDir } from "./support.js";

const GOLDEN = join(REPO, "test/generate/golden");
const SCHEMAS = join(REPO, "test/fixtures/schemas");
// The compose schema names its meta-schema with an https URL ajv does not register; the draft is
// chosen by the Ajv class instead.
const schema = (name: string) => {
  const { $schema: _meta, ...rest } = JSON.parse(readFileSync(join(SCHEMAS, name), "utf8")) as Record<string, unknown>;
  return rest;
};

function compile(kind: "07" | "2019", name: string): ValidateFunction {
  const ajv = kind === "07" ? new Ajv({ strict: false, allErrors: true }) : new Ajv2019({ strict: false, allErrors: true });
  (addFormats as unknown as (a: object) => void)(ajv);
  return ajv.compile(schema(name));
}
const composeSchema = compile("07", "compose-spec.json");
const featureSchema = compile("07", "devContainerFeature.schema.json");
const devcontainerSchema = compile("2019", "devContainer.base.schema.json");

const tree = readTree(GOLDEN);
const files = (re: RegExp) => Object.keys(tree).filter((p) => re.test(p)).sort();
const composeFiles = [...files(/(^|\/)(docker-)?compose\.ya?ml$/), "../../../plugins/compose/compose.mirror-kit.yaml"];

function jsonc(text: string): unknown {
  const errors: ParseError[] = [];
  const value = parseJsonc(text, errors, { allowTrailingComma: true });
  expect(errors).toEqual([]);
  return value;
}

describe.each(composeFiles)("compose file %s", (rel) => {
  const path = join(GOLDEN, rel);
  test("validates against the Compose Specification schema", () => {
    const ok = composeSchema(parseYaml(readFileSync(path, "utf8")));
    expect(composeSchema.errors ?? []).toEqual([]);
    expect(ok).toBe(true);
  });

  test("is accepted by Compose v1 (docker-compose config)", () => {
    const dir = tempDir("mk-dc-");
    copyTree(join(path, ".."), dir);
    const r = spawnSync("docker-compose", ["-f", join(dir, rel.split("/").pop()!), "config", "-q"], { encoding: "utf8", cwd: dir });
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
  });
});

test("Compose v1 sees the mirror service with its healthcheck and volume", () => {
  const out = execFileSync("docker-compose", ["-f", join(GOLDEN, "compose-only/compose.yaml"), "config"], { encoding: "utf8" });
  const config = parseYaml(out) as { services: Record<string, { healthcheck?: { test: string[] }; extra_hosts?: string[] }>; volumes: object };
  expect(config.services["mirror-kit"]?.healthcheck?.test[1]).toBe("node");
  expect(config.services.builder?.extra_hosts).toContain("host.docker.internal:host-gateway");
  expect(Object.keys(config.volumes)).toContain("mirror-kit-data");
});

test("with --build, the Compose Specification schema and Compose v1 accept the mirror's build", () => {
  const golden = join(REPO, "test/generate/golden-build/compose-only");
  const data = parseYaml(readFileSync(join(golden, "compose.yaml"), "utf8")) as object;
  expect(composeSchema(data), JSON.stringify(composeSchema.errors)).toBe(true);
  const dir = tempDir("mk-dcb-");
  copyTree(golden, dir);
  copyTree(join(GOLDEN, "compose-only/api"), join(dir, "api"));
  // Compose v1 refuses a build context that does not exist; init --build writes it beside the file.
  mkdirSync(join(dir, ".mirror-kit/image"), { recursive: true });
  const out = execFileSync("docker-compose", ["-f", join(dir, "compose.yaml"), "config"], { encoding: "utf8", cwd: dir });
  const build = (parseYaml(out) as { services: Record<string, { build?: { context: string; args: Record<string, string> } }> }).services["mirror-kit"]?.build;
  expect(build).toEqual({ context: join(dir, ".mirror-kit/image"), args: { NODE_IMAGE: "node:22-alpine" } });
});

test("a merged file with version: 2 is still accepted by Compose v1", () => {
  const merged = mergeCompose('version: "2"\nservices:\n  app:\n    image: busybox\n', "compose.yaml", resolveSettings({}), false);
  const dir = tempDir("mk-dc2-");
  const file = join(dir, "docker-compose.yml");
  writeFileSync(file, merged);
  const r = spawnSync("docker-compose", ["-f", file, "config", "-q"], { encoding: "utf8" });
  expect(r.stderr).toBe("");
  expect(r.status).toBe(0);
});

describe.each(files(/(^|\/)Vagrantfile$/))("%s", (rel) => {
  test("is valid Ruby (ruby -c)", () => {
    expect(execFileSync("ruby", ["-c", join(GOLDEN, rel)], { encoding: "utf8" })).toContain("Syntax OK");
  });

  test("passes vagrant validate --ignore-provider", () => {
    const dir = tempDir("mk-vg-");
    copyTree(join(GOLDEN, rel, ".."), dir);
    const r = spawnSync("vagrant", ["validate", "--ignore-provider"], { encoding: "utf8", cwd: dir, env: { ...process.env, VAGRANT_CHECKPOINT_DISABLE: "1" } });
    expect(r.stdout + r.stderr).toContain("validated successfully");
    expect(r.status).toBe(0);
  });
});

describe.each([...files(/devcontainer-feature\.json$/), "../../../plugins/devcontainer-feature/src/mirror-kit/devcontainer-feature.json"])("%s", (rel) => {
  test("validates against devContainerFeature.schema.json", () => {
    const ok = featureSchema(JSON.parse(readFileSync(join(GOLDEN, rel), "utf8")));
    expect(featureSchema.errors ?? []).toEqual([]);
    expect(ok).toBe(true);
  });
});

describe.each(files(/(^|\/)devcontainer\.json$/))("%s", (rel) => {
  const text = tree[rel]!;
  test("still parses as JSONC and validates against the devcontainer base schema", () => {
    const ok = devcontainerSchema(jsonc(text));
    expect(devcontainerSchema.errors ?? []).toEqual([]);
    expect(ok).toBe(true);
  });

  test("keeps every comment of the original", () => {
    const original = readFileSync(join(REPO, "examples", rel), "utf8");
    const comments = original.match(/\/\/[^\n]*|\/\*[\s\S]*?\*\//g) ?? [];
    expect(comments.length).toBeGreaterThan(0);
    for (const c of comments) expect(text).toContain(c);
  });
});

describe.each(files(/\.sh$/))("%s", (rel) => {
  test("is valid POSIX sh and bash", () => {
    for (const shell of ["sh", "bash"]) expect(spawnSync(shell, ["-n", join(GOLDEN, rel)]).status, shell).toBe(0);
  });
});
