// The team deployment examples, checked by their real consumers: the Compose file against the
// Compose Specification schema and by Compose v1 (`docker-compose config`), haproxy's configuration
// by `haproxy -c`, every Kubernetes object against the Kubernetes OpenAPI schemas (kubernetes-models).
// No cluster runs here: the manifests are validated, not applied.
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Ajv } from "ajv";
import addFormats from "ajv-formats";
import { parseAllDocuments, parse as parseYaml } from "yaml";
import { describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/schema.js";
import { requireTools } from "../support/preflight.js";

const REPO = join(import.meta.dirname, "..", "..");
const TEAM = join(REPO, "examples", "team-cluster");
const K8S = join(REPO, "examples", "kubernetes", "mirror-kit.yaml");

// Kubernetes kinds the example uses, each with its generated OpenAPI validator.
type Model = new (o: never) => { validate(): void };
const KINDS: Record<string, () => Promise<Model>> = {
  "v1/ConfigMap": async () => (await import("kubernetes-models/v1/ConfigMap")).ConfigMap as unknown as Model,
  "v1/Service": async () => (await import("kubernetes-models/v1/Service")).Service as unknown as Model,
  "apps/v1/Deployment": async () => (await import("kubernetes-models/apps/v1/Deployment")).Deployment as unknown as Model,
  "policy/v1/PodDisruptionBudget": async () => (await import("kubernetes-models/policy/v1/PodDisruptionBudget")).PodDisruptionBudget as unknown as Model,
};

async function validateObject(obj: { apiVersion: string; kind: string }): Promise<void> {
  const load = KINDS[`${obj.apiVersion}/${obj.kind}`];
  if (!load) throw new Error(`no validator for ${obj.apiVersion}/${obj.kind}`);
  const Kind = await load();
  new Kind(obj as never).validate();
}

describe("team Compose example (3 replicas, Redis, S3, haproxy)", () => {
  const doc = parseYaml(readFileSync(join(TEAM, "compose.yaml"), "utf8"), { merge: true }) as { services: Record<string, { environment?: Record<string, string> }> };

  it("validates against the Compose Specification schema", () => {
    const { $schema: _meta, ...schema } = JSON.parse(readFileSync(join(REPO, "test", "fixtures", "schemas", "compose-spec.json"), "utf8")) as Record<string, unknown>;
    const ajv = new Ajv({ strict: false, allErrors: true });
    (addFormats as unknown as (a: object) => void)(ajv);
    const validate = ajv.compile(schema);
    const ok = validate(doc);
    expect(validate.errors ?? []).toEqual([]);
    expect(ok).toBe(true);
  });

  it("is accepted by Compose v1 (docker-compose config)", () => {
    requireTools(["docker-compose"]);
    const r = spawnSync("docker-compose", ["-f", join(TEAM, "compose.yaml"), "config", "-q"], { encoding: "utf8", cwd: TEAM });
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
  });

  it("runs three replicas that share one Redis and one bucket, each with its own replica name", () => {
    const mirrors = Object.entries(doc.services).filter(([name]) => name.startsWith("mirror-"));
    expect(mirrors.map(([n]) => n)).toEqual(["mirror-1", "mirror-2", "mirror-3"]);
    const envs = mirrors.map(([, s]) => s.environment ?? {});
    expect(new Set(envs.map((e) => e.MIRROR_KIT_REDIS_ADDR))).toEqual(new Set(["redis:6379"]));
    expect(new Set(envs.map((e) => e.REGISTRY_STORAGE_S3_BUCKET))).toEqual(new Set(["mirror-kit"]));
    expect(new Set(envs.map((e) => e.MIRROR_KIT_REPLICA)).size).toBe(3);
    expect(Object.keys(doc.services)).toEqual(expect.arrayContaining(["lb", "redis", "s3"]));
  });

  it("has a load balancer configuration haproxy accepts, health-checking /healthz on every replica", () => {
    requireTools(["haproxy"]);
    const cfg = join(TEAM, "haproxy", "haproxy.cfg");
    const r = spawnSync("haproxy", ["-c", "-f", cfg], { encoding: "utf8" });
    expect(r.stdout + r.stderr).toMatch(/Configuration file is valid/);
    expect(r.status).toBe(0);
    const text = readFileSync(cfg, "utf8");
    expect(text).toMatch(/option httpchk GET \/healthz/);
    for (const n of [1, 2, 3]) expect(text).toMatch(new RegExp(`server mirror-${n} mirror-${n}:5000`));
  });
});

describe("Kubernetes example (validated against the OpenAPI schemas; no cluster here)", () => {
  const docs = parseAllDocuments(readFileSync(K8S, "utf8")).map((d) => d.toJS() as { apiVersion: string; kind: string; metadata: { name: string }; data?: Record<string, string> });

  it.each(docs.map((d) => [`${d.kind} ${d.metadata.name}`, d] as const))("%s is a valid object", async (_name, obj) => {
    await expect(validateObject(obj)).resolves.toBeUndefined();
  });

  it("catches a wrong type, so the check can fail", async () => {
    const dep = docs.find((d) => d.kind === "Deployment") as unknown as { spec: { replicas: unknown } };
    const broken = { ...dep, spec: { ...dep.spec, replicas: "three" } };
    await expect(validateObject(broken as never)).rejects.toThrow(/replicas/);
  });

  it("gives mirror-kit a configuration it loads, with Redis on", () => {
    const cm = docs.find((d) => d.kind === "ConfigMap");
    const cfg = parseConfig(parseYaml(cm?.data?.["config.yml"] ?? ""));
    expect(cfg.redis.addr).toBe("mirror-kit-redis:6379");
  });
});
