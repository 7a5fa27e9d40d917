import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { discover } from "./discover.js";
import { formatImageReference, parseImageReference } from "../oci/reference.js";

const HEX = "c".repeat(64);
const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function project(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "mk-discover-"));
  dirs.push(dir);
  for (const [name, text] of Object.entries(files)) {
    await mkdir(dirname(join(dir, name)), { recursive: true });
    await writeFile(join(dir, name), text);
  }
  return dir;
}

const refs = (d: { images: { ref: string }[] }) => d.images.map((i) => i.ref).sort();

describe("image references as users write them", () => {
  it.each([
    ["busybox", "docker.io/library/busybox:latest"],
    ["busybox:1.36", "docker.io/library/busybox:1.36"],
    ["bitnami/redis:7", "docker.io/bitnami/redis:7"],
    ["docker.io/library/alpine:3", "docker.io/library/alpine:3"],
    ["index.docker.io/nginx", "docker.io/library/nginx:latest"],
    ["ghcr.io/owner/img:v1", "ghcr.io/owner/img:v1"],
    ["registry.local:5000/team/app", "registry.local:5000/team/app:latest"],
    ["localhost/app:1", "localhost/app:1"],
    [`alpine@sha256:${HEX}`, `docker.io/library/alpine@sha256:${HEX}`],
    [`quay.io/a/b:1@sha256:${HEX}`, `quay.io/a/b:1@sha256:${HEX}`],
  ])("%s is %s", (input, canonical) => {
    expect(formatImageReference(parseImageReference(input))).toBe(canonical);
  });

  it.each([[""], ["UPPER/case"], ["a b"], ["x@sha256:123"], ["x:-bad"], ["../etc/passwd"]])("refuses %j with NAME_INVALID", (input) => {
    expect(() => parseImageReference(input)).toThrowError(expect.objectContaining({ code: "NAME_INVALID" }));
  });
});

describe("finding the images a project uses", () => {
  it("reads every FROM of a multi-stage Dockerfile, resolving ARG defaults and skipping stages and scratch", async () => {
    const dir = await project({
      Dockerfile: [
        "ARG BASE=node",
        "ARG VERSION=22",
        "ARG REGISTRY",
        "FROM ${BASE}:${VERSION}-alpine AS build",
        "RUN echo build",
        "FROM --platform=$BUILDPLATFORM golang:1.22 as tools",
        "FROM build AS test",
        "FROM ${REGISTRY:-ghcr.io}/owner/runtime@sha256:" + HEX,
        "FROM scratch",
        "COPY --from=busybox:1.36 /bin/busybox /busybox",
        "",
      ].join("\n"),
    });
    expect(refs(discover([], dir))).toEqual([
      "docker.io/library/golang:1.22",
      "docker.io/library/node:22-alpine",
      `ghcr.io/owner/runtime@sha256:${HEX}`,
    ]);
  });

  it("reports a FROM whose ARG has no value instead of guessing", async () => {
    const dir = await project({ Dockerfile: "ARG TAG\nFROM alpine:${TAG}\n" });
    const d = discover([], dir);
    expect(d.images).toEqual([]);
    expect(d.warnings.join("\n")).toMatch(/Dockerfile:2 FROM: alpine:\$\{TAG\} uses \$TAG, which has no value/);
  });

  it("takes Compose service images and the Dockerfiles of build contexts (with build args), not the built image's name", async () => {
    const dir = await project({
      "compose.yaml": [
        "services:",
        "  db:",
        "    image: postgres:16",
        "  cache:",
        "    image: ${CACHE_IMAGE:-redis:7}",
        "  api:",
        "    image: myorg/api:dev",
        "    build:",
        "      context: ./api",
        "      args:",
        "        NODE: '20'",
        "  worker:",
        "    build: ./worker",
        "",
      ].join("\n"),
      "api/Dockerfile": "ARG NODE=22\nFROM node:${NODE}-slim\n",
      "worker/Dockerfile": "FROM python:3.12\n",
    });
    expect(refs(discover([], dir))).toEqual([
      "docker.io/library/node:20-slim",
      "docker.io/library/postgres:16",
      "docker.io/library/python:3.12",
      "docker.io/library/redis:7",
    ]);
    expect(refs(discover([], dir, { CACHE_IMAGE: "valkey/valkey:8" }))).toContain("docker.io/valkey/valkey:8");
  });

  it("reads devcontainer.json with comments: image, and build.dockerfile relative to it", async () => {
    const a = await project({ ".devcontainer/devcontainer.json": '{\n  // a comment\n  "image": "mcr.microsoft.com/devcontainers/base:bookworm",\n}\n' });
    expect(refs(discover([], a))).toEqual(["mcr.microsoft.com/devcontainers/base:bookworm"]);
    const b = await project({
      ".devcontainer/devcontainer.json": '{ "build": { "dockerfile": "Dockerfile", "context": "..", "args": { "V": "3.20" } } }',
      ".devcontainer/Dockerfile": "ARG V=3.19\nFROM alpine:${V}\n",
    });
    expect(refs(discover([], b))).toEqual(["docker.io/library/alpine:3.20"]);
  });

  it("reads every image: of multi-document Kubernetes YAML, init containers included", async () => {
    const dir = await project({
      "deploy.yaml": [
        "apiVersion: apps/v1",
        "kind: Deployment",
        "spec:",
        "  template:",
        "    spec:",
        "      initContainers:",
        "        - name: init",
        "          image: busybox:1.36",
        "      containers:",
        "        - name: app",
        "          image: ghcr.io/owner/app:2.1",
        "---",
        "apiVersion: batch/v1",
        "kind: Job",
        "spec:",
        "  template:",
        "    spec:",
        "      containers:",
        "        - name: migrate",
        "          image: registry.k8s.io/pause:3.9",
        "",
      ].join("\n"),
    });
    expect(refs(discover(["deploy.yaml"], dir))).toEqual(["docker.io/library/busybox:1.36", "ghcr.io/owner/app:2.1", "registry.k8s.io/pause:3.9"]);
    // A folder of manifests, given as a folder.
    expect(refs(discover(["."], dir))).toEqual(["docker.io/library/busybox:1.36", "ghcr.io/owner/app:2.1", "registry.k8s.io/pause:3.9"]);
  });

  it("takes plain references from the command line, once each", async () => {
    const dir = await project({});
    expect(refs(discover(["busybox", "docker.io/library/busybox:latest", "quay.io/x/y:1"], dir))).toEqual(["docker.io/library/busybox:latest", "quay.io/x/y:1"]);
  });

  it.each([
    ["compose.yaml", "services: [unclosed\n", /compose\.yaml: not valid YAML/],
    [".devcontainer/devcontainer.json", "{ nope", /not valid JSON with comments/],
  ])("names a malformed %s", async (name, text, message) => {
    const dir = await project({ [name]: text });
    expect(() => discover([], dir)).toThrowError(message);
  });

  it("says so when a folder holds nothing it knows", async () => {
    const dir = await project({ "README.md": "hi" });
    expect(() => discover([], dir)).toThrowError(expect.objectContaining({ code: "MK_PREFETCH_NOTHING" }));
  });

  it("refuses a hostile reference on the command line with a clear message", async () => {
    const dir = await project({});
    expect(() => discover(["../../etc/shadow:x"], dir)).toThrowError(/invalid image reference/);
  });
});

describe("the mirror's own Compose service", () => {
  it("is not prefetched through itself: the service init adds is skipped, the others are not", async () => {
    const dir = await project({ "compose.yaml": "services:\n  web:\n    image: nginx:1.25\n  mirror-kit:\n    image: ghcr.io/mirror-kit/mirror-kit:0.1.0\n" });
    expect(refs(discover([dir], dir))).toEqual(["docker.io/library/nginx:1.25"]);
  });
});
